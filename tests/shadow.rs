//! Shadow candidates over real HTTP on 127.0.0.1:0: the candidate scans the same texts
//! (streams included), never changes what the client gets, and its decisions reach the audit
//! record and the would-block / would-unblock metrics; `record_texts` keeps the texts.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use deliberate::proxy::Config;
use serde_json::Value;

const CANDIDATE: &str =
    "policy: candidate\nrules:\n  - id: apple\n    match: {keywords: [apple]}\n    action: block\n";

/// `deliberate eval --replay audit.jsonl --format json` in `dir` with `args`: the report.
fn replay(dir: &std::path::Path, args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deliberate"))
        .current_dir(dir)
        .args(["eval", "--replay", "audit.jsonl", "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}{}", String::from_utf8_lossy(&out.stderr)))
}

fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn gateway(dir: &std::path::Path, sample: &str, record_texts: bool) -> Gateway {
    std::fs::copy(policy_path(), dir.join("live.yaml")).unwrap();
    std::fs::write(dir.join("candidate.yaml"), CANDIDATE).unwrap();
    let src = format!(
        "policies: [live.yaml]\nshadow: {{policies: [candidate.yaml], sample: {sample}}}\naudit: {{path: audit.jsonl, record_texts: {record_texts}}}\n"
    );
    std::fs::write(dir.join("c.yaml"), src).unwrap();
    let cfg = Config::from_file(&dir.join("c.yaml")).unwrap();
    Gateway::start(None, move |c| {
        *c = Config {
            reload: false,
            ..cfg
        }
    })
    .await
}

#[tokio::test]
async fn shadow_decisions_are_audited_and_counted_never_applied() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "1.0", true).await;
    let url = gw.url("/v1/chat/completions");

    // The candidate would block; the client gets the live answer, streamed whole.
    let long = format!("{} an apple a day", "one two three four five ".repeat(8));
    let r = post(&url, &chat(&long, true)).await;
    assert_eq!(r.header("x-deliberate-action"), "allow");
    assert_eq!(stream_text(&r.chunks(), 0).0, long);
    // The live policy blocks; the candidate would not.
    let r = post(&url, &chat("how to build a pipe bomb", false)).await;
    assert_eq!(r.header("x-deliberate-action"), "block");
    // Both agree.
    let r = post(&url, &chat("hello there", false)).await;
    assert_eq!(r.header("x-deliberate-action"), "allow");

    let m = get(&gw.url("/metrics")).await.text();
    assert!(m.contains("deliberate_shadow_changes_total{set=\"default\",change=\"would_block\",rule=\"apple\"} 1"), "{m}");
    assert!(m.contains("deliberate_shadow_changes_total{set=\"default\",change=\"would_unblock\",rule=\"bomb\"} 1"), "{m}");
    assert!(
        m.contains("deliberate_shadow_runs_total{set=\"default\",result=\"agree\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("deliberate_shadow_runs_total{set=\"default\",result=\"differ\"} 2"),
        "{m}"
    );
    gw.stop().await;

    let recs = records(&dir.path().join("audit.jsonl"));
    assert_eq!(recs.len(), 3);
    let s = &recs[0]["shadow"];
    assert_eq!(s["action"], "block", "{s}");
    assert!(s["policy"].as_str().unwrap().starts_with("candidate@"));
    // Found in the request and in the streamed answer, joined across its chunks.
    let stages: Vec<&str> = s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["input", "output"], "{s}");
    assert_eq!(recs[1]["shadow"]["action"], "allow");
    // The texts the live policies scanned, for replay.
    let texts = recs[0]["texts"].as_array().unwrap();
    assert_eq!(texts[0]["stage"], "input");
    assert_eq!(texts[0]["role"], "user");
    assert_eq!(texts.last().unwrap()["stage"], "output");
    assert_eq!(texts.last().unwrap()["text"], long);
}

#[tokio::test]
async fn shadow_is_off_by_default_and_texts_are_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "0", false).await;
    let r = post(&gw.url("/v1/chat/completions"), &chat("an apple", false)).await;
    assert_eq!(r.header("x-deliberate-action"), "allow");
    gw.stop().await;
    let recs = records(&dir.path().join("audit.jsonl"));
    assert!(recs[0].get("shadow").is_none(), "{}", recs[0]);
    assert!(recs[0].get("texts").is_none(), "{}", recs[0]);
}

/// Traffic recorded with `record_texts`, replayed against a candidate: the report lists what
/// the candidate would newly block and newly let through, per rule, with the texts.
#[tokio::test]
async fn replay_reports_what_a_candidate_would_decide_differently() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "0", true).await;
    let url = gw.url("/v1/chat/completions");
    for text in ["an apple a day", "how to build a pipe bomb", "hello there"] {
        let _ = post(&url, &chat(text, false)).await;
    }
    gw.stop().await;
    let v = replay(
        dir.path(),
        &["--policy", "candidate.yaml", "--compare", "live.yaml"],
    );
    let text = v.to_string();
    let compare = &v["datasets"][0]["compare"];
    assert!(compare.is_object(), "{text}");
    let caught = compare["newly_caught"].as_array().unwrap();
    let released = compare["newly_released"].as_array().unwrap();
    assert!(
        caught
            .iter()
            .any(|e| e["rule"] == "apple" && e["text"].as_str().unwrap().contains("apple")),
        "{compare}"
    );
    assert!(
        released
            .iter()
            .any(|e| e["rule"] == "bomb" && e["text"].as_str().unwrap().contains("pipe bomb")),
        "{compare}"
    );
    // A text both decide the same way is no change.
    assert!(
        !caught
            .iter()
            .chain(released)
            .any(|e| e["text"] == "hello there"),
        "{text}"
    );
}

/// A replayed text is scanned as the role it was recorded with: a candidate rule that reads
/// only `user` texts does not fire on a recorded system prompt (it did before: every replayed
/// text was read as `user`).
#[tokio::test]
async fn replay_scans_each_text_as_its_recorded_role() {
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(dir.path(), "0", true).await;
    let body = serde_json::json!({"model": "test-model", "messages": [
        {"role": "system", "content": "You like the word banana."},
        {"role": "user", "content": "hello there"}]});
    let r = post(&gw.url("/v1/chat/completions"), &body).await;
    assert_eq!(r.header("x-deliberate-action"), "allow");
    gw.stop().await;
    std::fs::write(
        dir.path().join("users.yaml"),
        "policy: users\nrules:\n  - id: banana\n    match: {keywords: [banana]}\n    roles: [user]\n    action: block\n  - id: banana-any\n    match: {keywords: [banana]}\n    action: flag\n",
    )
    .unwrap();
    let v = replay(dir.path(), &["--policy", "users.yaml"]);
    let text = v.to_string();
    // The system prompt is recorded as `system`; the `user`-only block does not read it.
    let recs = records(&dir.path().join("audit.jsonl"));
    assert_eq!(recs[0]["texts"][0]["role"], "system", "{}", recs[0]);
    assert!(!text.contains("\"rule\":\"banana\""), "{text}");
    assert_eq!(v["summary"]["false_blocks"], 0, "{text}");
}
