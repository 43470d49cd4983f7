//! Match trees: a rule's `match:` and a section's `triggers:` → a [`Node`] over leaves, with
//! what the stream scanner needs to know about it (reach, `not`), and the checks on a rule.

use std::collections::HashMap;

use serde_saphyr::Spanned;

use super::lints::shadowing_keyword;
use super::{Compiler, PendingLeaf};
use crate::engine::program::{Node, Rule, RuleExamples};
use crate::policy::raw::{self, NormalizeStep, RawMatch};
use crate::policy::{Action, Loc, Sink, Stage};
use crate::text::{NormalizeOptions, normalize_str};

/// Largest `within` of a `near` match, in characters.
pub const MAX_WITHIN: u32 = 10_000;

/// The normalization of a rule or file: its `normalize:` steps, or `default`.
pub(super) fn norm_opts(
    steps: &Option<Vec<Spanned<NormalizeStep>>>,
    default: NormalizeOptions,
) -> NormalizeOptions {
    match steps {
        None => default,
        Some(steps) => {
            let mut o = NormalizeOptions::none();
            for s in steps {
                match s.value {
                    NormalizeStep::Nfkc => o.nfkc = true,
                    NormalizeStep::Casefold => o.casefold = true,
                    NormalizeStep::StripInvisible => o.strip_invisible = true,
                    NormalizeStep::Confusables => o.confusables = true,
                    NormalizeStep::Leetspeak => o.leetspeak = true,
                    NormalizeStep::StripMarks => o.strip_marks = true,
                    NormalizeStep::Separators => o.separators = true,
                    NormalizeStep::Symbols => o.symbols = true,
                    NormalizeStep::LetterSpacing => o.letter_spacing = true,
                    NormalizeStep::Markup => o.markup = true,
                    NormalizeStep::Entities => o.entities = true,
                    NormalizeStep::Base64 => o.base64 = true,
                    NormalizeStep::Hex => o.hex = true,
                    NormalizeStep::Rot13 => o.rot13 = true,
                    NormalizeStep::Reverse => o.reverse = true,
                    NormalizeStep::Joins => o.joins = true,
                    NormalizeStep::Segment => o.segment = true,
                }
            }
            o
        }
    }
}

/// The joined form of a normalized phrase of two or three words of at least four letters
/// each (`pipe bomb` → `pipebomb`), or `None`.
fn joined_form(phrase: &str) -> Option<String> {
    let words: Vec<&str> = phrase.split(' ').collect();
    let ok = (2..=3).contains(&words.len())
        && words
            .iter()
            .all(|w| w.chars().count() >= 4 && w.chars().all(char::is_alphabetic));
    ok.then(|| words.concat())
}

/// What compiling a match tree learned about it.
pub(super) struct NodeInfo {
    /// The compiled tree.
    pub(super) node: Node,
    /// Reach in original bytes; `None` when unbounded.
    reach: Option<usize>,
    /// Whether the tree uses `not`.
    has_not: bool,
    /// Whether the tree has a positive (non-negated) leaf.
    positive: bool,
}

