//! Scanning with every policy of a [`PolicySet`], one after the other.

use crate::engine::judge::{Escalation, JudgeMode};
use crate::engine::{Finding, StreamScanner};
use crate::policy::{Action, Stage};

use super::policies::PolicySet;

/// A finding and the index of the policy (in the set) that made it.
pub(crate) type PolicyFinding = (usize, Finding);

/// The outcome of scanning a whole text with a set.
#[derive(Debug, Clone)]
pub(crate) struct ChainDecision {
    /// Most severe action.
    pub action: Action,
    /// Every finding, policy by policy.
    pub findings: Vec<PolicyFinding>,
    /// The text after redactions: `None` when no policy redacted it (the text is what was
    /// scanned; not copied for the common case), and when blocked.
    pub output: Option<String>,
    /// The finding that blocked, if any.
    pub block: Option<PolicyFinding>,
    /// Input scans: `(policy index, section id)` of section triggers that matched.
    pub triggered: Vec<(usize, String)>,
    /// Decisions that went to the judge instead of standing (only when scanned with
    /// `judging`): the policy, what it escalates, and the text that policy read.
    pub escalations: Vec<(usize, Escalation, String)>,
    /// The findings of the escalated rules (not in `findings`: they decide nothing until the
    /// judge has spoken).
    pub escalated: Vec<PolicyFinding>,
}

/// Scans `text` at `stage` with each policy in turn; a policy sees the text the previous one
/// redacted. Stops at the first block. With `judging` (a judge is configured), a policy's
/// decision that escalates (and whose stage the policy judges) is replaced by what it is
/// without the escalated rules, and the escalation is listed for the judge.
pub(crate) fn scan(
    set: &PolicySet,
    text: &str,
    stage: Stage,
    role: Option<&str>,
    judging: bool,
) -> ChainDecision {
    let mut out = ChainDecision {
        action: Action::Allow,
        findings: Vec::new(),
        output: None,
        block: None,
        triggered: Vec::new(),
        escalations: Vec::new(),
        escalated: Vec::new(),
    };
    for (pi, policy) in set.policies().iter().enumerate() {
        let current = out.output.as_deref().unwrap_or(text);
        let mut d = policy.scan(current, stage, role);
        if judging
            && policy.judge.mode(stage) != JudgeMode::Off
            && let Some(esc) = policy.escalation(&d)
        {
            let kept = policy.without_escalated(current, &d);
            for f in &d.findings {
                if !kept.findings.contains(f) {
                    out.escalated.push((pi, f.clone()));
                }
            }
            out.escalations.push((pi, esc, current.to_owned()));
            d = kept;
        }
        out.action = out.action.max(d.action);
        let block = d.blocking_finding().cloned();
        out.findings.extend(d.findings.into_iter().map(|f| (pi, f)));
        out.triggered
            .extend(d.triggered.into_iter().map(|s| (pi, s)));
        if let Some(b) = block {
            out.block = Some((pi, b));
            return out;
        }
        if d.action == Action::Redact {
            out.output = Some(d.output);
        }
    }
    out
}

/// What one push into a [`ChainScanner`] released.
#[derive(Debug, Default)]
pub(crate) struct ChainOutput {
    /// Safe text, redactions applied.
    pub text: String,
    /// Findings decided by this call.
    pub findings: Vec<PolicyFinding>,
    /// The finding that blocked, if this call blocked.
    pub block: Option<PolicyFinding>,
}

/// One stream scanner per policy of a set, chained: what the first releases is what the second
/// reads, and so on.
pub(crate) struct ChainScanner {
    scanners: Vec<StreamScanner<'static>>,
    blocked: bool,
}

impl std::fmt::Debug for ChainScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainScanner")
            .field("scanners", &self.scanners.len())
            .field("blocked", &self.blocked)
            .finish()
    }
}

impl ChainScanner {
    /// Scanners for `stage` of every policy in `set`. With `escalating`, the scanner of each
    /// policy that judges `stage` reports its `escalate` rules' findings as flags: the caller
    /// holds their text for the judge (see [`StreamScanner::escalating`]).
    pub fn new(set: &PolicySet, stage: Stage, escalating: bool) -> Self {
        ChainScanner {
            scanners: set
                .policies()
                .iter()
                .map(|p| {
                    let s = StreamScanner::new_shared(p.clone(), stage);
                    if escalating && p.judge.mode(stage) != JudgeMode::Off {
                        s.escalating()
                    } else {
                        s
                    }
                })
                .collect(),
            blocked: false,
        }
    }

    /// The text the chain holds, in stream order: what a later scanner holds comes before
    /// what an earlier one holds (it was released by the earlier one first).
    pub fn held_text(&self) -> String {
        self.scanners.iter().rev().map(|s| s.held_text()).collect()
    }

    /// Feeds a piece of text.
    pub fn push(&mut self, text: &str) -> ChainOutput {
        self.run(text, false)
    }

    /// Ends the text: everything held is decided and released.
    pub fn finish(&mut self) -> ChainOutput {
        self.run("", true)
    }

    fn run(&mut self, text: &str, fin: bool) -> ChainOutput {
        let mut out = ChainOutput::default();
        if self.blocked {
            return out;
        }
        let mut carry = text.to_owned();
        for (pi, scanner) in self.scanners.iter_mut().enumerate() {
            let mut o = if carry.is_empty() && !fin {
                Default::default()
            } else {
                scanner.push(&carry)
            };
            if fin && !o.blocked {
                let f = scanner.finish();
                o.text.push_str(&f.text);
                o.findings.extend(f.findings);
                o.blocked = f.blocked;
            }
            let block = if o.blocked {
                o.findings
                    .iter()
                    .find(|f| f.action == Action::Block)
                    .or_else(|| {
                        scanner
                            .findings()
                            .iter()
                            .rev()
                            .find(|f| f.action == Action::Block)
                    })
                    .cloned()
            } else {
                None
            };
            out.findings.extend(o.findings.into_iter().map(|f| (pi, f)));
            if o.blocked {
                self.blocked = true;
                out.block = block.map(|f| (pi, f));
                // What this scanner released before the block still has to pass the others.
                if o.text.is_empty() {
                    return out;
                }
                let mut rest = o.text;
                for (pj, later) in self.scanners.iter_mut().enumerate().skip(pi + 1) {
                    let a = later.push(&rest);
                    let b = later.finish();
                    out.findings
                        .extend(a.findings.into_iter().chain(b.findings).map(|f| (pj, f)));
                    rest = a.text + &b.text;
                    if a.blocked || b.blocked {
                        rest.clear();
                        break;
                    }
                }
                out.text = rest;
                return out;
            }
            carry = o.text;
        }
        out.text = carry;
        out
    }
}
