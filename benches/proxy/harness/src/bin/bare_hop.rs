//! `bare-hop`: the floor for a Rust HTTP proxy.
//!
//! Forwards every request to one upstream over a pooled keep-alive hyper client and streams
//! both bodies through untouched: no parsing, no buffering, no policy. It does only what any
//! correct reverse proxy must — drop hop-by-hop headers and address the upstream — so the cost
//! it adds over calling the upstream directly is the cost of one hop, which is what the
//! benchmarks compare every gateway against.
//!
//! ```text
//! bare-hop --listen 127.0.0.1:9001 --upstream http://127.0.0.1:9000
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Parser;
use deliberate_bench_harness::server;
use http::header::{CONTENT_TYPE, HOST};
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A bare pass-through HTTP/1.1 hop: the floor for a Rust proxy.
#[derive(Debug, Parser)]
#[command(name = "bare-hop", version)]
struct Args {
    /// Address to listen on; port 0 picks a free one (printed on stdout).
    #[arg(long, env = "BARE_HOP_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Upstream base URL, `http://host:port`; request paths are kept as they are.
    #[arg(long, env = "BARE_HOP_UPSTREAM")]
    upstream: Uri,
    /// Tokio worker threads (default: one per core, or TOKIO_WORKER_THREADS).
    #[arg(long, env = "BARE_HOP_THREADS")]
    threads: Option<usize>,
}

/// The upstream's address, split once.
struct Upstream {
    scheme: Scheme,
    authority: Authority,
}

type UpstreamClient = Client<HttpConnector, Incoming>;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let upstream = Arc::new(parse_upstream(&args.upstream)?);
    server::runtime(args.threads)?.block_on(async move {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client: UpstreamClient = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);

        let listener = server::bind(args.listen)?;
        let addr = listener.local_addr().context("reading the bound address")?;
        println!(
            "bare-hop listening on http://{addr}, forwarding to {}",
            args.upstream
        );
        server::serve(listener, move |req| {
            let client = client.clone();
            let upstream = Arc::clone(&upstream);
            async move { Ok::<_, Infallible>(forward(&client, &upstream, req).await) }
        })
        .await
    })
}

fn parse_upstream(uri: &Uri) -> anyhow::Result<Upstream> {
    if uri.scheme() != Some(&Scheme::HTTP) {
        bail!("--upstream must be an http:// URL, got {uri}");
    }
    let Some(authority) = uri.authority().cloned() else {
        bail!("--upstream {uri} has no host");
    };
    if !matches!(uri.path(), "" | "/") {
        bail!("--upstream {uri} must not have a path: request paths are forwarded as they are");
    }
    Ok(Upstream {
        scheme: Scheme::HTTP,
        authority,
    })
}

/// Either the upstream's body, streamed through, or a locally generated error.
type HopBody = Either<Incoming, Full<Bytes>>;

async fn forward(
    client: &UpstreamClient,
    upstream: &Upstream,
    mut req: Request<Incoming>,
) -> Response<HopBody> {
    let path_and_query = req.uri().path_and_query().cloned();
    let uri = Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(path_and_query.map_or_else(|| "/".to_owned(), |p| p.to_string()));
    *req.uri_mut() = match uri.build() {
        Ok(uri) => uri,
        Err(err) => return bad_gateway(&format!("cannot address the upstream: {err}")),
    };
    strip_hop_by_hop(req.headers_mut());
    // Like nginx's default `proxy_set_header Host $proxy_host`: the client sets the upstream's.
    req.headers_mut().remove(HOST);

    match client.request(req).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Either::Left(body))
        }
        Err(err) => bad_gateway(&format!("upstream request failed: {err}")),
    }
}

/// Removes the hop-by-hop headers of RFC 9110 §7.6.1, including those named by `Connection`.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    const HOP_BY_HOP: [HeaderName; 6] = [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
    ];
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// A 502 with an OpenAI-shaped error body.
fn bad_gateway(message: &str) -> Response<HopBody> {
    let body = serde_json::json!({
        "error": {"message": message, "type": "upstream_error", "code": "bad_gateway"}
    });
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body.to_string()))));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer sk"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::AUTHORIZATION));
    }

    #[test]
    fn upstream_must_be_a_bare_http_origin() {
        assert!(parse_upstream(&"http://127.0.0.1:9000".parse().unwrap()).is_ok());
        assert!(parse_upstream(&"https://127.0.0.1:9000".parse().unwrap()).is_err());
        assert!(parse_upstream(&"http://127.0.0.1:9000/v1".parse().unwrap()).is_err());
    }
}
