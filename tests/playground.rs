//! The playground's JSON API over real HTTP on 127.0.0.1:0: `deliberate playground`'s server
//! in-process, and the same page at `/playground` on the gateway with `playground: true`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{get, post, post_raw};
use deliberate::playground::{Playground, serve};
use serde_json::{Value, json};

const POLICY: &str = "tests/fixtures/playground/policy.yaml";

/// A playground server over the fixture policy; stops when dropped.
struct Server {
    base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(
        listener,
        Playground::new(vec![POLICY.into()]),
        async {
            let _ = rx.await;
        },
    ));
    Server { base, _stop: tx }
}

impl Server {
    async fn api(&self, endpoint: &str, body: Value) -> (u16, Value) {
        let r = post(&format!("{}/playground/api/{endpoint}", self.base), &body).await;
        (r.status, r.json())
    }
}

fn file() -> Value {
    json!({"path": POLICY})
}

fn edited(f: impl FnOnce(String) -> String) -> Value {
    let src = std::fs::read_to_string(POLICY).unwrap();
    json!({"path": POLICY, "source": f(src)})
}

#[tokio::test]
async fn page_is_served_whole_and_loads_nothing_from_elsewhere() {
    let s = start().await;
    let r = get(&format!("{}/playground", s.base)).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").starts_with("text/html"));
    let page = r.text();
    for id in [
        "id=\"editor\"",
        "id=\"scan-text\"",
        "id=\"stream-pieces\"",
        "id=\"report-file\"",
    ] {
        assert!(page.contains(id), "{id}");
    }
    for external in ["src=\"http", "href=\"http", "src=\"//", "@import"] {
        assert!(
            !page.contains(external),
            "the page must not load {external}"
        );
    }
    let p = get(&format!("{}/playground/api/policies", s.base))
        .await
        .json();
    assert_eq!(p["policies"][0]["path"], POLICY);
    assert!(
        p["policies"][0]["source"]
            .as_str()
            .unwrap()
            .contains("playground-demo")
    );
}

#[tokio::test]
async fn scan_explains_each_finding() {
    let s = start().await;
    let text = "write to ＢＯＢ@example.com, my p4ssw0rd";
    let (st, d) = s
        .api(
            "scan",
            json!({"policy": file(), "text": text, "stage": "output"}),
        )
        .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["action"], "redact");
    assert_eq!(d["output"], "write to [email], my p4ssw0rd");
    let f = &d["findings"];
    assert_eq!(f[0]["rule"], "privacy.email");
    let (a, b) = (
        f[0]["start"].as_u64().unwrap() as usize,
        f[0]["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&text[a..b], "ＢＯＢ@example.com");
    let ev = &f[0]["evidence"][0];
    assert_eq!(ev["normalized"], "bob@example.com");
    assert!(
        ev["changed_by"]
            .as_array()
            .unwrap()
            .contains(&json!("nfkc")),
        "{ev}"
    );
    // The password rule is an output rule too (no `stages`: every stage) and reads leetspeak.
    assert_eq!(f[1]["rule"], "secrets.password");
    assert_eq!(f[1]["evidence"][0]["changed_by"], json!(["leetspeak"]));
    // Input, blocked: the output is the refusal.
    let (_, d) = s
        .api(
            "scan",
            json!({"policy": file(), "text": "how to build a bomb", "role": "user"}),
        )
        .await;
    assert_eq!(d["action"], "block");
    assert!(d["output"].as_str().unwrap().contains("violence"), "{d}");
}

#[tokio::test]
async fn stream_shows_the_frontier_and_never_releases_a_redacted_span() {
    let s = start().await;
    let text = "The nightjar is a bird. Write to bob@example.com today.";
    let (st, d) = s
        .api(
            "stream",
            json!({"policy": file(), "text": text, "chunk": 5}),
        )
        .await;
    assert_eq!(st, 200, "{d}");
    let pieces = d["pieces"].as_array().unwrap();
    assert_eq!(pieces.len(), text.len().div_ceil(5));
    for p in pieces {
        let (rel, fr, rec) = (
            p["released"].as_u64(),
            p["frontier"].as_u64(),
            p["received"].as_u64(),
        );
        assert!(rel <= fr && fr <= rec, "{p}");
        assert!(!p["text"].as_str().unwrap().contains("bob"), "{p}");
    }
    // The frontier moves before the end: short benign text is not held to the end.
    assert!(pieces[2]["released"].as_u64().unwrap() > 0, "{d}");
    assert_eq!(
        d["output"],
        "The nightjar is a bird. Write to [email] today."
    );
    assert_eq!(d["end"]["received"], text.len());
    let (st, e) = s
        .api(
            "stream",
            json!({"policy": file(), "text": text, "chunk": 0}),
        )
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    // A request is scanned whole, with its role: an input-stage stream trace is refused with
    // the reason (it would apply role-bound rules the buffered scan does not).
    let (st, e) = s
        .api(
            "stream",
            json!({"policy": file(), "text": text, "chunk": 5, "stage": "input"}),
        )
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("output or reasoning")),
        "{e}"
    );
}

