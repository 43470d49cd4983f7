//! `deliberate serve` as a child process on 127.0.0.1:0 (for the SDK tests, which need a real
//! server the Python clients can reach). Included with `#[path]`, apart from `common/mod.rs`.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// The server process; killed when dropped.
pub struct Server(Child, Arc<Mutex<Vec<String>>>);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `deliberate serve` on 127.0.0.1:0 and returns it with its base URL.
pub fn serve(extra: &[&str]) -> (Server, String) {
    serve_env(extra, &[])
}

/// [`serve`] with extra environment variables.
pub fn serve_env(extra: &[&str], env: &[(&str, &str)]) -> (Server, String) {
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
        .envs(env.iter().copied())
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
    // Keep draining stderr so the server never blocks on a full pipe; keep the lines.
    let kept = Arc::new(Mutex::new(Vec::new()));
    let sink = kept.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    (Server(child, kept), format!("{url}/v1"))
}

impl Server {
    /// The lines the server wrote to stderr after it started listening.
    pub fn stderr(&self) -> Vec<String> {
        self.1.lock().unwrap().clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits (at most `max`) for the process to exit; its status, or `None` if it did not.
    pub fn wait_exit(&mut self, max: std::time::Duration) -> Option<std::process::ExitStatus> {
        let end = std::time::Instant::now() + max;
        while std::time::Instant::now() < end {
            if let Ok(Some(s)) = self.0.try_wait() {
                return Some(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }
}
