//! The playground in a real browser: `deliberate playground` as a child process on
//! 127.0.0.1:0, driven by `tests/playground_browser.py` (Selenium and Debian's headless
//! `chromium` + `chromium-driver`). Needs `DELIBERATE_PYTHON`, a Python with `selenium`
//! (`.ci/run` installs both); skipped with a message when they are missing, unless
//! `DELIBERATE_BROWSER_REQUIRED` is set (CI), where a skip fails. Screenshots and the eval
//! report it opens are written to `target/tmp/playground-browser/`.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn skip(why: &str) {
    assert!(
        std::env::var_os("DELIBERATE_BROWSER_REQUIRED").is_none(),
        "DELIBERATE_BROWSER_REQUIRED is set but the browser test cannot run: {why}"
    );
    eprintln!("SKIPPED playground_browser: {why}");
}

#[test]
fn the_page_works_in_headless_chromium() {
    let Some(python) = std::env::var_os("DELIBERATE_PYTHON") else {
        skip(
            "set DELIBERATE_PYTHON to a python with `selenium`, and install chromium and \
             chromium-driver (apt-get install chromium chromium-driver; python3 -m venv v && \
             v/bin/pip install selenium && DELIBERATE_PYTHON=v/bin/python cargo test --test playground_browser)",
        );
        return;
    };
    let root = env!("CARGO_MANIFEST_DIR");
    let bin = env!("CARGO_BIN_EXE_deliberate");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("playground-browser");
    std::fs::create_dir_all(&out).unwrap();

    // The eval report the page opens.
    let report = out.join("report.html");
    let eval = Command::new(bin)
        .current_dir(root)
        .args([
            "eval",
            "--policy",
            "tests/fixtures/eval/policy.yaml",
            "--dataset",
            "tests/fixtures/eval/prompts.jsonl",
            "--compare",
            "tests/fixtures/eval/policy-old.yaml",
            "--format",
            "html",
        ])
        .output()
        .unwrap();
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    std::fs::write(&report, &eval.stdout).unwrap();

    let mut child = Command::new(bin)
        .current_dir(root)
        .args([
            "playground",
            "--policy",
            "tests/fixtures/playground/policy.yaml",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("DELIBERATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let _server = Killed(child);
    let base = loop {
        let line = lines
            .next()
            .expect("playground exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            let url = rest.split_whitespace().next().unwrap();
            break url.trim_end_matches("/playground").to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});

    let script = format!("{root}/tests/playground_browser.py");
    let run = Command::new(python)
        .arg(script)
        .arg(&base)
        .arg(&report)
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}");
    if run.status.code() == Some(77) {
        skip(stdout.trim());
        return;
    }
    assert!(
        run.status.success(),
        "browser checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(
        out.join("playground.png").is_file(),
        "no screenshot in {}",
        out.display()
    );
}
