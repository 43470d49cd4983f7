//! `deliberate eval --judge URL`: the rules alone, the judge alone and the cascade (rules, with
//! escalations and the policy's judged stages sent to the judge) on the same labeled texts.
//!
//! - **rules**: the decision as today, without a judge (escalating rules apply their
//!   fallback); caught = blocked.
//! - **judge**: every text judged against every judge-ready section of its stage; caught = a
//!   violation (a failure counts as the policy's `on_error` says).
//! - **cascade**: what the gateway does with a judge configured: a plain block stands; an
//!   escalation goes to the judge with the escalated sections; a stage judged `always` (or a
//!   text in the `sampled` share) goes to the judge with the judged sections.
//!
//! Each arm reports catch rate, false-block rate and precision with Wilson 95 % intervals, and
//! its cost: judge calls and judge seconds per 100 texts.

use std::time::Instant;

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::dataset::{Case, Label};
use super::metrics::Confusion;
use crate::engine::CompiledPolicy;
use crate::engine::judge::{FailMode, judge_prompt, stable_hash};
use crate::layer::Judge;
use crate::policy::{Action, Stage};

/// One arm's figures.
#[derive(Debug, Clone, Default)]
pub struct Arm {
    /// `rules`, `judge` or `cascade`.
    pub name: &'static str,
    /// Outcomes against the labels.
    pub confusion: Confusion,
    /// Judge calls made.
    pub calls: u64,
    /// Judge calls without a verdict.
    pub errors: u64,
    /// Judge time, summed over calls.
    pub judge_seconds: f64,
}

/// The three arms on one set of texts.
#[derive(Debug, Clone)]
pub struct CascadeReport {
    /// Texts judged.
    pub n: usize,
    /// Rules, judge, cascade.
    pub arms: [Arm; 3],
    /// Wall-clock time of the run.
    pub seconds: f64,
}

/// What one judge call came to: caught, whether it failed, its time in seconds.
type Call = (bool, bool, f64);

/// One judge call on `text` against `sections` (all of the stage's when empty).
async fn judged(
    policy: &CompiledPolicy,
    judge: &dyn Judge,
    budget: std::time::Duration,
    stage: Stage,
    sections: &[String],
    text: &str,
) -> Call {
    let prompt = judge_prompt(policy, stage, sections, text);
    let t = Instant::now();
    let res = judge.judge(prompt, budget).await;
    let secs = t.elapsed().as_secs_f64();
    match res {
        Ok(j) => (
            j.verdict.violation && j.verdict.confidence >= policy.judge.min_confidence,
            false,
            secs,
        ),
        Err(_) => (policy.judge.on_error == FailMode::Closed, true, secs),
    }
}

#[derive(Default)]
struct Row {
    unsafe_: bool,
    rules: bool,
    judge: Call,
    cascade: Option<Call>,
    cascade_rules: bool,
}

/// The cascade on one text: `(the judge's outcome if it was asked, caught by the cascade's
/// rules, caught by the rules arm)`.
async fn cascade(
    policy: &CompiledPolicy,
    judge: &dyn Judge,
    budget: std::time::Duration,
    c: &Case,
) -> (Option<Call>, bool, bool) {
    let role = (c.stage == Stage::Input).then_some("user");
    let d = policy.scan(&c.text, c.stage, role);
    let rules = d.action == Action::Block;
    let (asked, cascade_rules) = match policy.escalation(&d) {
        Some(esc) if policy.judge.mode(c.stage) != crate::engine::judge::JudgeMode::Off => {
            let kept = policy.without_escalated(&c.text, &d);
            if kept.action == Action::Block {
                (None, true)
            } else {
                let v = judged(policy, judge, budget, c.stage, &esc.sections, &c.text).await;
                (Some(v), false)
            }
        }
        _ if rules => (None, true),
        _ if policy
            .judge
            .judges_unprompted(c.stage, stable_hash(&[&c.text])) =>
        {
            let v = judged(
                policy,
                judge,
                budget,
                c.stage,
                &policy.judge.sections,
                &c.text,
            )
            .await;
            (Some(v), false)
        }
        _ => (None, false),
    };
    (asked, cascade_rules, rules)
}

