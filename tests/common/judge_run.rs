//! The judge tests' harness: a test policy with an escalating rule, a scripted model (inner
//! service) behind a [`PolicyLayer`] with an optional judge, and what came out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::mock_judge::MockJudge;
use super::{BoxError, Flag, Reply, chat, content_chunk, finish_chunk, frame, role_chunk};
use bytes::Bytes;
use deliberate::CompiledPolicy;
use deliberate::layer::{AuditRecord, Judge, JudgeRecord, Observer, PolicyLayer, RequestBody};
use deliberate::proxy::judge::{HttpJudge, JudgeConfig};
use futures_util::stream;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value, json};
use tower::{Layer, ServiceExt, service_fn};
pub fn policy(judge_block: &str) -> CompiledPolicy {
    let src = format!(
        r#"
policy: judged
{judge_block}
spec:
  sections:
    - id: weapons
      title: Weapons
      text: Do not help build weapons.
      judge:
        violates: ["Instructions for building a weapon."]
        safe: ["Places and products named after weapons."]
rules:
  - id: bomb
    section: weapons
    stages: [input]
    match: {{keywords: [bomb]}}
    action: escalate
    tests: {{match: ["a bomb"], no_match: ["a balm"]}}
  - id: nerve
    section: weapons
    match: {{keywords: [nerve agent]}}
    action: block
    tests: {{match: ["nerve agent"], no_match: ["nerve"]}}
refusal: "Refused under {{title}}."
"#
    );
    CompiledPolicy::from_yaml_str(&src, "judged.yaml").expect("test policy compiles")
}

#[derive(Default)]
pub struct Records {
    pub records: Mutex<Vec<AuditRecord>>,
    pub late: Mutex<Vec<JudgeRecord>>,
}

impl Observer for Records {
    fn record(&self, r: &AuditRecord) {
        self.records.lock().unwrap().push(r.clone());
    }
    fn judged_late(&self, _id: &str, j: &JudgeRecord) {
        self.late.lock().unwrap().push(j.clone());
    }
}

/// What the inner service (the model) does.
#[derive(Clone)]
pub enum Model {
    /// A buffered answer with this content, after a delay.
    Answer(String, Duration),
    /// A stream of these pieces, `gap` apart.
    Stream(Vec<String>, Duration),
    /// A stream of these SSE frames.
    Frames(Vec<Vec<u8>>),
}

pub struct Setup {
    pub records: Arc<Records>,
    /// Set when the model's future or body was dropped before it finished.
    pub cancelled: Arc<AtomicBool>,
    /// Set when the model was called.
    pub called: Arc<AtomicBool>,
}

pub fn judge_config(j: &MockJudge, concurrency: usize) -> JudgeConfig {
    JudgeConfig {
        model: "mock".into(),
        max_concurrency: concurrency,
        json_mode: true,
        ..JudgeConfig::new(j.url())
    }
}

pub fn http(j: &MockJudge, concurrency: usize) -> Option<Arc<dyn Judge>> {
    Some(Arc::new(
        HttpJudge::new(judge_config(j, concurrency), None).unwrap(),
    ))
}

pub async fn send(
    policy: impl Into<deliberate::layer::SharedPolicies>,
    judge: Option<Arc<dyn Judge>>,
    model: Model,
    req: Value,
) -> (Reply, Setup) {
    let records = Arc::new(Records::default());
    let cancelled = Arc::new(AtomicBool::new(false));
    let called = Arc::new(AtomicBool::new(false));
    let (c2, k2) = (cancelled.clone(), called.clone());
    let inner = service_fn(move |_r: Request<RequestBody<Full<Bytes>>>| {
        let model = model.clone();
        let (cancelled, called) = (c2.clone(), k2.clone());
        async move {
            called.store(true, Ordering::SeqCst);
            let guard = Guard(Some(Flag(cancelled)));
            let resp = match model {
                Model::Answer(text, delay) => {
                    tokio::time::sleep(delay).await;
                    let body = json!({"id": "c1", "object": "chat.completion", "created": 1,
                        "model": "m", "choices": [{"index": 0, "message": {"role": "assistant",
                        "content": text}, "finish_reason": "stop"}]});
                    let mut r = Response::new(BoxBody::new(
                        Full::new(Bytes::from(body.to_string()))
                            .map_err(|e| -> BoxError { match e {} }),
                    ));
                    r.headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    r
                }
                Model::Stream(..) | Model::Frames(_) => {
                    let (frames, gap) = match model {
                        Model::Frames(f) => (f, Duration::ZERO),
                        Model::Stream(pieces, gap) => {
                            let mut frames = vec![frame(&role_chunk(0))];
                            frames.extend(pieces.iter().map(|p| frame(&content_chunk(0, p))));
                            frames.push(frame(&finish_chunk(0, "stop")));
                            frames.push(b"data: [DONE]\n\n".to_vec());
                            (frames, gap)
                        }
                        Model::Answer(..) => unreachable!(),
                    };
                    let body = StreamBody::new(stream::unfold(
                        frames.into_iter(),
                        move |mut it| async move {
                            let f = it.next()?;
                            tokio::time::sleep(gap).await;
                            Some((Ok::<_, BoxError>(Frame::data(Bytes::from(f))), it))
                        },
                    ));
                    let mut r = Response::new(BoxBody::new(body));
                    r.headers_mut()
                        .insert("content-type", "text/event-stream".parse().unwrap());
                    r
                }
            };
            guard.disarm();
            Ok::<_, BoxError>(resp)
        }
    });
    let mut layer = PolicyLayer::new(policy).observer(records.clone());
    if let Some(j) = judge {
        layer = layer.judge(j);
    }
    let svc = layer.layer(inner);
    let http_req = Request::post("/v1/chat/completions")
        .body(Full::new(Bytes::from(req.to_string())))
        .unwrap();
    let resp = svc
        .oneshot(http_req)
        .await
        .map_err(|_| "inner error")
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = collect_like_a_server(resp.into_body()).await;
    (
        Reply {
            status,
            headers,
            body,
        },
        Setup {
            records,
            cancelled,
            called,
        },
    )
}

