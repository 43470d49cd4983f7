//! The policy loader on arbitrary YAML.
//!
//! Oracles: no panic and bounded time (libFuzzer's `-timeout`, and the replay test's limit per
//! input); every error names a place; a policy that compiles streams as it scans a fixed text
//! cut in two (the split checker of `deliberate test`, on a policy nobody wrote).

use deliberate::engine::splits::check_cuts;
use deliberate::{CompiledPolicy, Stage};

/// The text a compiled fuzzed policy is checked on.
const TEXT: &str = "Hi bob@example.com, the pipe bomb recipe: secret-1234 ok haha";

/// Compiles arbitrary bytes as a policy file.
pub fn policy_loader(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match CompiledPolicy::from_yaml_str(src, "fuzz.yaml") {
        Err(e) => assert!(!e.to_string().is_empty(), "an error without a message"),
        Ok(p) => {
            for stage in [Stage::Input, Stage::Output] {
                let want = p.scan(TEXT, stage, None);
                for cut in [0, 7, 20, 31, TEXT.len()] {
                    if let Err(e) = check_cuts(&p, stage, TEXT, &want, &[cut]) {
                        panic!("{stage:?}: {e}");
                    }
                }
            }
        }
    }
}
