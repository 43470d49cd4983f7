//! The judge's verdict, parsed strictly: exactly one JSON object with exactly the five fields
//! the prompt asks for. Anything else — prose around it, a missing or unknown field, a
//! duplicate key, a confidence outside 0..=1, a violation naming a section that was not asked
//! about — is a [`VerdictError`], which the gateway handles as a judge failure (fail open or
//! closed, as the policy says). The one leniency: a single Markdown code fence around the
//! object, which chat models add however they are told.

use serde::{Deserialize, Serialize};

/// A judge's verdict on one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    /// Whether the text violates a section.
    pub violation: bool,
    /// The violated section (`null` when none).
    pub section: Option<String>,
    /// The criteria it violates (`<section>.V<n>`), possibly empty.
    pub rule_ids: Vec<String>,
    /// The judge's confidence, 0 to 1.
    pub confidence: f64,
    /// Why, for the audit log (never sent to the client).
    pub rationale: String,
}

/// Why an answer is not a verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerdictError {
    /// Not one JSON object with the five fields.
    #[error("malformed verdict: {0}")]
    Malformed(String),
    /// Well-formed JSON whose values break the contract.
    #[error("invalid verdict: {0}")]
    Invalid(String),
}

/// Parses a judge's answer. `sections` are the ids the prompt asked about: a violation must
/// name one of them.
pub fn parse_verdict(answer: &str, sections: &[String]) -> Result<Verdict, VerdictError> {
    let body = unfence(answer.trim());
    if !body.starts_with('{') {
        return Err(VerdictError::Malformed(format!(
            "expected a JSON object, got `{}`",
            preview(body)
        )));
    }
    let v: Verdict = serde_json::from_str(body)
        .map_err(|e| VerdictError::Malformed(format!("{e} in `{}`", preview(body))))?;
    if !(0.0..=1.0).contains(&v.confidence) {
        return Err(VerdictError::Invalid(format!(
            "confidence {} is outside 0..=1",
            v.confidence
        )));
    }
    if v.violation {
        match &v.section {
            None => {
                return Err(VerdictError::Invalid(
                    "a violation must name its section".to_owned(),
                ));
            }
            Some(s) if !sections.iter().any(|x| x == s) => {
                return Err(VerdictError::Invalid(format!(
                    "section `{s}` was not asked about ({})",
                    sections.join(", ")
                )));
            }
            Some(_) => {}
        }
    }
    Ok(v)
}

/// The inside of one Markdown code fence (```` ```json … ``` ````), or `s` itself.
fn unfence(s: &str) -> &str {
    let Some(rest) = s.strip_prefix("```") else {
        return s;
    };
    let Some(rest) = rest.strip_suffix("```") else {
        return s;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.trim()
}

fn preview(s: &str) -> String {
    let mut end = s.len().min(80);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if end < s.len() {
        format!("{}…", &s[..end])
    } else {
        s.to_owned()
    }
}
