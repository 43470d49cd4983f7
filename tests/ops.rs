//! Running it for real: the gauges and readiness an orchestrator watches, and policy reload the
//! way Kubernetes updates a mounted ConfigMap. Every gateway listens on 127.0.0.1:0.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

/// Regression: a stream decided whole before its head went out (short answers: everything is
/// still held back when the upstream ends) was counted open after its exchange had ended, so
/// `deliberate_active_streams` grew by one for each and never went back to 0.
#[tokio::test]
async fn active_streams_returns_to_zero_for_streams_that_end_before_their_first_release() {
    // The whole stream in one read: the filter sees its end before anything was released.
    let up = MockUpstream::start(|_| Script::sse(vec![sse_stream(&["hi", " there"])])).await;
    let gw = Gateway::start(Some(up.url()), |_| {}).await;
    let url = gw.url("/v1/chat/completions");
    for _ in 0..3 {
        let r = post(&url, &chat("hello", true)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(stream_text(&r.chunks(), 0).0, "hi there");
    }
    let m = get(&gw.url("/metrics")).await.text();
    assert!(m.contains("deliberate_active_streams 0"), "{m}");
    gw.stop().await;
}
