//! Test cases of a policy and how one is judged: what `deliberate test` runs and the
//! playground's test view shows. A case is a rule's inline example (`tests: {match, no_match}`)
//! or a case of a test file (`policies/tests/*.yaml`); it passes when the buffered scan meets
//! the expectation and the stream scan agrees at every split point.
//!
//! ```
//! use deliberate::engine::{CompiledPolicy, cases};
//!
//! let p = CompiledPolicy::from_yaml_str(
//!     "policy: c\nrules: [{id: bomb, match: {keywords: [bomb]}, action: block, tests: {match: [a bomb], no_match: [a bom]}}]\n",
//!     "c.yaml",
//! ).unwrap();
//! let all = cases::example_cases(&p);
//! assert_eq!(all.len(), 2);
//! assert!(all.iter().all(|c| cases::run_case(&p, c).passed));
//! ```

use super::splits::check_every_split;
use super::{CompiledPolicy, Decision};
use crate::policy::raw::{RawExpectAction, RawTestFile};
use crate::policy::{Action, Stage};

/// One test case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Name shown in reports.
    pub name: String,
    /// The text scanned.
    pub text: String,
    /// The stage.
    pub stage: Stage,
    /// The role, for input cases.
    pub role: Option<String>,
    /// What must happen.
    pub expect: Expect,
}

/// What a case expects.
#[derive(Debug, Clone)]
pub enum Expect {
    /// The rule fires (or not): a rule's inline example.
    Rule {
        /// Rule id.
        rule: String,
        /// Must it fire?
        fires: bool,
    },
    /// A whole-decision expectation from a test file.
    Decision {
        /// The action.
        action: Action,
        /// Rules that must be among the findings.
        rules: Option<Vec<String>>,
        /// The text after actions.
        output: Option<String>,
        /// Spans `[start, end]` that must be among the findings.
        spans: Option<Vec<[usize; 2]>>,
    },
}

/// How a case went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseOutcome {
    /// Passed?
    pub passed: bool,
    /// Why not.
    pub failure: Option<String>,
    /// Rules of the buffered scan's findings (for coverage).
    pub fired: Vec<String>,
}

/// The inline examples of every rule, in rule order: `match` texts must make the rule fire,
/// `no_match` texts must not. Each runs at the rule's first stage, input cases as its first role.
pub fn example_cases(policy: &CompiledPolicy) -> Vec<Case> {
    let mut out = Vec::new();
    for rule in &policy.rules {
        let stage = rule.stages.first().copied().unwrap_or(Stage::Input);
        let role = (stage == Stage::Input)
            .then(|| rule.roles.first().cloned().unwrap_or_else(|| "user".into()));
        for (texts, fires) in [
            (&rule.examples.should_match, true),
            (&rule.examples.no_match, false),
        ] {
            for t in texts {
                out.push(Case {
                    name: format!(
                        "{} {} {:?}",
                        rule.id,
                        if fires { "matches" } else { "does not match" },
                        t
                    ),
                    text: t.clone(),
                    stage,
                    role: role.clone(),
                    expect: Expect::Rule {
                        rule: rule.id.clone(),
                        fires,
                    },
                });
            }
        }
    }
    out
}

/// The cases of a parsed test file; `file` names it in case names (`file:line: name`).
pub fn file_cases(raw: &RawTestFile, file: &str) -> Vec<Case> {
    raw.cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let loc = c.referenced;
            let c = &c.value;
            let stage = c.stage.unwrap_or(Stage::Input);
            Case {
                name: format!(
                    "{file}:{}: {}",
                    loc.line(),
                    c.name.clone().unwrap_or_else(|| format!("case {}", i + 1))
                ),
                text: c.text.clone(),
                stage,
                role: (stage == Stage::Input)
                    .then(|| c.role.clone().unwrap_or_else(|| "user".into())),
                expect: Expect::Decision {
                    action: match c.expect {
                        RawExpectAction::Allow => Action::Allow,
                        RawExpectAction::Flag => Action::Flag,
                        RawExpectAction::Redact => Action::Redact,
                        RawExpectAction::Block => Action::Block,
                    },
                    rules: c.rules.clone(),
                    output: c.output.clone(),
                    spans: c.spans.clone(),
                },
            }
        })
        .collect()
}

/// Runs one case: the buffered scan against the expectation, then the stream scan at every
/// split point against the buffered scan.
pub fn run_case(policy: &CompiledPolicy, case: &Case) -> CaseOutcome {
    let d = policy.scan(&case.text, case.stage, case.role.as_deref());
    let mut failure = check_expectation(case, &d);
    if failure.is_none() {
        // Streams are scanned with every rule of the stage (no role), so a role-filtered input
        // case is compared with the role-less buffered scan of the same text.
        let reference = match case.role {
            Some(_) => policy.scan(&case.text, case.stage, None),
            None => d.clone(),
        };
        failure = check_every_split(policy, case.stage, &case.text, &reference)
            .err()
            .map(|e| e.to_string());
    }
    CaseOutcome {
        passed: failure.is_none(),
        failure,
        fired: d.findings.iter().map(|f| f.rule.clone()).collect(),
    }
}

/// Why decision `d` does not meet the case's expectation; `None` when it does.
pub fn check_expectation(case: &Case, d: &Decision) -> Option<String> {
    let fired: Vec<&str> = d.findings.iter().map(|f| f.rule.as_str()).collect();
    match &case.expect {
        Expect::Rule { rule, fires } => {
            let did = fired.contains(&rule.as_str());
            (did != *fires).then(|| {
                format!(
                    "expected rule {rule} {}; findings: {}",
                    if *fires { "to fire" } else { "not to fire" },
                    describe(d)
                )
            })
        }
        Expect::Decision {
            action,
            rules,
            output,
            spans,
        } => {
            if d.action != *action {
                return Some(format!(
                    "expected {}, got {}; findings: {}",
                    action.as_str(),
                    d.action.as_str(),
                    describe(d)
                ));
            }
            if let Some(rules) = rules {
                for r in rules {
                    if !fired.contains(&r.as_str()) {
                        return Some(format!("expected rule {r} among findings: {}", describe(d)));
                    }
                }
            }
            if let Some(o) = output
                && &d.output != o
            {
                return Some(format!("expected output {o:?}, got {:?}", d.output));
            }
            if let Some(spans) = spans {
                let got: Vec<[usize; 2]> = d.findings.iter().map(|f| [f.start, f.end]).collect();
                for s in spans {
                    if !got.contains(s) {
                        return Some(format!("expected span {s:?} among {got:?}"));
                    }
                }
            }
            None
        }
    }
}

/// `rule@start..end, …`, or `none`.
pub fn describe(d: &Decision) -> String {
    if d.findings.is_empty() {
        return "none".into();
    }
    d.findings
        .iter()
        .map(|f| format!("{}@{}..{}", f.rule, f.start, f.end))
        .collect::<Vec<_>>()
        .join(", ")
}
