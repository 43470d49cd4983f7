//! Why a finding fired: which normalization view of the text each of its leaves matched in,
//! the normalized form it matched, and which normalization steps made the difference.
//!
//! This re-runs the leaf search of one rule over each view of its stage (a second pass, for
//! explaining, never on the enforcement path), keeping the hits inside the finding's span.
//!
//! ```
//! use deliberate::engine::{CompiledPolicy, explain};
//! use deliberate::policy::Stage;
//!
//! let p = CompiledPolicy::from_yaml_str(
//!     "policy: d\nrules: [{id: bomb, match: {keywords: [bomb]}, action: block}]\n", "d.yaml",
//! ).unwrap();
//! let text = "a ＢＯＭＢ"; // full-width letters
//! let d = p.scan(text, Stage::Input, None);
//! let ev = explain::explain(&p, text, &d.findings[0]);
//! assert_eq!(ev[0].normalized, "bomb");
//! assert!(ev[0].changed_by.contains(&"nfkc"));
//! ```

use serde::Serialize;

use super::Finding;
use super::matcher;
use super::program::{CompiledPolicy, LeafKind};
use crate::text::{NormalizeOptions, normalize_str, normalize_with, whole_word};

/// One leaf hit inside a finding, as one normalization view saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// `keyword` or `regex`.
    pub leaf: &'static str,
    /// The normalization steps of the view the leaf matched in (see [`steps`]).
    pub view: Vec<&'static str>,
    /// Start byte offset of the hit in the original text.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
    /// The original text of the hit.
    pub original: String,
    /// The normalized text the leaf matched.
    pub normalized: String,
    /// The steps of the view that change the original text of the hit on their own: why the
    /// hit matched although the original text differs from the pattern (e.g. `nfkc` for
    /// full-width letters, `confusables` for homoglyphs, `leetspeak`, `strip_invisible`).
    pub changed_by: Vec<&'static str>,
}

/// The names of the steps `opts` applies, in the order of the policy format's `normalize:`.
pub fn steps(opts: NormalizeOptions) -> Vec<&'static str> {
    step_table()
        .into_iter()
        .filter(|(_, on)| on(opts))
        .map(|(name, _)| name)
        .collect()
}

type StepOn = fn(NormalizeOptions) -> bool;

fn step_table() -> [(&'static str, StepOn); 7] {
    [
        ("nfkc", |o| o.nfkc),
        ("casefold", |o| o.casefold),
        ("strip_invisible", |o| o.strip_invisible),
        ("confusables", |o| o.confusables),
        ("leetspeak", |o| o.leetspeak),
        ("strip_marks", |o| o.strip_marks),
        ("separators", |o| o.separators),
    ]
}

/// `NormalizeOptions` with only step `name` on.
fn only(name: &str) -> NormalizeOptions {
    let mut o = NormalizeOptions::none();
    match name {
        "nfkc" => o.nfkc = true,
        "casefold" => o.casefold = true,
        "strip_invisible" => o.strip_invisible = true,
        "confusables" => o.confusables = true,
        "leetspeak" => o.leetspeak = true,
        "strip_marks" => o.strip_marks = true,
        _ => o.separators = true,
    }
    o
}

/// The evidence for `finding` (from a scan of `text` by `policy`): every hit of the finding's
/// rule's leaves inside its span, per view, in text order. Empty when the rule is unknown.
pub fn explain(policy: &CompiledPolicy, text: &str, finding: &Finding) -> Vec<Evidence> {
    let Some(rule) = policy.rules.iter().find(|r| r.id == finding.rule) else {
        return Vec::new();
    };
    let inside = |(s, e): (usize, usize)| s >= finding.start && e <= finding.end;
    let mut out = Vec::new();
    for view in &policy.stages[finding.stage.index()].views {
        let uses_view = rule
            .leaves
            .iter()
            .any(|l| view.regexes.contains(l) || keyword_leaf_in(view, *l));
        if !uses_view {
            continue;
        }
        let nt = normalize_with(view.opts, policy.lexicon.as_ref(), text);
        let hay = nt.text.as_str();
        let names = steps(view.opts);
        let mut push = |leaf: &'static str, s: usize, e: usize| {
            let orig = nt.map.orig_span(s, e);
            if !inside(orig) {
                return;
            }
            let original = text.get(orig.0..orig.1).unwrap_or_default().to_owned();
            let changed_by = names
                .iter()
                .copied()
                .filter(|n| normalize_str(only(n), &original) != original)
                .collect();
            out.push(Evidence {
                leaf,
                view: names.clone(),
                start: orig.0,
                end: orig.1,
                original,
                normalized: hay.get(s..e).unwrap_or_default().to_owned(),
                changed_by,
            });
        };
        if let Some(kw) = &view.keywords {
            matcher::keyword_hits(&kw.dfa, hay, |pid, s, e| {
                let used = kw.patterns[pid].1.iter().any(|&(leaf, word)| {
                    rule.leaves.contains(&leaf) && (!word || whole_word(hay, s, e))
                });
                if used {
                    push("keyword", s, e);
                }
            });
        }
        for &leaf in view.regexes.iter().filter(|l| rule.leaves.contains(l)) {
            let LeafKind::Regex(r) = &policy.leaves[leaf].kind else {
                continue;
            };
            let mut pos = 0;
            while let Ok(Some(((s, e), ok))) = matcher::next_regex_hit(r, hay, pos, None) {
                if ok {
                    push("regex", s, e);
                }
                pos = if e > pos { e } else { pos + 1 };
            }
        }
    }
    out.sort_by_key(|e| (e.start, e.end));
    out.dedup();
    out
}

fn keyword_leaf_in(view: &super::program::View, leaf: usize) -> bool {
    view.keywords.as_ref().is_some_and(|k| {
        k.patterns
            .iter()
            .any(|(_, ls)| ls.iter().any(|(l, _)| *l == leaf))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Stage;

    #[test]
    fn homoglyph_and_leetspeak_are_named() {
        let p = CompiledPolicy::from_yaml_str(
            "policy: d\nrules:\n  - {id: bomb, match: {keywords: [bomb]}, action: block}\n  - {id: leet, normalize: [casefold, leetspeak], match: {keywords: [secret]}, action: flag}\n",
            "d.yaml",
        )
        .expect("compiles");
        let text = "a b\u{043e}mb and s3cr3t";
        let d = p.scan(text, Stage::Input, None);
        assert_eq!(d.findings.len(), 2, "{d:?}");
        let ev = explain(&p, text, &d.findings[0]);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].normalized, "bomb");
        assert_eq!(ev[0].changed_by, ["confusables"]);
        let ev = explain(&p, text, &d.findings[1]);
        assert_eq!(ev[0].normalized, "secret");
        assert_eq!(ev[0].view, ["casefold", "leetspeak"]);
        assert_eq!(ev[0].changed_by, ["leetspeak"]);
    }
}
