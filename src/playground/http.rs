//! The playground over HTTP: routing, body limits, JSON answers, and a small server for
//! `deliberate playground`. The handlers run on the blocking pool (compiling a policy and
//! running its tests is CPU work), and a panic in one answers `500` without stopping the
//! server.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use bytes::{Buf, BufMut};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::Value;
use tokio::net::TcpListener;

use super::{ApiError, PAGE, Playground};

/// Answers one playground request: `path` is the request's canonical path (`/playground`,
/// `/playground/api/…`). Never fails: errors are JSON answers with their status.
pub async fn handle<B>(
    pg: Arc<Playground>,
    method: &Method,
    path: &str,
    body: B,
) -> Response<Full<Bytes>>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = path.trim_end_matches('/');
    if path == "/playground" || path.is_empty() {
        return if method == Method::GET {
            page()
        } else {
            error(&ApiError::bad_request("the page answers GET only"), 405)
        };
    }
    let Some(endpoint) = path.strip_prefix("/playground/api/") else {
        return not_found(path);
    };
    if endpoint == "policies" && method == Method::GET {
        return json(StatusCode::OK, &pg.policies());
    }
    if method != Method::POST {
        return not_found(path);
    }
    type Handler = fn(&Playground, &[u8]) -> Result<Value, ApiError>;
    let handler: Handler = match endpoint {
        "check" => Playground::check,
        "scan" => Playground::scan,
        "stream" => Playground::stream,
        "inject" => Playground::inject,
        "test" => Playground::test,
        "diff" => Playground::diff,
        _ => return not_found(path),
    };
    let max = pg.limits.max_request_bytes;
    let bytes = match read_within(body, max).await {
        Ok(b) => b,
        Err(Unread::TooLarge) => {
            let e = ApiError {
                status: 413,
                code: "too_large",
                message: format!(
                    "the request is larger than {max} bytes (a policy is at most {} bytes, each text at most {})",
                    crate::policy::MAX_POLICY_BYTES,
                    pg.limits.max_text_bytes
                ),
                diagnostics: Vec::new(),
            };
            return closing(error(&e, e.status));
        }
        Err(Unread::Failed(e)) => {
            return closing(error(
                &ApiError::bad_request(format!("reading the request: {e}")),
                400,
            ));
        }
    };
    let answer = tokio::task::spawn_blocking(move || handler(&pg, &bytes)).await;
    match answer {
        Ok(Ok(v)) => json(StatusCode::OK, &v),
        Ok(Err(e)) => error(&e, e.status),
        Err(join) => {
            tracing::error!(error = %join, "a playground request panicked");
            let e = ApiError {
                status: 500,
                code: "internal",
                message: "internal error while answering this request (the server is still up)"
                    .into(),
                diagnostics: Vec::new(),
            };
            error(&e, 500)
        }
    }
}

fn page() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The page loads nothing from elsewhere; say so to the browser as well.
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data: blob:; frame-src blob:",
        ),
    );
    r
}

/// Why a request body was not read.
enum Unread {
    /// Over the limit; the rest was drained (see [`read_within`]).
    TooLarge,
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

/// How much of an oversized body is read and dropped, and for how long, before the `413`
/// goes out.
const DRAIN_BYTES: usize = 16 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads `body` whole if it fits in `max` bytes. An oversized body is read on (and dropped)
/// up to [`DRAIN_BYTES`] / [`DRAIN_TIME`] before the caller answers: a server that answers and
/// closes while the client is still sending makes the kernel reset the connection, and a
/// browser then loses the `413` with its message (a lingering close, as nginx does).
async fn read_within<B>(body: B, max: usize) -> Result<Bytes, Unread>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut body = std::pin::pin!(body);
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Unread::Failed(e.into()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.remaining() > max {
            let mut seen = buf.len() + data.remaining();
            drop(buf);
            let _ = tokio::time::timeout(DRAIN_TIME, async {
                while seen <= DRAIN_BYTES {
                    match body.frame().await {
                        Some(Ok(f)) => seen += f.data_ref().map_or(0, Buf::remaining),
                        _ => break,
                    }
                }
            })
            .await;
            return Err(Unread::TooLarge);
        }
        buf.put(data);
    }
    Ok(buf.freeze())
}

/// Adds `Connection: close`: after an unread or refused body the connection is not reused.
fn closing(mut r: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    r.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    r
}

fn json(status: StatusCode, v: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(e: &ApiError, status: u16) -> Response<Full<Bytes>> {
    json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        &e.to_json(),
    )
}

fn not_found(path: &str) -> Response<Full<Bytes>> {
    let e = ApiError {
        status: 404,
        code: "not_found",
        message: format!("no playground route {path}"),
        diagnostics: Vec::new(),
    };
    error(&e, 404)
}

/// Serves the playground on `listener` until `shutdown` completes (`deliberate playground`).
/// Paths other than `/playground…` answer `404`; `/` redirects to the page.
pub async fn serve(
    listener: TcpListener,
    pg: Playground,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let pg = Arc::new(pg);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(10));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            res = listener.accept() => match res {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let pg = pg.clone();
        let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let pg = pg.clone();
            async move {
                let (parts, body) = req.into_parts();
                let resp = if parts.uri.path() == "/" {
                    let mut r = Response::new(Full::new(Bytes::new()));
                    *r.status_mut() = StatusCode::FOUND;
                    r.headers_mut().insert(
                        http::header::LOCATION,
                        HeaderValue::from_static("/playground"),
                    );
                    r
                } else {
                    handle(pg, &parts.method, parts.uri.path(), body).await
                };
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "playground connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
    }
    Ok(())
}
