//! Policy selection over real HTTP on 127.0.0.1:0: sets chosen by tenant header, model glob
//! and hashed API key; audit records and metrics carry bounded tenant labels; each set reloads
//! on its own; a set that never loaded is refused, never passed; `check --config` proves no set
//! weakens the base.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use deliberate::proxy::Config;
use serde_json::{Value, json};

const APPLE: &str =
    "policy: team-a\nrules:\n  - id: apple\n    match: {keywords: [apple]}\n    action: block\n";
/// sha256("sk-team-b")
fn team_b_key_hash() -> String {
    deliberate::proxy::tenants::sha256_hex(b"sk-team-b")
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// A config in `dir`: the test policy as base, `team-a` (overlay blocking "apple") for tenant
/// `a`, `strict` (overlay blocking "pear") for models `strict-*` and for team B's key.
fn config(dir: &Path, extra: &str) -> Config {
    config_with(dir, "", extra)
}

/// [`config`] with `sets` lines added to `sets:` and `extra` lines to `select:`.
fn config_with(dir: &Path, sets: &str, extra: &str) -> Config {
    std::fs::copy(policy_path(), dir.join("base.yaml")).unwrap();
    write(dir, "team-a.yaml", APPLE);
    write(
        dir,
        "strict.yaml",
        &APPLE.replace("team-a", "strict").replace("apple", "pear"),
    );
    let src = format!(
        "policies: [base.yaml]\ntenant_header: X-Tenant\nsets:\n  team-a:\n    policies: [team-a.yaml]\n  strict:\n    policies: [strict.yaml]\n{sets}select:\n  - {{tenant: a, set: team-a}}\n  - {{model: 'strict-*', set: strict}}\n  - {{api_key_sha256: {}, set: strict}}\n{extra}",
        team_b_key_hash()
    );
    let path = dir.join("deliberate.yaml");
    write(dir, "deliberate.yaml", &src);
    Config::from_file(&path).unwrap()
}

async fn start(cfg: Config) -> Gateway {
    Gateway::start(None, move |c| {
        let reload = c.reload;
        *c = Config { reload, ..cfg };
    })
    .await
}

fn chat_model(text: &str, model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

async fn action(url: &str, body: &Value, headers: &[(&str, &str)]) -> (String, Reply) {
    let r = post_raw(url, body.to_string().into_bytes(), headers).await;
    (r.header("x-deliberate-action").to_owned(), r)
}

#[tokio::test]
async fn tenants_models_and_keys_select_their_sets_with_bounded_labels() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "");
    let audit = dir.path().join("audit.jsonl");
    cfg.audit_path = Some(audit.clone());
    let gw = start(cfg).await;
    let url = gw.url("/v1/chat/completions");
    let ct = ("content-type", "application/json");
    let apple = chat("an apple", false);
    let pear = chat("a pear", false);

    // Tenant a: the base plus its overlay.
    assert_eq!(
        action(&url, &apple, &[ct, ("x-tenant", "a")]).await.0,
        "block"
    );
    assert_eq!(
        action(&url, &pear, &[ct, ("x-tenant", "a")]).await.0,
        "allow"
    );
    // The base still applies to every tenant.
    let (a, r) = action(
        &url,
        &chat("how to build a pipe bomb", false),
        &[ct, ("x-tenant", "a")],
    )
    .await;
    assert_eq!(a, "block", "{}", r.text());
    // Another tenant (unknown to the config) and no tenant: the default set.
    assert_eq!(
        action(&url, &apple, &[ct, ("x-tenant", "zz-unknown")])
            .await
            .0,
        "allow"
    );
    assert_eq!(action(&url, &apple, &[ct]).await.0, "allow");
    // By model glob, and by hashed API key.
    assert_eq!(
        action(&url, &chat_model("a pear", "strict-1"), &[ct])
            .await
            .0,
        "block"
    );
    assert_eq!(
        action(&url, &chat_model("a pear", "loose-1"), &[ct])
            .await
            .0,
        "allow"
    );
    let auth = ("authorization", "Bearer sk-team-b");
    assert_eq!(action(&url, &pear, &[ct, auth]).await.0, "block");
    assert_eq!(
        action(&url, &pear, &[ct, ("authorization", "Bearer sk-other")])
            .await
            .0,
        "allow"
    );

    let m = get(&gw.url("/metrics")).await.text();
    assert!(
        m.contains(
            "deliberate_tenant_requests_total{tenant=\"a\",set=\"team-a\",action=\"block\"} 2"
        ),
        "{m}"
    );
    assert!(
        m.contains(
            "deliberate_tenant_requests_total{tenant=\"other\",set=\"default\",action=\"allow\"} 1"
        ),
        "{m}"
    );
    assert!(m.contains("deliberate_tenant_findings_total{tenant=\"a\",set=\"team-a\",rule=\"apple\",action=\"block\"} 1"), "{m}");
    assert!(
        !m.contains("zz-unknown"),
        "a client-chosen value became a label: {m}"
    );
    let ready = get(&gw.url("/readyz")).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.json()["sets"].as_object().unwrap().len(), 3);
    gw.stop().await;

    let text = std::fs::read_to_string(&audit).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 9);
    assert_eq!(
        (
            records[0]["tenant"].as_str(),
            records[0]["policy_set"].as_str()
        ),
        (Some("a"), Some("team-a"))
    );
    assert_eq!(records[3]["tenant"], "other");
    assert_eq!(records[4]["tenant"], "none");
    assert_eq!(records[7]["policy_set"], "strict");
    assert!(
        !text.contains("sk-team-b"),
        "an API key reached the audit log"
    );
}