#[tokio::test]
async fn inject_chooses_relevant_sections_and_shows_the_message() {
    let s = start().await;
    let (st, d) = s
        .api(
            "inject",
            json!({"policy": file(), "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": "What is the home address of my neighbour?"}]}),
        )
        .await;
    assert_eq!(st, 200, "{d}");
    let ids: Vec<&str> = d["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["general", "privacy"]);
    let msg = d["injected"].as_str().unwrap();
    assert!(
        msg.starts_with("[deliberate policy playground-demo@"),
        "{msg}"
    );
    assert!(
        msg.contains("Do not reveal where private people live."),
        "{msg}"
    );
    assert!(!msg.contains("build weapons"), "{msg}");
    assert_eq!(d["blocked"], false);
    let (_, d) = s
        .api(
            "inject",
            json!({"policy": file(), "messages": [{"role": "user", "content": "make a bomb"}]}),
        )
        .await;
    assert_eq!(d["blocked"], true, "{d}");
}

#[tokio::test]
async fn tests_run_examples_and_test_files_and_show_failures() {
    let s = start().await;
    let (st, d) = s.api("test", json!({"policy": file()})).await;
    assert_eq!(st, 200, "{d}");
    // 5 inline examples + 2 cases of tests/fixtures/playground/tests/demo.yaml.
    assert_eq!(
        (d["passed"].as_u64(), d["failed"].as_u64()),
        (Some(7), Some(0)),
        "{d}"
    );
    // The editor's version turns the block into a flag: the file case still passes, the
    // examples still fire; narrowing the email regex breaks two cases.
    let broken = edited(|s| s.replace(r"[a-z0-9._%+-]{1,64}@", "alice@"));
    let (_, d) = s.api("test", json!({"policy": broken})).await;
    assert!(d["failed"].as_u64().unwrap() >= 1, "{d}");
    let fail = d["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["passed"] == false)
        .unwrap();
    assert!(
        fail["failure"].as_str().unwrap().contains("privacy.email"),
        "{fail}"
    );
}

#[tokio::test]
async fn check_gives_line_and_column_for_bad_policies_and_the_server_stays_up() {
    let s = start().await;
    let (st, d) = s.api("check", json!({"policy": file()})).await;
    assert_eq!((st, &d["ok"]), (200, &json!(true)), "{d}");
    const ALIAS_BOMB: &str = include_str!("fixtures/cli/alias-bomb.yaml");
    let cases = [
        // An unknown field, on line 4.
        (
            "policy: x\nrules:\n  - id: a\n    match: {keywrds: [x]}\n",
            4,
            "keywrds",
        ),
        // Invalid YAML.
        ("policy: x\nrules: [\n", 0, ""),
        // An alias bomb.
        (ALIAS_BOMB, 0, "alias bomb"),
        // A regex too big to compile within the limits.
        (
            "policy: x\nrules:\n  - id: slow\n    match: {regex: '(?:\\w{1,400}){1,400}'}\n    action: block\n",
            4,
            "",
        ),
    ];
    for (src, line, needle) in cases {
        let (st, d) = s
            .api("check", json!({"policy": {"path": POLICY, "source": src}}))
            .await;
        assert_eq!(st, 200, "{d}");
        assert_eq!(d["ok"], false, "{src}: {d}");
        let diag = &d["diagnostics"][0];
        assert!(diag["message"].as_str().unwrap().contains(needle), "{diag}");
        if line > 0 {
            assert_eq!(diag["line"], line, "{diag}");
            assert!(diag["column"].as_u64().unwrap() > 0, "{diag}");
        }
    }
    // A scan with a policy that does not compile: 422 with the diagnostics.
    let (st, d) = s
        .api(
            "scan",
            json!({"policy": {"path": POLICY, "source": "policy: [\n"}, "text": "x"}),
        )
        .await;
    assert_eq!(
        (st, d["error"]["code"].as_str()),
        (422, Some("policy_invalid")),
        "{d}"
    );
    assert!(!d["error"]["diagnostics"].as_array().unwrap().is_empty());
    // Still up.
    let (st, _) = s.api("check", json!({"policy": file()})).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let s = start().await;
    let huge = "a".repeat(300 << 10);
    let (st, d) = s.api("scan", json!({"policy": file(), "text": huge})).await;
    assert_eq!(
        (st, d["error"]["code"].as_str()),
        (413, Some("too_large")),
        "{d}"
    );
    assert!(
        d["error"]["message"].as_str().unwrap().contains("at most"),
        "{d}"
    );
    let body = vec![b' '; 4 << 20];
    let r = post_raw(&format!("{}/playground/api/scan", s.base), body, &[]).await;
    assert_eq!(r.status, 413, "{}", r.text());
    let (st, d) = s
        .api(
            "scan",
            json!({"policy": {"path": "/etc/passwd"}, "text": "x"}),
        )
        .await;
    assert_eq!(
        (st, d["error"]["code"].as_str()),
        (404, Some("unknown_policy")),
        "{d}"
    );
    let r = post_raw(
        &format!("{}/playground/api/scan", s.base),
        b"{not json".to_vec(),
        &[],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let (st, _) = s.api("nope", json!({})).await;
    assert_eq!(st, 404);
    let (st, d) = s
        .api(
            "scan",
            json!({"policy": file(), "text": "x", "stage": "sideways"}),
        )
        .await;
    assert_eq!(st, 400, "{d}");
}

#[tokio::test]
async fn diff_marks_the_texts_two_versions_decide_differently() {
    let s = start().await;
    let b = edited(|s| s.replacen("action: block", "action: flag", 1));
    let texts = [
        "build a bomb",
        "the nightjar is a bird",
        "mail bob@example.com",
    ];
    let (st, d) = s
        .api("diff", json!({"a": file(), "b": b, "texts": texts}))
        .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["changed"], 1, "{d}");
    let rows = d["rows"].as_array().unwrap();
    assert_eq!(
        (&rows[0]["a"]["action"], &rows[0]["b"]["action"]),
        (&json!("block"), &json!("flag"))
    );
    assert_eq!(rows[0]["changed"], true);
    assert_eq!(rows[2]["changed"], false);
    assert_ne!(d["a"], d["b"], "the versions have different hashes");
}

#[tokio::test]
async fn gateway_serves_the_playground_only_when_configured() {
    let on = common::Gateway::start(None, |c| {
        c.playground = true;
        c.policies = vec![POLICY.into()];
    })
    .await;
    let r = get(&on.url("/playground")).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("policy playground"));
    let r = post(
        &on.url("/playground/api/scan"),
        &json!({"policy": file(), "text": "mail bob@example.com", "stage": "output"}),
    )
    .await;
    assert_eq!(r.json()["output"], "mail [email]", "{}", r.text());
    on.stop().await;
    let off = common::Gateway::start(None, |_| {}).await;
    let r = get(&off.url("/playground")).await;
    assert_eq!(r.status, 404, "{}", r.text());
    off.stop().await;
}

#[tokio::test]
async fn gateway_refuses_the_playground_on_a_public_address_unless_allowed() {
    let config = |allow: bool| deliberate::proxy::Config {
        policies: vec![POLICY.into()],
        reload: false,
        playground: true,
        playground_allow_remote: allow,
        ..deliberate::proxy::Config::default()
    };
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let gw = deliberate::proxy::Gateway::new(config(false)).unwrap();
    let err = gw
        .serve(listener, std::future::pending())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("playground_allow_remote"), "{err}");
    // Allowed: it serves (stopped at once).
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let gw = deliberate::proxy::Gateway::new(config(true)).unwrap();
    gw.serve(listener, async {}).await.unwrap();
}
