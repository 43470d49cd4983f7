//! Compiling the judge fields: a section's `judge:` (definitions, criteria, examples) and the
//! policy's `judge:` block, with their checks.

use std::collections::HashMap;
use std::time::Duration;

use serde_saphyr::Spanned;

use crate::engine::judge::{
    Definition, FailMode, JudgeExample, JudgeMode, JudgePolicy, SectionJudge, StreamJudgeMode,
};
use crate::policy::raw_judge::{
    RawFailMode, RawJudgeMode, RawJudgePolicy, RawSectionJudge, RawStreamJudgeMode,
};
use crate::policy::{Loc, Sink, Stage};

/// Longest judge budget a policy may ask for: a request should not wait minutes.
const MAX_BUDGET_MS: u64 = 60_000;

fn stage(s: Option<Stage>) -> Stage {
    s.unwrap_or(Stage::Input)
}

/// Compiles one section's judge fields.
pub(super) fn section(
    raw: &Spanned<RawSectionJudge>,
    id: &str,
    sink: &mut Sink<'_>,
) -> SectionJudge {
    let loc = Loc::from(raw.referenced);
    let r = &raw.value;
    if r.violates.is_empty() || r.safe.is_empty() {
        sink.warn(
            loc,
            None,
            format!(
                "section `{id}`: judge fields need both `violates` and `safe` criteria to be \
                 judge-ready"
            ),
        );
    }
    for c in r.violates.iter().chain(&r.safe) {
        if c.trim().is_empty() {
            sink.error(loc, None, format!("section `{id}`: empty judge criterion"));
        }
    }
    for d in &r.definitions {
        if d.term.trim().is_empty() || d.meaning.trim().is_empty() {
            sink.error(loc, None, format!("section `{id}`: empty judge definition"));
        }
    }
    let examples: Vec<JudgeExample> = r
        .examples
        .iter()
        .map(|e| {
            if e.value.text.trim().is_empty() {
                sink.error(
                    Loc::from(e.referenced),
                    None,
                    format!("section `{id}`: judge example has no text"),
                );
            }
            JudgeExample {
                text: e.value.text.clone(),
                violation: e.value.violation,
                stage: stage(e.value.stage),
                rationale: e.value.rationale.clone(),
            }
        })
        .collect();
    if !examples.is_empty()
        && (!examples.iter().any(|e| e.violation) || examples.iter().all(|e| e.violation))
    {
        sink.warn(
            loc,
            None,
            format!("section `{id}`: judge examples should show both a violation and a safe text"),
        );
    }
    SectionJudge {
        definitions: r
            .definitions
            .iter()
            .map(|d| Definition {
                term: d.term.trim().to_owned(),
                meaning: d.meaning.trim().to_owned(),
            })
            .collect(),
        violates: r.violates.iter().map(|c| c.trim().to_owned()).collect(),
        safe: r.safe.iter().map(|c| c.trim().to_owned()).collect(),
        examples,
    }
}

fn mode(m: Option<RawJudgeMode>, default: JudgeMode) -> JudgeMode {
    match m {
        None => default,
        Some(RawJudgeMode::Off) => JudgeMode::Off,
        Some(RawJudgeMode::Escalation) => JudgeMode::Escalation,
        Some(RawJudgeMode::Always) => JudgeMode::Always,
        Some(RawJudgeMode::Sampled) => JudgeMode::Sampled,
    }
}

/// Compiles the policy's `judge:` block. `sections` maps section ids to whether they are
/// judge-ready.
pub(super) fn policy(
    raw: &Spanned<RawJudgePolicy>,
    sections: &HashMap<String, bool>,
    sink: &mut Sink<'_>,
) -> JudgePolicy {
    let loc = Loc::from(raw.referenced);
    let r = &raw.value;
    let d = JudgePolicy::default();
    let sample_rate = r.sample_rate.unwrap_or(d.sample_rate);
    if !(0.0..=1.0).contains(&sample_rate) {
        sink.error(loc, None, "judge.sample_rate must be between 0 and 1");
    }
    let min_confidence = r.min_confidence.unwrap_or(d.min_confidence);
    if !(0.0..=1.0).contains(&min_confidence) {
        sink.error(loc, None, "judge.min_confidence must be between 0 and 1");
    }
    let budget_ms = r.budget_ms.unwrap_or(2000);
    if budget_ms == 0 || budget_ms > MAX_BUDGET_MS {
        sink.error(
            loc,
            None,
            format!("judge.budget_ms must be between 1 and {MAX_BUDGET_MS}"),
        );
    }
    let mut list = Vec::new();
    for s in r.sections.iter().flatten() {
        match sections.get(&s.value) {
            None => sink.error(
                Loc::from(s.referenced),
                None,
                format!("judge.sections names unknown section `{}`", s.value),
            ),
            Some(false) => sink.warn(
                Loc::from(s.referenced),
                None,
                format!(
                    "judge.sections: section `{}` has no `violates` and `safe` criteria",
                    s.value
                ),
            ),
            Some(true) => list.push(s.value.clone()),
        }
    }
    let modes = [
        mode(r.input, JudgeMode::Escalation),
        mode(r.output, JudgeMode::Escalation),
        mode(r.reasoning, JudgeMode::Off),
    ];
    if modes
        .iter()
        .any(|m| matches!(m, JudgeMode::Always | JudgeMode::Sampled))
        && list.is_empty()
        && !sections.values().any(|ready| *ready)
    {
        sink.error(
            loc,
            None,
            "judge mode `always` / `sampled` needs a judge-ready section (one with `violates` \
             and `safe` criteria)",
        );
    }
    JudgePolicy {
        modes,
        sample_rate,
        sections: list,
        stream: match r.stream {
            None | Some(RawStreamJudgeMode::Hold) => StreamJudgeMode::Hold,
            Some(RawStreamJudgeMode::Checkpoint) => StreamJudgeMode::Checkpoint,
            Some(RawStreamJudgeMode::Monitor) => StreamJudgeMode::Monitor,
        },
        checkpoint_bytes: r
            .checkpoint_bytes
            .map_or(d.checkpoint_bytes, |b| b as usize),
        budget: Duration::from_millis(budget_ms),
        on_error: match r.on_error {
            None | Some(RawFailMode::Closed) => FailMode::Closed,
            Some(RawFailMode::Open) => FailMode::Open,
        },
        min_confidence,
    }
}

/// Warns about `escalate` rules whose section a judge cannot classify against (no
/// `violates` and `safe` criteria): a judge would get the section text alone.
pub(super) fn escalation_warnings(
    rules: &[crate::engine::Rule],
    ready: &HashMap<String, bool>,
    diags: &mut Vec<crate::policy::Diagnostic>,
) {
    for r in rules.iter().filter(|r| r.escalate) {
        let Some(sec) = &r.section else { continue };
        if ready.get(sec).copied() == Some(false) {
            Sink {
                file: &r.file,
                out: &mut *diags,
            }
            .warn(
                r.loc,
                Some(&r.id),
                format!(
                    "escalates to section `{sec}`, which has no judge `violates` and `safe` \
                     criteria"
                ),
            );
        }
    }
}