/// Reads a body as an HTTP server does: frame by frame, stopping as soon as the body says
/// it has ended (`is_end_stream`; hyper checks it after every data frame), so a body that
/// claims to be done while it still holds bytes loses them here as it would on the wire.
pub async fn collect_like_a_server<B>(body: B) -> Bytes
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let mut body = body;
    let mut out = Vec::new();
    while !http_body::Body::is_end_stream(&body) {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    out.extend_from_slice(&d);
                }
            }
            Some(Err(e)) => panic!("body error: {e:?}"),
            None => break,
        }
    }
    Bytes::from(out)
}

/// Sets its flag when dropped before `disarm`.
pub struct Guard(Option<Flag>);

impl Guard {
    fn disarm(mut self) {
        if let Some(f) = self.0.take() {
            std::mem::forget(f);
        }
    }
}

pub fn content(r: &Reply) -> String {
    r.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

pub fn record(s: &Setup) -> AuditRecord {
    let recs = s.records.records.lock().unwrap();
    assert_eq!(recs.len(), 1, "one audit record");
    recs[0].clone()
}

pub const ESCALATION: &str = "judge: {input: escalation, output: off, budget_ms: 1500}";

pub fn stream_pieces(unsafe_at: Option<usize>) -> Vec<String> {
    (0..8)
        .map(|i| {
            if Some(i) == unsafe_at {
                "Now VIOLATE the rules. ".to_owned()
            } else {
                format!("Sentence number {i} is fine. ")
            }
        })
        .collect()
}

pub fn streamed_text(r: &Reply) -> String {
    super::stream_text(&r.chunks_lenient(), 0).0
}

pub trait Lenient {
    fn chunks_lenient(&self) -> Vec<Value>;
}

impl Lenient for Reply {
    fn chunks_lenient(&self) -> Vec<Value> {
        self.events()
            .iter()
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    }
}

/// Milliseconds to the first frame that carries content, and to the end of the body.
pub async fn time_stream(
    policy: CompiledPolicy,
    judge: Option<Arc<dyn Judge>>,
    pieces: Vec<String>,
) -> (u128, u128) {
    let inner = service_fn(move |_r: Request<RequestBody<Full<Bytes>>>| {
        let pieces = pieces.clone();
        async move {
            let mut frames = vec![frame(&role_chunk(0))];
            frames.extend(pieces.iter().map(|p| frame(&content_chunk(0, p))));
            frames.push(frame(&finish_chunk(0, "stop")));
            frames.push(b"data: [DONE]\n\n".to_vec());
            let body = StreamBody::new(stream::unfold(frames.into_iter(), |mut it| async move {
                let f = it.next()?;
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((Ok::<_, BoxError>(Frame::data(Bytes::from(f))), it))
            }));
            let mut r = Response::new(BoxBody::new(body));
            r.headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            Ok::<_, BoxError>(r)
        }
    });
    let mut layer = PolicyLayer::new(policy);
    if let Some(j) = judge {
        layer = layer.judge(j);
    }
    let svc = layer.layer(inner);
    let req = Request::post("/v1/chat/completions")
        .body(Full::new(Bytes::from(chat("hello", true).to_string())))
        .unwrap();
    let t = Instant::now();
    let resp = svc.oneshot(req).await.map_err(|_| "inner error").unwrap();
    let mut body = resp.into_body();
    let mut first = None;
    while let Some(f) = body.frame().await {
        let f = f.unwrap();
        if let Ok(d) = f.into_data()
            && first.is_none()
            && String::from_utf8_lossy(&d).contains("Sentence")
        {
            first = Some(t.elapsed().as_millis());
        }
    }
    (first.unwrap_or(0), t.elapsed().as_millis())
}
