//! Runs `tests/sdk_apis.py` (the official `openai` and `anthropic` Python SDKs) against a
//! `deliberate serve` process on the echo upstream: OpenAI Responses, legacy Completions and
//! Anthropic Messages, buffered and streamed. Needs `DELIBERATE_PYTHON`: a Python with `openai`
//! and `anthropic` installed (`.ci/run` makes a venv and sets it); skipped with a message
//! otherwise.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `deliberate serve` on 127.0.0.1:0 and returns it with its base URL.
fn serve(extra: &[&str]) -> (Server, String) {
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gateway.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_deliberate"))
        .args([
            "serve",
            "--policy",
            policy,
            "--listen",
            "127.0.0.1:0",
            "--no-reload",
        ])
        .args(extra)
        .env("DELIBERATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("serve exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Server(child), format!("{url}/v1"))
}

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
