//! Who may ask `tracer serve` anything. One middleware over the whole router ([`guard`]), so an
//! endpoint added later is covered without a line of its own:
//!
//! - request targets (path and query) and bodies are bounded (414, 413);
//! - with a token file, every path but the explicit allow-list ([`ALWAYS_OPEN`], and `/metrics`
//!   with `--metrics-open`) answers 401 without `Authorization: Bearer <token>`;
//! - tokens are kept as SHA-256 digests and compared in constant time against every token of
//!   the file (no early exit, no length leak); the file is re-read when it changes;
//! - refusals are logged once per client address a minute, at most [`LINES_PER_MINUTE`] lines
//!   a minute in all, never with the token presented.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, RwLock},
    time::Instant,
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use subtle::ConstantTimeEq as _;

use crate::modes::reload::Watched;

/// Paths that answer without a token: the kubelet's probes carry none.
pub const ALWAYS_OPEN: &[&str] = &["/healthz", "/readyz"];
/// The longest request target (path and query) served.
pub const MAX_TARGET_BYTES: usize = 4096;
/// The largest request body accepted (the read-only endpoints take none; MCP-style POSTs are
/// small JSON).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The shortest token accepted in the token file.
pub const MIN_TOKEN_BYTES: usize = 16;
/// A client's refusals are logged at most once per this many milliseconds.
const PER_CLIENT_MS: u64 = 60_000;
/// At most this many refusal lines a minute, whatever the number of clients.
pub const LINES_PER_MINUTE: u32 = 20;
/// Clients remembered for the per-client limit (older ones are forgotten first).
const MAX_CLIENTS: usize = 4096;

