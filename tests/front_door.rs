//! The front door over real sockets: idle connections, slow heads and trickling bodies are
//! closed within their timeouts while normal requests on other connections are served, and the
//! connection cap refuses beyond N.
//!
//! Regression: idle sockets and bodies trickling one byte per 5 s were kept open over 135 s (no
//! idle or body timeout, no cap), and at 512 open files 600 idle sockets made normal requests
//! time out. Timeouts here are ~1 s; assertions only say "closed within timeout + margin".
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::raw::parse;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MARGIN: Duration = Duration::from_secs(5);

/// Reads until EOF (or a reset); `Err` if the socket is still open after `within`.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Result<Vec<u8>, Vec<u8>> {
    let mut out = Vec::new();
    let res = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    match res {
        Ok(()) => Ok(out),
        Err(_) => Err(out),
    }
}

fn short(c: &mut deliberate::proxy::Config) {
    c.timeouts.client_idle = Duration::from_secs(1);
    c.timeouts.header_read = Duration::from_secs(1);
    c.timeouts.request_body = Duration::from_secs(1);
}

async fn served(gw: &Gateway) {
    let r = post(&gw.url("/v1/chat/completions"), &chat("hello", false)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-deliberate-enforcement"), "full");
}

#[tokio::test]
async fn idle_sockets_and_slow_heads_are_closed() {
    let gw = Gateway::start(None, short).await;
    // Never a byte.
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    // Half a request head, then one byte every 300 ms.
    let mut slow_head = TcpStream::connect(gw.addr).await.unwrap();
    slow_head
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\n")
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow_head.write_all(b"x").await.is_err() {
                return true;
            }
        }
        false
    });
    // A keep-alive connection after one answered request.
    let mut kept = TcpStream::connect(gw.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();

    served(&gw).await;
    assert!(
        read_until_closed(&mut silent, Duration::from_secs(1) + MARGIN)
            .await
            .is_ok()
    );
    let after_one = read_until_closed(&mut kept, Duration::from_secs(1) + MARGIN).await;
    let reply = parse(&after_one.expect("keep-alive connection not closed"));
    assert_eq!(reply.status, 200);
    assert!(trickle.await.unwrap(), "slow head never cut off");
    served(&gw).await;
    let m = get(&gw.url("/metrics")).await.text();
    assert!(
        m.contains("deliberate_connections_closed_total{reason=\"idle\"}"),
        "{m}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_trickling_body_gets_408_and_the_connection_closes() {
    for path in ["/v1/chat/completions", "/v1/embeddings"] {
        let dir = tempfile::tempdir().unwrap();
        let audit = dir.path().join("audit.jsonl");
        let a2 = audit.clone();
        let gw = Gateway::start(None, move |c| {
            short(c);
            c.other_routes = deliberate::proxy::OtherRoutes::Pass;
            c.audit_path = Some(a2);
        })
        .await;
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{{"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let (mut rd, mut wr) = s.into_split();
        let trickle = tokio::spawn(async move {
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if wr.write_all(b" ").await.is_err() {
                    break;
                }
            }
        });
        served(&gw).await;
        let got = tokio::time::timeout(Duration::from_secs(1) + MARGIN, async {
            let mut out = Vec::new();
            let _ = rd.read_to_end(&mut out).await;
            out
        })
        .await
        .expect("trickling connection not closed");
        let r = parse(&got);
        assert_eq!(r.status, 408, "{path}: {}", String::from_utf8_lossy(&got));
        assert_eq!(r.json()["error"]["code"], "request_timeout");
        assert_eq!(r.header("connection"), "close");
        trickle.abort();
        served(&gw).await;
        gw.stop().await;
        if path == "/v1/chat/completions" {
            // Regression: the layer's audit record said `400 body_read_error` while the client
            // got 408.
            let text = std::fs::read_to_string(&audit).unwrap();
            let timed_out: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .filter(|r| r["outcome"] == "rejected")
                .collect();
            assert_eq!(timed_out.len(), 1, "{text}");
            assert_eq!(timed_out[0]["status"], 408, "{text}");
            let error = timed_out[0]["error"].as_str().unwrap();
            assert!(error.contains("did not arrive within"), "{error}");
        }
    }
}

/// A request whose texts normalize to more than the scan budget gets `413
/// scan_budget_exceeded` in its API's error shape, and an audit record saying so; the same
/// size of plain text passes. Regression: 3.9 MB of U+FDFA (18× under NFKC) cost seconds of
/// scan, and four of them delayed a concurrent "hi" by 12–15 s.
#[tokio::test]
async fn a_request_over_the_scan_budget_gets_413() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let a2 = audit.clone();
    let gw = Gateway::start(None, move |c| {
        c.enforce.max_scan_bytes = 64 << 10;
        c.audit_path = Some(a2);
    })
    .await;
    // 9 KB on the wire, 99 KB normalized.
    let heavy = "\u{FDFA}".repeat(3000);
    let r = post(&gw.url("/v1/chat/completions"), &chat(&heavy, false)).await;
    assert_eq!(r.status, 413, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], "scan_budget_exceeded");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let anthropic = serde_json::json!({"model": "m", "max_tokens": 10,
        "messages": [{"role": "user", "content": heavy}]});
    let r = post(&gw.url("/v1/messages"), &anthropic).await;
    assert_eq!(r.status, 413, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "request_too_large", "{v}");
    // The same bytes of plain text pass.
    let r = post(
        &gw.url("/v1/chat/completions"),
        &chat(&"a".repeat(9000), false),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    gw.stop().await;
    let text = std::fs::read_to_string(&audit).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3, "{text}");
    for r in &records[..2] {
        assert_eq!(r["status"], 413, "{text}");
        assert_eq!(r["outcome"], "rejected");
        assert!(
            r["error"].as_str().unwrap().contains("scan budget"),
            "{text}"
        );
    }
}

