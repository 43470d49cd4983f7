//! A scripted judge: an OpenAI-compatible chat-completions server on 127.0.0.1:0 whose verdict
//! depends on words in the content it is asked to classify:
//!
//! - `VIOLATE` → a violation of section `weapons`;
//! - `MALFORMED` → an answer that is not JSON;
//! - `SLOW` → a safe verdict after 2 s;
//! - `FAIL500` → status 500;
//! - anything else → no violation (after `delay`).
//!
//! It counts calls and the most calls it had in flight at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub struct MockJudge {
    pub addr: SocketAddr,
    pub calls: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
    /// The `traceparent` header of each call, in order (`None`: the call had none).
    pub traceparents: Arc<Mutex<Vec<Option<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockJudge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn completion(content: &str) -> Value {
    json!({"id": "judge-1", "object": "chat.completion", "created": 1, "model": "mock-judge",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop"}]})
}

impl MockJudge {
    /// Starts a judge that waits `delay` before each ordinary answer.
    pub async fn start(delay: Duration) -> MockJudge {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let traceparents = Arc::new(Mutex::new(Vec::new()));
        let (c, m, tp) = (calls.clone(), max_in_flight.clone(), traceparents.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (c, m, f, tp) = (c.clone(), m.clone(), in_flight.clone(), tp.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (c, m, f, tp) = (c.clone(), m.clone(), f.clone(), tp.clone());
                        async move {
                            c.fetch_add(1, Ordering::SeqCst);
                            let parent = req.headers().get("traceparent");
                            tp.lock()
                                .unwrap()
                                .push(parent.and_then(|v| v.to_str().ok()).map(str::to_owned));
                            let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                            m.fetch_max(now, Ordering::SeqCst);
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let v: Value = serde_json::from_slice(&body).unwrap();
                            let user = v["messages"][1]["content"]
                                .as_str()
                                .unwrap_or("")
                                .to_owned();
                            let (status, content) = if user.contains("FAIL500") {
                                (500, String::new())
                            } else if user.contains("MALFORMED") {
                                (200, "I think this is fine.".to_owned())
                            } else if user.contains("VIOLATE") {
                                (
                                    200,
                                    json!({"violation": true, "section": "weapons",
                                    "rule_ids": ["weapons.V1"], "confidence": 0.95,
                                    "rationale": "SECRET-RATIONALE build steps"})
                                    .to_string(),
                                )
                            } else {
                                let wait = if user.contains("SLOW") {
                                    Duration::from_secs(2)
                                } else {
                                    delay
                                };
                                tokio::time::sleep(wait).await;
                                (
                                    200,
                                    json!({"violation": false, "section": null, "rule_ids": [],
                                    "confidence": 0.9, "rationale": "harmless"})
                                    .to_string(),
                                )
                            };
                            f.fetch_sub(1, Ordering::SeqCst);
                            let body = if status == 200 {
                                completion(&content).to_string()
                            } else {
                                json!({"error": {"message": "boom"}}).to_string()
                            };
                            let mut r = Response::new(Full::new(Bytes::from(body)));
                            *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
                            r.headers_mut()
                                .insert("content-type", "application/json".parse().unwrap());
                            Ok::<_, Infallible>(r)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        MockJudge {
            addr,
            calls,
            max_in_flight,
            traceparents,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}