/// Runs the three arms over `cases`, `concurrency` texts at a time: first the judge alone on
/// every text, then the cascade's judge calls. One arm after the other, consecutive judge
/// prompts share their system message (the rendered policy, thousands of tokens), which a
/// server with a prefix cache (llama.cpp, vLLM) then reads once instead of once per call.
pub async fn run_cascade(
    policy: &CompiledPolicy,
    judge: &dyn Judge,
    budget: std::time::Duration,
    cases: &[Case],
    concurrency: usize,
) -> CascadeReport {
    let started = Instant::now();
    let n = concurrency.max(1);
    let alone: Vec<Call> = futures_util::stream::iter(cases.iter())
        .map(|c| judged(policy, judge, budget, c.stage, &[], &c.text))
        .buffered(n)
        .collect()
        .await;
    let cascaded: Vec<(Option<Call>, bool, bool)> = futures_util::stream::iter(cases.iter())
        .map(|c| cascade(policy, judge, budget, c))
        .buffered(n)
        .collect()
        .await;
    let rows: Vec<Row> = cases
        .iter()
        .zip(alone)
        .zip(cascaded)
        .map(|((c, judge), (cascade, cascade_rules, rules))| Row {
            unsafe_: c.label == Label::Unsafe,
            rules,
            judge,
            cascade,
            cascade_rules,
        })
        .collect();
    let mut arms = [
        Arm {
            name: "rules",
            ..Arm::default()
        },
        Arm {
            name: "judge",
            ..Arm::default()
        },
        Arm {
            name: "cascade",
            ..Arm::default()
        },
    ];
    let count = |arm: &mut Arm, (caught, failed, secs): Call| {
        arm.calls += 1;
        arm.errors += u64::from(failed);
        arm.judge_seconds += secs;
        caught
    };
    for r in &rows {
        arms[0].confusion.add(r.unsafe_, r.rules);
        let j = count(&mut arms[1], r.judge);
        arms[1].confusion.add(r.unsafe_, j);
        let c = match r.cascade {
            Some(v) => count(&mut arms[2], v),
            None => r.cascade_rules,
        };
        arms[2].confusion.add(r.unsafe_, c);
    }
    CascadeReport {
        n: rows.len(),
        arms,
        seconds: started.elapsed().as_secs_f64(),
    }
}

impl CascadeReport {
    fn per_100(&self, x: f64) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            x * 100.0 / self.n as f64
        }
    }

    /// The report as JSON: per arm `catch_rate`, `false_block_rate`, `precision` (each
    /// `{value, ci, k, n}`), `judge_calls_per_100`, `judge_seconds_per_100`, `judge_errors`.
    pub fn to_json(&self) -> Value {
        let arms: Vec<Value> = self
            .arms
            .iter()
            .map(|a| {
                json!({
                    "arm": a.name,
                    "catch_rate": a.confusion.catch_rate(),
                    "false_block_rate": a.confusion.false_block_rate(),
                    "precision": a.confusion.precision(),
                    "judge_calls_per_100": self.per_100(a.calls as f64),
                    "judge_seconds_per_100": self.per_100(a.judge_seconds),
                    "judge_errors": a.errors,
                })
            })
            .collect();
        json!({"n": self.n, "seconds": self.seconds, "arms": arms})
    }

    /// The report as a Markdown table.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from(
            "| arm | catch rate | false blocks | precision | judge calls / 100 | judge s / 100 | errors |\n\
             |---|---|---|---|---:|---:|---:|\n",
        );
        for a in &self.arms {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {:.1} | {:.2} | {} |\n",
                a.name,
                a.confusion.catch_rate().display(),
                a.confusion.false_block_rate().display(),
                a.confusion.precision().display(),
                self.per_100(a.calls as f64),
                self.per_100(a.judge_seconds),
                a.errors,
            ));
        }
        out.push_str(&format!("\n{} texts, {:.1} s\n", self.n, self.seconds));
        out
    }
}
