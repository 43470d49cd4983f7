//! The evasion matrix (`policies/eval/evasion.jsonl`, written by `scripts/evasion_matrix.py`)
//! through `deliberate eval`: the goals of issue 13 on the default policy.
//!
//! - character-level rewrites (every category but the encodings; `no_space_join` through the
//!   `segment` step): at least 90 % caught, and every rewrite at least 80 %;
//! - encodings with a decoding view (base64, base64url, hex, ROT13, reversed): at least 90 %
//!   caught;
//! - benign look-alikes, plain and under every rewrite: at most 1 % blocked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Per category: (caught, n) for unsafe rows, (blocked, n) for safe rows.
fn by_category() -> BTreeMap<String, (u64, u64)> {
    let out = Command::new(env!("CARGO_BIN_EXE_deliberate"))
        .current_dir(root())
        .args([
            "eval",
            "--policy",
            "policies/default.yaml",
            "--dataset",
            "policies/eval/evasion.jsonl",
            "--format",
            "json",
        ])
        .output()
        .expect("run deliberate eval");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json report");
    let cats = &v["datasets"][0]["summary"]["by_category"];
    let mut m = BTreeMap::new();
    for (name, c) in cats.as_object().expect("categories") {
        let n = c["n"].as_u64().expect("n");
        let hits = if name.starts_with("benign/") {
            c["false_blocks"].as_u64().expect("false_blocks")
        } else {
            c["caught_unsafe"].as_u64().expect("caught_unsafe")
        };
        m.insert(name.clone(), (hits, n));
    }
    m
}

fn rate(rows: &[(u64, u64)]) -> f64 {
    let (k, n) = rows.iter().fold((0, 0), |(k, n), &(a, b)| (k + a, n + b));
    k as f64 / n.max(1) as f64
}

#[test]
fn default_policy_meets_the_evasion_goals() {
    let m = by_category();
    let decoded = [
        "encoding/base64",
        "encoding/base64url",
        "encoding/hex",
        "encoding/rot13",
        "encoding/reversed",
    ];
    let mut chars = Vec::new();
    let mut encodings = Vec::new();
    let mut benign = Vec::new();
    for (name, &row) in &m {
        if name.starts_with("benign/") {
            benign.push(row);
        } else if decoded.contains(&name.as_str()) {
            encodings.push(row);
        } else if !name.starts_with("encoding/") {
            let r = rate(&[row]);
            assert!(r >= 0.8, "rewrite {name}: {:.1} % caught", r * 100.0);
            chars.push(row);
        }
    }
    assert!(
        chars.len() >= 20 && encodings.len() == 5 && benign.len() >= 25,
        "{m:?}"
    );
    let (c, e, b) = (rate(&chars), rate(&encodings), rate(&benign));
    assert!(
        c >= 0.9,
        "character-level rewrites: {:.1} % caught",
        c * 100.0
    );
    assert!(e >= 0.9, "encodings with a view: {:.1} % caught", e * 100.0);
    assert!(b <= 0.01, "benign look-alikes: {:.2} % blocked", b * 100.0);
}

/// The committed matrix is what the script writes (skips when Python is absent).
#[test]
fn matrix_file_is_up_to_date() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("evasion.jsonl");
    let run = Command::new("python3")
        .arg(root().join("scripts/evasion_matrix.py"))
        .arg(&out)
        .status();
    match run {
        Ok(s) if s.success() => {}
        _ => {
            eprintln!("skipped: python3 not available to run scripts/evasion_matrix.py");
            return;
        }
    }
    let fresh = std::fs::read_to_string(&out).expect("generated");
    let committed =
        std::fs::read_to_string(root().join("policies/eval/evasion.jsonl")).expect("committed");
    assert!(
        fresh == committed,
        "policies/eval/evasion.jsonl is stale: run python3 scripts/evasion_matrix.py"
    );
}
