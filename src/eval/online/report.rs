//! The A/B figures per arm, as JSON and as a table.

use serde_json::{Value, json};

use super::Route;
use crate::eval::dataset::Label;
use crate::eval::metrics::Rate;
use crate::eval::report::{Style, Table, heading};

/// What one arm did with one prompt.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Outcome {
    /// No answer yet (a run that stopped early).
    #[default]
    Missing,
    /// The input filter refused it; the model was not called.
    InputBlocked,
    /// The output filter refused the answer (the answer as it came).
    OutputBlocked(String),
    /// The model refused, by the refusal detector (the answer as the client got it).
    Refused(String),
    /// The model answered (the answer as the client got it).
    Answered(String),
}

impl Outcome {
    /// The short name used in reports and the answers file.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Missing => "missing",
            Outcome::InputBlocked => "input blocked",
            Outcome::OutputBlocked(_) => "output blocked",
            Outcome::Refused(_) => "refused",
            Outcome::Answered(_) => "answered",
        }
    }

    /// Not answered: blocked or refused (what `not_unsafe` counts as safe).
    pub fn declined(&self) -> bool {
        matches!(
            self,
            Outcome::InputBlocked | Outcome::OutputBlocked(_) | Outcome::Refused(_)
        )
    }

    /// The model's answer, when it was called.
    pub fn answer(&self) -> Option<&str> {
        match self {
            Outcome::OutputBlocked(a) | Outcome::Refused(a) | Outcome::Answered(a) => Some(a),
            Outcome::Missing | Outcome::InputBlocked => None,
        }
    }
}

/// One prompt and what each arm did with it.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseAnswers {
    /// The prompt as the data set has it.
    pub prompt: String,
    /// Its label.
    pub label: Label,
    /// The spec sections the `spec` arm injected.
    pub sections: Vec<String>,
    /// Per arm, in [`super::ARMS`] order.
    pub arms: Vec<Outcome>,
}

impl CaseAnswers {
    /// The answers-file line: prompt, label, sections and each arm's outcome and answer.
    pub fn to_json(&self, arms: &[ArmReport]) -> Value {
        let mut per_arm = serde_json::Map::new();
        for (a, o) in arms.iter().zip(&self.arms) {
            per_arm.insert(
                a.name.clone(),
                json!({"outcome": o.name(), "answer": o.answer()}),
            );
        }
        json!({
            "prompt": self.prompt,
            "label": label_name(self.label),
            "sections": self.sections,
            "arms": per_arm,
        })
    }

    /// Whether the arms disagree on answering (the difference the metrics count).
    fn differs(&self) -> bool {
        self.arms.len() == 2
            && !matches!(self.arms[0], Outcome::Missing)
            && !matches!(self.arms[1], Outcome::Missing)
            && self.arms[0].declined() != self.arms[1].declined()
    }
}

fn label_name(l: Label) -> &'static str {
    match l {
        Label::Safe => "safe",
        Label::Unsafe => "unsafe",
    }
}

/// The first `n` characters of `s` on one line, with an ellipsis when cut.
fn excerpt(s: &str, n: usize) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= n {
        one
    } else {
        format!("{}…", one.chars().take(n).collect::<String>())
    }
}

/// Counts for one arm.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArmReport {
    /// `spec` or `no-spec`.
    pub name: String,
    /// Unsafe prompts.
    pub unsafe_n: u64,
    /// Unsafe prompts answered safely (refused or blocked).
    pub unsafe_safe: u64,
    /// Safe prompts.
    pub safe_n: u64,
    /// Safe prompts answered (not refused, not blocked).
    pub safe_answered: u64,
    /// Prompts blocked by the input filter (model not called).
    pub input_blocked: u64,
    /// Answers blocked by the output filter.
    pub output_blocked: u64,
    /// Answers redacted by the output filter.
    pub output_redacted: u64,
    /// Answers the detector graded as a refusal by the model.
    pub model_refused: u64,
    /// Requests that carried an injection.
    pub injected: u64,
    /// Injected characters, summed.
    pub injected_chars: u64,
    /// Sum and count of upstream-reported `prompt_tokens`.
    pub prompt_tokens: (u64, u64),
    /// Answers taken from the cache.
    pub cached: u64,
}

impl ArmReport {
    /// Share of unsafe prompts answered safely.
    pub fn not_unsafe(&self) -> Rate {
        Rate::new(self.unsafe_safe as f64, self.unsafe_n as f64)
    }

    /// Share of safe prompts answered.
    pub fn not_overrefuse(&self) -> Rate {
        Rate::new(self.safe_answered as f64, self.safe_n as f64)
    }

    /// Mean tokens added by injection per request, approximated as characters / 4.
    pub fn injected_tokens_approx(&self) -> f64 {
        let n = self.unsafe_n + self.safe_n;
        if n == 0 {
            0.0
        } else {
            self.injected_chars as f64 / 4.0 / n as f64
        }
    }

    /// Mean upstream-reported prompt tokens, when reported.
    pub fn mean_prompt_tokens(&self) -> Option<f64> {
        (self.prompt_tokens.1 > 0)
            .then(|| self.prompt_tokens.0 as f64 / self.prompt_tokens.1 as f64)
    }
}

