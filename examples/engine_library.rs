//! The engine as a plain library: compile a policy, scan a text, scan a stream, and read a
//! tool call's JSON arguments the way a client would — no server, no async runtime.
//!
//! It builds without the server: `cargo run --no-default-features --example engine_library`.

use deliberate::wire::json_text;
use deliberate::{Action, CompiledPolicy, Stage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = CompiledPolicy::from_yaml_str(
        r#"
policy: example
rules:
  - id: weapons
    match: {keywords: ["pipe bomb"]}
    action: block
    tests: {match: ["how to build a pipe bomb"], no_match: ["a pipe"]}
  - id: secrets
    match: {regex: 'secret-\d{4}'}
    action: redact
    replacement: "[secret]"
    tests: {match: ["my secret-1234"], no_match: ["secret-12"]}
"#,
        "example.yaml",
    )?;

    // Buffered: one decision for a whole text.
    let d = policy.scan("my code is secret-1234", Stage::Output, None);
    println!("buffered: {} -> {:?}", d.action.as_str(), d.output);
    assert_eq!(d.action, Action::Redact);

    // Streamed: pieces in, only text no rule can still cover out.
    let mut s = policy.stream(Stage::Output);
    let mut out = String::new();
    for piece in ["my code is sec", "ret-12", "34, keep it"] {
        let o = s.push(piece);
        println!("piece {piece:?} released {:?}", o.text);
        out.push_str(&o.text);
    }
    out.push_str(&s.finish().text);
    assert_eq!(out, d.output.clone() + ", keep it");

    // Tool-call arguments are JSON: scan them as the client will read them.
    let args = r#"{"q":"pipe \u0062omb"}"#;
    let view = json_text::decode(args);
    let d = policy.scan(&view, Stage::Output, None);
    println!("arguments {args} read as {view}: {}", d.action.as_str());
    assert_eq!(d.action, Action::Block);
    Ok(())
}
