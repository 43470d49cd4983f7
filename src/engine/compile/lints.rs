//! Lints: warnings about rules that compile but do less than their author meant.

use std::collections::{HashMap, HashSet};

use crate::engine::program::{Node, Rule, StageIndex};
use crate::policy::{Diagnostic, Level};
use crate::text::whole_word;

/// The first of `keywords` (normalized, one match) shorter than `long` that matches wherever
/// `long` does, so `long` can never fire on its own: a substring of it (at word boundaries
/// when `word`).
pub(super) fn shadowing_keyword<'k>(
    long: &str,
    keywords: &'k [String],
    word: bool,
) -> Option<&'k String> {
    keywords.iter().find(|short| {
        short.len() < long.len()
            && long
                .match_indices(short.as_str())
                .any(|(i, _)| !word || whole_word(long, i, i + short.len()))
    })
}

/// Warns about keywords that can never fire on their own because an earlier-declared whole
/// keyword of a blocking rule always covers them ("a keyword shadowed by another"): the same
/// normalized keyword used by two rules with the same action.
pub(super) fn shadow_warnings(
    rules: &[Rule],
    stages: &[StageIndex; 3],
    diags: &mut Vec<Diagnostic>,
) {
    // Pattern ids are per stage and view, so the key carries both.
    let mut owner: HashMap<(usize, usize, usize), usize> = HashMap::new();
    let mut leaf_rule: HashMap<usize, usize> = HashMap::new();
    for (ri, r) in rules.iter().enumerate() {
        for &l in &r.leaves {
            leaf_rule.insert(l, ri);
        }
    }
    let mut reported = HashSet::new();
    for (si, st) in stages.iter().enumerate() {
        for (vi, v) in st.views.iter().enumerate() {
            let Some(kw) = &v.keywords else { continue };
            for (pid, (_, users)) in kw.patterns.iter().enumerate() {
                for (leaf, _) in users {
                    let Some(&ri) = leaf_rule.get(leaf) else {
                        continue;
                    };
                    let first = *owner.entry((si, vi, pid)).or_insert(ri);
                    if first != ri
                        && rules[first].action == rules[ri].action
                        && matches!(rules[ri].node, Node::Leaf(_) | Node::Any(_))
                        && matches!(rules[first].node, Node::Leaf(_) | Node::Any(_))
                        && reported.insert((first, ri))
                    {
                        diags.push(Diagnostic {
                            level: Level::Warning,
                            file: rules[ri].file.clone(),
                            line: rules[ri].loc.line,
                            column: rules[ri].loc.column,
                            rule: Some(rules[ri].id.clone()),
                            message: format!(
                                "a keyword of this rule is also a keyword of `{}` with the same action; one of them is redundant",
                                rules[first].id
                            ),
                        });
                    }
                }
            }
        }
    }
}