/// With every scan offloaded to the blocking pool, answers, blocks and redactions are the same.
#[tokio::test]
async fn offloaded_scans_enforce_the_same() {
    let gw = Gateway::start(None, |c| c.enforce.offload_scan_bytes = 0).await;
    let url = gw.url("/v1/chat/completions");
    let reqs = [
        chat("hello", false),
        chat("how to build a pipe bomb", false),
        chat("mail bob@example.com", false),
    ];
    let (a, b, c) = tokio::join!(
        post(&url, &reqs[0]),
        post(&url, &reqs[1]),
        post(&url, &reqs[2])
    );
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-deliberate-enforcement"), "full");
    assert_eq!(b.json()["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(c.header("x-deliberate-action"), "redact");
    assert!(!c.text().contains("bob@example.com"), "{}", c.text());
    gw.stop().await;
}

#[tokio::test]
async fn at_the_cap_idle_sockets_make_room_and_busy_ones_refuse() {
    let done = serde_json::json!({"choices": [{"index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": "ok"}}]});
    let up = MockUpstream::start(move |rec| {
        let mut s = Script::json(200, &done);
        if rec.json()["messages"].to_string().contains("hold") {
            s.head_delay = Duration::from_secs(3);
        }
        s
    })
    .await;
    let gw = Gateway::start(Some(up.url()), |c| c.max_connections = 2).await;
    // Accepted in order: a, b, then the normal client, which takes the place of a, the socket
    // idle the longest.
    let mut a = TcpStream::connect(gw.addr).await.unwrap();
    let _b = TcpStream::connect(gw.addr).await.unwrap();
    served(&gw).await;
    assert!(
        read_until_closed(&mut a, MARGIN).await.is_ok(),
        "oldest idle socket kept"
    );

    // Two requests in progress (the upstream takes 3 s): no room, and nothing to evict.
    let hold = chat("hold", false).to_string();
    let send = |hold: String| async move {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n{hold}",
            hold.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s
    };
    let (c, d) = (send(hold.clone()).await, send(hold).await);
    assert!(
        eventually(|| up.received().len() == 3).await,
        "held requests not upstream"
    );
    let r = post(&gw.url("/v1/chat/completions"), &chat("hello", false)).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["code"], "too_many_connections");
    assert_eq!(r.header("retry-after"), "1");
    assert_eq!(r.header("connection"), "close");
    // The admin routes still answer.
    let m = get(&gw.url("/metrics")).await.text();
    assert!(m.contains("deliberate_open_connections 2"), "{m}");
    assert!(
        m.contains("deliberate_connections_refused_total{how=\"503\"}"),
        "{m}"
    );
    assert!(
        m.contains("deliberate_connections_closed_total{reason=\"evicted\"}"),
        "{m}"
    );
    // Once the held requests are answered, their connections are idle again: room.
    assert!(
        eventually_async(|| async {
            post(&gw.url("/v1/chat/completions"), &chat("hello", false))
                .await
                .status
                == 200
        })
        .await,
        "not served after the held requests ended"
    );
    drop((c, d));
    gw.stop().await;
}

async fn eventually_async<F, Fut>(mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
