//! Runs `tests/openai_sdk.py` (the official `openai` Python SDK) against two `deliberate serve`
//! processes on the echo upstream. Needs `DELIBERATE_PYTHON`: a Python with `openai`
//! installed (`.ci/run` makes a venv and sets it); skipped with a message otherwise.
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
