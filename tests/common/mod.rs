//! Helpers for the gateway's integration tests: a scripted mock upstream on 127.0.0.1:0, a
//! gateway started in-process, a small HTTP client, and SSE / chunk builders.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod raw;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use deliberate::proxy::Config;
use futures_util::stream;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub mod judge_run;
pub mod layer_run;
pub mod mock_judge;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The test policy.
pub fn policy_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gateway.yaml")
}

/// One step of a scripted upstream body.
#[derive(Debug, Clone)]
pub enum Step {
    /// Send these bytes as one frame.
    Bytes(Vec<u8>),
    /// Wait.
    Sleep(Duration),
    /// Fail the body: the connection is cut mid-response.
    Reset,
}

/// What the mock upstream answers.
#[derive(Debug, Clone)]
pub struct Script {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Wait before the response head.
    pub head_delay: Duration,
    pub steps: Vec<Step>,
}

impl Script {
    /// A `text/event-stream` answer whose body frames are `frames`.
    pub fn sse(frames: Vec<Vec<u8>>) -> Script {
        Script {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            head_delay: Duration::ZERO,
            steps: frames.into_iter().map(Step::Bytes).collect(),
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, v: &Value) -> Script {
        Script {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            head_delay: Duration::ZERO,
            steps: vec![Step::Bytes(v.to_string().into_bytes())],
        }
    }
}

/// A request the mock upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("upstream got JSON")
    }
}

type Handler = dyn Fn(&Recorded) -> Script + Send + Sync;

