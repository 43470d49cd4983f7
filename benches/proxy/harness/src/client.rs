//! Single-connection HTTP/1.1 clients for the load client.
//!
//! The load client owns its connections explicitly (one per worker, or one per held stream)
//! instead of going through a pool, so the number of sockets a proxy sees is exactly the number
//! asked for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{Method, Request, Uri};
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where the load goes: an `http://host:port/path` URL, split once up front.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to connect to.
    connect_to: String,
    /// Value of the `Host` header.
    authority: String,
    /// Origin-form request target, e.g. `/v1/chat/completions`.
    path: String,
}

impl Target {
    /// Parses an `http://` URL. HTTPS is out of scope: the benchmarks run on loopback.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("invalid URL {url:?}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            _ => bail!("only http:// URLs are supported, got {url:?}"),
        }
        let Some(authority) = uri.authority() else {
            bail!("URL {url:?} has no host");
        };
        let port = authority.port_u16().unwrap_or(80);
        let path = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        Ok(Self {
            connect_to: format!("{}:{port}", authority.host()),
            authority: authority.as_str().to_owned(),
            path,
        })
    }

    /// Opens a new keep-alive connection to the target.
    ///
    /// The connection task runs in the background until the returned sender is dropped.
    pub async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(&self.connect_to)
            .await
            .with_context(|| format!("connecting to {}", self.connect_to))?;
        stream
            .set_nodelay(true)
            .context("setting TCP_NODELAY on the client socket")?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        tokio::spawn(async move {
            // Ends with an error when the peer or the load client hangs up; nothing to report.
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// A `POST` of `body` (JSON) to the target's path.
    ///
    /// Carries a dummy bearer token: gateways that pass `Authorization` through, or that
    /// insist on one, get one; the mock ignores it.
    pub fn post_json(&self, body: Bytes) -> anyhow::Result<Request<Full<Bytes>>> {
        Request::builder()
            .method(Method::POST)
            .uri(self.path.as_str())
            .header(HOST, self.authority.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, "Bearer sk-bench")
            .body(Full::new(body))
            .context("building the request")
    }
}

/// A keep-alive connection to a [`Target`] that reconnects when the server has closed it
/// between requests (uvicorn, behind LiteLLM, does after a stream; any server may at will).
#[derive(Debug)]
pub struct Connection {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    /// A connection to `target`, opened on first use.
    pub fn new(target: Arc<Target>) -> Self {
        Self {
            target,
            sender: None,
        }
    }

    /// Opens the connection now rather than on the first request.
    pub async fn open(target: Arc<Target>) -> anyhow::Result<Self> {
        let sender = Some(target.connect().await?);
        Ok(Self { target, sender })
    }

    /// The target this connection goes to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The sender, ready for a request: the current connection if the server kept it open,
    /// else a new one.
    pub async fn ready(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        if let Some(mut sender) = self.sender.take() {
            if sender.ready().await.is_ok() {
                return Ok(self.sender.insert(sender));
            }
        }
        let mut fresh = self.target.connect().await?;
        fresh
            .ready()
            .await
            .context("waiting for the new connection")?;
        Ok(self.sender.insert(fresh))
    }

    /// Drops the connection, e.g. after an error left it in an unknown state.
    pub fn reset(&mut self) {
        self.sender = None;
    }
}

/// Reads a chat completions request body from `path` and sets its `model` (when given) and
/// `stream` fields, so one request file serves every mode.
pub fn load_body(
    path: &std::path::Path,
    model: Option<&str>,
    stream: bool,
) -> anyhow::Result<Body> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut json: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let Some(object) = json.as_object_mut() else {
        bail!("{} must hold a JSON object", path.display());
    };
    if let Some(model) = model {
        object.insert("model".into(), model.into());
    }
    object.insert("stream".into(), stream.into());
    let bytes = serde_json::to_vec(&json).context("serialising the request body")?;
    Ok(Body::new(Bytes::from(bytes)))
}

/// Request numbers, unique in the process: with [`run_nonce`], what `{{n}}` in a body becomes.
static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);

/// Tells this process's requests from those of every other run against the same gateway: the
/// process id and the start time in nanoseconds.
fn run_nonce() -> &'static str {
    static NONCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NONCE.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{nanos}", std::process::id())
    })
}

/// A request body, with every `{{n}}` in it replaced by a value unique to each request (and to
/// this run: see [`run_nonce`]), so that no request repeats another's text (a gateway that caches the scan of a text it has
/// seen must not be measured on a cache hit for every request; the system prompt, without a
/// placeholder, is the same every time, as in most deployments).
#[derive(Debug, Clone)]
pub struct Body {
    parts: Vec<Bytes>,
}

impl Body {
    /// Splits `bytes` at its placeholders.
    pub fn new(bytes: Bytes) -> Self {
        let mut parts = Vec::new();
        let mut rest = bytes;
        while let Some(i) = rest.windows(5).position(|w| w == b"{{n}}") {
            parts.push(rest.slice(..i));
            rest = rest.slice(i + 5..);
        }
        parts.push(rest);
        Body { parts }
    }

    /// The body of the next request.
    pub fn next(&self) -> Bytes {
        if self.parts.len() == 1 {
            return self.parts[0].clone();
        }
        let n = format!(
            "{}-{}",
            run_nonce(),
            REQUEST_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut out = Vec::with_capacity(self.parts.iter().map(Bytes::len).sum::<usize>() + 24);
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(n.as_bytes());
            }
            out.extend_from_slice(part);
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn placeholders_get_a_new_number_per_request() {
        let b = Body::new(Bytes::from_static(
            b"{\"a\": \"x{{n}}y\", \"b\": \"{{n}}\"}",
        ));
        let (one, two) = (b.next(), b.next());
        assert_ne!(one, two);
        let v: serde_json::Value = serde_json::from_slice(&one).unwrap();
        let n = v["b"].as_str().unwrap();
        assert_eq!(v["a"], format!("x{n}y"));
        let fixed = Body::new(Bytes::from_static(b"{}"));
        assert_eq!(fixed.next(), fixed.next());
    }

    #[test]
    fn parses_loopback_url() {
        let target = Target::parse("http://127.0.0.1:8080/v1/chat/completions").unwrap();
        assert_eq!(target.connect_to, "127.0.0.1:8080");
        assert_eq!(target.authority, "127.0.0.1:8080");
        assert_eq!(target.path, "/v1/chat/completions");
    }

    #[test]
    fn rejects_https() {
        assert!(Target::parse("https://127.0.0.1/v1/chat/completions").is_err());
    }
}
