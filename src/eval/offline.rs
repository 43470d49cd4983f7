//! Offline evaluation: a policy's rules against labeled data, no model involved.
//!
//! ```
//! use deliberate::eval::dataset::{Case, Label};
//! use deliberate::eval::offline::{Positive, evaluate_cases};
//! use deliberate::{CompiledPolicy, Stage};
//!
//! let policy = CompiledPolicy::from_yaml_str(r#"
//! policy: demo
//! rules:
//!   - id: bomb
//!     match: {keywords: ["pipe bomb"]}
//!     action: block
//! "#, "demo.yaml").unwrap();
//! let case = |text: &str, label| Case {
//!     source: "x:1".into(), id: "1".into(), text: text.into(), stage: Stage::Input,
//!     role: Some("user".into()), label, category: "c".into(),
//! };
//! let cases = [case("build a pipe bomb", Label::Unsafe), case("kill a process", Label::Safe)];
//! let r = evaluate_cases(&policy, &cases, Positive::Block);
//! assert_eq!(r.summary.all.catch_rate().value, Some(1.0));
//! assert_eq!(r.summary.all.false_block_rate().value, Some(0.0));
//! ```

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{Value, json};

use super::dataset::{Case, Label, SpanCase};
use super::metrics::{Confusion, Rate};
use crate::engine::CompiledPolicy;
use crate::engine::{Decision, Finding};
use crate::policy::{Action, Severity};

/// What counts as "caught".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Positive {
    /// The decision is `block`.
    #[default]
    Block,
    /// The decision is `block` or `redact`.
    BlockOrRedact,
    /// Any finding at all, `flag` included.
    Any,
}

impl Positive {
    /// Whether `d` counts as caught.
    pub fn caught(self, d: &Decision) -> bool {
        match self {
            Positive::Block => d.action == Action::Block,
            Positive::BlockOrRedact => matches!(d.action, Action::Block | Action::Redact),
            Positive::Any => !d.findings.is_empty(),
        }
    }

    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Positive::Block => "block",
            Positive::BlockOrRedact => "block-or-redact",
            Positive::Any => "any",
        }
    }
}

/// What the policy did to one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The decision's action.
    pub action: Action,
    /// Whether it counts as caught.
    pub caught: bool,
    /// The finding that decided it (the blocking one, else the most severe), if any.
    pub rule: Option<String>,
    /// That finding's severity.
    pub severity: Option<Severity>,
}

fn deciding(d: &Decision) -> Option<&Finding> {
    d.blocking_finding().or_else(|| {
        d.findings
            .iter()
            .max_by_key(|f| (f.action, f.severity, std::cmp::Reverse(f.start)))
    })
}

/// Scans one case.
pub fn outcome(policy: &CompiledPolicy, case: &Case, positive: Positive) -> Outcome {
    let d = policy.scan(&case.text, case.stage, case.role.as_deref());
    let f = deciding(&d);
    Outcome {
        action: d.action,
        caught: positive.caught(&d),
        rule: f.map(|f| f.rule.clone()),
        severity: f.map(|f| f.severity),
    }
}

/// Overall and per-category confusion matrices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// All cases.
    pub all: Confusion,
    /// Per category.
    pub by_category: BTreeMap<String, Confusion>,
}

impl Summary {
    /// Counts one case.
    pub fn add(&mut self, case: &Case, caught: bool) {
        let u = case.label == Label::Unsafe;
        self.all.add(u, caught);
        self.by_category
            .entry(case.category.clone())
            .or_default()
            .add(u, caught);
    }

    /// Adds another summary's counts.
    pub fn merge(&mut self, other: &Summary) {
        add_confusion(&mut self.all, &other.all);
        for (k, c) in &other.by_category {
            add_confusion(self.by_category.entry(k.clone()).or_default(), c);
        }
    }

    /// The JSON shape: `n`, the counts, `catch_rate`, `false_block_rate`, `precision`,
    /// `recall`, `f1` (each a [`Rate`]: `{value, ci, k, n}`), and `by_category`.
    pub fn to_json(&self) -> Value {
        let mut v = confusion_json(&self.all);
        let cats: serde_json::Map<String, Value> = self
            .by_category
            .iter()
            .map(|(k, c)| (k.clone(), confusion_json(c)))
            .collect();
        v["by_category"] = Value::Object(cats);
        v
    }
}