impl Compiler {
    pub(super) fn rule(
        &mut self,
        r: &Spanned<raw::RawRule>,
        default_norm: NormalizeOptions,
        sections: &HashMap<String, ()>,
        sink: &mut Sink<'_>,
    ) -> Option<Rule> {
        let raw = &r.value;
        let loc = Loc::from(r.referenced);
        let id = raw.id.value.trim().to_owned();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
        {
            sink.error(
                Loc::from(raw.id.referenced),
                None,
                format!("rule id `{id}` must be non-empty letters, digits, `.`, `_`, `-` or `:`"),
            );
            return None;
        }
        let idr = Some(id.as_str());
        if let Some(sec) = &raw.section
            && !sections.contains_key(&sec.value)
        {
            sink.error(
                Loc::from(sec.referenced),
                idr,
                format!(
                    "unknown section `{}` (define it under spec.sections)",
                    sec.value
                ),
            );
        }
        let mut stages: Vec<Stage> = raw
            .stages
            .clone()
            .unwrap_or_else(|| vec![Stage::Input, Stage::Output]);
        stages.sort();
        stages.dedup();
        if stages.is_empty() {
            sink.error(loc, idr, "`stages` is empty: the rule would never run");
        }
        let roles = raw
            .roles
            .clone()
            .unwrap_or_else(|| vec!["user".into(), "tool".into()]);
        let plain = |a: raw::RawAction| match a {
            raw::RawAction::Block | raw::RawAction::Escalate => Action::Block,
            raw::RawAction::Redact => Action::Redact,
            raw::RawAction::Flag => Action::Flag,
            raw::RawAction::Allow => Action::Allow,
        };
        let escalate = raw.action == raw::RawAction::Escalate;
        let action = match &raw.fallback {
            Some(f) if !escalate => {
                sink.error(
                    Loc::from(f.referenced),
                    idr,
                    "`fallback` only applies to `escalate` rules",
                );
                Action::Block
            }
            Some(f) if matches!(f.value, raw::RawAction::Allow | raw::RawAction::Escalate) => {
                sink.error(
                    Loc::from(f.referenced),
                    idr,
                    "`fallback` must be `block`, `redact` or `flag`",
                );
                Action::Block
            }
            Some(f) => plain(f.value),
            None => plain(raw.action),
        };
        if escalate && raw.section.is_none() {
            sink.error(
                loc,
                idr,
                "an `escalate` rule needs a `section`: it names what the judge classifies against",
            );
        }
        if raw.replacement.is_some() && action != Action::Redact {
            sink.warn(loc, idr, "`replacement` only applies to `redact` rules");
        }
        if raw.overrides.is_some() && action != Action::Allow {
            sink.error(loc, idr, "`overrides` only applies to `allow` rules");
        }
        let norm = norm_opts(&raw.normalize, default_norm);
        let info = self.node(&raw.matcher, norm, &stages, idr, sink)?;
        if !info.positive {
            sink.error(
                Loc::from(raw.matcher.referenced),
                idr,
                "the match has no positive part: a rule cannot fire on absence alone",
            );
            return None;
        }
        if action == Action::Allow && (info.reach.is_none() || info.has_not) {
            sink.error(
                Loc::from(raw.matcher.referenced),
                idr,
                "allow rules must be bounded (keywords, regex, any, near) so they can apply to streams",
            );
        }
        let tests = raw.tests.as_ref();
        if tests.is_none_or(|t| t.should_match.is_empty() && t.no_match.is_empty()) {
            sink.warn(
                loc,
                idr,
                "rule has no tests (add `tests: {match: [...], no_match: [...]}`)",
            );
        }
        let severity = raw.severity;
        Some(Rule {
            id,
            description: raw.description.clone(),
            section: raw.section.as_ref().map(|s| s.value.clone()),
            stages,
            roles,
            action,
            escalate,
            replacement: raw
                .replacement
                .clone()
                .unwrap_or_else(|| "[redacted]".to_owned()),
            severity,
            examples: RuleExamples {
                should_match: tests.map(|t| t.should_match.clone()).unwrap_or_default(),
                no_match: tests.map(|t| t.no_match.clone()).unwrap_or_default(),
            },
            file: sink.file.to_path_buf(),
            loc,
            leaves: leaf_list(&info.node),
            node: info.node,
            overrides: None,
            reach: info.reach,
            has_not: info.has_not,
        })
    }

