//! Replays a recorded stream through a policy's output scanner, piece by piece, and shows what
//! each piece releases: where a gateway would merge a model's tokens into fewer events, and
//! which piece holds text back. The pieces are a JSON array of strings (a model's content
//! deltas, in order).
//!
//! ```sh
//! cargo run --release --example replay_stream -- policies/default.yaml deltas.json
//! ```

use deliberate::engine::CompiledPolicy;
use deliberate::policy::Stage;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [policy, pieces] = args.as_slice() else {
        eprintln!("usage: replay_stream POLICY PIECES_JSON");
        std::process::exit(2);
    };
    let policy = CompiledPolicy::load(policy.clone()).expect("policy loads");
    let pieces: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(pieces).expect("pieces file"))
            .expect("a JSON array of strings");
    let mut s = policy.stream(Stage::Output);
    let mut events = 0;
    for (i, p) in pieces.iter().enumerate() {
        let out = s.push(p);
        events += usize::from(!out.text.is_empty());
        println!(
            "{i:>4} in {:<16} out {:<24} held {}",
            format!("{p:?}"),
            format!("{:?}", out.text),
            s.received() - s.released()
        );
    }
    let out = s.finish();
    events += usize::from(!out.text.is_empty());
    println!("finish out {:?}", out.text);
    println!("{} pieces, {events} events with text", pieces.len());
}