/// A scripted upstream on 127.0.0.1:0.
pub struct MockUpstream {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    /// Bodies dropped before they were sent whole (the gateway hung up).
    pub dropped: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct DropFlag {
    done: bool,
    counter: Arc<AtomicUsize>,
}

impl DropFlag {
    fn finish(&mut self) {
        self.done = true;
    }
}

impl Drop for DropFlag {
    fn drop(&mut self) {
        if !self.done {
            self.counter.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl MockUpstream {
    pub async fn start(
        handler: impl Fn(&Recorded) -> Script + Send + Sync + 'static,
    ) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let dropped = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (reqs, drops) = (requests.clone(), dropped.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (handler, reqs, drops) = (handler.clone(), reqs.clone(), drops.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (handler, reqs, drops) = (handler.clone(), reqs.clone(), drops.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let rec = Recorded {
                                method: parts.method.to_string(),
                                path: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                            };
                            let script = handler(&rec);
                            reqs.lock().unwrap().push(rec);
                            tokio::time::sleep(script.head_delay).await;
                            Ok::<_, Infallible>(scripted(script, drops))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        MockUpstream {
            addr,
            requests,
            dropped,
            task,
        }
    }

    /// The base URL to give the gateway.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn received(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn scripted(script: Script, drops: Arc<AtomicUsize>) -> Response<BoxBody<Bytes, BoxError>> {
    let flag = DropFlag {
        done: false,
        counter: drops,
    };
    let body = StreamBody::new(stream::unfold(
        (script.steps.into_iter(), flag),
        |(mut it, mut flag)| async move {
            loop {
                match it.next() {
                    None => {
                        flag.finish();
                        return None;
                    }
                    Some(Step::Sleep(d)) => tokio::time::sleep(d).await,
                    Some(Step::Bytes(b)) => {
                        return Some((Ok(Frame::data(Bytes::from(b))), (it, flag)));
                    }
                    Some(Step::Reset) => {
                        flag.finish();
                        let e: BoxError = "scripted reset".into();
                        return Some((Err(e), (it, flag)));
                    }
                }
            }
        },
    ));
    let mut r = Response::new(BodyExt::boxed(body));
    *r.status_mut() = StatusCode::from_u16(script.status).unwrap();
    for (k, v) in script.headers {
        r.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(&v).unwrap(),
        );
    }
    r
}

/// A gateway running in-process on 127.0.0.1:0.
pub struct Gateway {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    /// Starts a gateway; `upstream: None` for the echo.
    pub async fn start(upstream: Option<String>, tweak: impl FnOnce(&mut Config)) -> Gateway {
        let mut config = Config {
            policies: vec![policy_path()],
            upstream: upstream.map(|u| Config::upstream_for(&u)),
            reload: false,
            ..Config::default()
        };
        tweak(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let gw = deliberate::proxy::Gateway::new(config).expect("gateway starts");
        let task = tokio::spawn(async move {
            gw.serve(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Gateway {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops it and waits for the drain.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The `data:` payloads of an SSE body (`[DONE]` included).
    pub fn events(&self) -> Vec<String> {
        sse_data(&self.text())
    }

    /// The JSON chunks of an SSE body.
    pub fn chunks(&self) -> Vec<Value> {
        self.events()
            .iter()
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
            .collect()
    }
}

/// `data:` payloads of an SSE text (LF line endings, as the gateway writes them).
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|ev| {
            let lines: Vec<&str> = ev
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        })
        .collect()
}

/// Content of choice `index` joined over the chunks, and its last finish reason.
pub fn stream_text(chunks: &[Value], index: u64) -> (String, Option<String>) {
    let mut text = String::new();
    let mut finish = None;
    for c in chunks {
        for ch in c["choices"].as_array().into_iter().flatten() {
            if ch["index"].as_u64() != Some(index) {
                continue;
            }
            if let Some(t) = ch["delta"]["content"].as_str() {
                text.push_str(t);
            }
            if let Some(f) = ch["finish_reason"].as_str() {
                finish = Some(f.to_owned());
            }
        }
    }
    (text, finish)
}

/// POSTs `body` over HTTP/1.1 and reads the whole response.
pub async fn post(url: &str, body: &Value) -> Reply {
    post_raw(url, body.to_string().into_bytes(), &[]).await
}

pub async fn post_raw(url: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Reply {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = Request::post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    read(resp).await
}

pub async fn get(url: &str) -> Reply {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let resp = client
        .request(Request::get(url).body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    read(resp).await
}

async fn read(resp: Response<Incoming>) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

/// A chat request.
pub fn chat(text: &str, stream: bool) -> Value {
    json!({"model": "test-model", "stream": stream, "messages": [{"role": "user", "content": text}]})
}

/// An upstream chunk with content `text` for choice `index`.
pub fn content_chunk(index: u32, text: &str) -> Value {
    json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1700000000, "model": "up-model",
           "system_fingerprint": "fp_up", "x_vendor": {"keep": true},
           "choices": [{"index": index, "delta": {"content": text}, "logprobs": null, "finish_reason": null}]})
}

pub fn role_chunk(index: u32) -> Value {
    json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1700000000, "model": "up-model",
           "system_fingerprint": "fp_up",
           "choices": [{"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]})
}

pub fn finish_chunk(index: u32, reason: &str) -> Value {
    json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1700000000, "model": "up-model",
           "system_fingerprint": "fp_up",
           "choices": [{"index": index, "delta": {}, "logprobs": null, "finish_reason": reason}]})
}

pub fn usage_chunk() -> Value {
    json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1700000000, "model": "up-model",
           "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}})
}

/// SSE frame bytes for a chunk.
pub fn frame(v: &Value) -> Vec<u8> {
    format!("data: {v}\n\n").into_bytes()
}

pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// A whole SSE stream: role, one content chunk per piece, finish `stop`, `[DONE]`.
pub fn sse_stream(pieces: &[&str]) -> Vec<u8> {
    let mut out = frame(&role_chunk(0));
    for p in pieces {
        out.extend(frame(&content_chunk(0, p)));
    }
    out.extend(frame(&finish_chunk(0, "stop")));
    out.extend_from_slice(DONE);
    out
}

/// Waits until `f` holds (up to 5 s).
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Sets a flag when dropped.
pub struct Flag(pub Arc<AtomicBool>);

impl Drop for Flag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