#[tokio::test]
async fn a_set_reloads_alone_and_one_that_never_loaded_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A set whose file is broken from the start.
    write(
        dir.path(),
        "broken.yaml",
        "policy: broken\nrules: [{id: x, match: {regex: '('}, action: block}]\n",
    );
    let mut cfg = config_with(
        dir.path(),
        "  broken:\n    policies: [broken.yaml]\n",
        "  - {tenant: c, set: broken}\n",
    );
    cfg.reload = true;
    let gw = Gateway::start(None, move |c| *c = cfg).await;
    let url = gw.url("/v1/chat/completions");
    let ct = ("content-type", "application/json");

    // Fail closed: the broken set's requests are refused, the upstream not called.
    let (_, r) = action(&url, &chat("hello", false), &[ct, ("x-tenant", "c")]).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "policy_not_loaded");
    let ready = get(&gw.url("/readyz")).await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.json()["reasons"][0]
            .as_str()
            .unwrap()
            .contains("broken"),
        "{}",
        ready.text()
    );
    assert!(
        ready.json()["last_reload_error"]
            .as_str()
            .unwrap()
            .contains("broken.yaml")
    );

    // team-a's overlay breaks: team-a keeps its last good version, the others are untouched.
    tokio::time::sleep(Duration::from_millis(200)).await;
    write(
        dir.path(),
        "team-a.yaml",
        "policy: team-a\nrules: [{id: y, match: {regex: '['}, action: block}]\n",
    );
    let mut seen = false;
    for _ in 0..100 {
        let v = get(&gw.url("/readyz")).await.json();
        if v["sets"]["team-a"]["last_reload_error"].is_object() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "team-a's failed reload not reported");
    assert_eq!(
        action(&url, &chat("an apple", false), &[ct, ("x-tenant", "a")])
            .await
            .0,
        "block"
    );

    // The broken set is fixed: it loads, is served, and the gateway becomes ready.
    write(
        dir.path(),
        "broken.yaml",
        &APPLE.replace("team-a", "fixed").replace("apple", "plum"),
    );
    let mut ok = false;
    for _ in 0..100 {
        let (a, r) = action(&url, &chat("a plum", false), &[ct, ("x-tenant", "c")]).await;
        if r.status == 200 {
            assert_eq!(a, "block");
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the fixed set never loaded");
    // team-a's file is still broken, but it loaded once: ready.
    assert_eq!(get(&gw.url("/readyz")).await.status, 200);
    gw.stop().await;
}

fn check(config: &Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deliberate"))
        .args(["check", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn check_config_proves_overlays_never_weaken_the_base() {
    let dir = tempfile::tempdir().unwrap();
    let _ = config(dir.path(), "");
    let (ok, out) = check(&dir.path().join("deliberate.yaml"));
    assert!(ok, "{out}");
    assert!(
        out.contains("each keeps every base block and redact rule"),
        "{out}"
    );

    let base = std::fs::read_to_string(policy_path()).unwrap();
    let cases = [
        // A modified copy that turns the `bomb` block into a flag.
        (
            "weak.yaml",
            base.replacen("action: block", "action: flag", 1),
            "weakens the base rule",
            "weak.yaml:",
        ),
        // A copy without the `email` redaction.
        (
            "dropped.yaml",
            base.replace("  - id: email\n", "  - id: email-off\n"),
            "drops the base redact rule",
            "deliberate.yaml:",
        ),
        // The base included whole, plus an allow rule that exempts `bomb`.
        (
            "allow.yaml",
            "policy: sneaky\ninclude: [base.yaml]\nrules:\n  - id: let-it-be\n    match: {keywords: [pipe]}\n    action: allow\n    overrides: [bomb]\n".to_owned(),
            "allow rule exempts base rule `bomb`",
            "allow.yaml:4:",
        ),
        // A narrower match.
        (
            "narrow.yaml",
            base.replacen("keywords: [\"pipe bomb\", \"爆弾\"]", "keywords: [\"pipe bomb\"]", 1),
            "changes the match",
            "narrow.yaml:",
        ),
    ];
    for (file, text, want, at) in cases {
        write(dir.path(), file, &text);
        let src = std::fs::read_to_string(dir.path().join("deliberate.yaml")).unwrap();
        let cfg = dir.path().join(format!("{file}.config.yaml"));
        write(
            dir.path(),
            cfg.file_name().unwrap().to_str().unwrap(),
            &src.replace(
                "select:",
                &format!("  own:\n    base: false\n    policies: [{file}]\nselect:"),
            ),
        );
        let (ok, out) = check(&cfg);
        assert!(!ok, "{file}: {out}");
        assert!(out.contains(want), "{file}: {out}");
        let line = out.lines().find(|l| l.contains(want)).unwrap();
        let at = if at == "deliberate.yaml:" {
            format!("{file}.config.yaml:")
        } else {
            at.to_owned()
        };
        assert!(line.contains(&at), "{file}: no location {at} in: {line}");
        // file:line:col with real numbers.
        let loc: Vec<&str> = line.split(':').collect();
        assert!(
            loc[1].parse::<u32>().unwrap() > 0 && loc[2].parse::<u32>().unwrap() > 0,
            "{line}"
        );
    }
}

#[test]
fn config_errors_name_the_select_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    for (src, want, line) in [
        (
            "policies: [p.yaml]\nselect:\n  - {model: x, set: nope}\n",
            "unknown set `nope`",
            3,
        ),
        (
            "policies: [p.yaml]\nselect:\n  - {tenant: a, set: default}\n",
            "needs `tenant_header:`",
            3,
        ),
        (
            "policies: [p.yaml]\nsets: {s: {policies: [q.yaml]}}\nselect:\n  - {set: s}\n",
            "needs a condition",
            4,
        ),
        (
            "policies: [p.yaml]\nselect:\n  - {api_key_sha256: sk-live-123, set: default}\n",
            "64 lower-case hex",
            3,
        ),
        (
            "policies: [p.yaml]\nselect:\n  - {api: embeddings, set: default}\n",
            "unknown api",
            3,
        ),
    ] {
        std::fs::write(&path, src).unwrap();
        let e = Config::from_file(&path).unwrap_err();
        assert!(e.message.contains(want), "{src}: {e}");
        assert_eq!(e.line, line, "{e}");
    }
}
