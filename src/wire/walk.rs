//! The generic walk: every string of a JSON value the adapter does not know field by field, so
//! that an unknown field is still scanned (fail closed) rather than passed unread.

use std::ops::ControlFlow;

use serde_json::Value;

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
}
