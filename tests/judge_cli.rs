//! `scan --judge`, `test --judge --record` then the recorded-verdict replay, and
//! `eval --judge`, against the scripted mock judge.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::mock_judge::MockJudge;

fn deliberate(dir: &Path, args: &[&str]) -> (String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_deliberate"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("binary runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (text, out.status.code().unwrap_or(-1))
}

fn fixture_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/judge");
    for f in ["policy.yaml", "labeled.jsonl"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_explains_the_verdict_and_the_cascade() {
    let j = MockJudge::start(Duration::ZERO).await;
    let dir = fixture_dir();
    let url = j.url();
    let d = dir.path().to_owned();
    let (out, code) = tokio::task::spawn_blocking(move || {
        deliberate(
            &d,
            &[
                "scan",
                "--policy",
                "policy.yaml",
                "--judge",
                &url,
                "Where is the bomb shelter?",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("action:  block"),
        "the rules alone block: {out}"
    );
    assert!(out.contains("escalated by: [\"bomb\"]"), "{out}");
    assert!(out.contains("violation=false"), "{out}");
    assert!(out.contains("rationale: harmless"), "{out}");
    assert!(
        out.contains("cascade: the escalated rules are set aside"),
        "{out}"
    );
    let url = j.url();
    let d = dir.path().to_owned();
    let (out, _) = tokio::task::spawn_blocking(move || {
        deliberate(
            &d,
            &[
                "scan",
                "--policy",
                "policy.yaml",
                "--format",
                "json",
                "--judge",
                &url,
                "VIOLATE bomb",
            ],
        )
    })
    .await
    .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["judge"]["verdict"]["violation"], true);
    assert_eq!(v["judge"]["verdict"]["section"], "weapons");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_records_verdicts_and_replays_them_without_a_model() {
    let j = MockJudge::start(Duration::ZERO).await;
    let dir = fixture_dir();
    let d = dir.path().to_owned();
    let url = j.url();
    let (out, code) = tokio::task::spawn_blocking(move || {
        deliberate(&d, &["test", "policy.yaml", "--judge", &url, "--record"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("recorded 2 verdicts"), "{out}");
    let rec = dir.path().join("tests/policy.verdicts.json");
    assert!(rec.is_file());
    drop(j);
    // Replay, no judge.
    let (out, code) = deliberate(dir.path(), &["test", "policy.yaml"]);
    assert_eq!(code, 0, "{out}");
    // A recording that disagrees with the label fails the run.
    let text = std::fs::read_to_string(&rec).unwrap();
    std::fs::write(
        &rec,
        text.replacen("\"violation\": false", "\"violation\": true", 1),
    )
    .unwrap();
    let (out, code) = deliberate(dir.path(), &["test", "policy.yaml"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the recorded verdict"), "{out}");
    // A missing recording fails too.
    std::fs::write(&rec, "[]").unwrap();
    let (out, code) = deliberate(dir.path(), &["test", "policy.yaml"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no recorded verdict"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_compares_rules_judge_and_cascade() {
    let j = MockJudge::start(Duration::ZERO).await;
    let dir = fixture_dir();
    let d = dir.path().to_owned();
    let url = j.url();
    let (out, code) = tokio::task::spawn_blocking(move || {
        deliberate(
            &d,
            &[
                "eval",
                "--policy",
                "policy.yaml",
                "--dataset",
                "labeled.jsonl",
                "--format",
                "json",
                "--judge",
                &url,
            ],
        )
    })
    .await
    .unwrap();
    assert!(code == 0 || code == 1, "{out}");
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let arms = v["cascade"]["arms"].as_array().unwrap();
    let arm = |name: &str| arms.iter().find(|a| a["arm"] == name).unwrap().clone();
    // Rules: the keyword blocks both bomb texts (one a false block) and misses the other.
    assert_eq!(arm("rules")["catch_rate"]["k"], 1.0);
    assert_eq!(arm("rules")["false_block_rate"]["k"], 2.0);
    // Judge alone: catches both, blocks nothing safe; one call per text.
    assert_eq!(arm("judge")["catch_rate"]["k"], 2.0);
    assert_eq!(arm("judge")["false_block_rate"]["k"], 0.0);
    assert_eq!(arm("judge")["judge_calls_per_100"], 100.0);
    // Cascade: the escalations are judged (3 of 5 texts), the keyword-free unsafe text is missed.
    assert_eq!(arm("cascade")["catch_rate"]["k"], 1.0);
    assert_eq!(arm("cascade")["false_block_rate"]["k"], 0.0);
    assert_eq!(arm("cascade")["judge_calls_per_100"], 60.0);
}
