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
///
/// The read itself stops past the limit: a file whose metadata gives no size (`/dev/zero`, a
/// pipe, a file still growing) is refused after [`MAX_POLICY_BYTES`] + 1 bytes instead of being
/// read without end (found by the `policy_loader` fuzz target: `include: [/dev/zero]` took
/// 20 GB of memory).
pub(super) fn read_file(path: &Path) -> Result<String, String> {
    use std::io::Read;

    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read policy: {e}"))?;
    if meta.len() > MAX_POLICY_BYTES as u64 {
        return Err(format!(
            "policy file is {} bytes; the limit is {MAX_POLICY_BYTES}",
            meta.len()
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read policy: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read policy: {e}"))?;
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(format!(
            "policy file is larger than the limit of {MAX_POLICY_BYTES} bytes"
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| "cannot read policy: stream did not contain valid UTF-8".to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (fuzz target `policy_loader`): a file without a size in its metadata was read
    /// to the end, and `/dev/zero` has none: `include: [/dev/zero]` grew to 20 GB.
    #[cfg(unix)]
    #[test]
    fn a_file_without_a_size_is_read_up_to_the_limit_only() {
        let err = read_file(Path::new("/dev/zero")).unwrap_err();
        assert!(err.contains("larger than the limit"), "{err}");
    }
}
