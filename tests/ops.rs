//! Running it for real: the gauges and readiness an orchestrator watches, and policy reload the
//! way Kubernetes updates a mounted ConfigMap. Every gateway listens on 127.0.0.1:0.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/serve_bin.rs"]
mod serve_bin;

use std::time::Duration;

use common::*;
use serde_json::Value;

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

/// `/readyz` follows the upstream probe: not ready while the upstream refuses connections,
/// ready once something listens there.
#[tokio::test]
async fn readyz_is_not_ready_while_the_upstream_is_unreachable() {
    // A port nothing listens on (bound, then released).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gw = Gateway::start(Some(format!("http://127.0.0.1:{port}/v1")), |c| {
        c.health.upstream_probe = Duration::from_millis(100);
        c.health.probe_timeout = Duration::from_millis(500);
    })
    .await;
    let r = get(&gw.url("/readyz")).await;
    assert_eq!(r.status, 503, "{}", r.text());
    let v = r.json();
    assert_eq!(v["upstream_probe"]["state"], "unreachable", "{v}");
    assert!(
        v["reasons"][0]
            .as_str()
            .unwrap()
            .contains("upstream unreachable")
    );
    // Liveness is not readiness: the process is fine.
    assert_eq!(get(&gw.url("/healthz")).await.status, 200);

    // The upstream comes up on that port.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let accept = tokio::spawn(async move {
        loop {
            let _ = listener.accept().await;
        }
    });
    let url = gw.url("/readyz");
    let mut ready = false;
    for _ in 0..100 {
        if get(&url).await.status == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "never became ready: {}", get(&url).await.text());
    accept.abort();
    gw.stop().await;
}

/// Probing off: the upstream counts as reachable and no connection is made.
#[tokio::test]
async fn readyz_without_probe_is_ready_at_once() {
    let gw = Gateway::start(Some("http://127.0.0.1:9/v1".to_owned()), |c| {
        c.health.upstream_probe = Duration::ZERO;
    })
    .await;
    let r = get(&gw.url("/readyz")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["upstream_probe"]["state"], "off");
    gw.stop().await;
}

const V1: &str =
    "policy: live\nrules:\n  - id: a\n    match: {keywords: [apple]}\n    action: block\n";
const BROKEN: &str = "policy: live\nrules: [{id: x, match: {regex: '('}, action: block}]\n";

