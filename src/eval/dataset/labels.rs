//! Labels: how a raw label (or a BIG-bench answer) maps to safe / unsafe and a category.

use serde_json::Value;

use super::{Label, ReadOptions};

pub(super) const SAFE_WORDS: &[&str] = &[
    "safe",
    "benign",
    "harmless",
    "none",
    "neutral",
    "normal",
    "clean",
    "legitimate",
    "ok",
    "allow",
    "allowed",
    "acceptable",
    "appropriate",
    "comply",
    "compliance",
    "not harmful",
    "not unsafe",
    "negative",
    "0",
    "false",
];

pub(super) const UNSAFE_WORDS: &[&str] = &[
    "unsafe",
    "harmful",
    "harm",
    "toxic",
    "malicious",
    "jailbreak",
    "attack",
    "injection",
    "block",
    "blocked",
    "unacceptable",
    "inappropriate",
    "refuse",
    "refusal",
    "should refuse",
    "decline",
    "positive",
    "1",
    "true",
];

/// How a raw label maps: the label, and the category it names when it is a category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Mapped {
    Known(Label),
    Category(Label, String),
    Unknown,
}

pub(super) fn map_label(raw: &str, unsafe_labels: &[String]) -> Mapped {
    let t = raw.trim();
    if !unsafe_labels.is_empty() {
        return if unsafe_labels
            .iter()
            .any(|u| u.trim().eq_ignore_ascii_case(t))
        {
            Mapped::Category(Label::Unsafe, t.to_owned())
        } else {
            Mapped::Known(Label::Safe)
        };
    }
    let lower = t.to_lowercase();
    let lower = lower.trim_end_matches('.');
    if SAFE_WORDS.contains(&lower) {
        Mapped::Known(Label::Safe)
    } else if UNSAFE_WORDS.contains(&lower) {
        Mapped::Known(Label::Unsafe)
    } else {
        Mapped::Unknown
    }
}

pub(super) fn value_as_label(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Label and category of a JSONL / CSV row.
pub(super) fn resolve_label(
    raw: &str,
    category: Option<String>,
    opts: &ReadOptions,
) -> Result<(Label, String), String> {
    if raw.trim().is_empty() {
        return Err("empty label".into());
    }
    Ok(match map_label(raw, &opts.unsafe_labels) {
        Mapped::Known(l) => (l, category.unwrap_or_else(|| l.as_str().to_owned())),
        Mapped::Category(l, c) => (l, category.unwrap_or(c)),
        Mapped::Unknown => (
            Label::Unsafe,
            category.unwrap_or_else(|| raw.trim().to_owned()),
        ),
    })
}

/// The label a mapping gives, if any.
pub(super) fn label_of(m: &Mapped) -> Option<Label> {
    match m {
        Mapped::Known(l) | Mapped::Category(l, _) => Some(*l),
        Mapped::Unknown => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_as_documented() {
        let none: Vec<String> = Vec::new();
        assert_eq!(map_label("Safe", &none), Mapped::Known(Label::Safe));
        assert_eq!(map_label(" unsafe ", &none), Mapped::Known(Label::Unsafe));
        assert_eq!(map_label("1", &none), Mapped::Known(Label::Unsafe));
        assert_eq!(map_label("violence", &none), Mapped::Unknown);
        let v = vec!["Yes".to_string()];
        assert_eq!(
            map_label("yes", &v),
            Mapped::Category(Label::Unsafe, "yes".into())
        );
        assert_eq!(map_label("unsafe", &v), Mapped::Known(Label::Safe));
    }
}
