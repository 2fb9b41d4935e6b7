//! How clients of guarded sidecars (`tracer cluster`, and MCP-style clients) reach them: the
//! bearer token from a file (its first line that is not a `#` comment) or the
//! `TRACER_AUTH_TOKEN` environment variable, and the CA certificates the sidecars' TLS
//! certificates are checked against, and the name they are checked for when it is not the
//! endpoint's (`--tls-server-name`: one certificate for every node, reached at node addresses).
//! The token never appears in `Debug` output or errors.

use std::{net::ToSocketAddrs as _, path::Path, sync::Arc, time::Duration};

use anyhow::{bail, Context as _, Result};

/// The environment variable a client reads the token from when no token file is given.
pub const TOKEN_ENV: &str = "TRACER_AUTH_TOKEN";

/// How sidecars are asked: the bearer token to send, the CA certificates to trust.
#[derive(Default)]
pub struct Client {
    token: Option<String>,
    roots: Option<Vec<ureq::tls::Certificate<'static>>>,
    server_name: Option<String>,
}

/// Connects to one endpoint's address whatever host the URL names: the URL carries the name
/// the certificate is checked for.
#[derive(Debug)]
struct Pinned(String);

impl ureq::unversioned::resolver::Resolver for Pinned {
    fn resolve(
        &self,
        _uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let mut out = self.empty();
        for addr in self.0.to_socket_addrs().map_err(ureq::Error::Io)?.take(16) {
            out.push(addr);
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Client")
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("roots", &self.roots.as_ref().map(Vec::len))
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// The first token of a token file's text (one per line, `#` comments).
pub fn first_token(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
}

impl Client {
    /// The token from `token_file`, else from `env_token` (TRACER_AUTH_TOKEN); the CA
    /// certificates from `ca_cert`. A file given but unusable is an error.
    pub fn new(
        token_file: Option<&Path>,
        env_token: Option<String>,
        ca_cert: Option<&Path>,
        server_name: Option<String>,
    ) -> Result<Client> {
        let token = match token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the token file {}", path.display()))?;
                match first_token(&text) {
                    Some(t) => Some(t.to_owned()),
                    None => bail!(
                        "the token file {} holds no token; write the sidecars' token on one line",
                        path.display()
                    ),
                }
            }
            None => env_token
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty()),
        };
        let roots = match ca_cert {
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("cannot read the CA file {}", path.display()))?;
                let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if certs.is_empty() {
                    bail!(
                        "the CA file {} holds no PEM certificate; give the CA that signed the \
                         sidecars' certificates",
                        path.display()
                    );
                }
                Some(certs)
            }
            None => None,
        };
        Ok(Client {
            token,
            roots,
            server_name,
        })
    }

    /// The token to send, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether endpoints without a scheme are asked over HTTPS (a CA file or a server name was
    /// given).
    pub fn https(&self) -> bool {
        self.roots.is_some() || self.server_name.is_some()
    }

    /// The agent and URL for `path` on `endpoint` (`HOST:PORT` or `https://HOST:PORT`): with a
    /// server name, the URL names it and the agent connects to the endpoint's address.
    pub fn route(&self, endpoint: &str, path: &str, timeout: Duration) -> (ureq::Agent, String) {
        let host_port = endpoint.strip_prefix("https://").unwrap_or(endpoint);
        let Some(name) = &self.server_name else {
            let scheme = if self.https() || endpoint.starts_with("https://") {
                "https"
            } else {
                "http"
            };
            return (self.agent(timeout), format!("{scheme}://{host_port}{path}"));
        };
        let port = host_port.rsplit(':').next().unwrap_or("");
        let agent = ureq::Agent::with_parts(
            self.config(timeout),
            ureq::unversioned::transport::DefaultConnector::default(),
            Pinned(host_port.to_owned()),
        );
        (agent, format!("https://{name}:{port}{path}"))
    }

    /// An agent with `timeout` for everything, the CA roots, no proxy, statuses as answers.
    pub fn agent(&self, timeout: Duration) -> ureq::Agent {
        self.config(timeout).into()
    }

    fn config(&self, timeout: Duration) -> ureq::config::Config {
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .proxy(None);
        if let Some(roots) = &self.roots {
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots.clone())))
                    .build(),
            );
        }
        config.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_token_comes_from_the_file_first_then_the_environment() {
        let dir = std::env::temp_dir().join(format!("tracer-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("token");
        std::fs::write(
            &file,
            "# the sidecars' token\n\n  from-the-file-0123  \nsecond\n",
        )
        .expect("write");
        let c = Client::new(Some(&file), Some("from-env".to_owned()), None, None).expect("client");
        assert_eq!(c.token.as_deref(), Some("from-the-file-0123"));
        assert!(
            !format!("{c:?}").contains("from-the-file"),
            "Debug never shows it"
        );
        let c = Client::new(None, Some(" from-env \n".to_owned()), None, None).expect("client");
        assert_eq!(c.token.as_deref(), Some("from-env"));
        assert_eq!(
            Client::new(None, Some("  ".to_owned()), None, None)
                .expect("client")
                .token,
            None
        );
        std::fs::write(&file, "# nothing\n").expect("write");
        let e = Client::new(Some(&file), None, None, None)
            .expect_err("empty")
            .to_string();
        assert!(e.contains("holds no token"), "{e}");
        let e = Client::new(None, None, Some(&file), None)
            .expect_err("no CA")
            .to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn routes_name_the_certificate_and_connect_to_the_endpoint() {
        let w = "/report?window=5s";
        let t = Duration::from_secs(1);
        let plain = Client::default();
        assert_eq!(plain.route("a:1", w, t).1, "http://a:1/report?window=5s");
        assert_eq!(
            plain.route("https://a:1", w, t).1,
            "https://a:1/report?window=5s"
        );
        let named = Client {
            server_name: Some("tracer.tracer.svc".to_owned()),
            ..Client::default()
        };
        assert!(named.https());
        assert_eq!(
            named.route("10.0.1.5:9595", w, t).1,
            "https://tracer.tracer.svc:9595/report?window=5s"
        );
        assert_eq!(
            named.route("https://[::1]:9596", w, t).1,
            "https://tracer.tracer.svc:9596/report?window=5s"
        );
    }
}