fn add_confusion(a: &mut Confusion, b: &Confusion) {
    a.tp += b.tp;
    a.fn_ += b.fn_;
    a.fp += b.fp;
    a.tn += b.tn;
}

/// One confusion matrix as JSON: the counts, and `catch_rate`, `false_block_rate`,
/// `precision`, `recall`, `f1`, each a [`Rate`] (`{value, ci, k, n}`).
pub fn confusion_json(c: &Confusion) -> Value {
    json!({
        "n": c.n(),
        "unsafe": c.tp + c.fn_,
        "safe": c.fp + c.tn,
        "caught_unsafe": c.tp,
        "missed_unsafe": c.fn_,
        "false_blocks": c.fp,
        "passed_safe": c.tn,
        "catch_rate": c.catch_rate(),
        "false_block_rate": c.false_block_rate(),
        "precision": c.precision(),
        "recall": c.catch_rate(),
        "f1": c.f1(),
    })
}

/// A case worth showing: a false block or a miss.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    /// `file:line`.
    pub source: String,
    /// Data-set id.
    pub id: String,
    /// Category.
    pub category: String,
    /// Expected label.
    pub label: Label,
    /// What the policy did.
    pub action: Action,
    /// The rule that decided it (for a miss: a rule that fired with a weaker action, if any).
    pub rule: Option<String>,
    /// The text, shortened to 160 characters.
    pub text: String,
}

fn example(case: &Case, o: &Outcome) -> Example {
    Example {
        source: case.source.clone(),
        id: case.id.clone(),
        category: case.category.clone(),
        label: case.label,
        action: o.action,
        rule: o.rule.clone(),
        text: shorten(&case.text, 160),
    }
}

/// `text` on one line, at most `max` characters.
pub fn shorten(text: &str, max: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut s: String = one_line.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// The result of running a policy over labeled cases.
#[derive(Debug, Clone)]
pub struct CasesReport {
    /// Counts.
    pub summary: Summary,
    /// Per case, in data-set order.
    pub outcomes: Vec<Outcome>,
}

/// Runs `policy` over `cases`.
pub fn evaluate_cases(policy: &CompiledPolicy, cases: &[Case], positive: Positive) -> CasesReport {
    let mut summary = Summary::default();
    let mut outcomes = Vec::with_capacity(cases.len());
    for c in cases {
        let o = outcome(policy, c, positive);
        summary.add(c, o.caught);
        outcomes.push(o);
    }
    CasesReport { summary, outcomes }
}

impl CasesReport {
    /// Safe cases caught, most severe rule first, at most `limit`.
    pub fn worst_false_blocks(&self, cases: &[Case], limit: usize) -> Vec<Example> {
        let mut v: Vec<(usize, &Outcome)> = self
            .outcomes
            .iter()
            .enumerate()
            .filter(|(i, o)| o.caught && cases[*i].label == Label::Safe)
            .collect();
        v.sort_by_key(|(i, o)| (std::cmp::Reverse(o.severity), cases[*i].text.len()));
        v.into_iter()
            .take(limit)
            .map(|(i, o)| example(&cases[i], o))
            .collect()
    }

    /// Unsafe cases not caught; near misses (some rule fired, with a weaker action) first.
    pub fn worst_misses(&self, cases: &[Case], limit: usize) -> Vec<Example> {
        let mut v: Vec<(usize, &Outcome)> = self
            .outcomes
            .iter()
            .enumerate()
            .filter(|(i, o)| !o.caught && cases[*i].label == Label::Unsafe)
            .collect();
        v.sort_by_key(|(i, o)| (std::cmp::Reverse(o.action), *i));
        v.into_iter()
            .take(limit)
            .map(|(i, o)| example(&cases[i], o))
            .collect()
    }
}

/// Cases whose outcome changed between two policies.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Changes {
    /// Caught by the new policy, not by the old one.
    pub newly_caught: Vec<Example>,
    /// Caught by the old policy, not by the new one.
    pub newly_released: Vec<Example>,
}

