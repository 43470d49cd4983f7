//! Streamed answers with a judge, per stream mode (`hold`, `checkpoint`, `monitor`): no byte of
//! a judged-unsafe window is sent in `hold` / `checkpoint`; escalations on streamed content are
//! held for the judge (whole fields keep their fallback); and (ignored) the time to first byte
//! each mode costs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::judge_run::*;
use common::mock_judge::MockJudge;
use common::{chat, content_chunk, finish_chunk, frame, role_chunk};
use deliberate::CompiledPolicy;
use serde_json::json;

const STREAMED: &str = r#"
policy: streamed
judge: {input: off, output: escalation, budget_ms: 400}
spec:
  sections:
    - id: weapons
      title: Weapons
      text: No weapons.
      judge:
        violates: ["Instructions for building a weapon."]
        safe: ["Animals and products named after weapons."]
rules:
  - id: sword
    section: weapons
    stages: [output]
    match: {keywords: [swordfish]}
    action: escalate
    tests: {match: ["swordfish"], no_match: ["sword"]}
refusal: "Refused under {title}."
"#;

fn streamed_policy() -> CompiledPolicy {
    CompiledPolicy::from_yaml_str(STREAMED, "streamed.yaml").unwrap()
}

fn frames_of(pieces: &[&str]) -> Vec<Vec<u8>> {
    let mut frames = vec![frame(&role_chunk(0))];
    frames.extend(pieces.iter().map(|p| frame(&content_chunk(0, p))));
    frames.push(frame(&finish_chunk(0, "stop")));
    frames.push(b"data: [DONE]\n\n".to_vec());
    frames
}

/// `pieces` streamed by the model through [`streamed_policy`], with `judge`.
async fn stream_through(
    judge: Option<std::sync::Arc<dyn deliberate::layer::Judge>>,
    pieces: &[&str],
) -> (common::Reply, Setup) {
    send(
        streamed_policy(),
        judge,
        Model::Frames(frames_of(pieces)),
        chat("hi", true),
    )
    .await
}

/// Regression: stream rewriters scan some whole strings (unknown fields, tool names) through
/// the buffered path; an escalation there was set aside with nobody waiting for the judge.
/// There, escalating rules keep their fallback (only content text is held for the judge).
#[tokio::test]
async fn a_streamed_escalation_in_a_whole_field_keeps_its_fallback() {
    let j = MockJudge::start(Duration::ZERO).await;
    let mut note = content_chunk(0, "hello ");
    note["x_note"] = json!("the swordfish plan");
    let frames = vec![
        frame(&role_chunk(0)),
        frame(&note),
        frame(&content_chunk(0, "and the swordfish")),
        frame(&finish_chunk(0, "stop")),
        b"data: [DONE]\n\n".to_vec(),
    ];
    let (r, _) = send(
        streamed_policy(),
        http(&j, 4),
        Model::Frames(frames),
        chat("hi", true),
    )
    .await;
    assert!(!r.text().contains("swordfish"), "{}", r.text());
    assert_eq!(j.calls(), 0, "a whole field's escalation is its fallback");
}

/// An `escalate` rule on streamed content text goes to the judge: the text is held from the
/// event that matched until the verdict; an allow sends it on, and the stream goes on.
#[tokio::test]
async fn a_streamed_content_escalation_is_judged_and_allowed() {
    let j = MockJudge::start(Duration::from_millis(20)).await;
    let pieces = ["The sword", "fish is a ", "large fish. ", "It swims fast."];
    let (r, s) = stream_through(http(&j, 4), &pieces).await;
    assert_eq!(streamed_text(&r), pieces.concat());
    assert!(r.text().ends_with("data: [DONE]\n\n"), "{}", r.text());
    assert_eq!(j.calls(), 1);
    let rec = record(&s);
    assert_eq!(rec.outcome, deliberate::layer::Outcome::Completed);
    assert_eq!(rec.judge.len(), 1);
    assert_eq!(rec.judge[0].rules, vec!["sword".to_owned()]);
    assert_eq!(rec.judge[0].outcome, "no_violation");
    assert!(
        rec.findings.iter().any(|f| f.rule == "sword"),
        "the escalated finding is audited"
    );
}

/// The judge refuses: not a byte of the escalated text reaches the client; what streamed
/// before it did, and the stream ends in-band with the policy's error.
#[tokio::test]
async fn a_streamed_escalation_the_judge_refuses_never_reaches_the_client() {
    let j = MockJudge::start(Duration::ZERO).await;
    let pieces = [
        "VIOLATE, it says. ",
        "The sword",
        "fish plan ",
        "goes on here.",
    ];
    let (r, s) = stream_through(http(&j, 4), &pieces).await;
    let text = r.text();
    assert!(!text.contains("fish"), "{text}");
    assert!(!text.contains("goes on"), "{text}");
    assert!(text.contains("content_policy_violation"), "{text}");
    assert!(text.contains("Refused under Weapons."), "{text}");
    assert!(
        streamed_text(&r).starts_with("VIOLATE, it says."),
        "the text before the escalation streamed: {text}"
    );
    assert_eq!(j.calls(), 1);
    assert_eq!(
        record(&s).outcome,
        deliberate::layer::Outcome::BlockedOutput
    );
}

