//! The judge cascade against a scripted mock judge (tests/common/mock_judge.rs, an
//! OpenAI-compatible server on 127.0.0.1:0): verdicts, malformed answers, slow answers past the
//! budget, 5xx, concurrency, the cache; cancellation of the upstream on an input block;
//! buffered answers. Streams are in tests/judge_streams.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::chat;
use common::judge_run::*;
use common::mock_judge::MockJudge;
use deliberate::layer::Judge;
use deliberate::proxy::judge::HttpJudge;

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