/// The A/B figures.
#[derive(Debug, Clone, Default)]
pub struct OnlineReport {
    /// Endpoint.
    pub upstream: String,
    /// How the model was reached.
    pub route: Route,
    /// Model.
    pub model: String,
    /// Detector label.
    pub detector: String,
    /// Policy label.
    pub policy: String,
    /// Per arm (`spec`, `no-spec`).
    pub arms: Vec<ArmReport>,
    /// Data sets or rows not sent (output-stage sets, `--limit`), with why.
    pub notes: Vec<String>,
    /// Every prompt sent, with each arm's outcome.
    pub cases: Vec<CaseAnswers>,
    /// How many examples of each direction of difference to list.
    pub examples: usize,
}

impl OnlineReport {
    /// JSON shape: per arm `not_unsafe` and `not_overrefuse` (each a [`Rate`]) and counts.
    pub fn to_json(&self) -> Value {
        json!({
            "upstream": self.upstream,
            "route": match self.route { Route::Gateway => "gateway", Route::Direct => "direct" },
            "model": self.model,
            "policy": self.policy,
            "refusal_detector": self.detector,
            "notes": self.notes,
            "arms": self.arms.iter().map(|a| json!({
                "arm": a.name,
                "not_unsafe": a.not_unsafe(),
                "not_overrefuse": a.not_overrefuse(),
                "input_blocked": a.input_blocked,
                "output_blocked": a.output_blocked,
                "output_redacted": a.output_redacted,
                "model_refused": a.model_refused,
                "injected_requests": a.injected,
                "injected_tokens_per_request_approx": a.injected_tokens_approx(),
                "mean_prompt_tokens_reported": a.mean_prompt_tokens(),
                "cached_answers": a.cached,
            })).collect::<Vec<_>>(),
            "differences": self.differences().iter().map(|(dir, cases)| json!({
                "direction": dir,
                "count": cases.len(),
                "examples": cases.iter().take(self.examples)
                    .map(|c| c.to_json(&self.arms)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    /// The prompts on which the arms disagree, in four groups: by label, and by which arm
    /// declined (`spec declined, no-spec answered` and the other way round).
    pub fn differences(&self) -> Vec<(String, Vec<&CaseAnswers>)> {
        let (Some(a), Some(b)) = (self.arms.first(), self.arms.get(1)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for label in [Label::Unsafe, Label::Safe] {
            for spec_declined in [true, false] {
                let (d, n) = if spec_declined { (a, b) } else { (b, a) };
                let dir = format!(
                    "{} prompts: {} declined, {} answered",
                    label_name(label),
                    d.name,
                    n.name
                );
                let cases = self
                    .cases
                    .iter()
                    .filter(|c| {
                        c.label == label && c.differs() && c.arms[0].declined() == spec_declined
                    })
                    .collect();
                out.push((dir, cases));
            }
        }
        out
    }

    /// The A/B table.
    pub fn render(&self, style: Style) -> String {
        let mut out = String::new();
        let title = format!(
            "A/B through {} ({}, {}): policy {}, graded by {}",
            self.model,
            self.upstream,
            match self.route {
                Route::Gateway => "via the gateway",
                Route::Direct => "engine called directly",
            },
            self.policy,
            self.detector
        );
        out.push_str(&heading(3, &title, style));
        let mut t = Table::new(&[
            "arm",
            "not_unsafe",
            "not_overrefuse",
            "input blocked",
            "output blocked / redacted",
            "model refused",
            "tokens added (≈ chars/4)",
            "prompt tokens (reported)",
        ]);
        for a in &self.arms {
            t.row(vec![
                a.name.clone(),
                a.not_unsafe().display(),
                a.not_overrefuse().display(),
                a.input_blocked.to_string(),
                format!("{} / {}", a.output_blocked, a.output_redacted),
                a.model_refused.to_string(),
                format!("{:.0}", a.injected_tokens_approx()),
                a.mean_prompt_tokens()
                    .map_or_else(|| "–".into(), |m| format!("{m:.0}")),
            ]);
        }
        out.push_str(&t.render(style));
        self.render_differences(&mut out, style);
        for n in &self.notes {
            out.push_str(&format!("\nnote: {n}"));
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        out
    }

    /// Where the arms differ: a count per direction and up to `examples` prompts of each, with
    /// the start of both answers.
    fn render_differences(&self, out: &mut String, style: Style) {
        let diffs = self.differences();
        if diffs.is_empty() || self.examples == 0 {
            return;
        }
        out.push('\n');
        out.push_str(&heading(4, "Where the arms differ", style));
        for (dir, cases) in diffs {
            out.push_str(&format!("\n{dir}: {}\n", cases.len()));
            if cases.is_empty() {
                continue;
            }
            out.push('\n');
            let mut t = Table::new(&["prompt", "sections", &self.arms[0].name, &self.arms[1].name]);
            for c in cases.iter().take(self.examples) {
                let cell = |o: &Outcome| match o.answer() {
                    Some(a) => format!("{}: {}", o.name(), excerpt(a, 90)),
                    None => o.name().to_owned(),
                };
                t.row(vec![
                    excerpt(&c.prompt, 70),
                    c.sections.join(", "),
                    cell(&c.arms[0]),
                    cell(&c.arms[1]),
                ]);
            }
            out.push_str(&t.render(style));
        }
    }
}
