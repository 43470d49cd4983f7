//! Memory per open stream scanner: RSS growth of this process while it holds N output-stage
//! scanners of a policy, each fed two pieces of text (as a stream past its first tokens).
//! Linux only (reads `/proc/self/status`).
//!
//! ```sh
//! cargo run --release --example stream_memory -- policies/default.yaml 5000 1024
//! ```

use deliberate::engine::CompiledPolicy;
use deliberate::policy::Stage;

fn rss_bytes() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<i64>().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

fn main() {
    let mut args = std::env::args().skip(1);
    let policy = args
        .next()
        .unwrap_or_else(|| "policies/default.yaml".to_owned());
    let n: usize = args.next().map_or(5000, |a| a.parse().expect("a count"));
    let piece: usize = args
        .next()
        .map_or(1024, |a| a.parse().expect("a piece size"));
    let policy = CompiledPolicy::load(policy).expect("policy loads");
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(piece / 45 + 1);
    let text = &text[..piece];
    // Warm up: the lazy DFAs build their states on the first scans.
    for _ in 0..50 {
        let mut s = policy.stream(Stage::Output);
        s.push(text);
        s.push(text);
    }
    let before = rss_bytes();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = policy.stream(Stage::Output);
        s.push(text);
        s.push(text);
        held.push(s);
    }
    let per = (rss_bytes() - before) / n as i64;
    println!("{n} output scanners, two {piece}-byte pieces each: {per} bytes of RSS per scanner");
    std::hint::black_box(held);
}
