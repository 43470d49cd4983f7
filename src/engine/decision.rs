//! Findings and decisions: what a scan found, and what it comes to.

use serde::Serialize;

use crate::policy::{Action, Severity, Stage};

/// One rule firing on one span of the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Rule id.
    pub rule: String,
    /// Spec section of the rule.
    pub section: Option<String>,
    /// Stage scanned.
    pub stage: Stage,
    /// The rule's action.
    pub action: Action,
    /// The rule's severity.
    pub severity: Severity,
    /// Start byte offset in the original text.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
    /// The original text of the span.
    pub text: String,
}

/// The outcome of scanning a text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The most severe action among the findings (`allow` when nothing fired).
    pub action: Action,
    /// Every finding, in text order.
    pub findings: Vec<Finding>,
    /// The text after actions: redactions applied, or the refusal when blocked.
    pub output: String,
    /// Input scans: ids of the spec sections whose `triggers` matched (found in the same pass
    /// as the findings, so choosing sections to inject needs no second scan).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub triggered: Vec<String>,
}

impl Decision {
    /// The decision's action for `findings`: the most severe action among them, `allow` when
    /// none fired (allow findings only exempt other rules).
    pub fn action_of(findings: &[Finding]) -> Action {
        findings
            .iter()
            .map(|f| f.action)
            .filter(|a| *a != Action::Allow)
            .max()
            .unwrap_or(Action::Allow)
    }

    /// The finding that decided a block (highest severity, then earliest).
    pub fn blocking_finding(&self) -> Option<&Finding> {
        self.findings
            .iter()
            .filter(|f| f.action == Action::Block)
            .min_by_key(|f| (std::cmp::Reverse(f.severity), f.start))
    }

    /// Section ids of the findings, deduplicated, in text order.
    pub fn sections(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for f in &self.findings {
            if let Some(s) = f.section.as_deref()
                && !out.contains(&s)
            {
                out.push(s);
            }
        }
        out
    }

    /// The sections this input scan makes relevant for injection (what
    /// [`inject::choose`](crate::engine::inject::choose) takes): those of its findings except
    /// `allow` ones (an allow rule vouches for the harmless reading, so its section is not
    /// shown), then those whose triggers matched; deduplicated. The gateway chooses the same way.
    pub fn relevant_sections(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let findings = self.findings.iter().filter(|f| f.action != Action::Allow);
        let ids = findings
            .filter_map(|f| f.section.as_deref())
            .chain(self.triggered.iter().map(String::as_str));
        for s in ids {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }
}

/// Applies redactions to `text`. Overlapping spans merge; a merged span takes the replacement
/// of its earliest finding. Only `Redact` findings are applied.
pub fn apply_redactions(
    text: &str,
    findings: &[Finding],
    replacement_of: impl Fn(&str) -> String,
) -> String {
    let mut spans: Vec<(usize, usize, &str)> = findings
        .iter()
        .filter(|f| f.action == Action::Redact)
        .map(|f| (f.start, f.end, f.rule.as_str()))
        .collect();
    spans.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    let mut i = 0;
    while i < spans.len() {
        let (s, mut e, rule) = spans[i];
        i += 1;
        while i < spans.len() && spans[i].0 < e {
            e = e.max(spans[i].1);
            i += 1;
        }
        out.push_str(&text[pos..s]);
        out.push_str(&replacement_of(rule));
        pos = e;
    }
    out.push_str(&text[pos..]);
    out
}
