//! How clients of guarded sidecars (`tracer cluster`, and MCP-style clients) reach them: the
//! bearer token from a file (its first line that is not a `#` comment) or the
//! `TRACER_AUTH_TOKEN` environment variable, and the CA certificates the sidecars' TLS
//! certificates are checked against. The token never appears in `Debug` output or errors.

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::{bail, Context as _, Result};

/// The environment variable a client reads the token from when no token file is given.
pub const TOKEN_ENV: &str = "TRACER_AUTH_TOKEN";

/// How sidecars are asked: the bearer token to send, the CA certificates to trust.
#[derive(Default)]
pub struct Client {
    token: Option<String>,
    roots: Option<Vec<ureq::tls::Certificate<'static>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Client")
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("roots", &self.roots.as_ref().map(Vec::len))
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
        Ok(Client { token, roots })
    }

    /// The token to send, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether endpoints without a scheme are asked over HTTPS (a CA file was given).
    pub fn https(&self) -> bool {
        self.roots.is_some()
    }

    /// An agent with `timeout` for everything, the CA roots, no proxy, statuses as answers.
    pub fn agent(&self, timeout: Duration) -> ureq::Agent {
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
        config.build().into()
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
        let c = Client::new(Some(&file), Some("from-env".to_owned()), None).expect("client");
        assert_eq!(c.token.as_deref(), Some("from-the-file-0123"));
        assert!(
            !format!("{c:?}").contains("from-the-file"),
            "Debug never shows it"
        );
        let c = Client::new(None, Some(" from-env \n".to_owned()), None).expect("client");
        assert_eq!(c.token.as_deref(), Some("from-env"));
        assert_eq!(
            Client::new(None, Some("  ".to_owned()), None)
                .expect("client")
                .token,
            None
        );
        std::fs::write(&file, "# nothing\n").expect("write");
        let e = Client::new(Some(&file), None, None)
            .expect_err("empty")
            .to_string();
        assert!(e.contains("holds no token"), "{e}");
        let e = Client::new(None, None, Some(&file))
            .expect_err("no CA")
            .to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