/// Compares outcomes of the same cases under an old and a new policy.
pub fn changes(cases: &[Case], old: &[Outcome], new: &[Outcome]) -> Changes {
    let mut out = Changes::default();
    for ((c, o), n) in cases.iter().zip(old).zip(new) {
        match (o.caught, n.caught) {
            (false, true) => out.newly_caught.push(example(c, n)),
            (true, false) => out.newly_released.push(example(c, o)),
            _ => {}
        }
    }
    out
}

// === spans ===

/// Span counts for one entity type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SpanCounts {
    /// Gold spans of this type.
    pub gold: u64,
    /// Gold spans overlapped by a redact finding.
    pub found: u64,
    /// Redact findings of rules attributed to this type.
    pub predicted: u64,
    /// Of those, findings that overlap a gold span of this type.
    pub correct: u64,
}

impl SpanCounts {
    /// Found / gold.
    pub fn recall(&self) -> Rate {
        Rate::new(self.found as f64, self.gold as f64)
    }
    /// Correct / predicted.
    pub fn precision(&self) -> Rate {
        Rate::new(self.correct as f64, self.predicted as f64)
    }
}

/// Per-rule span figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleSpans {
    /// The entity type the rule is attributed to: the type its findings overlap most often, or
    /// `None` when they never overlap a gold span.
    pub entity: Option<String>,
    /// Redact findings.
    pub findings: u64,
    /// Findings that overlap any gold span.
    pub overlapping: u64,
}

/// Span-level figures of a policy's redact findings on PII span data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpanReport {
    /// Texts scanned.
    pub texts: u64,
    /// Per entity type.
    pub by_entity: BTreeMap<String, SpanCounts>,
    /// Per rule.
    pub by_rule: BTreeMap<String, RuleSpans>,
    /// All gold spans / found.
    pub gold: u64,
    /// Gold spans overlapped by a redact finding.
    pub found: u64,
    /// Redact findings.
    pub findings: u64,
    /// Redact findings that overlap some gold span.
    pub overlapping: u64,
}

fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Runs `policy` over span data at `stage`. A gold span counts as found when a `redact` finding
/// overlaps it. Precision per entity type needs each rule attributed to a type: a rule gets the
/// type its findings overlap most often across the data set (ties: alphabetical); its findings
/// are then correct when they overlap a span of that type. Rules that never overlap a gold
/// span are listed with no type; they count against overall precision only.
pub fn evaluate_spans(
    policy: &CompiledPolicy,
    texts: &[SpanCase],
    stage: crate::policy::Stage,
) -> SpanReport {
    let mut r = SpanReport {
        texts: texts.len() as u64,
        ..SpanReport::default()
    };
    // (rule, entities overlapped per finding) for the second pass.
    let mut per_finding: Vec<(String, Vec<String>)> = Vec::new();
    let mut votes: HashMap<String, BTreeMap<String, u64>> = HashMap::new();
    for t in texts {
        let d = policy.scan(&t.text, stage, Some("user"));
        let redacts: Vec<&Finding> = d
            .findings
            .iter()
            .filter(|f| f.action == Action::Redact)
            .collect();
        for g in &t.spans {
            let e = r.by_entity.entry(g.entity.clone()).or_default();
            e.gold += 1;
            r.gold += 1;
            if redacts
                .iter()
                .any(|f| overlaps((f.start, f.end), (g.start, g.end)))
            {
                e.found += 1;
                r.found += 1;
            }
        }
        for f in redacts {
            let hit: Vec<String> = t
                .spans
                .iter()
                .filter(|g| overlaps((f.start, f.end), (g.start, g.end)))
                .map(|g| g.entity.clone())
                .collect();
            r.findings += 1;
            let rs = r.by_rule.entry(f.rule.clone()).or_default();
            rs.findings += 1;
            if !hit.is_empty() {
                r.overlapping += 1;
                rs.overlapping += 1;
            }
            let v = votes.entry(f.rule.clone()).or_default();
            let mut uniq = hit.clone();
            uniq.sort();
            uniq.dedup();
            for e in uniq {
                *v.entry(e).or_default() += 1;
            }
            per_finding.push((f.rule.clone(), hit));
        }
    }
    for (rule, rs) in r.by_rule.iter_mut() {
        rs.entity = votes.get(rule).and_then(|v| {
            v.iter()
                .max_by_key(|(e, n)| (**n, std::cmp::Reverse((*e).clone())))
                .map(|(e, _)| e.clone())
        });
    }
    for (rule, hit) in per_finding {
        if let Some(entity) = r.by_rule.get(&rule).and_then(|rs| rs.entity.clone()) {
            let e = r.by_entity.entry(entity.clone()).or_default();
            e.predicted += 1;
            if hit.contains(&entity) {
                e.correct += 1;
            }
        }
    }
    r
}

