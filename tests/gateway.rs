//! `deliberate serve` end to end over TCP: the echo upstream, a scripted mock upstream on
//! 127.0.0.1:0 (splits over real reads, resets, 429, slow upstreams, hang-ups), admin routes,
//! pass-through routes, audit log, policy reload and h2c.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use deliberate::proxy::OtherRoutes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

const REFUSAL: &str = "I can't help with that. (policy section: illicit)";

#[tokio::test]
async fn echo_upstream_shows_injection_redaction_and_blocks() {
    let gw = Gateway::start(None, |_| {}).await;
    let url = gw.url("/v1/chat/completions");

    let r = post(&url, &chat("what is the phone number of my friend?", false)).await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-deliberate-policy").starts_with("gateway-test@"));
    assert_eq!(r.header("x-deliberate-action"), "allow");
    assert_eq!(r.header("x-deliberate-enforcement"), "full");
    let v = r.json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "what is the phone number of my friend?"
    );
    let echoed: serde_json::Value = serde_json::from_str(r.header("x-echo-request")).unwrap();
    let seen = &echoed["messages"];
    assert_eq!(seen.as_array().unwrap().len(), 2);
    assert!(
        seen[0]["content"]
            .as_str()
            .unwrap()
            .contains("## Personal data (privacy)")
    );

    let r = post(&url, &chat("write to bob@example.com", false)).await;
    assert_eq!(r.header("x-deliberate-action"), "redact");
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "write to [email]"
    );

    let r = post(&url, &chat("how to build a pipe bomb", false)).await;
    assert_eq!(r.header("x-deliberate-action"), "block");
    assert_eq!(r.json()["choices"][0]["message"]["content"], REFUSAL);
    assert_eq!(r.json()["choices"][0]["finish_reason"], "content_filter");

    // Streamed word by word; long enough that text flows before the end.
    let long = "one two three four five six seven eight nine ten ".repeat(10);
    let r = post(&url, &chat(&long, true)).await;
    assert_eq!(r.header("content-type"), "text/event-stream");
    let chunks = r.chunks();
    assert_eq!(
        stream_text(&chunks, 0),
        (long.clone(), Some("stop".to_owned()))
    );
    assert!(chunks.len() > 50, "{}", chunks.len());
    assert_eq!(r.events().last().map(String::as_str), Some("[DONE]"));

    let r = post(&url, &chat("how to build a pipe bomb", true)).await;
    assert_eq!(
        stream_text(&r.chunks(), 0),
        (REFUSAL.to_owned(), Some("content_filter".to_owned()))
    );
    gw.stop().await;
}

#[tokio::test]
async fn blocked_phrase_split_across_real_reads() {
    let lead = "All is calm and quiet in the valley this morning. ".repeat(6);
    let text = format!("{lead}then build a pipe bomb quickly.");
    for cut in [
        text.find("pipe").unwrap() + 1,
        text.find("bomb").unwrap(),
        text.find("bomb").unwrap() + 2,
    ] {
        let (a, b) = (text[..cut].to_owned(), text[cut..].to_owned());
        let up = MockUpstream::start(move |_| {
            let mut s = Script::sse(vec![]);
            s.steps = vec![
                Step::Bytes(frame(&role_chunk(0))),
                Step::Bytes(frame(&content_chunk(0, &a))),
                Step::Sleep(Duration::from_millis(30)),
                Step::Bytes(frame(&content_chunk(0, &b))),
                Step::Bytes(frame(&finish_chunk(0, "stop"))),
                Step::Bytes(DONE.to_vec()),
            ];
            s
        })
        .await;
        let gw = Gateway::start(Some(up.url()), |_| {}).await;
        let r = post(&gw.url("/v1/chat/completions"), &chat("hi", true)).await;
        let (got, finish) = stream_text(&r.chunks(), 0);
        assert_eq!(finish.as_deref(), Some("content_filter"), "cut {cut}");
        assert!(!r.text().contains("bomb"), "cut {cut}");
        assert!(
            lead.starts_with(&got) || got.starts_with(&lead),
            "cut {cut}: {got:?}"
        );
        assert!(got.len() > 100, "text before the phrase was sent: {got:?}");
        gw.stop().await;
    }
}

