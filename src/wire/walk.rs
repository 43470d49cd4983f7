//! The generic walk: every string of a JSON value the adapter does not know field by field, so
//! that an unknown field is still scanned (fail closed) rather than passed unread.

use std::ops::ControlFlow;

use serde_json::Value;

use super::{Channel, ChannelKind, TextFilter, Verdict};

/// Calls `f` with every string inside `v` (object values and array elements, at any depth) and
/// its path below `at` (`output[2].action.query`). Object keys listed in `skip` are left out at
/// every depth (`type`, identifiers the client correlates by). Stops when `f` breaks.
pub(crate) fn strings<B>(
    v: &mut Value,
    at: &str,
    skip: &[&str],
    f: &mut dyn FnMut(&mut String, &str) -> ControlFlow<B>,
) -> ControlFlow<B> {
    match v {
        Value::String(s) => f(s, at),
        Value::Array(a) => {
            for (i, e) in a.iter_mut().enumerate() {
                strings(e, &format!("{at}[{i}]"), skip, f)?;
            }
            ControlFlow::Continue(())
        }
        Value::Object(m) => {
            for (k, e) in m.iter_mut() {
                if skip.contains(&k.as_str()) {
                    continue;
                }
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                strings(e, &path, skip, f)?;
            }
            ControlFlow::Continue(())
        }
        _ => ControlFlow::Continue(()),
    }
}

/// What scanning strings in place came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Edit {
    /// Every string passed as it was.
    Kept,
    /// At least one string was redacted or stripped.
    Changed,
    /// A string was blocked: the refusal (later strings were not scanned).
    Blocked(String),
}

/// Applies `verdict` to the string `s` it was given for: a stripped text becomes empty.
pub(crate) fn apply(verdict: Verdict, s: &mut String) -> Edit {
    match verdict {
        Verdict::Send(t) if t == *s => Edit::Kept,
        Verdict::Send(t) => {
            *s = t;
            Edit::Changed
        }
        Verdict::Strip => {
            let changed = !s.is_empty();
            s.clear();
            if changed { Edit::Changed } else { Edit::Kept }
        }
        Verdict::Block { refusal, .. } => Edit::Blocked(refusal),
    }
}

/// Scans every string [`strings`] visits in `v` as [`ChannelKind::Other`] of `unit` (its path
/// below `at` the location) and applies each verdict; `keep` says which strings (by path) pass
/// unread. Stops at the first block.
pub(crate) fn scan_strings(
    filter: &mut dyn TextFilter,
    unit: u32,
    at: &str,
    v: &mut Value,
    keep: &dyn Fn(&str) -> bool,
) -> Edit {
    let mut edit = Edit::Kept;
    let flow = strings(v, at, &[], &mut |s, loc| {
        if keep(loc) {
            return ControlFlow::Continue(());
        }
        match apply(
            filter.scan(&Channel::new(ChannelKind::Other, unit, loc), s),
            s,
        ) {
            Edit::Blocked(r) => ControlFlow::Break(r),
            Edit::Changed => {
                edit = Edit::Changed;
                ControlFlow::Continue(())
            }
            Edit::Kept => ControlFlow::Continue(()),
        }
    });
    match flow {
        ControlFlow::Break(r) => Edit::Blocked(r),
        ControlFlow::Continue(()) => edit,
    }
}

/// The object key a string at path `loc` sits under (`a.b[2]` -> `b`), array indices skipped.
pub(crate) fn key_of(loc: &str) -> &str {
    let mut rest = loc;
    while rest.ends_with(']') {
        match rest.rfind('[') {
            Some(i) => rest = &rest[..i],
            None => break,
        }
    }
    rest.rsplit('.').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn visits_every_string_but_skipped_keys() {
        let mut v = json!({"type": "x", "a": ["one", {"b": "two", "id": "i"}], "n": 3});
        let mut seen = Vec::new();
        let _ = strings::<()>(&mut v, "item", &["type", "id"], &mut |s, at| {
            seen.push(format!("{at}={s}"));
            s.push('!');
            ControlFlow::Continue(())
        });
        assert_eq!(seen, ["item.a[0]=one", "item.a[1].b=two"]);
        assert_eq!(v["a"][1]["b"], "two!");
        assert_eq!(v["type"], "x");
    }

    #[test]
    fn key_of_skips_indices() {
        for (loc, key) in [
            ("a.b[2]", "b"),
            ("content[0].id", "id"),
            ("x", "x"),
            ("a[1][2]", "a"),
        ] {
            assert_eq!(key_of(loc), key, "{loc}");
        }
    }
}
