//! Buffered scanning: a whole text at once.
//!
//! Functions over a [`CompiledPolicy`], whose methods all live in `program.rs`; the stream
//! scanner shares [`rule_findings`] with the buffered scan. One concern in one file (just
//! over 600 lines with its tests): the buffered scan, from leaf hits to findings.

use std::borrow::Cow;

use super::matcher::{self, Hits, MatchCtx, Span, visible_chars};
use super::program::{CompiledPolicy, LeafKind, View};
use super::{Decision, Finding, apply_redactions};
use crate::policy::{Action, Stage};
use crate::text::{
    NormText, NormalizeOptions, RewriteTriggers, has_long_unit, normalize, normalize_rewrites,
    whole_word,
};

// `scan` lives beside the scanner it runs (and `stream` in `stream/`), so that the compiled
// program (`program.rs`) does not refer to its scanners.
impl CompiledPolicy {
    /// Scans a whole text at `stage`. For input, `role` is the message role (`user`, `tool`…):
    /// only rules that read that role apply; `None` applies every rule of the stage.
    pub fn scan(&self, text: &str, stage: Stage, role: Option<&str>) -> Decision {
        scan(self, text, stage, role)
    }
}

/// Scans a whole text at `stage` ([`CompiledPolicy::scan`]).
pub(crate) fn scan(p: &CompiledPolicy, text: &str, stage: Stage, role: Option<&str>) -> Decision {
    let (hits, live) = leaf_hits(p, stage, role, text);
    let gap = |a: usize, b: usize| text.get(a..b).map_or(usize::MAX, visible_chars);
    let findings = rule_findings(
        p,
        stage,
        role,
        &hits,
        &gap,
        &|s| text[s.0..s.1].to_owned(),
        &|ri| live[ri],
    );
    let mut d = decide(p, text, findings);
    if stage == Stage::Input {
        d.triggered = triggers_in(p, &hits, &gap)
            .into_iter()
            .map(str::to_owned)
            .collect();
    }
    d
}

/// Sections whose triggers fire on `hits`.
fn triggers_in<'p>(
    p: &'p CompiledPolicy,
    hits: &Hits,
    gap: &dyn Fn(usize, usize) -> usize,
) -> Vec<&'p str> {
    let never = |_: Span| false;
    let cx = MatchCtx {
        hits,
        exempt: &never,
        gap_chars: gap,
    };
    p.spec
        .sections
        .iter()
        .filter(|s| {
            s.trigger
                .as_ref()
                .is_some_and(|t| matcher::match_node(t, &cx).is_some())
        })
        .map(|s| s.id.as_str())
        .collect()
}

