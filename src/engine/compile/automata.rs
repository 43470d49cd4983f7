//! Automata: per stage and normalization view, one keyword automaton (with the depth of each
//! state, for the stream's live-match frontier) and one regex set over the leaves the stage
//! uses, and the worst-case stream holdback they imply.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::{Compiler, PendingLeaf};
use crate::engine::program::{
    KeywordSet, LOOKAHEAD, Leaf, LeafKind, RegexSet, Rule, Spec, StageIndex, View,
};
use crate::policy::{Diagnostic, Level, Stage};
use crate::text::{NormalizeOptions, rot13_str};

use crate::engine::live::KeywordDepths;

impl Compiler {
    pub(super) fn build_stages(
        mut self,
        rules: &[Rule],
        spec: &Spec,
        main: &Path,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<(Vec<Leaf>, [StageIndex; 3])> {
        // The rewrite steps only ever add keyword matches: a view with rewrite steps (but not
        // an optional reading such as ROT13 or reversed words, whose rules must not fire on
        // plain text) lends its keyword leaves to the view of its per-character steps alone,
        // so a rewrite that hides a match (a mark removed between two words joins them:
        // `pipe~pipe bomb` reads `pipepipe bomb`) cannot take away what plain normalization
        // finds. Hits of both readings go to the same leaf.
        let companion: Vec<Option<usize>> = (0..self.views.len())
            .map(|v| {
                let o = self.views[v];
                let lends = o.rewrites()
                    && !o.rot13
                    && !o.reverse
                    && self
                        .leaves
                        .iter()
                        .any(|(lv, p)| *lv == v && matches!(p, PendingLeaf::Keywords { .. }));
                lends.then(|| self.view(o.char_steps()))
            })
            .collect();
        let mut stages: [StageIndex; 3] = Default::default();
        // Views of different stages with the same regexes share one set.
        let mut sets: HashMap<Vec<usize>, Arc<RegexSet>> = HashMap::new();
        for stage in Stage::ALL {
            let mut used: HashSet<usize> = HashSet::new();
            let rule_idx: Vec<usize> = (0..rules.len())
                .filter(|&i| rules[i].applies_to(stage))
                .collect();
            for &i in &rule_idx {
                used.extend(&rules[i].leaves);
            }
            if stage == Stage::Input {
                for t in spec.sections.iter().filter_map(|s| s.trigger.as_ref()) {
                    t.for_each_leaf(&mut |l| {
                        used.insert(l);
                    });
                }
            }
            let mut views = Vec::new();
            let mut holdback = 0;
            for (vi, &opts) in self.views.iter().enumerate() {
                let mut kw: HashMap<String, usize> = HashMap::new();
                let mut kw_list: Vec<(usize, Vec<(usize, bool)>)> = Vec::new();
                let mut kw_strings: Vec<String> = Vec::new();
                let mut regexes = Vec::new();
                let mut max_regex_len = 0;
                for (li, (v, pending)) in self.leaves.iter().enumerate() {
                    let lent = companion.get(*v).copied().flatten() == Some(vi)
                        && matches!(pending, PendingLeaf::Keywords { .. });
                    if (*v != vi && !lent) || !used.contains(&li) {
                        continue;
                    }
                    match pending {
                        PendingLeaf::Keywords { words, word } => {
                            for w in words {
                                let pid = *kw.entry(w.clone()).or_insert_with(|| {
                                    kw_strings.push(w.clone());
                                    kw_list.push((w.len(), Vec::new()));
                                    kw_list.len() - 1
                                });
                                kw_list[pid].1.push((li, *word));
                            }
                        }
                        PendingLeaf::Regex(r) => {
                            regexes.push(li);
                            max_regex_len = max_regex_len.max(r.max_len);
                        }
                    }
                }
                if kw_list.is_empty() && regexes.is_empty() {
                    continue;
                }
                let keywords = if kw_list.is_empty() {
                    None
                } else {
                    let dfa = aho_corasick::dfa::DFA::builder()
                        .match_kind(aho_corasick::MatchKind::Standard)
                        .build(&kw_strings);
                    let dfa = match dfa {
                        Ok(d) => d,
                        Err(e) => {
                            diags.push(Diagnostic {
                                level: Level::Error,
                                file: main.to_path_buf(),
                                line: 0,
                                column: 0,
                                rule: None,
                                message: format!("keyword automaton too large: {e}"),
                            });
                            return None;
                        }
                    };
                    let max_len = kw_list.iter().map(|k| k.0).max().unwrap_or(0);
                    let depths = KeywordDepths::build(&dfa, &kw_strings);
                    Some(KeywordSet {
                        dfa,
                        patterns: kw_list,
                        max_len,
                        depths,
                    })
                };
                let regex_set = if regexes.is_empty() {
                    None
                } else if let Some(set) = sets.get(&regexes) {
                    Some(Arc::clone(set))
                } else {
                    let hirs: Vec<&regex_syntax::hir::Hir> = regexes
                        .iter()
                        .filter_map(|&li| match &self.leaves[li].1 {
                            PendingLeaf::Regex(r) => Some(&r.regex.hir),
                            PendingLeaf::Keywords { .. } => None,
                        })
                        .collect();
                    let built = RegexSet::build(&hirs);
                    match built {
                        Ok(set) => {
                            let set = Arc::new(set);
                            sets.insert(regexes.clone(), Arc::clone(&set));
                            Some(set)
                        }
                        Err(e) => {
                            diags.push(Diagnostic {
                                level: Level::Error,
                                file: main.to_path_buf(),
                                line: 0,
                                column: 0,
                                rule: None,
                                message: format!("the {} regexes of this policy do not compile together within limits: {e}", hirs.len()),
                            });
                            return None;
                        }
                    }
                };
                let kw_max = keywords.as_ref().map_or(0, |k| k.max_len);
                holdback = holdback.max(kw_max.max(max_regex_len) + LOOKAHEAD);
                let pass_prefilter = if regexes.is_empty() {
                    pass_prefilter(opts, &kw_strings)
                } else {
                    None
                };
                views.push(View {
                    opts,
                    keywords,
                    regexes,
                    regex_set,
                    pass_prefilter,
                });
            }
            // Near rules reach past their matches.
            for &i in &rule_idx {
                if let Some(r) = rules[i].reach {
                    holdback = holdback.max(r);
                }
            }
            stages[stage.index()] = StageIndex {
                views,
                rules: rule_idx,
                holdback,
            };
        }
        let leaves = self
            .leaves
            .into_iter()
            .map(|(_, pending)| Leaf {
                kind: match pending {
                    PendingLeaf::Keywords { .. } => LeafKind::Keywords,
                    PendingLeaf::Regex(r) => LeafKind::Regex(r),
                },
            })
            .collect();
        Some((leaves, stages))
    }
}

/// Strings one of which the per-character pass of a keyword view with the options `opts` must
/// hold for any of `keywords` to match the view's text, when its only rewrite step is ROT13 or
/// reversed words (`None` otherwise):
///
/// - ROT13 maps each ASCII letter to another and leaves every other byte: the rotated text
///   holds a keyword exactly where the pass holds the keyword rotated.
/// - Reversed words: a view word is a pass word read backwards, with the
///   punctuation at its edges dropped, so each word of a keyword found in the view text, read
///   backwards, is in the pass (the keyword's longest word stands for it). A pass with a unit
///   longer than the unit loop's cut (64 bytes) is not prefiltered: the pieces of a cut word are read backwards one
///   by one (the scan checks).
///
/// So a scan that finds none of these strings in the pass knows the view has no hits without
/// running its rewrite pass.
pub(super) fn pass_prefilter(
    opts: NormalizeOptions,
    keywords: &[String],
) -> Option<aho_corasick::AhoCorasick> {
    let mut only = opts;
    only.rot13 = false;
    only.reverse = false;
    if only.rewrites() || opts.rot13 == opts.reverse || keywords.is_empty() {
        return None;
    }
    let patterns: Vec<String> = keywords
        .iter()
        .map(|k| {
            if opts.rot13 {
                rot13_str(k)
            } else {
                let longest = k
                    .split(char::is_whitespace)
                    .max_by_key(|w| w.len())
                    .unwrap_or(k);
                longest.chars().rev().collect()
            }
        })
        .filter(|p| !p.is_empty())
        .collect();
    if patterns.len() < keywords.len() {
        return None;
    }
    aho_corasick::AhoCorasick::builder()
        .kind(Some(aho_corasick::AhoCorasickKind::DFA))
        .build(&patterns)
        .ok()
}
