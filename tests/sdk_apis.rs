//! Runs `tests/sdk_apis.py` (the official `openai` and `anthropic` Python SDKs) against a
//! `deliberate serve` process on the echo upstream: OpenAI Responses, legacy Completions and
//! Anthropic Messages, buffered and streamed. Needs `DELIBERATE_PYTHON`: a Python with `openai`
//! and `anthropic` installed (`.ci/run` makes a venv and sets it); skipped with a message
//! otherwise.
#![allow(clippy::unwrap_used)]

#[path = "common/serve_bin.rs"]
mod serve_bin;

use serve_bin::serve;
use std::process::Command;

#[test]
fn official_sdks_read_responses_completions_and_messages() {
    let Some(python) = std::env::var_os("DELIBERATE_PYTHON") else {
        eprintln!(
            "SKIPPED sdk_apis: set DELIBERATE_PYTHON to a python with the `openai` and `anthropic` \
             packages (python3 -m venv v && v/bin/pip install openai anthropic && \
             DELIBERATE_PYTHON=v/bin/python cargo test --test sdk_apis)"
        );
        return;
    };
    let (_a, base) = serve(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk_apis.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&base)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "SDK checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