/// Finds the leaf hits of `stage` in `text` that can decide a rule reading `role` (or a
/// section trigger, at the input stage), in original offsets. Also returns, per rule,
/// whether it can fire at all.
///
/// Keywords are cheap and always found. Regexes cost a search each, so a first pass (one
/// regex set over the text) only tells which of them match somewhere; a rule that cannot
/// fire with what the keywords and that pass found (a leaf without hits under `all` or
/// `near`, say) is dead, and a regex only used by dead rules is never searched for its
/// spans. That is exact, not a heuristic: a dead rule's result does not depend on the hits
/// of its regexes (`not` always counts as possibly true), and every live rule gets all its
/// hits. On benign text most rules are dead, which makes a short message's scan a few
/// times cheaper.
fn leaf_hits(
    p: &CompiledPolicy,
    stage: Stage,
    role: Option<&str>,
    text: &str,
) -> (Hits, Vec<bool>) {
    let st = &p.stages[stage.index()];
    let mut hits: Hits = vec![Vec::new(); p.leaves.len()];
    // Which leaves may have hits: keywords exactly, regexes from the set pass.
    let mut may = vec![false; p.leaves.len()];
    // Views with the same per-character steps share that pass; each then runs its own
    // rewrite steps over it (or borrows it when they change nothing).
    let mut passes: Vec<(NormalizeOptions, NormText)> = Vec::new();
    let mut pass_of = Vec::with_capacity(st.views.len());
    for view in &st.views {
        let key = view.opts.char_steps();
        let k = match passes.iter().position(|(o, _)| *o == key) {
            Some(k) => k,
            None => {
                passes.push((key, normalize(key, text)));
                passes.len() - 1
            }
        };
        pass_of.push(k);
    }
    // Each view runs only the rewrite steps that can change its pass (most prose needs none,
    // and the view then reads the pass itself); views left with the same steps over the same
    // pass share one output.
    let mut triggers: Vec<Option<RewriteTriggers>> = vec![None; passes.len()];
    let mut segment_cuts: Vec<Option<bool>> = vec![None; passes.len()];
    let mut outputs: Vec<(usize, NormalizeOptions, Cow<'_, NormText>)> = Vec::new();
    let mut output_of = Vec::with_capacity(st.views.len());
    let mut skip = vec![false; st.views.len()];
    for (v, (view, &k)) in st.views.iter().zip(&pass_of).enumerate() {
        // A ROT13 or reversed-word view whose pass holds none of its prefilter's strings has
        // no hits: its rewrite pass is not run (`compile::automata::pass_prefilter`).
        skip[v] = view.pass_prefilter.as_ref().is_some_and(|pf| {
            let pass = &passes[k].1.text;
            !(pf.is_match(pass.as_str()) || (view.opts.reverse && has_long_unit(pass)))
        });
        let opts = if skip[v] {
            view.opts.char_steps()
        } else if view.opts.rewrites() {
            let mut o = triggers[k]
                .get_or_insert_with(|| RewriteTriggers::of(&passes[k].1, text))
                .needed(view.opts);
            // Letter spacing reads the lexicon too (`a n t h r a x`): the step stays with it.
            if o.segment && !o.letter_spacing {
                let cuts = segment_cuts[k].get_or_insert_with(|| {
                    p.lexicon
                        .as_ref()
                        .is_none_or(|l| l.may_cut(&passes[k].1.text, text))
                });
                o.segment = *cuts;
            }
            o
        } else {
            view.opts
        };
        let at = match outputs.iter().position(|(j, o, _)| *j == k && *o == opts) {
            Some(at) => at,
            None => {
                outputs.push((
                    k,
                    opts,
                    normalize_rewrites(opts, p.lexicon.as_ref(), &passes[k].1, text),
                ));
                outputs.len() - 1
            }
        };
        output_of.push(at);
    }
    let texts: Vec<&NormText> = output_of.iter().map(|&at| &*outputs[at].2).collect();
    let mut sets = Vec::with_capacity(st.views.len());
    for ((view, nt), &skipped) in st.views.iter().zip(&texts).zip(&skip) {
        if skipped {
            sets.push(None);
            continue;
        }
        keyword_hits(view, nt, &mut hits);
        let matching = view
            .regex_set
            .as_ref()
            .map(|set| set.matches_at(&nt.text, 0));
        if let Some(m) = &matching {
            for i in m.iter() {
                may[view.regexes[i]] = true;
            }
        }
        sets.push(matching);
    }
    for (leaf, h) in hits.iter().enumerate() {
        if !h.is_empty() {
            may[leaf] = true;
        }
    }
    // Rules that can still fire, and the regexes they need.
    let mut live = vec![false; p.rules.len()];
    let mut need = vec![false; p.leaves.len()];
    for &ri in &st.rules {
        let rule = &p.rules[ri];
        // Most rules have no leaf with hits: that decides them without walking the tree.
        let some_hit = rule.has_not || rule.leaves.iter().any(|&l| may[l]);
        if some_hit && rule.reads_role(role) && matcher::possible(&rule.node, &may) {
            live[ri] = true;
            for &l in &rule.leaves {
                need[l] = true;
            }
        }
    }
    if stage == Stage::Input {
        for t in p.spec.sections.iter().filter_map(|s| s.trigger.as_ref()) {
            if matcher::possible(t, &may) {
                t.for_each_leaf(&mut |l| need[l] = true);
            }
        }
    }
    for ((view, nt), matching) in st.views.iter().zip(&texts).zip(&sets) {
        let Some(matching) = matching else { continue };
        let hay = nt.text.as_str();
        for i in matching.iter() {
            let leaf = view.regexes[i];
            let LeafKind::Regex(r) = &p.leaves[leaf].kind else {
                continue;
            };
            if !need[leaf] {
                continue;
            }
            let mut pos = 0;
            while let Ok(Some(((s, e), ok))) = matcher::next_regex_hit(r, hay, pos, None) {
                if ok {
                    hits[leaf].push(nt.map.orig_span(s, e));
                }
                pos = e;
            }
        }
    }
    for h in &mut hits {
        if h.len() > 1 {
            h.sort_unstable();
            h.dedup();
        }
    }
    (hits, live)
}

fn keyword_hits(view: &View, nt: &NormText, hits: &mut Hits) {
    let hay = nt.text.as_str();
    if let Some(kw) = &view.keywords {
        matcher::keyword_hits(&kw.dfa, hay, |pid, s, e| {
            for &(leaf, word) in &kw.patterns[pid].1 {
                if !word || whole_word(hay, s, e) {
                    hits[leaf].push(nt.map.orig_span(s, e));
                }
            }
        });
    }
}

/// Evaluates the rules of `stage` over leaf hits, for the rules `include` accepts (allow
/// rules that it accepts still exempt spans of the others).
pub(crate) fn rule_findings(
    p: &CompiledPolicy,
    stage: Stage,
    role: Option<&str>,
    hits: &Hits,
    gap: &dyn Fn(usize, usize) -> usize,
    span_text: &dyn Fn(Span) -> String,
    include: &dyn Fn(usize) -> bool,
) -> Vec<Finding> {
    let st = &p.stages[stage.index()];
    let never = |_: Span| false;
    let mut allows: Vec<(Span, usize)> = Vec::new();
    let mut out: Vec<(usize, Finding)> = Vec::new();
    let cx = MatchCtx {
        hits,
        exempt: &never,
        gap_chars: gap,
    };
    for &ri in &st.rules {
        let rule = &p.rules[ri];
        if rule.action != Action::Allow || !rule.reads_role(role) || !include(ri) {
            continue;
        }
        if let Some(spans) = matcher::match_node(&rule.node, &cx) {
            for s in spans {
                allows.push((s, ri));
                out.push((ri, finding(p, ri, stage, s, span_text)));
            }
        }
    }
    for &ri in &st.rules {
        let rule = &p.rules[ri];
        if rule.action == Action::Allow || !rule.reads_role(role) || !include(ri) {
            continue;
        }
        let exempt = |s: Span| {
            allows.iter().any(|&((a0, a1), ai)| {
                a0 < s.1
                    && s.0 < a1
                    && p.rules[ai]
                        .overrides
                        .as_ref()
                        .is_none_or(|o| o.contains(&ri))
            })
        };
        let cx = MatchCtx {
            hits,
            exempt: &exempt,
            gap_chars: gap,
        };
        if let Some(spans) = matcher::match_node(&rule.node, &cx) {
            for s in spans {
                out.push((ri, finding(p, ri, stage, s, span_text)));
            }
        }
    }
    out.sort_by_key(|(ri, f)| (f.start, f.end, *ri));
    out.into_iter().map(|(_, f)| f).collect()
}

fn finding(
    p: &CompiledPolicy,
    ri: usize,
    stage: Stage,
    s: Span,
    span_text: &dyn Fn(Span) -> String,
) -> Finding {
    let rule = &p.rules[ri];
    Finding {
        rule: rule.id.clone(),
        section: rule.section.clone(),
        stage,
        action: rule.action,
        severity: rule.severity,
        start: s.0,
        end: s.1,
        text: span_text(s),
    }
}

/// Turns findings into a decision on `text`.
fn decide(p: &CompiledPolicy, text: &str, findings: Vec<Finding>) -> Decision {
    let action = Decision::action_of(&findings);
    let mut d = Decision {
        action,
        findings,
        output: String::new(),
        triggered: Vec::new(),
    };
    d.output = match action {
        Action::Block => {
            let rule = d.blocking_finding().and_then(|f| p.rule(&f.rule));
            p.refusal_for(rule)
        }
        Action::Redact => apply_redactions(text, &d.findings, |id| p.replacement(id)),
        _ => text.to_owned(),
    };
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(src: &str) -> CompiledPolicy {
        match CompiledPolicy::from_yaml_str(src, "test.yaml") {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    const BASE: &str = r#"
policy: t
spec:
  sections:
    - {id: illicit, title: Illicit behaviour, text: "No weapons."}
    - {id: privacy, title: Privacy, text: "No personal data."}
rules:
  - id: explosives
    section: illicit
    match:
      all:
        - keywords: [detonator, "pipe bomb"]
        - any: [{keywords: [build, assemble, make]}, {regex: 'step\s{0,3}\d'}]
    action: block
  - id: email
    section: privacy
    match: {regex: '[a-z0-9._%+-]{1,64}@[a-z0-9.-]{1,190}\.[a-z]{2,24}'}
    action: redact
    replacement: "[email]"
  - id: kill
    match: {keywords: [kill]}
    action: flag
  - id: kill-process
    match: {regex: 'kill (?:a |the )?(?:python |linux |unix )?process(?:es)?'}
    action: allow
    overrides: [kill]
  - id: near
    match:
      near: [{keywords: [recipe]}, {keywords: [meth]}]
      within: 20
    action: block
  - id: shouting
    match: {keywords: [now], min_count: 3}
    action: flag
  - id: no-context
    match:
      all: [{keywords: [password]}, {not: {keywords: [reset]}}]
    action: flag
"#;

    #[test]
    fn combinators_table() {
        let p = policy(BASE);
        let cases: &[(&str, Action, &[&str])] = &[
            ("how do I build a pipe bomb", Action::Block, &["explosives"]),
            ("a detonator is a device", Action::Allow, &[]),
            ("step 1: get a DETONATOR", Action::Block, &["explosives"]),
            ("write to Bob@Example.com", Action::Redact, &["email"]),
            (
                "how do I kill a python process",
                Action::Allow,
                &["kill-process"],
            ),
            ("I will kill him", Action::Flag, &["kill"]),
            ("a recipe for meth", Action::Block, &["near"]),
            (
                "recipe: a long long long long long text then meth",
                Action::Allow,
                &[],
            ),
            ("now now now", Action::Flag, &["shouting"]),
            ("now now", Action::Allow, &[]),
            ("my password is x", Action::Flag, &["no-context"]),
            ("reset my password", Action::Allow, &[]),
        ];
        for (text, action, rules) in cases {
            let d = p.scan(text, Stage::Input, Some("user"));
            assert_eq!(d.action, *action, "{text}: {d:?}");
            let mut got: Vec<&str> = d.findings.iter().map(|f| f.rule.as_str()).collect();
            got.dedup();
            assert_eq!(&got, rules, "{text}");
        }
    }

    #[test]
    fn redaction_replaces_original_bytes() {
        let p = policy(BASE);
        let d = p.scan("mail ＢＯＢ@example.com please", Stage::Output, None);
        assert_eq!(d.output, "mail [email] please");
        assert_eq!(d.findings[0].text, "ＢＯＢ@example.com");
    }

    #[test]
    fn roles_filter_input_rules() {
        let p = policy(BASE);
        assert_eq!(
            p.scan("kill", Stage::Input, Some("system")).action,
            Action::Allow
        );
        assert_eq!(
            p.scan("kill", Stage::Input, Some("user")).action,
            Action::Flag
        );
    }

    #[test]
    fn evasions_are_normalized() {
        let p = policy(BASE);
        for t in [
            "build a p\u{200B}ipe b\u{00AD}omb",
            "BUILD A ＰＩＰＥ ＢＯＭＢ",
            "build a pipe bоmb",
        ] {
            assert_eq!(p.scan(t, Stage::Input, None).action, Action::Block, "{t}");
        }
    }
}

#[cfg(test)]
mod near_tests {
    use super::*;

    /// `within` counts characters, not bytes: the byte-gap shortcuts must not change that.
    #[test]
    fn near_counts_characters_between_matches() {
        let p = |within: u32| {
            CompiledPolicy::from_yaml_str(
                &format!(
                    "policy: n\nrules: [{{id: n, match: {{near: [{{keywords: [recipe]}}, {{keywords: [meth]}}], within: {within}}}, action: flag}}]\n"
                ),
                "n.yaml",
            )
            .expect("compiles")
        };
        // Gap " ééé " is 5 characters, 8 bytes.
        let text = "recipe ééé meth";
        assert_eq!(p(5).scan(text, Stage::Input, None).action, Action::Flag);
        assert_eq!(p(4).scan(text, Stage::Input, None).action, Action::Allow);
        assert_eq!(p(8).scan(text, Stage::Input, None).action, Action::Flag);
        // HTML tags and markdown marks in the gap are not characters a reader sees.
        for text in [
            "recipe <span>for</span> meth",
            "recipe <a href=\"https://example.com/x\">for</a> meth",
            "recipe **for** meth",
        ] {
            assert_eq!(
                p(5).scan(text, Stage::Input, None).action,
                Action::Flag,
                "{text}"
            );
        }
        assert_eq!(
            p(4).scan("recipe <b>for a</b> meth", Stage::Input, None)
                .action,
            Action::Allow
        );
    }
}

#[cfg(test)]
mod rewrite_tests {
    use crate::policy::Action;
    use crate::{CompiledPolicy, Stage};

    /// A rewrite step may hide a keyword match (the markup step drops a mark between two
    /// words: `pipe~pipe bomb` reads `pipepipe bomb`); the per-character reading still finds
    /// it, buffered and streamed at every split. The ROT13 and reversed views lend nothing:
    /// their rules must not fire on plain text.
    #[test]
    fn rewrites_only_add_keyword_matches() {
        let p = CompiledPolicy::from_yaml_str(
            r#"
policy: r
normalize: [nfkc, casefold, strip_invisible, confusables, strip_marks, separators, symbols, letter_spacing, markup, entities]
rules:
  - id: bomb
    match: {keywords: ["pipe bomb"]}
    stages: [input, output]
    action: block
  - id: backwards
    normalize: [nfkc, casefold, separators, reverse]
    match: {keywords: [bomb]}
    stages: [input, output]
    action: flag
"#,
            "r.yaml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for text in ["a pipe~pipe bomb here", "pi**pe** bomb", "x*pipe bomb*"] {
            let d = p.scan(text, Stage::Output, None);
            assert!(
                d.findings.iter().any(|f| f.rule == "bomb"),
                "{text:?}: {:?}",
                d.findings
            );
            for split in (0..=text.len()).filter(|&s| text.is_char_boundary(s)) {
                let mut s = p.stream(Stage::Output);
                let mut out = s.push_bytes(&text.as_bytes()[..split]).text;
                out.push_str(&s.push_bytes(&text.as_bytes()[split..]).text);
                out.push_str(&s.finish().text);
                assert!(!out.contains("bomb"), "{text:?} split at {split}: {out:?}");
            }
        }
        let plain = p.scan("a bomb", Stage::Output, None);
        assert!(
            !plain.findings.iter().any(|f| f.rule == "backwards"),
            "{:?}",
            plain.findings
        );
    }

    /// The ROT13 and reversed-word views' prefilters only skip work: with them a scan decides
    /// what it decides without them, on the evasion matrix (its ROT13 and reversed rows
    /// included), on each of its texts read through ROT13 and word by word backwards, and on
    /// words longer than the unit loop's cut.
    #[test]
    fn pass_prefilters_change_no_decision() {
        let p = match CompiledPolicy::load("policies/default.yaml") {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let mut bare = (*p).clone();
        let mut prefiltered = 0;
        for st in &mut bare.stages {
            for v in &mut st.views {
                prefiltered += usize::from(v.pass_prefilter.take().is_some());
            }
        }
        assert!(prefiltered >= 2, "{prefiltered} views have a prefilter");
        let mut texts: Vec<String> = include_str!("../../policies/eval/evasion.jsonl")
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["text"].as_str().map(str::to_string))
            .collect();
        assert!(texts.len() > 1000);
        let rotated: Vec<String> = texts.iter().map(|t| crate::text::rot13_str(t)).collect();
        let reversed: Vec<String> = texts
            .iter()
            .map(|t| {
                t.split(' ')
                    .map(|w| w.chars().rev().collect::<String>())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        texts.extend(rotated);
        texts.extend(reversed);
        texts.push(format!("{}bmob epip a ekam ot woh", "x".repeat(70)));
        texts.push(format!("ekam{} a epip bmob", "x".repeat(70)));
        // A word cut at 64 bytes is read backwards piece by piece: `ob!!…` and `!!!!bm` read
        // `bo` and `mb`, which touch, so the view holds `make … bomb` where the pass holds
        // neither `ekam` nor `bmob`.
        let cut = format!("am{0}ek ob{0}bm", "!".repeat(66));
        assert_eq!(
            bare.scan(&cut, Stage::Input, Some("user")).action,
            Action::Block
        );
        texts.push(cut);
        let mut skipped_blocks = 0;
        for text in &texts {
            for role in [Some("user"), Some("system")] {
                let with = p.scan(text, Stage::Input, role);
                let without = bare.scan(text, Stage::Input, role);
                assert_eq!(
                    format!("{:?}", with.findings),
                    format!("{:?}", without.findings),
                    "{text:?}"
                );
                assert_eq!(with.action, without.action, "{text:?}");
                skipped_blocks += usize::from(with.action == Action::Block);
            }
        }
        // Blocks are among the decisions compared: the ROT13 and reversed rows do fire.
        assert!(skipped_blocks > 100, "{skipped_blocks}");
    }
}
