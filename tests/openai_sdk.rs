//! Runs `tests/openai_sdk.py` (the official `openai` Python SDK) against two `deliberate serve`
//! processes on the echo upstream. Needs `DELIBERATE_PYTHON`: a Python with `openai`
//! installed (`.ci/run` makes a venv and sets it); skipped with a message otherwise.
#![allow(clippy::unwrap_used)]

#[path = "common/serve_bin.rs"]
mod serve_bin;

use serve_bin::serve;
use std::process::Command;

#[test]
fn openai_python_sdk_reads_what_the_gateway_sends() {
    let Some(python) = std::env::var_os("DELIBERATE_PYTHON") else {
        eprintln!(
            "SKIPPED openai_sdk: set DELIBERATE_PYTHON to a python with the `openai` package \
             (python3 -m venv v && v/bin/pip install openai && DELIBERATE_PYTHON=v/bin/python cargo test --test openai_sdk)"
        );
        return;
    };
    let (_a, base) = serve(&[]);
    let (_b, base_400) = serve(&["--block-response", "error400"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_sdk.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&base)
        .arg(&base_400)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "openai SDK checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