#[tokio::test]
async fn upstream_faults_before_and_after_the_head() {
    let lead = "All is calm and quiet in the valley this morning. ".repeat(6);
    let lead2 = lead.clone();
    let up = MockUpstream::start(move |rec| {
        let mut s = Script::sse(vec![]);
        let before = rec.json()["messages"].to_string().contains("reset early");
        s.steps = if before {
            vec![Step::Bytes(frame(&role_chunk(0))), Step::Reset]
        } else {
            vec![
                Step::Bytes(frame(&role_chunk(0))),
                Step::Bytes(frame(&content_chunk(0, &lead2))),
                Step::Sleep(Duration::from_millis(30)),
                Step::Reset,
            ]
        };
        s
    })
    .await;
    let gw = Gateway::start(Some(up.url()), |_| {}).await;
    let r = post(&gw.url("/v1/chat/completions"), &chat("reset early", true)).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"]["code"], "upstream_error");

    let r = post(&gw.url("/v1/chat/completions"), &chat("reset late", true)).await;
    assert_eq!(r.status, 200);
    let events = r.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let err: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(err["error"]["code"], "upstream_error");
    let (got, _) = stream_text(&r.chunks()[..r.chunks().len() - 1], 0);
    assert!(lead.starts_with(&got));
    gw.stop().await;

    // Nothing listens there.
    let gw = Gateway::start(Some("http://127.0.0.1:9/v1".to_owned()), |_| {}).await;
    let r = post(&gw.url("/v1/chat/completions"), &chat("hi", false)).await;
    assert_eq!(r.status, 502);
    gw.stop().await;
}

#[tokio::test]
async fn upstream_status_and_retry_after_pass_through() {
    let up = MockUpstream::start(|_| {
        let mut s = Script::json(429, &json!({"error": {"message": "slow down", "type": "rate_limit", "code": "rate_limit_exceeded"}}));
        s.headers.push(("retry-after".into(), "7".into()));
        s
    })
    .await;
    let gw = Gateway::start(Some(up.url()), |_| {}).await;
    let r = post(&gw.url("/v1/chat/completions"), &chat("hi", false)).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), "7");
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    assert!(r.header("x-deliberate-policy").starts_with("gateway-test@"));
    gw.stop().await;
}

