//! YAML hardening: one way to parse a policy or test file, with duplicate keys rejected and
//! budgets against alias bombs and oversized files.
//!
//! ```
//! use deliberate::policy::parse_yaml;
//!
//! let err = parse_yaml::<std::collections::HashMap<String, u32>>("a: 1\na: 2\n").unwrap_err();
//! assert_eq!((err.0.line, err.0.column), (2, 1));
//! ```

use std::path::Path;

use super::Loc;

/// Largest policy file read.
pub const MAX_POLICY_BYTES: usize = 1 << 20;

/// Reads a policy file, refusing one larger than [`MAX_POLICY_BYTES`].
pub(super) fn read_file(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read policy: {e}"))?;
    if meta.len() > MAX_POLICY_BYTES as u64 {
        return Err(format!(
            "policy file is {} bytes; the limit is {MAX_POLICY_BYTES}",
            meta.len()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read policy: {e}"))
}

/// Parses YAML into `T` with the hardening options: duplicate keys rejected, alias and size
/// budgets on.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(src: &str) -> Result<T, (Loc, String)> {
    if src.len() > MAX_POLICY_BYTES {
        return Err((
            Loc::default(),
            format!("file is larger than {MAX_POLICY_BYTES} bytes"),
        ));
    }
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    let mut budget = serde_saphyr::Budget::default();
    budget.max_aliases = 64;
    budget.max_anchors = 64;
    budget.max_events = 200_000;
    options.budget = Some(budget);
    serde_saphyr::from_str_with_options::<T>(src, options).map_err(|e| {
        let loc = e.location().map(Loc::from).unwrap_or_default();
        let msg = e.without_snippet().to_string();
        // The message may carry its own location prefix; keep the first line only.
        let first = msg.lines().next().unwrap_or("invalid YAML").trim();
        // The location is reported separately; drop the message's own copy of it.
        let first = match first.rfind(" at line ") {
            Some(i) if loc.line > 0 => &first[..i],
            _ => first,
        };
        if first.starts_with("budget breached") {
            let detail = first.split(" at line ").next().unwrap_or(first);
            return (
                loc,
                format!("refusing to expand this document ({detail}): too many aliases or nodes — an alias bomb or an oversized file"),
            );
        }
        (loc, first.to_owned())
    })
}
