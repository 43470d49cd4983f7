//! `deliberate serve` as a child process on 127.0.0.1:0 (for the SDK tests, which need a real
//! server the Python clients can reach). Included with `#[path]`, apart from `common/mod.rs`.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The server process; killed when dropped.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `deliberate serve` on 127.0.0.1:0 and returns it with its base URL.
pub fn serve(extra: &[&str]) -> (Server, String) {
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

impl Server {
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
