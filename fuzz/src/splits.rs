//! Streamed == buffered with the shipped policies: texts built from their rules' own examples
//! (and arbitrary strings), cut at arbitrary points, checked by
//! [`check_cuts`](deliberate::engine::splits::check_cuts) — the checker `deliberate test` runs.

use std::sync::OnceLock;

use arbitrary::Unstructured;
use deliberate::engine::splits::check_cuts;
use deliberate::{CompiledPolicy, Stage};

/// Largest text a case is built up to, in bytes.
const MAX_TEXT: usize = 2048;

/// A shipped policy and the pieces its texts are built from.
struct Shipped {
    policy: std::sync::Arc<CompiledPolicy>,
    vocab: Vec<String>,
}

fn shipped() -> &'static [Shipped] {
    static P: OnceLock<Vec<Shipped>> = OnceLock::new();
    P.get_or_init(|| {
        ["default.yaml", "pii.yaml"]
            .iter()
            .map(|f| {
                let path = format!("{}/../policies/{f}", env!("CARGO_MANIFEST_DIR"));
                #[allow(clippy::expect_used)] // The shipped policies compile (CI checks them).
                let policy = CompiledPolicy::load(&path).expect("shipped policy");
                let mut vocab: Vec<String> = crate::VOCAB.iter().map(|s| s.to_string()).collect();
                for r in &policy.rules {
                    vocab.extend(r.examples.should_match.iter().cloned());
                    vocab.extend(r.examples.no_match.iter().cloned());
                }
                Shipped { policy, vocab }
            })
            .collect()
    })
}

/// A text built from a shipped policy's examples, streamed in arbitrary pieces at a stage,
/// must decide as the buffered scan does.
pub fn streamed_buffered(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let which = u.arbitrary::<u8>().unwrap_or(0);
    let set = &shipped()[usize::from(which & 1)];
    let stage = match (which >> 1) % 3 {
        0 => Stage::Input,
        1 => Stage::Output,
        _ => Stage::Reasoning,
    };
    let mut text = String::new();
    while text.len() < MAX_TEXT && !u.is_empty() {
        let Ok(tag) = u.arbitrary::<u8>() else { break };
        if tag < 160 {
            let i = usize::from(u.arbitrary::<u16>().unwrap_or(0)) % set.vocab.len();
            text.push_str(&set.vocab[i]);
        } else if tag < 200 {
            text.push(' ');
        } else {
            let s: &str = u.arbitrary().unwrap_or("");
            text.push_str(s);
        }
    }
    let ncuts = usize::from(u.arbitrary::<u8>().unwrap_or(0) % 24);
    let cuts: Vec<usize> = (0..ncuts)
        .map(|_| usize::from(u.arbitrary::<u16>().unwrap_or(0)) % (text.len() + 1))
        .collect();
    let want = set.policy.scan(&text, stage, None);
    if let Err(e) = check_cuts(&set.policy, stage, &text, &want, &cuts) {
        panic!("{}: {e}\ntext: {text:?}", set.policy.name);
    }
}