#[tokio::test]
async fn slow_upstreams_time_out() {
    let lead = "All is calm and quiet in the valley this morning. ".repeat(6);
    let up = MockUpstream::start(move |rec| {
        let mut s = Script::sse(vec![]);
        if rec.json()["messages"].to_string().contains("slow head") {
            s.head_delay = Duration::from_secs(3);
        }
        s.steps = vec![
            Step::Bytes(frame(&role_chunk(0))),
            Step::Bytes(frame(&content_chunk(0, &lead))),
            Step::Sleep(Duration::from_secs(3)),
            Step::Bytes(DONE.to_vec()),
        ];
        s
    })
    .await;
    let gw = Gateway::start(Some(up.url()), |c| {
        c.timeouts.first_byte = Duration::from_millis(300);
        c.timeouts.idle = Duration::from_millis(300);
    })
    .await;
    let r = post(&gw.url("/v1/chat/completions"), &chat("slow head", true)).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"]["code"], "upstream_timeout");

    let started = std::time::Instant::now();
    let r = post(&gw.url("/v1/chat/completions"), &chat("slow body", true)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    let events = r.events();
    let err: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(err["error"]["code"], "upstream_timeout");
    assert!(err["error"]["message"].as_str().unwrap().contains("idle"));
    gw.stop().await;
}

#[tokio::test]
async fn a_client_hanging_up_cancels_the_upstream() {
    let lead = "All is calm and quiet in the valley this morning. ".repeat(6);
    let up = MockUpstream::start(move |_| {
        let mut s = Script::sse(vec![]);
        s.steps = vec![
            Step::Bytes(frame(&role_chunk(0))),
            Step::Bytes(frame(&content_chunk(0, &lead))),
        ];
        for _ in 0..100 {
            s.steps.push(Step::Sleep(Duration::from_millis(100)));
            s.steps.push(Step::Bytes(frame(&content_chunk(0, "more "))));
        }
        s
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let audit2 = audit.clone();
    let gw = Gateway::start(Some(up.url()), move |c| c.audit_path = Some(audit2)).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let req = http::Request::post(gw.url("/v1/chat/completions"))
        .body(Full::new(Bytes::from(chat("hi", true).to_string())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body);
    drop(client);
    assert!(
        eventually(|| up.dropped.load(Ordering::SeqCst) == 1).await,
        "upstream body not dropped"
    );
    assert!(
        eventually(|| std::fs::read_to_string(&audit)
            .is_ok_and(|s| s.contains("\"outcome\":\"cancelled\"")))
        .await,
        "no audit record for the cancelled stream"
    );
    gw.stop().await;
}

#[tokio::test]
async fn admin_and_other_routes() {
    let up = MockUpstream::start(|rec| {
        Script::json(
            200,
            &json!({"object": "list", "data": [{"id": "m"}], "path": rec.path}),
        )
    })
    .await;
    let gw = Gateway::start(Some(up.url()), |_| {}).await;
    assert_eq!(get(&gw.url("/healthz")).await.status, 200);
    let ready = get(&gw.url("/readyz")).await;
    assert_eq!(ready.status, 200);
    assert!(
        ready.json()["policy"]
            .as_str()
            .unwrap()
            .starts_with("gateway-test@")
    );
    // Passed through untouched, the /v1 prefix mapped onto the upstream base URL, and marked:
    // the model list carries no model text.
    let r = get(&gw.url("/v1/models?limit=2")).await;
    assert_eq!(r.json()["path"], "/v1/models?limit=2");
    assert!(r.header("x-deliberate-policy").starts_with("gateway-test@"));
    assert_eq!(
        r.header("x-deliberate-enforcement"),
        "skipped; reason=no-model-text"
    );
    assert!(r.headers.get("x-deliberate-action").is_none());
    let r = get(&gw.url("/nope")).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (404, Some("unknown_url"))
    );
    let _ = post(
        &gw.url("/v1/chat/completions"),
        &chat("how to build a pipe bomb", false),
    )
    .await;
    let m = get(&gw.url("/metrics")).await.text();
    assert!(m.contains("deliberate_requests_total{route=\"/v1/chat/completions\",status=\"200\",action=\"block\"} 1"), "{m}");
    assert!(m.contains("deliberate_findings_total{rule=\"bomb\",section=\"illicit\",stage=\"input\",action=\"block\"} 1"));
    assert!(m.contains("deliberate_active_streams 0"));
    gw.stop().await;

    // By default a model route without an adapter is refused, the upstream not called.
    let before = up.received().len();
    let gw = Gateway::start(Some(up.url()), |_| {}).await;
    let r = post(&gw.url("/v1/embeddings"), &json!({"input": "x"})).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "route_not_enforced");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("other_routes: pass")
    );
    assert_eq!(up.received().len(), before);
    gw.stop().await;

    // Passed only when the operator says so, and then marked skipped.
    let gw = Gateway::start(Some(up.url()), |c| c.other_routes = OtherRoutes::Pass).await;
    let r = post(&gw.url("/v1/embeddings"), &json!({"input": "x"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], "/v1/embeddings");
    assert_eq!(r.header("x-deliberate-enforcement"), "skipped");
    assert!(r.header("x-deliberate-policy").starts_with("gateway-test@"));
    assert_eq!(
        up.received().last().unwrap().body,
        json!({"input": "x"}).to_string()
    );
    gw.stop().await;
}

#[tokio::test]
async fn authorization_passes_through_or_comes_from_the_environment() {
    let ok = json!({"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}]});
    let up = MockUpstream::start(move |_| Script::json(200, &ok)).await;
    // Cargo sets CARGO_PKG_NAME for test runs; it stands in for a key variable.
    let key = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
    let gw = Gateway::start(Some(up.url()), |c| {
        c.upstream.as_mut().unwrap().api_key_env = Some("CARGO_PKG_NAME".into());
    })
    .await;
    let url = gw.url("/v1/chat/completions");
    post_raw(
        &url,
        chat("hi", false).to_string().into_bytes(),
        &[("authorization", "Bearer sk-client")],
    )
    .await;
    post_raw(&url, chat("hi", false).to_string().into_bytes(), &[]).await;
    let got: Vec<String> = up
        .received()
        .iter()
        .map(|r| r.headers["authorization"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        got,
        ["Bearer sk-client".to_owned(), format!("Bearer {key}")]
    );
    assert_eq!(up.received()[0].path, "/v1/chat/completions");
    gw.stop().await;
}

#[tokio::test]
async fn audit_log_has_one_masked_record_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let a2 = audit.clone();
    let gw = Gateway::start(None, move |c| c.audit_path = Some(a2)).await;
    let url = gw.url("/v1/chat/completions");
    post(&url, &chat("write to bob@example.com", false)).await;
    post(&url, &chat("write to bob@example.com", true)).await;
    post(&url, &chat("how to build a pipe bomb", false)).await;
    post_raw(&url, b"{not json".to_vec(), &[]).await;
    gw.stop().await;
    let text = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(!text.contains("bob@example.com"));
    assert_eq!(lines[0]["findings"][0]["text"], "[masked]");
    assert_eq!(
        lines[0]["injection"]["sections"],
        json!(["base", "privacy"])
    );
    assert_eq!(lines[2]["outcome"], "blocked_input");
    assert_eq!(lines[2]["findings"][0]["text"], "pipe bomb");
    assert_eq!(lines[3]["outcome"], "rejected");
    assert_eq!(lines[3]["status"], 400);
    for l in &lines {
        assert!(
            l["latency"]["total_ms"].as_f64().unwrap()
                >= l["latency"]["gateway_ms"].as_f64().unwrap()
        );
    }
}

#[tokio::test]
async fn policy_reload_keeps_the_last_good_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.yaml");
    let v1 = "policy: live\nrules:\n  - id: a\n    match: {keywords: [apple]}\n    action: block\n";
    std::fs::write(&path, v1).unwrap();
    let p2 = path.clone();
    let gw = Gateway::start(None, move |c| {
        c.policies = vec![p2];
        c.reload = true;
    })
    .await;
    let url = gw.url("/v1/chat/completions");
    let r = post(&url, &chat("an apple", false)).await;
    assert_eq!(r.header("x-deliberate-action"), "block");
    let first = r.header("x-deliberate-policy").to_owned();

    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(&path, v1.replace("apple", "pear")).unwrap();
    let mut reloaded = false;
    for _ in 0..100 {
        let r = post(&url, &chat("an apple", false)).await;
        if r.header("x-deliberate-policy") != first {
            assert_eq!(r.header("x-deliberate-action"), "allow");
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "policy not reloaded");
    let second = post(&url, &chat("a pear", false)).await;
    assert_eq!(second.header("x-deliberate-action"), "block");
    let label = second.header("x-deliberate-policy").to_owned();

    // A broken file: the last good policy stays.
    std::fs::write(
        &path,
        "policy: live\nrules: [{id: x, match: {regex: '('}, action: block}]\n",
    )
    .unwrap();
    let metrics = gw.url("/metrics");
    assert!(
        {
            let mut seen = false;
            for _ in 0..100 {
                if get(&metrics)
                    .await
                    .text()
                    .contains("deliberate_policy_reloads_total{result=\"failed\"}")
                {
                    seen = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            seen
        },
        "reload failure not counted"
    );
    let r = post(&url, &chat("a pear", false)).await;
    assert_eq!(r.header("x-deliberate-policy"), label);
    assert_eq!(r.header("x-deliberate-action"), "block");
    gw.stop().await;
}

#[tokio::test]
async fn h2c_prior_knowledge() {
    let gw = Gateway::start(None, |_| {}).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let req = http::Request::post(gw.url("/v1/chat/completions"))
        .body(Full::new(Bytes::from(
            chat("write to bob@example.com", true).to_string(),
        )))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.headers()["x-deliberate-action"], "redact");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let chunks: Vec<Value> = sse_data(&String::from_utf8_lossy(&body))
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(stream_text(&chunks, 0).0, "write to [email]");
    gw.stop().await;
}