/// Waits until `f` is true of the `/readyz` body (5 s at most).
async fn readyz_until(gw: &Gateway, f: impl Fn(&Value) -> bool) -> Value {
    let url = gw.url("/readyz");
    let mut last = Value::Null;
    for _ in 0..100 {
        last = get(&url).await.json();
        if f(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition never held; last /readyz: {last}");
}

/// Lays out `dir` the way the kubelet mounts a ConfigMap: `..<timestamp>/` holds the files,
/// `..data` links to it, and each key is a link `key -> ..data/key`. Returns the new
/// timestamped directory.
fn configmap_write(dir: &std::path::Path, generation: u32, files: &[(&str, &str)]) {
    use std::os::unix::fs::symlink;
    let stamp = format!("..2026_12_01_12_00_0{generation}.{generation}");
    let ts = dir.join(&stamp);
    std::fs::create_dir(&ts).unwrap();
    for (k, v) in files {
        std::fs::write(ts.join(k), v).unwrap();
    }
    // The atomic swap: a new link under a temporary name, renamed over `..data`.
    let tmp = dir.join("..data_tmp");
    symlink(&stamp, &tmp).unwrap();
    let old = std::fs::read_link(dir.join("..data")).ok();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for (k, _) in files {
        let link = dir.join(k);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(format!("..data/{k}"), &link).unwrap();
        }
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

/// Kubernetes updates a mounted ConfigMap by swapping the `..data` symlink to a new directory;
/// the file the config names (`policies/p.yaml -> ..data/p.yaml`) never changes itself. The
/// reloader sees the swap, puts the new policy in force, and keeps it when a later version is
/// broken — with the error on `/readyz`, still ready.
#[tokio::test]
async fn configmap_symlink_swap_reloads_and_a_broken_version_keeps_the_last_good() {
    let dir = tempfile::tempdir().unwrap();
    configmap_write(dir.path(), 1, &[("p.yaml", V1)]);
    let path = dir.path().join("p.yaml");
    let gw = Gateway::start(None, move |c| {
        c.policies = vec![path];
        c.reload = true;
    })
    .await;
    let url = gw.url("/v1/chat/completions");
    assert_eq!(
        post(&url, &chat("an apple", false))
            .await
            .header("x-deliberate-action"),
        "block"
    );
    let first = get(&gw.url("/readyz")).await.json()["policy"].clone();
    tokio::time::sleep(Duration::from_millis(200)).await;

    configmap_write(dir.path(), 2, &[("p.yaml", &V1.replace("apple", "pear"))]);
    let v = readyz_until(&gw, |v| v["policy"] != first).await;
    assert_eq!(v["status"], "ready");
    let r = post(&url, &chat("an apple and a pear", false)).await;
    assert_eq!(r.header("x-deliberate-action"), "block");
    assert_eq!(r.json()["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(
        post(&url, &chat("an apple", false))
            .await
            .header("x-deliberate-action"),
        "allow"
    );

    // A second swap to a broken version: the pear policy stays, the error is shown.
    tokio::time::sleep(Duration::from_millis(200)).await;
    configmap_write(dir.path(), 3, &[("p.yaml", BROKEN)]);
    let v = readyz_until(&gw, |v| !v["last_reload_error"].is_null()).await;
    assert_eq!(v["status"], "ready", "{v}");
    assert!(
        v["last_reload_error"].as_str().unwrap().contains("p.yaml"),
        "{v}"
    );
    assert_eq!(
        post(&url, &chat("a pear", false))
            .await
            .header("x-deliberate-action"),
        "block"
    );

    // And a fixed version clears it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    configmap_write(dir.path(), 4, &[("p.yaml", V1)]);
    let v = readyz_until(&gw, |v| v["last_reload_error"].is_null()).await;
    assert_eq!(v["status"], "ready");
    gw.stop().await;
}

/// The configs shipped in `deploy/` parse, name policies that compile, and drain within the
/// pod's grace period.
#[test]
fn deploy_configs_parse_and_shutdown_fits_the_grace_period() {
    use deliberate::proxy::Config;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let image = Config::from_file(&root.join("deploy/config.yaml")).unwrap();
    assert_eq!(image.listen, "0.0.0.0:8080");
    // Inside the image the policies sit beside the config.
    assert_eq!(
        image.policies,
        [root.join("deploy/policies/default.yaml")],
        "deploy/Dockerfile copies policies/ to /etc/deliberate/policies"
    );
    let deployment: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root.join("deploy/kubernetes/base/deployment.yaml")).unwrap(),
    )
    .unwrap();
    let mut compiled = std::collections::BTreeSet::new();
    let spec = &deployment["spec"]["template"]["spec"];
    let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    let pre_stop = spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    for (cfg, policies) in [
        ("deploy/kubernetes/base", vec!["default.yaml"]),
        (
            "deploy/kubernetes/overlays/example",
            vec!["default.yaml", "pii.yaml"],
        ),
    ] {
        let c = Config::from_file(&root.join(cfg).join("config.yaml")).unwrap();
        let drain = c.timeouts.shutdown_grace.as_secs();
        assert!(
            pre_stop + drain < grace,
            "{cfg}: {pre_stop} + {drain} >= {grace}"
        );
        let names: Vec<String> = c
            .policies
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, policies, "{cfg}");
        for p in &c.policies {
            assert!(p.starts_with("/etc/deliberate/policies"), "{}", p.display());
            let local = root.join("policies").join(p.file_name().unwrap());
            if compiled.insert(local.clone()) {
                deliberate::CompiledPolicy::load(&local).unwrap();
            }
        }
    }
}

/// Kubernetes stops a pod with SIGTERM: the server stops accepting, lets the stream under way
/// finish whole, and exits 0 — within `timeouts.shutdown_grace`, which the Deployment's
/// `terminationGracePeriodSeconds` covers.
#[test]
fn sigterm_drains_the_open_stream_then_exits_zero() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "echo: {delay: 40ms}\ntimeouts: {shutdown_grace: 20s}\n",
    )
    .unwrap();
    let (mut server, url) = serve_bin::serve(&["--config", cfg.to_str().unwrap()]);
    let authority = url
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_owned();
    let words = "one two three four five six seven eight nine ten ".repeat(4);
    let body = chat(&words, true).to_string();
    let mut s = std::net::TcpStream::connect(&authority).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {authority}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut first = [0u8; 512];
    let n = s.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("data: [DONE]"), "stream cut short: {text}");
    assert!(text.contains("ten"), "{text}");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("still running after the drain");
    assert!(status.success(), "{status:?}");
    assert!(
        std::net::TcpStream::connect(&authority).is_err(),
        "still accepting"
    );
}