    pub(super) fn node(
        &mut self,
        m: &Spanned<RawMatch>,
        norm: NormalizeOptions,
        stages: &[Stage],
        rule: Option<&str>,
        sink: &mut Sink<'_>,
    ) -> Option<NodeInfo> {
        let loc = Loc::from(m.referenced);
        let raw = &m.value;
        let kinds = [
            raw.keywords.is_some(),
            raw.regex.is_some(),
            raw.all.is_some(),
            raw.any.is_some(),
            raw.not.is_some(),
            raw.near.is_some(),
        ];
        let n_kinds = kinds.iter().filter(|k| **k).count();
        if n_kinds != 1 {
            sink.error(
                loc,
                rule,
                if n_kinds == 0 {
                    "empty match: give one of keywords, regex, all, any, not, near"
                } else {
                    "a match takes exactly one of keywords, regex, all, any, not, near (nest them in all/any)"
                },
            );
            return None;
        }
        let misplaced = |sink: &mut Sink<'_>, what: &str, kind: &str| {
            sink.error(loc, rule, format!("`{what}` only applies to {kind}"));
        };
        if raw.word.is_some() && raw.keywords.is_none() {
            misplaced(sink, "word", "keywords");
        }
        if (raw.validate.is_some() || raw.max_len.is_some()) && raw.regex.is_none() {
            misplaced(sink, "validate/max_len", "regex");
        }
        if raw.within.is_some() && raw.near.is_none() {
            misplaced(sink, "within", "near");
        }
        let mut info = if let Some(words) = &raw.keywords {
            let mut norm = norm;
            if self.implicit_norm {
                // Keyword leaves of a rule without `normalize:` read the character-level
                // rewrites too (NormalizeOptions::keywords).
                let k = NormalizeOptions::keywords();
                norm.separators = true;
                norm.symbols |= k.symbols;
                norm.letter_spacing |= k.letter_spacing;
                norm.markup |= k.markup;
                norm.entities |= k.entities;
            }
            let mut normalized: Vec<String> = Vec::new();
            // Keywords are written in plain text: a ROT13 view rotates the text, not them.
            let mut kw_norm = norm;
            kw_norm.rot13 = false;
            kw_norm.reverse = false;
            for w in words {
                let n = normalize_str(kw_norm, w);
                if n.trim().is_empty() {
                    sink.error(
                        loc,
                        rule,
                        format!("keyword {w:?} is empty after normalization"),
                    );
                    continue;
                }
                if !normalized.contains(&n) {
                    normalized.push(n);
                }
            }
            if normalized.is_empty() {
                sink.error(loc, rule, "`keywords` is empty");
                return None;
            }
            let word = raw.word.unwrap_or(true);
            for long in &normalized {
                if let Some(short) = shadowing_keyword(long, &normalized, word) {
                    sink.warn(
                        loc,
                        rule,
                        format!("keyword {long:?} is shadowed by {short:?}, which matches wherever it does"),
                    );
                }
            }
            if norm.separators {
                // `pipe bomb` also as `pipebomb`: joined forms of short phrases whose words
                // are long enough not to join into other words by chance.
                let joined: Vec<String> = normalized
                    .iter()
                    .filter_map(|n| joined_form(n))
                    .filter(|j| !normalized.contains(j))
                    .collect();
                for j in joined {
                    if !normalized.contains(&j) {
                        normalized.push(j);
                    }
                }
            }
            let view = self.view(norm);
            self.leaves.push((
                view,
                PendingLeaf::Keywords {
                    words: normalized,
                    word: raw.word.unwrap_or(true),
                },
            ));
            NodeInfo {
                node: Node::Leaf(self.leaves.len() - 1),
                reach: Some(0),
                has_not: false,
                positive: true,
            }
        } else if let Some(pattern) = &raw.regex {
            let view = self.view(norm);
            let key = (
                view,
                pattern.clone(),
                raw.max_len,
                raw.validate.as_ref().map(|v| format!("{v:?}")),
                stages.iter().any(|s| *s != Stage::Input),
            );
            let index = match self.regex_leaves.get(&key) {
                Some(&i) => i,
                None => {
                    let leaf = self.regex(pattern, raw, norm, stages, rule, loc, sink)?;
                    self.leaves.push((view, PendingLeaf::Regex(Box::new(leaf))));
                    self.regex_leaves.insert(key, self.leaves.len() - 1);
                    self.leaves.len() - 1
                }
            };
            NodeInfo {
                node: Node::Leaf(index),
                reach: Some(0),
                has_not: false,
                positive: true,
            }
        } else if let Some(children) = raw.any.as_ref().or(raw.all.as_ref()) {
            let is_all = raw.all.is_some();
            if children.is_empty() {
                sink.error(
                    loc,
                    rule,
                    if is_all {
                        "`all` is empty"
                    } else {
                        "`any` is empty"
                    },
                );
                return None;
            }
            let mut nodes = Vec::new();
            let (mut reach, mut has_not, mut positive) = (Some(0), false, false);
            for c in children {
                let ci = self.node(c, norm, stages, rule, sink)?;
                reach = reach.zip(ci.reach).map(|(a, b)| a.max(b));
                has_not |= ci.has_not;
                positive |= ci.positive;
                nodes.push(ci.node);
            }
            if is_all && nodes.len() > 1 {
                // Parts of `all` may be anywhere in the text: unbounded.
                reach = None;
            }
            NodeInfo {
                node: if is_all {
                    Node::All(nodes)
                } else {
                    Node::Any(nodes)
                },
                reach,
                has_not,
                positive,
            }
        } else if let Some(child) = &raw.not {
            let ci = self.node(child, norm, stages, rule, sink)?;
            NodeInfo {
                node: Node::Not(Box::new(ci.node)),
                reach: None,
                has_not: true,
                positive: false,
            }
        } else if let Some(pair) = &raw.near {
            if pair.len() != 2 {
                sink.error(loc, rule, "`near` takes exactly two matches");
                return None;
            }
            let Some(within) = raw.within else {
                sink.error(
                    loc,
                    rule,
                    "`near` needs `within: N` (characters between the two matches)",
                );
                return None;
            };
            let a = self.node(&pair[0], norm, stages, rule, sink)?;
            let b = self.node(&pair[1], norm, stages, rule, sink)?;
            if !a.positive || !b.positive || a.has_not || b.has_not {
                sink.error(
                    loc,
                    rule,
                    "both parts of `near` must be positive matches (no `not`)",
                );
                return None;
            }
            if within > MAX_WITHIN {
                sink.error(
                    loc,
                    rule,
                    format!("`within: {within}` is more than {MAX_WITHIN} characters; streams would hold back all of it"),
                );
                return None;
            }
            let within = within as usize;
            // A partner starts at most `within` characters (4 bytes each) and some markup
            // after a match; once text that far on is scanned, the match is decided.
            let reach = a
                .reach
                .zip(b.reach)
                .map(|(x, y)| x.max(y) + within * 4 + crate::engine::matcher::MARKUP_SLACK);
            NodeInfo {
                node: Node::Near {
                    a: Box::new(a.node),
                    b: Box::new(b.node),
                    within,
                },
                reach,
                has_not: false,
                positive: true,
            }
        } else {
            return None;
        };
        if let Some(min) = raw.min_count {
            if min == 0 {
                sink.error(loc, rule, "`min_count` must be at least 1");
                return None;
            }
            if min > 1 {
                info.node = Node::Count {
                    node: Box::new(info.node),
                    min: min as usize,
                };
                info.reach = None;
            }
        }
        Some(info)
    }
}

/// The leaves a match tree uses, each once, in first-use order.
fn leaf_list(node: &Node) -> Vec<usize> {
    let mut out = Vec::new();
    node.for_each_leaf(&mut |l| {
        if !out.contains(&l) {
            out.push(l);
        }
    });
    out
}
