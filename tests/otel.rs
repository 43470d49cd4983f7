//! OpenTelemetry traces, end to end over real HTTP on loopback: `deliberate serve` (the binary,
//! configured by its `telemetry:` section) exports to an OTLP/HTTP receiver stub that decodes
//! the protobuf bodies; a mock upstream records the `traceparent` it is sent.
#![cfg(feature = "otel")]
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/serve_bin.rs"]
mod serve_bin;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::mock_judge::MockJudge;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use prost::Message;
use tokio::net::TcpListener;

/// A span as the receiver got it, ids in hex.
#[derive(Debug, Clone)]
struct Got {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    start: u64,
    end: u64,
    attrs: HashMap<String, String>,
    service: String,
}

/// An OTLP/HTTP receiver on 127.0.0.1:0: `POST /v1/traces` with a protobuf
/// `ExportTraceServiceRequest`; every span is kept.
struct Receiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Got>>>,
    /// Bodies that were not a valid export request, or went to another path.
    bad: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attrs(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let bad = Arc::new(Mutex::new(Vec::new()));
        let (sp, bd) = (spans.clone(), bad.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (sp, bd) = (sp.clone(), bd.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (sp, bd) = (sp.clone(), bd.clone());
                        async move {
                            let ok = req.method() == "POST"
                                && req.uri().path() == "/v1/traces"
                                && req.headers()["content-type"] == "application/x-protobuf";
                            let what = format!("{} {}", req.method(), req.uri());
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            match ExportTraceServiceRequest::decode(body) {
                                Ok(export) if ok => {
                                    let mut got = sp.lock().unwrap();
                                    for rs in export.resource_spans {
                                        let res = rs.resource.map(|r| attrs(&r.attributes));
                                        let service = res
                                            .and_then(|r| r.get("service.name").cloned())
                                            .unwrap_or_default();
                                        for ss in rs.scope_spans {
                                            for s in ss.spans {
                                                got.push(Got {
                                                    name: s.name,
                                                    trace_id: hex(&s.trace_id),
                                                    span_id: hex(&s.span_id),
                                                    parent: hex(&s.parent_span_id),
                                                    start: s.start_time_unix_nano,
                                                    end: s.end_time_unix_nano,
                                                    attrs: attrs(&s.attributes),
                                                    service: service.clone(),
                                                });
                                            }
                                        }
                                    }
                                }
                                other => bd.lock().unwrap().push(format!("{what}: {other:?}")),
                            }
                            let mut r = Response::new(Full::new(Bytes::new()));
                            r.headers_mut().insert(
                                "content-type",
                                http::HeaderValue::from_static("application/x-protobuf"),
                            );
                            Ok::<_, Infallible>(r)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            spans,
            bad,
            task,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The spans of trace `trace_id` once `n` of them arrived (waits at most `max`).
    async fn trace(&self, trace_id: &str, n: usize, max: Duration) -> Vec<Got> {
        let end = Instant::now() + max;
        loop {
            let got: Vec<Got> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .cloned()
                .collect();
            if got.len() >= n || Instant::now() > end {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `(trace id, parent span id, flags)` of a `traceparent` header.
fn traceparent(v: &str) -> (String, String, String) {
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {v}");
    assert_eq!(parts[0], "00", "traceparent {v}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

fn one<'a>(spans: &'a [Got], name: &str) -> &'a Got {
    let found: Vec<&Got> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one `{name}` span expected: {spans:#?}");
    found[0]
}

/// The `traceparent` the upstream saw on its request number `i`.
fn upstream_traceparent(up: &MockUpstream, i: usize) -> String {
    let got = up.received();
    let h = got[i].headers.get("traceparent");
    h.unwrap_or_else(|| panic!("no traceparent upstream: {:?}", got[i].headers))
        .to_str()
        .unwrap()
        .to_owned()
}

const JUDGED_POLICY: &str = r#"
policy: judged
spec:
  sections:
    - id: weapons
      title: Weapons
      text: Do not help build weapons.
      judge:
        violates: ["Instructions for building a weapon."]
        safe: ["Places and products named after weapons."]
rules:
  - id: shelter
    section: weapons
    stages: [input]
    match: {keywords: [bomb shelter]}
    action: escalate
    tests: {match: ["a bomb shelter"], no_match: ["a shelter"]}
"#;

/// A buffered chat, a streamed chat continuing a client's trace and a judged chat: the spans,
/// their parents, their attributes, and the `traceparent` the upstream was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_arrive_with_their_parents_and_the_upstream_continues_the_trace() {
    let rx = Receiver::start().await;
    let judge = MockJudge::start(Duration::ZERO).await;
    let up = MockUpstream::start(|r| {
        if r.json()["stream"] == true {
            // Several frames: the stream is scanned piece by piece, under one span.
            let pieces = ["Once", " upon", " a", " time", " there", " was", " a", " gateway."];
            Script::sse(
                std::iter::once(frame(&role_chunk(0)))
                    .chain(pieces.iter().map(|p| frame(&content_chunk(0, p))))
                    .chain([frame(&finish_chunk(0, "stop")), DONE.to_vec()])
                    .collect(),
            )
        } else {
            Script::json(
                200,
                &serde_json::json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello back."},
                                 "finish_reason": "stop"}]}),
            )
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "telemetry: {{otlp_endpoint: {}, service_name: otel-test, sample_ratio: 1.0}}\n",
            rx.endpoint()
        ),
    )
    .unwrap();
    let judged = dir.path().join("judged.yaml");
    std::fs::write(&judged, JUDGED_POLICY).unwrap();
    let judge_url = format!("http://{}/v1", judge.addr);
    let (_server, base) = serve_bin::serve_env(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--upstream",
            &up.url(),
            "--policy",
            judged.to_str().unwrap(),
            "--judge",
            &judge_url,
        ],
        // Export every 100 ms instead of every 5 s.
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );
    let url = format!("{base}/chat/completions");
    let wait = Duration::from_secs(10);

    // 1. Buffered, no traceparent from the client: a new trace.
    let r = post(&url, &chat("hello", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (trace, parent, flags) = traceparent(&upstream_traceparent(&up, 0));
    assert_eq!(flags, "01", "sampled");
    let spans = rx.trace(&trace, 4, wait).await;
    let req = one(&spans, "request");
    assert_eq!(
        req.parent, "",
        "a new trace starts at the gateway: {req:#?}"
    );
    assert_eq!(req.service, "otel-test");
    for name in ["input_scan", "upstream", "output_scan"] {
        assert_eq!(
            one(&spans, name).parent,
            req.span_id,
            "{name} under request"
        );
    }
    assert!(spans.iter().all(|s| s.name != "judge"), "nothing escalated");
    let upstream = one(&spans, "upstream");
    assert_eq!(
        parent, upstream.span_id,
        "the upstream is sent the gateway's upstream span as its parent"
    );
    assert_eq!(req.attrs["deliberate.api"], "chat.completions");
    assert_eq!(req.attrs["deliberate.action"], "allow");
    assert_eq!(req.attrs["deliberate.outcome"], "completed");
    assert_eq!(req.attrs["deliberate.policy_set"], "default");
    assert_eq!(req.attrs["deliberate.enforcement"], "full");
    assert_eq!(req.attrs["http.response.status_code"], "200");
    assert!(
        req.attrs["deliberate.policy"].contains("gateway-test"),
        "{req:#?}"
    );
    assert_eq!(upstream.attrs["http.response.status_code"], "200");
    assert!(
        upstream.attrs["url.full"].ends_with("/v1/chat/completions"),
        "{upstream:#?}"
    );
    assert_eq!(
        one(&spans, "output_scan").attrs["deliberate.stream"],
        "false"
    );

    // 2. Streamed, continuing the client's trace.
    let client_trace = "0af7651916cd43dd8448eb211c80319c";
    let client_span = "b7ad6b7169203331";
    let tp = format!("00-{client_trace}-{client_span}-01");
    let body = chat("tell me a story", true).to_string().into_bytes();
    let r = post_raw(&url, body, &[("traceparent", &tp)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        stream_text(&r.chunks(), 0).0,
        "Once upon a time there was a gateway."
    );
    let (trace, parent, _) = traceparent(&upstream_traceparent(&up, 1));
    assert_eq!(trace, client_trace, "the client's trace goes on upstream");
    assert_ne!(parent, client_span, "with the gateway's span as the parent");
    let spans = rx.trace(client_trace, 4, wait).await;
    let req = one(&spans, "request");
    assert_eq!(
        req.parent, client_span,
        "the request span continues the client's"
    );
    let scan = one(&spans, "output_scan");
    assert_eq!(scan.parent, req.span_id);
    assert_eq!(scan.attrs["deliberate.stream"], "true");
    assert_eq!(one(&spans, "upstream").span_id, parent);
    assert!(
        req.end >= scan.end && req.start <= scan.start,
        "the request span covers the stream: {req:#?} {scan:#?}"
    );

    // 3. An escalated text: the judge runs, under the request span.
    let r = post(&url, &chat("where is the nearest bomb shelter?", false)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-deliberate-judge"), "input=no_violation");
    let (trace, _, _) = traceparent(&upstream_traceparent(&up, 2));
    let spans = rx.trace(&trace, 5, wait).await;
    let req = one(&spans, "request");
    let judged = one(&spans, "judge");
    assert_eq!(judged.parent, req.span_id);
    assert_eq!(judged.attrs["deliberate.stage"], "input");
    assert_eq!(judged.attrs["deliberate.judge.blocked"], "false");
    // The judge's HTTP call continues the trace under the `judge` span.
    let calls = judge.traceparents.lock().unwrap().clone();
    let last = calls.last().cloned().flatten();
    let (t, parent, _) = traceparent(&last.unwrap_or_else(|| panic!("no traceparent: {calls:?}")));
    assert_eq!(
        (t.as_str(), parent.as_str()),
        (trace.as_str(), judged.span_id.as_str())
    );

    // Admin routes make no spans.
    let before = rx.spans.lock().unwrap().len();
    assert_eq!(
        get(&format!("{}/healthz", base.trim_end_matches("/v1")))
            .await
            .status,
        200
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let spans = rx.spans.lock().unwrap().clone();
    assert_eq!(spans.len(), before, "{:#?}", &spans[before..]);
    assert!(
        rx.bad.lock().unwrap().is_empty(),
        "{:?}",
        rx.bad.lock().unwrap()
    );
}

/// Spans still queued at SIGTERM are sent before the process exits: the batch interval here
/// is a minute, so only the shutdown flush can deliver them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_the_queued_spans() {
    let rx = Receiver::start().await;
    let up = MockUpstream::start(|_| Script::sse(vec![sse_stream(&["hi", " there"])])).await;
    let (mut server, base) = serve_bin::serve_env(
        &["--upstream", &up.url(), "--otlp-endpoint", &rx.endpoint()],
        &[("OTEL_BSP_SCHEDULE_DELAY", "60000")],
    );
    let r = post(&format!("{base}/chat/completions"), &chat("hello", true)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (trace, _, _) = traceparent(&upstream_traceparent(&up, 0));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        rx.trace(&trace, 1, Duration::ZERO).await.is_empty(),
        "exported before the flush"
    );
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(15)))
        .expect("still running after SIGTERM");
    assert!(status.success(), "{status:?}");
    let spans = rx.trace(&trace, 4, Duration::from_secs(2)).await;
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    for name in ["request", "input_scan", "upstream", "output_scan"] {
        assert!(
            names.contains(&name),
            "{name} missing after the flush: {names:?}"
        );
    }
}

/// A collector nobody listens on: every request is answered as usual and promptly, and the
/// failed exports are warned about once, not once per batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_slows_nothing_and_warns_once() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let up = MockUpstream::start(|_| Script::sse(vec![sse_stream(&["hi", " there"])])).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!("telemetry: {{otlp_endpoint: 'http://{closed}', export_timeout: 500ms}}\n"),
    )
    .unwrap();
    let (mut server, base) = serve_bin::serve_env(
        &["--config", cfg.to_str().unwrap(), "--upstream", &up.url()],
        &[("OTEL_BSP_SCHEDULE_DELAY", "50")],
    );
    let url = format!("{base}/chat/completions");
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..30 {
        let t = Instant::now();
        let r = post(&url, &chat(&format!("hello {i}"), true)).await;
        slowest = slowest.max(t.elapsed());
        assert_eq!(r.status, 200, "{}", r.text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Thirty requests over two seconds or more: many batches, every export refused.
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(
        slowest < Duration::from_secs(1),
        "a request took {slowest:?}"
    );
    let warned: Vec<String> = server
        .stderr()
        .into_iter()
        .filter(|l| l.contains("cannot export traces"))
        .collect();
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert!(warned[0].contains(&closed.to_string()), "{warned:?}");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(15)))
        .expect("still running after SIGTERM");
    assert!(status.success(), "{status:?}");
}

/// `sample_ratio: 0` records no new trace but still tells the upstream (flags `00`); a client
/// trace that is sampled is followed (parent-based sampling).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_follows_the_ratio_for_new_traces_and_the_client_for_continued_ones() {
    let rx = Receiver::start().await;
    let up = MockUpstream::start(|_| Script::sse(vec![sse_stream(&["hi", " there"])])).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "telemetry: {{otlp_endpoint: {}, sample_ratio: 0}}\n",
            rx.endpoint()
        ),
    )
    .unwrap();
    let (_server, base) = serve_bin::serve_env(
        &["--config", cfg.to_str().unwrap(), "--upstream", &up.url()],
        &[("OTEL_BSP_SCHEDULE_DELAY", "50")],
    );
    let url = format!("{base}/chat/completions");
    let r = post(&url, &chat("hello", true)).await;
    assert_eq!(r.status, 200);
    let (unsampled, _, flags) = traceparent(&upstream_traceparent(&up, 0));
    assert_eq!(flags, "00", "not sampled, and the upstream is told so");

    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let tp = format!("00-{client_trace}-00f067aa0ba902b7-01");
    let body = chat("hello again", true).to_string().into_bytes();
    let r = post_raw(&url, body, &[("traceparent", &tp)]).await;
    assert_eq!(r.status, 200);
    let (trace, _, flags) = traceparent(&upstream_traceparent(&up, 1));
    assert_eq!((trace.as_str(), flags.as_str()), (client_trace, "01"));
    let spans = rx.trace(client_trace, 4, Duration::from_secs(10)).await;
    assert_eq!(one(&spans, "request").parent, "00f067aa0ba902b7");
    // By now the first request's spans would have been exported too, had they been sampled.
    assert!(rx.trace(&unsampled, 1, Duration::ZERO).await.is_empty());
}