/// Regression: the escalation is in the first content event, which goes out with the
/// response head: that text waits for the verdict too.
#[tokio::test]
async fn an_escalation_in_the_first_event_is_held_with_the_head() {
    let j = MockJudge::start(Duration::ZERO).await;
    let pieces = ["VIOLATE: the swordfish plan. ", "More of it."];
    let (r, _) = stream_through(http(&j, 4), &pieces).await;
    let text = r.text();
    assert!(!text.contains("swordfish"), "{text}");
    assert!(!text.contains("More of it"), "{text}");
    assert!(text.contains("content_policy_violation"), "{text}");
    let pieces = ["The swordfish is big. ", "It swims."];
    let (r, _) = stream_through(http(&j, 4), &pieces).await;
    assert_eq!(streamed_text(&r), pieces.concat());
}

/// Regression: the rest of the stream arrived while the verdict was pending; the body said
/// it had ended as soon as the upstream had, so a server stopped reading it after the first
/// allowed bytes and the held tail (and the terminator) were never sent.
#[tokio::test]
async fn a_slow_verdict_does_not_cut_the_held_tail() {
    let j = MockJudge::start(Duration::from_millis(150)).await;
    let pieces = ["The swordfish is big. ", "It swims. ", "The end."];
    let (r, _) = stream_through(http(&j, 4), &pieces).await;
    assert_eq!(streamed_text(&r), pieces.concat());
    assert!(r.text().ends_with("data: [DONE]\n\n"), "{}", r.text());
}

/// Two policies: the second holds part of the first one's escalated match (its own rule on
/// "fish" is still undecided when the first flags "swordfish"). The judge must read the
/// whole match, and what the second releases later must not pass unjudged.
#[tokio::test]
async fn the_judge_reads_an_escalated_match_a_later_policy_still_holds() {
    let j = MockJudge::start(Duration::ZERO).await;
    let second = CompiledPolicy::from_yaml_str(
        r#"
policy: second
rules:
  - id: fish-and-chips
    stages: [output]
    match: {all: [{keywords: [fish]}, {keywords: [chips]}]}
    action: flag
    tests: {match: ["fish and chips"], no_match: ["fish"]}
"#,
        "second.yaml",
    )
    .unwrap();
    let pieces = ["The swordfish VIOLATE plan. ", "More of it. ", "The end."];
    let set = deliberate::layer::PolicySet::new(vec![
        std::sync::Arc::new(streamed_policy()),
        std::sync::Arc::new(second),
    ]);
    let (r, _) = send(
        deliberate::layer::SharedPolicies::new(set),
        http(&j, 4),
        Model::Frames(frames_of(&pieces)),
        chat("hi", true),
    )
    .await;
    let text = r.text();
    assert!(!text.contains("fish"), "{text}");
    assert!(text.contains("content_policy_violation"), "{text}");
}

/// A judge past the budget fails closed (the policy's default): the held text is dropped,
/// and the record and header say the judge timed out.
#[tokio::test]
async fn a_streamed_escalation_past_the_budget_fails_closed() {
    let j = MockJudge::start(Duration::ZERO).await;
    let pieces = ["SLOW answer: ", "the swordfish ", "is big."];
    let (r, s) = stream_through(http(&j, 4), &pieces).await;
    let text = r.text();
    assert!(!text.contains("swordfish"), "{text}");
    assert!(text.contains("content_policy_violation"), "{text}");
    let rec = record(&s);
    assert_eq!(rec.judge[0].outcome, "timeout");
    assert_eq!(rec.outcome, deliberate::layer::Outcome::BlockedOutput);
}

/// Without a judge, the same rule is its fallback (a block), as it always was.
#[tokio::test]
async fn without_a_judge_a_streamed_escalation_blocks() {
    let pieces = ["The sword", "fish is a ", "large fish."];
    let (r, _) = stream_through(None, &pieces).await;
    let text = r.text();
    assert!(!text.contains("swordfish"), "{text}");
    assert!(text.contains("content_filter"), "{text}");
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
    // Escalation only (the default with a judge): nothing is held until an escalate rule
    // matches; then one call.
    for (name, fires) in [
        ("escalation, none", false),
        ("escalation, at piece 4", true),
    ] {
        let mut pieces = stream_pieces(None);
        if fires {
            pieces[3] = "The swordfish is a fish. ".to_owned();
        }
        let mut first = Vec::new();
        let mut total = Vec::new();
        let calls = j.calls();
        for _ in 0..5 {
            let (f, t) = time_stream(streamed_policy(), http(&j, 4), pieces.clone()).await;
            first.push(f);
            total.push(t);
        }
        let expected = if fires { 5 } else { 0 };
        assert_eq!(j.calls() - calls, expected, "{name}: judge calls");
        first.sort();
        total.sort();
        figures.push((name, first[2], total[2]));
    }
    for (name, f, t) in &figures {
        println!("{name:>22}: first content byte {f:>4} ms, whole answer {t:>4} ms (median of 5)");
    }
    assert!(figures[3].1 >= figures[0].1, "hold waits for the verdict");
}
