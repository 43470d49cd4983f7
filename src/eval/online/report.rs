//! The A/B figures per arm, as JSON and as a table.

use serde_json::{Value, json};

use super::Route;
use crate::eval::metrics::Rate;
use crate::eval::report::{Style, Table, heading};

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
        })
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
        for n in &self.notes {
            out.push_str(&format!("\nnote: {n}"));
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        out
    }
}