impl SpanReport {
    /// Found / gold over all types.
    pub fn recall(&self) -> Rate {
        Rate::new(self.found as f64, self.gold as f64)
    }

    /// Found / gold over the entity types some rule is attributed to (the types the policy
    /// targets), so types it does not try to find do not drown the figure.
    pub fn recall_targeted(&self) -> Rate {
        let (f, g) = self
            .by_entity
            .values()
            .filter(|c| c.predicted > 0)
            .fold((0, 0), |(f, g), c| (f + c.found, g + c.gold));
        Rate::new(f as f64, g as f64)
    }

    /// Overlapping / findings over all rules.
    pub fn precision(&self) -> Rate {
        Rate::new(self.overlapping as f64, self.findings as f64)
    }

    /// JSON shape: the counts, `recall`, `recall_targeted`, `precision` (each a [`Rate`]),
    /// `by_rule`, and `by_entity` with the same per entity type.
    pub fn to_json(&self) -> Value {
        let ents: serde_json::Map<String, Value> = self
            .by_entity
            .iter()
            .map(|(k, c)| {
                let e = json!({
                    "gold": c.gold, "found": c.found, "predicted": c.predicted,
                    "correct": c.correct, "recall": c.recall(), "precision": c.precision(),
                });
                (k.clone(), e)
            })
            .collect();
        json!({
            "texts": self.texts,
            "gold_spans": self.gold,
            "found": self.found,
            "redact_findings": self.findings,
            "overlapping_findings": self.overlapping,
            "by_rule": self.by_rule,
            "recall": self.recall(),
            "recall_targeted": self.recall_targeted(),
            "precision": self.precision(),
            "by_entity": ents,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::dataset::GoldSpan;
    use crate::policy::Stage;

    fn policy() -> CompiledPolicy {
        CompiledPolicy::from_yaml_str(
            r#"
policy: t
rules:
  - id: email
    match: {regex: '[a-z]+@[a-z]+\.com', max_len: 64}
    action: redact
  - id: num
    match: {regex: '\b\d{4}\b', max_len: 4}
    action: redact
"#,
            "t.yaml",
        )
        .unwrap()
    }

    #[test]
    fn spans_attribute_rules_by_majority() {
        let p = policy();
        let text = "mail bob@x.com or 1234 now".to_string();
        let s = text.find("bob").unwrap();
        let cases = vec![SpanCase {
            source: "t:1".into(),
            text: text.clone(),
            spans: vec![
                GoldSpan {
                    entity: "EMAIL".into(),
                    start: s,
                    end: s + 9,
                },
                GoldSpan {
                    entity: "PHONE".into(),
                    start: 0,
                    end: 4,
                },
            ],
        }];
        let r = evaluate_spans(&p, &cases, Stage::Output);
        assert_eq!(r.gold, 2);
        assert_eq!(r.found, 1);
        assert_eq!(r.findings, 2);
        assert_eq!(r.overlapping, 1);
        assert_eq!(r.by_rule["email"].entity.as_deref(), Some("EMAIL"));
        assert_eq!(r.by_rule["num"].entity, None);
        assert_eq!(r.by_entity["EMAIL"].precision().value, Some(1.0));
        assert_eq!(r.by_entity["PHONE"].recall().value, Some(0.0));
    }
}
