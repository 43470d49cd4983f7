//! The command line as a user runs it: `check` diagnostics and `scan` output, snapshotted.

use std::process::Command;

fn deliberate(args: &[&str]) -> (String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_deliberate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("binary runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (text, out.status.code().unwrap_or(-1))
}

#[test]
fn stream_chunk_on_input_is_refused_with_a_reason() {
    // The stream scanner has no message role, so an input trace could not honour `--role`.
    let (out, code) = deliberate(&[
        "scan",
        "--policy",
        "tests/fixtures/cli/good.yaml",
        "--role",
        "tool",
        "--stream-chunk",
        "3",
        "hello",
    ]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("--stage output or reasoning"), "{out}");
}

#[test]
fn check_reports_every_error_with_location() {
    let (out, code) = deliberate(&["check", "tests/fixtures/cli/broken.yaml"]);
    assert_eq!(code, 1);
    insta::assert_snapshot!(out);
}

#[test]
fn check_points_at_unknown_fields() {
    let (out, code) = deliberate(&["check", "tests/fixtures/cli/typo.yaml"]);
    assert_eq!(code, 1);
    insta::assert_snapshot!(out);
}

#[test]
fn check_warns_but_passes() {
    let (out, code) = deliberate(&["check", "tests/fixtures/cli/warn.yaml"]);
    assert_eq!(code, 0, "{out}");
    let out = regex::Regex::new("@[0-9a-f]{12}")
        .expect("valid")
        .replace_all(&out, "@HASH");
    insta::assert_snapshot!(out);
}

#[test]
fn scan_json_is_the_documented_shape() {
    let (out, code) = deliberate(&[
        "scan",
        "--policy",
        "tests/fixtures/cli/good.yaml",
        "--stage",
        "output",
        "--format",
        "json",
        "write to ＢＯＢ@example.com about the pipe bomb",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    insta::assert_json_snapshot!(v);
}

#[test]
fn scan_stream_mode_matches_buffered_output() {
    let text = "mail bob@example.com today";
    let args = |chunk: Option<&'static str>| {
        let mut a = vec![
            "scan",
            "--policy",
            "tests/fixtures/cli/good.yaml",
            "--stage",
            "output",
            "--format",
            "json",
        ];
        if let Some(c) = chunk {
            a.extend(["--stream-chunk", c]);
        }
        a.push(text);
        a
    };
    let (buffered, code) = deliberate(&args(None));
    assert_eq!(code, 0, "{buffered}");
    let (streamed, code) = deliberate(&args(Some("3")));
    assert_eq!(code, 0, "{streamed}");
    assert!(buffered.contains("mail [email] today"), "{buffered}");
    // Stream mode adds where the frontier stood per piece; the rest is the buffered output.
    let buffered: serde_json::Value = serde_json::from_str(buffered.trim()).expect("json");
    let mut streamed: serde_json::Value = serde_json::from_str(streamed.trim()).expect("json");
    let pieces = streamed
        .as_object_mut()
        .and_then(|o| o.remove("pieces"))
        .expect("pieces in stream mode");
    assert_eq!(buffered, streamed);
    let pieces = pieces.as_array().expect("array");
    assert_eq!(pieces.len(), text.len().div_ceil(3));
    for p in pieces {
        assert!(p["released"].as_u64() <= p["frontier"].as_u64(), "{p}");
        assert!(p["frontier"].as_u64() <= p["received"].as_u64(), "{p}");
    }
}

#[test]
fn test_command_runs_examples_and_reports() {
    let (out, code) = deliberate(&["test", "tests/fixtures/cli/good.yaml", "--coverage"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("4 passed, 0 failed"), "{out}");
    assert!(out.contains("every rule fired"), "{out}");
}

/// Regression: pattern ids are numbered per stage, and the shadowed-keyword check once
/// compared them across stages, warning about rules that share no keyword.
#[test]
fn check_does_not_confuse_keywords_across_stages() {
    let (out, code) = deliberate(&["check", "tests/fixtures/gateway.yaml"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 warnings"), "{out}");
}

#[test]
fn check_probe_reports_scan_speed_per_stage() {
    let (out, code) = deliberate(&["check", "--probe", "tests/fixtures/cli/good.yaml"]);
    assert_eq!(code, 0, "{out}");
    for stage in ["input", "output"] {
        assert!(
            out.contains(&format!("probe: {stage} scans run at")),
            "{out}"
        );
    }
    assert!(
        !out.contains("probe: reasoning"),
        "good.yaml has no reasoning rules: {out}"
    );
}

#[test]
fn check_refuses_alias_bombs() {
    let (out, code) = deliberate(&["check", "tests/fixtures/cli/alias-bomb.yaml"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("alias bomb"), "{out}");
}

/// `deliberate test policies/ --format junit | head -1`: the reader goes away after one line;
/// the command stops quietly (status 0, no panic message) instead of failing on the closed pipe.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_deliberate"))
        .args(["test", "policies/", "--format", "junit"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("piped");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("one line");
    // The reader (and with it the pipe's read end) is dropped here.
    assert!(first.starts_with("<?xml"), "{first}");
    let out = child.wait_with_output().expect("ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
