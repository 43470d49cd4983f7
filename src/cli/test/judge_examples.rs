//! The judge examples of spec sections in `deliberate test`.
//!
//! Every labeled example of a section is checked three ways:
//!
//! 1. **Always, no model**: a safe example must not be blocked by a rule that does not
//!    escalate (the cascade could never let it through).
//! 2. **Recorded verdicts** (`tests/<policy>.verdicts.json` beside the policy, when present):
//!    each example must have a recorded verdict, and it must agree with the label — so CI
//!    checks the judge's answers to the examples without a model. A missing recording fails.
//! 3. **`--judge URL`**: each example goes to the judge now; with `--record` the verdicts are
//!    written to the recording file (replacing it).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CaseResult;
use crate::cli::judge_opts::{JudgeArgs, judge_blocking, runtime};
use crate::engine::CompiledPolicy;
use crate::policy::{Action, Stage};

/// One recorded verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    /// Section of the example.
    pub section: String,
    /// Stage judged (`input`, `output`, `reasoning`).
    pub stage: String,
    /// The example text.
    pub text: String,
    /// What the judge said.
    pub violation: bool,
    /// The section it named.
    pub verdict_section: Option<String>,
    /// Its confidence.
    pub confidence: f64,
    /// Its rationale.
    pub rationale: String,
    /// The model that answered.
    pub model: String,
}

/// Where the recordings of `policy_file` live: `<dir>/tests/<stem>.verdicts.json`.
pub fn recording_path(policy_file: &Path) -> PathBuf {
    let dir = policy_file.parent().unwrap_or(Path::new("."));
    let stem = policy_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join("tests").join(format!("{stem}.verdicts.json"))
}

struct Example<'a> {
    section: &'a str,
    stage: Stage,
    text: &'a str,
    violation: bool,
}

fn examples(policy: &CompiledPolicy) -> Vec<Example<'_>> {
    policy
        .spec
        .sections
        .iter()
        .filter_map(|s| s.judge.as_ref().map(|j| (s, j)))
        .flat_map(|(s, j)| {
            j.examples.iter().map(move |e| Example {
                section: &s.id,
                stage: e.stage,
                text: &e.text,
                violation: e.violation,
            })
        })
        .collect()
}

fn result(label: &str, name: String, failure: Option<String>) -> CaseResult {
    CaseResult {
        policy: label.to_owned(),
        name,
        passed: failure.is_none(),
        failure,
    }
}

/// Checks the judge examples of `policy` (loaded from `file`).
pub(crate) fn run(
    policy: &CompiledPolicy,
    file: &Path,
    label: &str,
    judge: &JudgeArgs,
    record: bool,
) -> anyhow::Result<Vec<CaseResult>> {
    let list = examples(policy);
    let mut out = Vec::new();
    if list.is_empty() {
        return Ok(out);
    }
    let name = |e: &Example<'_>, what: &str| {
        format!(
            "judge example of {} ({}, {}) {what} {:?}",
            e.section,
            e.stage.as_str(),
            if e.violation { "violation" } else { "safe" },
            e.text
        )
    };
    // 1. Rules that block a safe example outright.
    for e in &list {
        let role = (e.stage == Stage::Input).then_some("user");
        let d = policy.scan(e.text, e.stage, role);
        let failure = (!e.violation
            && d.action == Action::Block
            && policy.escalation(&d).is_none())
        .then(|| {
            format!(
                "the rules block this safe example without escalating ({})",
                d.findings
                    .iter()
                    .filter(|f| f.action == Action::Block)
                    .map(|f| f.rule.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        out.push(result(label, name(e, "passes the rules"), failure));
    }
    // 3. A live judge.
    let path = recording_path(file);
    if judge.judge.is_some() {
        let rt = runtime()?;
        let _guard = rt.enter();
        let Some(client) = judge.client()? else {
            return Ok(out);
        };
        let mut recorded = Vec::new();
        for e in &list {
            let (_, res) = judge_blocking(
                &rt,
                &client,
                policy,
                e.stage,
                &[e.section.to_owned()],
                e.text,
                judge.judge_timeout,
            );
            let failure = match &res {
                Ok(j) if j.verdict.violation == e.violation => None,
                Ok(j) => Some(format!(
                    "the judge says violation={} ({})",
                    j.verdict.violation, j.verdict.rationale
                )),
                Err(err) => Some(format!("no verdict: {err}")),
            };
            if let Ok(j) = &res {
                recorded.push(Recorded {
                    section: e.section.to_owned(),
                    stage: e.stage.as_str().to_owned(),
                    text: e.text.to_owned(),
                    violation: j.verdict.violation,
                    verdict_section: j.verdict.section.clone(),
                    confidence: j.verdict.confidence,
                    rationale: j.verdict.rationale.clone(),
                    model: judge.judge_model.clone(),
                });
            }
            out.push(result(label, name(e, "is judged as labeled"), failure));
        }
        if record {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&path, serde_json::to_string_pretty(&recorded)? + "\n")?;
            eprintln!("recorded {} verdicts in {}", recorded.len(), path.display());
        }
        return Ok(out);
    }
    // 2. Recorded verdicts.
    if !path.exists() {
        eprintln!(
            "{label}: {} judge examples not checked against a judge (no {}; record with \
             `deliberate test --judge URL --record`)",
            list.len(),
            path.display()
        );
        return Ok(out);
    }
    let recorded: Vec<Recorded> = serde_json::from_str(&std::fs::read_to_string(&path)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for e in &list {
        let found = recorded
            .iter()
            .find(|r| r.section == e.section && r.stage == e.stage.as_str() && r.text == e.text);
        let failure = match found {
            None => Some(format!(
                "no recorded verdict in {} (record with `deliberate test --judge URL --record`)",
                path.display()
            )),
            Some(r) if r.violation != e.violation => Some(format!(
                "the recorded verdict ({}) says violation={}: {}",
                r.model, r.violation, r.rationale
            )),
            Some(_) => None,
        };
        out.push(result(
            label,
            name(e, "has a matching recorded verdict"),
            failure,
        ));
    }
    Ok(out)
}
