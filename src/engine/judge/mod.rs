//! The judge's side of the engine: the spec sections as a classifier prompt, the strict
//! verdict a judge model answers, and the cascade between rules and judge — which decisions
//! escalate, and what a verdict turns them into. No HTTP here: calling a model is the
//! `layer`'s and `proxy`'s job; this module says what to ask and how to read the answer.
//!
//! The same section text serves three uses: injected for the answering model to deliberate
//! over, rendered as the judge's system prompt ([`render_system`], [`judge_prompt`]), and its labeled examples checked
//! by `deliberate test`.
//!
//! ```
//! use deliberate::engine::CompiledPolicy;
//! use deliberate::engine::judge::{parse_verdict, Escalation};
//! use deliberate::policy::{Action, Stage};
//!
//! let policy = CompiledPolicy::from_yaml_str(r#"
//! policy: demo
//! spec:
//!   sections:
//!     - id: weapons
//!       text: Do not help build weapons.
//!       judge:
//!         violates: ["Instructions for building a weapon."]
//!         safe: ["Products, places or games named after weapons."]
//! rules:
//!   - id: bomb
//!     section: weapons
//!     match: {keywords: [bomb]}
//!     action: escalate
//!     tests: {match: ["a bomb"], no_match: ["a balm"]}
//! "#, "demo.yaml").unwrap();
//!
//! // Without a judge, an escalating rule blocks (its fallback).
//! let d = policy.scan("Where is the nearest bomb shelter?", Stage::Input, Some("user"));
//! assert_eq!(d.action, Action::Block);
//! // With one, the decision escalates to the rule's sections …
//! let Escalation { sections, .. } = policy.escalation(&d).unwrap();
//! assert_eq!(sections, ["weapons"]);
//! // … and a verdict of no violation takes the escalated findings out.
//! let v = parse_verdict(
//!     r#"{"violation": false, "section": null, "rule_ids": [], "confidence": 0.9,
//!         "rationale": "A shelter is a place of safety."}"#,
//!     &sections,
//! ).unwrap();
//! assert!(!v.violation);
//! let cleared = policy.without_escalated("Where is the nearest bomb shelter?", &d);
//! assert_eq!(cleared.action, Action::Allow);
//! ```

mod prompt;
mod verdict;

pub use prompt::{JudgePrompt, judge_prompt, render_system};
pub use verdict::{Verdict, VerdictError, parse_verdict};

pub use super::judge_policy::{
    Definition, FailMode, JudgeExample, JudgeMode, JudgePolicy, SectionJudge, StreamJudgeMode,
};

use super::{CompiledPolicy, Decision, Finding, Section, apply_redactions};
use crate::policy::Action;

/// A decision that goes to the judge instead of standing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Escalation {
    /// The sections the judge classifies against (those of the escalated rules).
    pub sections: Vec<String>,
    /// The escalated rule ids.
    pub rules: Vec<String>,
}

impl Escalation {
    /// Adds the rule and section of `f`, a finding of an `escalate` rule (each once).
    pub fn add(&mut self, f: &Finding) {
        if !self.rules.contains(&f.rule) {
            self.rules.push(f.rule.clone());
        }
        if let Some(s) = &f.section
            && !self.sections.contains(s)
        {
            self.sections.push(s.clone());
        }
    }
}

impl CompiledPolicy {
    /// Whether `decision` escalates: some `escalate` rule fired and no other rule blocks on
    /// its own. `None` when the decision stands as it is.
    pub fn escalation(&self, decision: &Decision) -> Option<Escalation> {
        let mut out = Escalation::default();
        for f in &decision.findings {
            let escalates = self.rule(&f.rule).is_some_and(|r| r.escalate);
            if !escalates {
                if f.action == Action::Block {
                    return None;
                }
                continue;
            }
            out.add(f);
        }
        (!out.rules.is_empty()).then_some(out)
    }

    /// `decision` without the findings of `escalate` rules (what a verdict of no violation
    /// leaves): the action and output recomputed from the rest. `text` is the scanned text.
    pub fn without_escalated(&self, text: &str, decision: &Decision) -> Decision {
        let findings: Vec<_> = decision
            .findings
            .iter()
            .filter(|f| !self.rule(&f.rule).is_some_and(|r| r.escalate))
            .cloned()
            .collect();
        let action = Decision::action_of(&findings);
        let output = match action {
            Action::Block => decision.output.clone(),
            Action::Redact => apply_redactions(text, &findings, |id| self.replacement(id)),
            Action::Flag | Action::Allow => text.to_owned(),
        };
        Decision {
            action,
            findings,
            output,
            triggered: decision.triggered.clone(),
        }
    }

    /// The sections judged at `stage` without an escalation: the `judge.sections` list, or
    /// every judge-ready section.
    pub fn judged_sections(&self) -> Vec<&Section> {
        let ready = |s: &&Section| s.judge.as_ref().is_some_and(SectionJudge::is_ready);
        if self.judge.sections.is_empty() {
            self.spec.sections.iter().filter(ready).collect()
        } else {
            self.judge
                .sections
                .iter()
                .filter_map(|id| self.spec.sections.iter().find(|s| &s.id == id))
                .collect()
        }
    }

    /// The refusal for a judge's violation of `section`.
    pub fn refusal_for_section(&self, section: Option<&str>) -> String {
        self.render_refusal(section.unwrap_or("policy"), "judge")
    }
}

/// A stable 64-bit hash (FNV-1a) of `parts`, separated so `["ab", "c"]` and `["a", "bc"]`
/// differ: the sampling decision and half of the verdict cache key.
pub fn stable_hash(parts: &[&str]) -> u64 {
    use std::hash::Hasher as _;
    let mut fnv = fnv::FnvHasher::default();
    for p in parts {
        fnv.write(p.as_bytes());
        fnv.write_u8(0xff);
    }
    let mut h = fnv.finish();
    // Final avalanche (splitmix64), so the top bits used for sampling are well mixed.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests;
