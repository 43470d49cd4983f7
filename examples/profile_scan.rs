//! A profiling harness for the buffered scan: loads a policy once and scans a file N times at
//! a stage, so that a profiler (callgrind, perf) sees the scans and not the command line.
//!
//! ```text
//! cargo build --release --example profile_scan
//! valgrind --tool=callgrind --toggle-collect='*CompiledPolicy*scan*' \
//!     target/release/examples/profile_scan policies/default.yaml text.txt 21 input
//! ```
//! Run it with N = 1 and N = 21 and divide the difference by 20: that is the cost of one scan
//! without the regex engines' first-use warm-up (`benches/README.md`).

use std::process::ExitCode;

use deliberate::{CompiledPolicy, Stage};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, policy, text, n, rest @ ..] = args.as_slice() else {
        eprintln!("usage: profile_scan POLICY TEXT_FILE N [input|output]");
        return ExitCode::from(2);
    };
    let policy = match CompiledPolicy::load(policy.clone()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let (Ok(text), Ok(n)) = (std::fs::read_to_string(text), n.parse::<usize>()) else {
        eprintln!("cannot read the text file, or N is not a number");
        return ExitCode::from(2);
    };
    let stage = match rest.first().map(String::as_str) {
        Some("input") => Stage::Input,
        _ => Stage::Output,
    };
    let mut findings = 0;
    for _ in 0..n {
        findings += policy.scan(&text, stage, Some("user")).findings.len();
    }
    println!("{findings} findings in {n} scans");
    ExitCode::SUCCESS
}
