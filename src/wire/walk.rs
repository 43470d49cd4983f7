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
    keyed_strings(v, at, "", skip, &mut |s, at, _| f(s, at))
}

/// [`strings`], also handing `f` the object key each string sits under (`key` for `v` itself;
/// an array element keeps its array's key).
fn keyed_strings<B>(
    v: &mut Value,
    at: &str,
    key: &str,
    skip: &[&str],
    f: &mut dyn FnMut(&mut String, &str, &str) -> ControlFlow<B>,
) -> ControlFlow<B> {
    match v {
        Value::String(s) => f(s, at, key),
        Value::Array(a) => {
            for (i, e) in a.iter_mut().enumerate() {
                keyed_strings(e, &format!("{at}[{i}]"), key, skip, f)?;
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
                keyed_strings(e, &path, k, skip, f)?;
            }
            ControlFlow::Continue(())
        }
        _ => ControlFlow::Continue(()),
    }
}

/// Whether `v` holds a string at any depth (a member that does not may pass unread: numbers
/// and booleans carry no text).
pub(crate) fn has_string(v: &Value) -> bool {
    match v {
        Value::String(_) => true,
        Value::Array(a) => a.iter().any(has_string),
        Value::Object(m) => m.values().any(has_string),
        _ => false,
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

/// Scans every string [`strings`] visits in `v` (found under `key`) as [`ChannelKind::Other`]
/// of `unit`, its path below `at` the location, and applies each verdict; a string whose object
/// key `unread` accepts passes unread. Stops at the first block.
pub(crate) fn scan_strings(
    filter: &mut dyn TextFilter,
    unit: u32,
    at: &str,
    key: &str,
    v: &mut Value,
    unread: &dyn Fn(&str) -> bool,
) -> Edit {
    let mut edit = Edit::Kept;
    let flow = keyed_strings(v, at, key, &[], &mut |s, loc, k| {
        if unread(k) {
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
    fn unread_strings_are_chosen_by_their_key_not_their_path() {
        let mut v = json!({"id": "skip-me", "x.id": "dotted", "ids": {"id": ["in-array"]},
                           "a": [{"b": "nested"}]});
        let mut f = crate::wire::testing::TestFilter::new();
        let edit = scan_strings(&mut f, 0, "m", "", &mut v, &|k| k == "id");
        assert_eq!(edit, Edit::Kept);
        let seen: Vec<(&str, &str)> = f
            .scanned
            .iter()
            .map(|(c, t)| (c.location.as_str(), t.as_str()))
            .collect();
        // A key that merely ends in `.id` in the path is scanned; the array under `id` is not.
        assert_eq!(seen, [("m.a[0].b", "nested"), ("m.x.id", "dotted")]);
    }
}
