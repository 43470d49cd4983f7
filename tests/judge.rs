//! The judge cascade against a scripted mock judge (tests/common/mock_judge.rs, an
//! OpenAI-compatible server on 127.0.0.1:0): verdicts, malformed answers, slow answers past the
//! budget, 5xx, concurrency, the cache; cancellation of the upstream on an input block; each
//! stream mode, with no byte of a judged-unsafe window sent in `hold` / `checkpoint`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::mock_judge::MockJudge;
use common::{BoxError, Flag, Reply, chat, content_chunk, finish_chunk, frame, role_chunk};
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

fn policy(judge_block: &str) -> CompiledPolicy {
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
struct Records {
    records: Mutex<Vec<AuditRecord>>,
    late: Mutex<Vec<JudgeRecord>>,
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
enum Model {
    /// A buffered answer with this content, after a delay.
    Answer(String, Duration),
    /// A stream of these pieces, `gap` apart.
    Stream(Vec<String>, Duration),
    /// A stream of these SSE frames.
    Frames(Vec<Vec<u8>>),
}

struct Setup {
    records: Arc<Records>,
    /// Set when the model's future or body was dropped before it finished.
    cancelled: Arc<AtomicBool>,
    /// Set when the model was called.
    called: Arc<AtomicBool>,
}

fn judge_config(j: &MockJudge, concurrency: usize) -> JudgeConfig {
    JudgeConfig {
        model: "mock".into(),
        max_concurrency: concurrency,
        json_mode: true,
        ..JudgeConfig::new(j.url())
    }
}

fn http(j: &MockJudge, concurrency: usize) -> Option<Arc<dyn Judge>> {
    Some(Arc::new(
        HttpJudge::new(judge_config(j, concurrency), None).unwrap(),
    ))
}

async fn send(
    policy: CompiledPolicy,
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
    let body = resp.into_body().collect().await.unwrap().to_bytes();
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

/// Sets its flag when dropped before `disarm`.
struct Guard(Option<Flag>);

impl Guard {
    fn disarm(mut self) {
        if let Some(f) = self.0.take() {
            std::mem::forget(f);
        }
    }
}

fn content(r: &Reply) -> String {
    r.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn record(s: &Setup) -> AuditRecord {
    let recs = s.records.records.lock().unwrap();
    assert_eq!(recs.len(), 1, "one audit record");
    recs[0].clone()
}

const ESCALATION: &str = "judge: {input: escalation, output: off, budget_ms: 1500}";

// === input ===

#[tokio::test]
async fn an_escalation_the_judge_clears_reaches_the_model() {
    let j = MockJudge::start(Duration::ZERO).await;
    let (r, s) = send(
        policy(ESCALATION),
        http(&j, 4),
        Model::Answer("Shelters are made of concrete.".into(), Duration::ZERO),
        chat("Where is the nearest bomb shelter?", false),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(content(&r), "Shelters are made of concrete.");
    assert_eq!(r.header("x-deliberate-judge"), "input=no_violation");
    assert_eq!(r.header("x-deliberate-action"), "allow");
    assert_eq!(r.header("x-deliberate-enforcement"), "full");
    assert_eq!(j.calls(), 1);
    let rec = record(&s);
    assert_eq!(rec.judge.len(), 1);
    assert_eq!(rec.judge[0].outcome, "no_violation");
    assert_eq!(rec.judge[0].rules, ["bomb"]);
    // The escalated finding is audited, but decides nothing.
    assert!(rec.findings.iter().any(|f| f.rule == "bomb"));
}

#[tokio::test]
async fn a_judged_violation_is_refused_and_the_rationale_stays_in_the_audit() {
    let j = MockJudge::start(Duration::ZERO).await;
    let (r, s) = send(
        policy(ESCALATION),
        http(&j, 4),
        Model::Answer("never seen".into(), Duration::from_millis(300)),
        chat("VIOLATE: how do I build a bomb", false),
    )
    .await;
    assert_eq!(content(&r), "Refused under Weapons.");
    assert_eq!(r.header("x-deliberate-action"), "block");
    assert_eq!(r.header("x-deliberate-judge"), "input=violation");
    assert!(!r.text().contains("SECRET-RATIONALE"), "{}", r.text());
    assert!(
        r.headers
            .iter()
            .all(|(_, v)| !v.to_str().unwrap_or("").contains("SECRET"))
    );
    let rec = record(&s);
    let v = rec.judge[0].verdict.as_ref().expect("verdict kept");
    assert!(v.rationale.contains("SECRET-RATIONALE"));
}

#[tokio::test]
async fn without_a_judge_an_escalating_rule_blocks_as_before() {
    let (r, s) = send(
        policy(ESCALATION),
        None,
        Model::Answer("never".into(), Duration::ZERO),
        chat("Where is the nearest bomb shelter?", false),
    )
    .await;
    assert_eq!(content(&r), "Refused under Weapons.");
    assert_eq!(r.header("x-deliberate-judge"), "");
    assert!(!s.called.load(Ordering::SeqCst), "upstream never called");
}

#[tokio::test]
async fn a_plain_block_does_not_wait_for_the_judge() {
    let j = MockJudge::start(Duration::ZERO).await;
    let (r, s) = send(
        policy(ESCALATION),
        http(&j, 4),
        Model::Answer("never".into(), Duration::ZERO),
        chat("bomb with nerve agent", false),
    )
    .await;
    assert_eq!(content(&r), "Refused under Weapons.");
    assert_eq!(j.calls(), 0);
    assert!(!s.called.load(Ordering::SeqCst));
}

#[tokio::test]
async fn an_input_block_cancels_the_upstream_call() {
    let j = MockJudge::start(Duration::ZERO).await;
    let t = Instant::now();
    let (r, s) = send(
        policy(ESCALATION),
        http(&j, 4),
        Model::Answer("too late".into(), Duration::from_secs(5)),
        chat("VIOLATE bomb", false),
    )
    .await;
    assert_eq!(content(&r), "Refused under Weapons.");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(
        s.called.load(Ordering::SeqCst),
        "judged beside the upstream call"
    );
    assert!(
        s.cancelled.load(Ordering::SeqCst),
        "the upstream call was dropped"
    );
}

#[tokio::test]
async fn malformed_timeout_and_5xx_fail_closed_and_say_so() {
    let j = MockJudge::start(Duration::ZERO).await;
    for (text, why, outcome) in [
        ("MALFORMED bomb", "judge answer malformed", "malformed"),
        ("SLOW bomb", "judge timed out", "timeout"),
        ("FAIL500 bomb", "judge error", "error"),
    ] {
        let t = Instant::now();
        let (r, s) = send(
            policy("judge: {input: escalation, budget_ms: 300}"),
            http(&j, 4),
            Model::Answer("never".into(), Duration::ZERO),
            chat(text, false),
        )
        .await;
        assert_eq!(content(&r), "Refused under Weapons.", "{text}");
        assert!(
            r.header("x-deliberate-enforcement").contains(why),
            "{text}: {}",
            r.header("x-deliberate-enforcement")
        );
        assert_eq!(r.header("x-deliberate-judge"), format!("input={outcome}"));
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{text}: {:?}",
            t.elapsed()
        );
        assert_eq!(record(&s).judge[0].outcome, outcome);
    }
}

#[tokio::test]
async fn fail_open_lets_the_text_through_and_says_so() {
    let j = MockJudge::start(Duration::ZERO).await;
    let (r, _) = send(
        policy("judge: {input: escalation, budget_ms: 300, on_error: open}"),
        http(&j, 4),
        Model::Answer("ok".into(), Duration::ZERO),
        chat("SLOW bomb shelter", false),
    )
    .await;
    assert_eq!(content(&r), "ok");
    assert!(
        r.header("x-deliberate-enforcement")
            .contains("judge timed out")
    );
}

#[tokio::test]
async fn calls_wait_for_a_slot_and_verdicts_are_cached() {
    let j = MockJudge::start(Duration::from_millis(150)).await;
    let judge: Arc<HttpJudge> = Arc::new(HttpJudge::new(judge_config(&j, 2), None).unwrap());
    let mut tasks = Vec::new();
    for i in 0..6 {
        let judge: Arc<dyn Judge> = judge.clone();
        tasks.push(send(
            policy("judge: {input: escalation, budget_ms: 5000}"),
            Some(judge),
            Model::Answer("ok".into(), Duration::ZERO),
            chat(&format!("bomb shelter number {i}"), false),
        ));
    }
    for (r, _) in futures_util::future::join_all(tasks).await {
        assert_eq!(r.header("x-deliberate-judge"), "input=no_violation");
    }
    assert_eq!(j.calls(), 6);
    assert!(
        j.max_in_flight.load(Ordering::SeqCst) <= 2,
        "{}",
        j.max_in_flight.load(Ordering::SeqCst)
    );
    // The same prompt twice through one client: the second verdict is cached.
    let p2 = policy("judge: {input: escalation, budget_ms: 5000}");
    let jp = deliberate::engine::judge::judge_prompt(
        &p2,
        deliberate::Stage::Input,
        &["weapons".into()],
        "bomb",
    );
    let before = j.calls();
    let a = judge
        .judge(jp.clone(), Duration::from_secs(5))
        .await
        .unwrap();
    let b = judge.judge(jp, Duration::from_secs(5)).await.unwrap();
    assert!(!a.cached && b.cached);
    assert_eq!(j.calls(), before + 1);
}

// === output ===

#[tokio::test]
async fn a_buffered_answer_is_judged_before_release() {
    let j = MockJudge::start(Duration::ZERO).await;
    let p = || policy("judge: {input: off, output: always, budget_ms: 1500}");
    let (r, s) = send(
        p(),
        http(&j, 4),
        Model::Answer("Here is how: VIOLATE step one".into(), Duration::ZERO),
        chat("hello", false),
    )
    .await;
    assert_eq!(content(&r), "Refused under Weapons.");
    assert_eq!(r.json()["choices"][0]["finish_reason"], "content_filter");
    assert!(!r.text().contains("VIOLATE"));
    assert_eq!(r.header("x-deliberate-judge"), "output=violation");
    assert_eq!(record(&s).action, deliberate::Action::Block);
    let (r, _) = send(
        p(),
        http(&j, 4),
        Model::Answer("A harmless answer.".into(), Duration::ZERO),
        chat("hello", false),
    )
    .await;
    assert_eq!(content(&r), "A harmless answer.");
    assert_eq!(r.header("x-deliberate-judge"), "output=no_violation");
}

fn stream_pieces(unsafe_at: Option<usize>) -> Vec<String> {
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

fn streamed_text(r: &Reply) -> String {
    common::stream_text(&r.chunks_lenient(), 0).0
}

trait Lenient {
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

/// Regression: stream rewriters scan some whole strings (unknown fields, tool names) through
/// the buffered path; an escalation there was set aside with nobody waiting for the judge.
/// In streams, escalating rules keep their fallback.
#[tokio::test]
async fn a_streamed_escalation_keeps_its_fallback() {
    let j = MockJudge::start(Duration::ZERO).await;
    let p = CompiledPolicy::from_yaml_str(
        r#"
policy: streamed
judge: {input: off, output: escalation}
spec:
  sections:
    - {id: weapons, text: No weapons.}
rules:
  - id: sword
    section: weapons
    stages: [output]
    match: {keywords: [swordfish]}
    action: escalate
    tests: {match: ["swordfish"], no_match: ["sword"]}
"#,
        "streamed.yaml",
    )
    .unwrap();
    let mut note = content_chunk(0, "hello ");
    note["x_note"] = json!("the swordfish plan");
    let frames = vec![
        frame(&role_chunk(0)),
        frame(&note),
        frame(&content_chunk(0, "and the swordfish")),
        frame(&finish_chunk(0, "stop")),
        b"data: [DONE]\n\n".to_vec(),
    ];
    let (r, _) = send(p, http(&j, 4), Model::Frames(frames), chat("hi", true)).await;
    assert!(!r.text().contains("swordfish"), "{}", r.text());
    assert_eq!(j.calls(), 0, "nothing waits for a verdict in a stream");
}

#[tokio::test]
async fn hold_sends_nothing_before_the_verdict() {
    let j = MockJudge::start(Duration::ZERO).await;
    let p = || policy("judge: {input: off, output: always, stream: hold, budget_ms: 1500}");
    let (r, s) = send(
        p(),
        http(&j, 4),
        Model::Stream(stream_pieces(Some(5)), Duration::from_millis(5)),
        chat("hello", true),
    )
    .await;
    assert!(!r.text().contains("VIOLATE"), "{}", r.text());
    assert!(
        !r.text().contains("Sentence number 0"),
        "nothing before the verdict: {}",
        r.text()
    );
    assert!(r.text().contains("Refused under Weapons."), "{}", r.text());
    assert_eq!(r.header("x-deliberate-judge"), "output=violation");
    let rec = record(&s);
    assert_eq!(rec.outcome, deliberate::layer::Outcome::BlockedOutput);
    let (r, _) = send(
        p(),
        http(&j, 4),
        Model::Stream(stream_pieces(None), Duration::from_millis(5)),
        chat("hello", true),
    )
    .await;
    assert_eq!(streamed_text(&r), stream_pieces(None).concat());
    assert!(r.text().ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn checkpoint_releases_judged_windows_and_never_the_unsafe_one() {
    let j = MockJudge::start(Duration::from_millis(20)).await;
    let p = || {
        policy(
            "judge: {input: off, output: always, stream: checkpoint, checkpoint_bytes: 40, budget_ms: 1500}",
        )
    };
    let (r, s) = send(
        p(),
        http(&j, 4),
        Model::Stream(stream_pieces(Some(5)), Duration::from_millis(5)),
        chat("hello", true),
    )
    .await;
    let text = r.text();
    assert!(!text.contains("VIOLATE"), "{text}");
    assert!(
        streamed_text(&r).starts_with("Sentence number 0 is fine."),
        "earlier windows were released: {text}"
    );
    assert!(text.contains("content_policy_violation"), "{text}");
    assert!(j.calls() >= 2, "judged window by window: {}", j.calls());
    assert_eq!(
        record(&s).outcome,
        deliberate::layer::Outcome::BlockedOutput
    );
    let (r, s) = send(
        p(),
        http(&j, 4),
        Model::Stream(stream_pieces(None), Duration::from_millis(5)),
        chat("hello", true),
    )
    .await;
    assert_eq!(streamed_text(&r), stream_pieces(None).concat());
    assert!(r.text().ends_with("data: [DONE]\n\n"));
    assert_eq!(record(&s).outcome, deliberate::layer::Outcome::Completed);
}

#[tokio::test]
async fn monitor_releases_at_once_and_audits_the_verdict_later() {
    let j = MockJudge::start(Duration::ZERO).await;
    let (r, s) = send(
        policy("judge: {input: off, output: always, stream: monitor, budget_ms: 1500}"),
        http(&j, 4),
        Model::Stream(stream_pieces(Some(5)), Duration::from_millis(5)),
        chat("hello", true),
    )
    .await;
    assert_eq!(streamed_text(&r), stream_pieces(Some(5)).concat());
    assert!(
        common::eventually(|| !s.records.late.lock().unwrap().is_empty()).await,
        "a late verdict arrives"
    );
    let late = s.records.late.lock().unwrap()[0].clone();
    assert_eq!(late.outcome, "violation");
    assert_eq!(record(&s).judge[0].outcome, "monitored");
}

/// Time to first content byte and to the end, per stream mode, with a judge that takes 100 ms
/// and a model streaming 10 pieces 20 ms apart. `cargo test --test judge -- --ignored
/// --nocapture stream_mode_costs` prints the figures the README quotes; the assertions only
/// check their order.
#[tokio::test]
#[ignore = "a measurement: prints time to first byte per stream mode"]
async fn stream_mode_costs() {
    let j = MockJudge::start(Duration::from_millis(100)).await;
    let mut figures = Vec::new();
    for (name, block) in [
        ("no judge", "judge: {input: off, output: off}"),
        (
            "monitor",
            "judge: {input: off, output: always, stream: monitor}",
        ),
        (
            "checkpoint",
            "judge: {input: off, output: always, stream: checkpoint, checkpoint_bytes: 60}",
        ),
        ("hold", "judge: {input: off, output: always, stream: hold}"),
    ] {
        let mut first = Vec::new();
        let mut total = Vec::new();
        for _ in 0..5 {
            let (f, t) = time_stream(policy(block), http(&j, 4), stream_pieces(None)).await;
            first.push(f);
            total.push(t);
        }
        first.sort();
        total.sort();
        figures.push((name, first[2], total[2]));
    }
    for (name, f, t) in &figures {
        println!("{name:>10}: first content byte {f:>4} ms, whole answer {t:>4} ms (median of 5)");
    }
    assert!(figures[3].1 >= figures[0].1, "hold waits for the verdict");
}

/// Milliseconds to the first frame that carries content, and to the end of the body.
async fn time_stream(
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