/// The accepted tokens, as SHA-256 digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Tokens {
    /// A token file: one token per line; blank lines and `#` comments skipped. Errors name
    /// the line, never the token.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let mut digests = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let token = line.trim();
            if token.is_empty() || token.starts_with('#') {
                continue;
            }
            if token.len() < MIN_TOKEN_BYTES {
                return Err(format!(
                    "line {} holds a token shorter than {MIN_TOKEN_BYTES} characters",
                    i + 1
                ));
            }
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "line {} holds a token with a space or a non-ASCII character",
                    i + 1
                ));
            }
            digests.push(digest(token.as_bytes()));
        }
        if digests.is_empty() {
            return Err("it holds no token (one per line)".to_owned());
        }
        Ok(Tokens { digests })
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` is one of the tokens; the same work whichever matches, if any.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let wanted = digest(presented);
        let mut any = subtle::Choice::from(0u8);
        for d in &self.digests {
            any |= d.ct_eq(&wanted);
        }
        bool::from(any)
    }
}

/// The token of an `Authorization` header value: `Bearer <token>` (scheme case-insensitive).
pub fn bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = value.get(7..)?.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Whether `path` answers without a token.
pub fn is_open(path: &str, metrics_open: bool) -> bool {
    ALWAYS_OPEN.contains(&path) || (metrics_open && path == "/metrics")
}

/// Refusal lines, once per client a minute and [`LINES_PER_MINUTE`] in all; time passed in.
#[derive(Debug, Default)]
pub struct RefusalLog {
    last_logged: HashMap<IpAddr, u64>,
    minute_start_ms: u64,
    lines_this_minute: u32,
    unlogged: u64,
}

impl RefusalLog {
    /// The line to log for a refusal of `client` at `now_ms`, or `None` (counted for the next).
    pub fn note(&mut self, client: IpAddr, now_ms: u64, why: &str) -> Option<String> {
        if now_ms.saturating_sub(self.minute_start_ms) >= 60_000 {
            self.minute_start_ms = now_ms;
            self.lines_this_minute = 0;
        }
        let recent = self
            .last_logged
            .get(&client)
            .is_some_and(|&t| now_ms.saturating_sub(t) < PER_CLIENT_MS);
        if recent || self.lines_this_minute >= LINES_PER_MINUTE {
            self.unlogged += 1;
            return None;
        }
        if self.last_logged.len() >= MAX_CLIENTS {
            self.last_logged
                .retain(|_, t| now_ms.saturating_sub(*t) < PER_CLIENT_MS);
            if self.last_logged.len() >= MAX_CLIENTS {
                self.last_logged.clear();
            }
        }
        self.last_logged.insert(client, now_ms);
        self.lines_this_minute += 1;
        let also = match std::mem::take(&mut self.unlogged) {
            0 => String::new(),
            n => format!(" ({n} other refusals since the last line not logged)"),
        };
        Some(format!(
            "tracer: refused a request from {client}: {why}{also}; its next refusals are not logged for 60 s"
        ))
    }
}

/// The client's address, put in each request's extensions by the connection loop.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The middleware's state: the tokens (none: no authentication) and the refusal log.
#[derive(Debug)]
pub struct Guard {
    tokens: Option<RwLock<Arc<Tokens>>>,
    metrics_open: bool,
    refusals: Mutex<RefusalLog>,
    started: Instant,
}

impl Guard {
    pub fn new(tokens: Option<Tokens>, metrics_open: bool) -> Guard {
        Guard {
            tokens: tokens.map(|t| RwLock::new(Arc::new(t))),
            metrics_open,
            refusals: Mutex::new(RefusalLog::default()),
            started: Instant::now(),
        }
    }

    /// Replaces the tokens (a re-read token file); no-op without authentication.
    pub fn replace(&self, tokens: Tokens) {
        if let Some(Ok(mut current)) = self.tokens.as_ref().map(RwLock::write) {
            *current = Arc::new(tokens);
        }
    }

    /// Why `request` is refused (401), if it is.
    fn refusal(&self, request: &Request) -> Option<&'static str> {
        let tokens = self.tokens.as_ref()?;
        if is_open(request.uri().path(), self.metrics_open) {
            return None;
        }
        let Some(value) = request.headers().get(header::AUTHORIZATION) else {
            return Some("no Authorization header");
        };
        let Some(token) = bearer(value.as_bytes()) else {
            return Some("an Authorization header that is not `Bearer <token>`");
        };
        let accepted = tokens.read().map(|t| t.accepts(token)).unwrap_or(false);
        (!accepted).then_some("a bearer token that is not in the token file")
    }

    fn log_refusal(&self, request: &Request, why: &str) {
        let client = request
            .extensions()
            .get::<ClientAddr>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        let now_ms = self.started.elapsed().as_millis() as u64;
        let line = self
            .refusals
            .lock()
            .ok()
            .and_then(|mut log| log.note(client, now_ms, why));
        if let Some(line) = line {
            eprintln!("{line}");
        }
    }
}

/// `app` behind the guard: every route and the fallback, including routes `app` got from
/// elsewhere (merged routers), pass through [`guard`].
pub fn guarded(app: axum::Router, state: Arc<Guard>) -> axum::Router {
    app.layer(axum::middleware::from_fn_with_state(state, guard))
}

/// The middleware: bounds first, then the token.
pub async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if target > MAX_TARGET_BYTES {
        return (
            StatusCode::URI_TOO_LONG,
            format!("the request target is longer than {MAX_TARGET_BYTES} bytes\n"),
        )
            .into_response();
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {MAX_BODY_BYTES} bytes\n"),
        )
            .into_response();
    }
    if let Some(why) = guard.refusal(&request) {
        guard.log_refusal(&request, why);
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"tracer\"")],
            "this endpoint needs `Authorization: Bearer <token>` with a token from the server's \
             --auth-token-file\n",
        )
            .into_response();
    }
    let request = request.map(|b| Body::new(http_body_util::Limited::new(b, MAX_BODY_BYTES)));
    next.run(request).await
}

/// The token file and the guard it feeds: re-read with [`TokenFile::reload`].
#[derive(Debug)]
pub struct TokenFile {
    watched: Watched,
    guard: Arc<Guard>,
}

/// Reads and parses the token file at start: any problem is an error (one sentence).
pub fn read_token_file(path: &std::path::Path) -> anyhow::Result<(Watched, Tokens)> {
    let (watched, bytes) = Watched::open(path, "token file")?;
    let tokens = std::str::from_utf8(&bytes)
        .map_err(|_| "it is not text".to_owned())
        .and_then(Tokens::parse)
        .map_err(|e| {
            anyhow::anyhow!(
                "the token file {} cannot be used: {e}; write one token (16 or more visible \
                 characters) per line",
                path.display()
            )
        })?;
    Ok((watched, tokens))
}

impl TokenFile {
    pub fn new(watched: Watched, guard: Arc<Guard>) -> TokenFile {
        TokenFile { watched, guard }
    }

    /// Re-reads the file if it changed; the line to log, if any. A changed file that does not
    /// parse leaves the tokens as they were.
    pub fn reload(&mut self) -> Option<String> {
        let bytes = self.watched.poll()?;
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|_| "it is not text".to_owned())
            .and_then(Tokens::parse);
        Some(match parsed {
            Ok(tokens) => {
                let n = tokens.len();
                self.guard.replace(tokens);
                format!(
                    "tracer: token file {} re-read: {n} token(s)",
                    self.watched.path().display()
                )
            }
            Err(e) => format!(
                "tracer: token file {} changed but {e}; the tokens read before stay in force",
                self.watched.path().display()
            ),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn token_files_parse_one_token_a_line_and_errors_never_quote_a_token() {
        let tokens = Tokens::parse(&format!("# rotated 2026-12\n\n  {A}  \n{B}\n")).unwrap();
        assert_eq!(tokens.len(), 2);
        assert!(tokens.accepts(A.as_bytes()));
        assert!(tokens.accepts(B.as_bytes()));
        assert!(!tokens.accepts(&A.as_bytes()[..A.len() - 1]), "truncated");
        assert!(!tokens.accepts(format!("{A}a").as_bytes()), "longer");
        assert!(!tokens.accepts(b""));
        let short = Tokens::parse(&format!("{A}\nshort-secret\n")).unwrap_err();
        assert_eq!(short, "line 2 holds a token shorter than 16 characters");
        assert!(!short.contains("short-secret"));
        let spaced = Tokens::parse("with a space inside it!!\n").unwrap_err();
        assert!(
            spaced.starts_with("line 1 holds a token with a space"),
            "{spaced}"
        );
        assert_eq!(
            Tokens::parse("# only a comment\n\n").unwrap_err(),
            "it holds no token (one per line)"
        );
    }

    #[test]
    fn bearer_headers_are_read_case_insensitively_and_nothing_else_is() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Bearerabc"), None);
    }

    #[test]
    fn only_health_is_open_and_metrics_when_asked() {
        for p in ["/healthz", "/readyz"] {
            assert!(is_open(p, false));
        }
        for p in [
            "/",
            "/report",
            "/metrics",
            "/mcp",
            "/healthz/",
            "/HEALTHZ",
            "/nope",
        ] {
            assert!(!is_open(p, false), "{p}");
        }
        assert!(is_open("/metrics", true));
        assert!(!is_open("/report", true));
    }

    #[test]
    fn refusals_are_logged_once_per_client_a_minute_and_twenty_lines_a_minute_in_all() {
        let mut log = RefusalLog::default();
        let a = IpAddr::from([198, 18, 0, 1]);
        let line = log.note(a, 0, "no Authorization header").unwrap();
        assert!(
            line.contains("198.18.0.1: no Authorization header"),
            "{line}"
        );
        assert_eq!(log.note(a, 1_000, "x"), None);
        assert_eq!(log.note(a, 59_999, "x"), None);
        let again = log.note(a, 60_000, "x").unwrap();
        assert!(again.contains("(2 other refusals"), "{again}");
        // 100 clients in one minute: 20 lines (the one above counts), the rest counted.
        let logged = (0..100u8)
            .filter_map(|i| log.note(IpAddr::from([198, 19, 0, i]), 60_500, "x"))
            .count();
        assert_eq!(logged, LINES_PER_MINUTE as usize - 1);
        let next_minute = log
            .note(IpAddr::from([198, 19, 1, 1]), 120_000, "x")
            .unwrap();
        assert!(next_minute.contains("(81 other refusals"), "{next_minute}");
    }

    /// A router as another branch might grow it (an MCP endpoint taking POSTs, merged from
    /// elsewhere), behind the guard: covered without a line of its own.
    fn app(metrics_open: bool) -> axum::Router {
        use axum::routing::{get, post};
        let mcp = axum::Router::new().route("/mcp", post(|body: String| async move { body }));
        let app = axum::Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(|| async { "ready" }))
            .route("/metrics", get(|| async { "# EOF" }))
            .route("/report", get(|| async { "{}" }))
            .merge(mcp);
        let tokens = Tokens::parse(&format!("{A}\n")).unwrap();
        guarded(app, Arc::new(Guard::new(Some(tokens), metrics_open)))
    }

    async fn status(app: axum::Router, request: axum::http::Request<Body>) -> u16 {
        use tower::ServiceExt as _;
        app.oneshot(request).await.unwrap().status().as_u16()
    }

    fn request(
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> axum::http::Request<Body> {
        let mut r = axum::http::Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        r.header("content-length", body.len())
            .body(Body::from(body))
            .unwrap()
    }

    #[tokio::test]
    async fn every_route_even_one_merged_later_needs_the_token_but_health() {
        for uri in [
            "/report",
            "/metrics",
            "/mcp",
            "/",
            "/nothing",
            "/healthz/",
            "/%68ealthz",
        ] {
            let method = if uri == "/mcp" { "POST" } else { "GET" };
            assert_eq!(
                status(app(false), request(method, uri, None, vec![])).await,
                401,
                "{uri}"
            );
            assert_eq!(
                status(app(false), request(method, uri, Some(B), vec![])).await,
                401,
                "{uri} with a token not in the file"
            );
        }
        for uri in ["/healthz", "/readyz"] {
            assert_eq!(
                status(app(false), request("GET", uri, None, vec![])).await,
                200,
                "{uri}"
            );
        }
        assert_eq!(
            status(app(false), request("GET", "/report", Some(A), vec![])).await,
            200
        );
        assert_eq!(
            status(app(false), request("POST", "/mcp", Some(A), b"{}".to_vec())).await,
            200
        );
        assert_eq!(
            status(app(true), request("GET", "/metrics", None, vec![])).await,
            200
        );
        assert_eq!(
            status(app(true), request("GET", "/report", None, vec![])).await,
            401
        );
        assert_eq!(
            status(app(true), request("POST", "/mcp", None, vec![])).await,
            401
        );
    }

    #[tokio::test]
    async fn targets_and_bodies_are_bounded_before_anything_else() {
        let long = format!("/report?window={}", "9".repeat(MAX_TARGET_BYTES));
        assert_eq!(
            status(app(false), request("GET", &long, Some(A), vec![])).await,
            414
        );
        let big = vec![b'x'; MAX_BODY_BYTES + 1];
        assert_eq!(
            status(app(false), request("POST", "/mcp", Some(A), big)).await,
            413
        );
        let fits = vec![b'x'; MAX_BODY_BYTES];
        assert_eq!(
            status(app(false), request("POST", "/mcp", Some(A), fits)).await,
            200
        );
        // A body without a declared length is cut at the bound when read.
        let r = axum::http::Request::builder()
            .method("POST")
            .uri("/mcp")
            .header("authorization", format!("Bearer {A}"))
            .body(Body::from(vec![b'y'; MAX_BODY_BYTES + 10]))
            .unwrap();
        assert_eq!(status(app(false), r).await, 413);
    }

    #[test]
    fn a_replaced_token_file_swaps_the_tokens_and_a_broken_one_keeps_them() {
        let dir = std::env::temp_dir().join(format!("tracer-guard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens");
        std::fs::write(&path, format!("{A}\n")).unwrap();
        let (watched, tokens) = read_token_file(&path).unwrap();
        let guard = Arc::new(Guard::new(Some(tokens), false));
        let accepts = |t: &str| {
            guard
                .tokens
                .as_ref()
                .unwrap()
                .read()
                .unwrap()
                .accepts(t.as_bytes())
        };
        let mut file = TokenFile::new(watched, guard.clone());
        assert_eq!(file.reload(), None);
        std::fs::write(&path, format!("{B}\n")).unwrap();
        assert!(file.reload().unwrap().ends_with("re-read: 1 token(s)"));
        assert!(accepts(B) && !accepts(A));
        std::fs::write(&path, "tiny\n").unwrap();
        let kept = file.reload().unwrap();
        assert!(
            kept.contains("stay in force") && !kept.contains("tiny"),
            "{kept}"
        );
        assert!(accepts(B));
        std::fs::write(&path, "").unwrap();
        let e = read_token_file(&path).unwrap_err().to_string();
        assert!(e.contains("holds no token"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
