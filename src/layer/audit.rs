//! Audit records: one per enforced request, also for requests the client gave up on.
//!
//! The layer fills an [`AuditRecord`] as the request goes and hands it to an [`Observer`] once
//! the response ended — completed, blocked, failed or cancelled. Text matched by `redact`
//! rules is masked before the record leaves the layer, so the audit log does not become a store
//! of the personal data the policy exists to keep out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::engine::Finding;
use crate::policy::{Action, Stage};

/// Receives audit records and stream events. Implement it to write a log or metrics.
pub trait Observer: Send + Sync + 'static {
    /// A request ended; called exactly once per enforced request.
    fn record(&self, record: &AuditRecord);
    /// A streamed response started flowing to the client.
    fn stream_opened(&self) {}
    /// A streamed response ended (completed, failed or cancelled).
    fn stream_closed(&self) {}
    /// A judge call finished after its request's record was written (stream `monitor` mode);
    /// `id` is the request id.
    fn judged_late(&self, id: &str, judged: &super::judge::JudgeRecord) {
        let _ = (id, judged);
    }
}

/// How an enforced request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The response went out whole (possibly redacted, flagged, or with a blocked choice among
    /// others).
    Completed,
    /// The request was refused by the input scan; the upstream was not called.
    BlockedInput,
    /// The output scan stopped the response (all of it, or every choice).
    BlockedOutput,
    /// The request was malformed or too large.
    Rejected,
    /// The upstream answered with an error status, passed on to the client.
    UpstreamStatus,
    /// The upstream failed: refused connection, reset, malformed answer, stream cut short.
    UpstreamError,
    /// An upstream timeout fired.
    Timeout,
    /// The client went away before the response ended.
    Cancelled,
}

impl Outcome {
    /// The name written to the audit log (`completed`, `blocked_input`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::BlockedInput => "blocked_input",
            Outcome::BlockedOutput => "blocked_output",
            Outcome::Rejected => "rejected",
            Outcome::UpstreamStatus => "upstream_status",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// One finding, as written to the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditFinding {
    /// `name@hash` of the policy.
    pub policy: String,
    /// Stage scanned.
    pub stage: Stage,
    /// Rule id.
    pub rule: String,
    /// Spec section of the rule.
    pub section: Option<String>,
    /// The rule's action.
    pub action: Action,
    /// Start byte offset in the text scanned.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
    /// The matched text; `[masked]` for `redact` rules.
    pub text: String,
    /// Where the text was: `messages[2].content`, `choices[0].content`,
    /// `choices[0].tool_calls[1].arguments`, ...
    pub location: String,
}

impl AuditFinding {
    /// The audit form of `finding`, made by the policy labelled `policy`, found at `location`.
    pub fn new(policy: &str, finding: &Finding, location: String) -> Self {
        AuditFinding {
            policy: policy.to_owned(),
            stage: finding.stage,
            rule: finding.rule.clone(),
            section: finding.section.clone(),
            action: finding.action,
            start: finding.start,
            end: finding.end,
            text: mask(finding),
            location,
        }
    }
}

/// The text kept for `finding`: masked for redactions, at most 256 bytes otherwise.
pub fn mask(finding: &Finding) -> String {
    if finding.action == Action::Redact {
        return "[masked]".to_owned();
    }
    let mut cut = finding.text.len().min(256);
    while !finding.text.is_char_boundary(cut) {
        cut -= 1;
    }
    finding.text[..cut].to_owned()
}

/// What was injected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Injection {
    /// Section ids injected (`policy/section` when several policies are enforced).
    pub sections: Vec<String>,
    /// Bytes of injected text.
    pub bytes: usize,
    /// `system` or `developer`.
    pub role: Option<String>,
    /// `prepend` or `merge`.
    pub placement: Option<String>,
    /// The request already carried an injection of these policies: it was replaced, not added.
    pub replaced: bool,
    /// A policy's marker was found without its end marker: that policy was not injected again.
    pub skipped: Vec<String>,
    /// The model's default system prompt heads the injection (the request had no instruction
    /// text; see [`EnforceOptions::default_system`](super::EnforceOptions::default_system)).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub default_system: bool,
}

/// A deliberation block removed from a choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deliberation {
    /// Choice index.
    pub choice: u32,
    /// The block's text, redactions applied, cut at the configured size.
    pub text: String,
    /// Whether it was cut.
    pub truncated: bool,
}

/// Latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Request received → response ended.
    pub total_ms: f64,
    /// Upstream call → upstream response headers (`None`: not called).
    pub upstream_ms: Option<f64>,
    /// Time the gateway itself spent: reading and scanning the request, injecting, scanning and
    /// re-encoding the response (waiting for either side excluded).
    pub gateway_ms: f64,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// Request id (the client's `x-request-id` when it sent a sane one).
    pub id: String,
    /// When the request arrived; written to the log as RFC 3339 UTC (formatted only when a
    /// record is serialized: without an audit log, no request pays for it).
    #[serde(serialize_with = "serialize_rfc3339")]
    pub time: SystemTime,
    /// Request path.
    pub route: String,
    /// `name@hash` of the enforced policies.
    pub policy: String,
    /// Model asked for.
    pub model: Option<String>,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// The most severe action taken.
    pub action: Action,
    /// How it ended.
    pub outcome: Outcome,
    /// Status sent to the client (`None`: the client left before headers).
    pub status: Option<u16>,
    /// Status the upstream answered with.
    pub upstream_status: Option<u16>,
    /// `full`, or `partial; reason=…`.
    pub enforcement: String,
    /// Every finding, input and output.
    pub findings: Vec<AuditFinding>,
    /// What was injected.
    pub injection: Option<Injection>,
    /// Deliberation blocks removed from the answer.
    pub deliberation: Vec<Deliberation>,
    /// Latencies.
    pub latency: Latency,
    /// What went wrong, for failed outcomes.
    pub error: Option<String>,
    /// Judge calls: verdicts with their rationale (kept here, never sent to the client).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub judge: Vec<super::judge::JudgeRecord>,
    /// The tenant label, when the server selects policies per tenant ([`AuditLabels`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The policy set enforced, when the server selects among several ([`AuditLabels`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_set: Option<String>,
    /// What the shadow candidate decided, when this request was in its sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowRecord>,
    /// The texts scanned, with `record_texts` (personal data: see [`super::shadow`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub texts: Vec<ScannedText>,
}

/// Labels a server puts on a request (as an `http::Extensions` entry) for the layer to copy
/// into its audit record: the tenant and the policy set it selected. Keep both bounded: they
/// become metric labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLabels {
    /// The tenant label.
    pub tenant: String,
    /// The policy set's name.
    pub set: String,
}

impl AuditRecord {
    /// An empty record for a request that arrived now.
    pub fn new(id: String, route: String, policy: String) -> Self {
        AuditRecord {
            id,
            time: SystemTime::now(),
            route,
            policy,
            model: None,
            stream: false,
            action: Action::Allow,
            outcome: Outcome::Completed,
            status: None,
            upstream_status: None,
            enforcement: "full".to_owned(),
            findings: Vec::new(),
            injection: None,
            deliberation: Vec::new(),
            latency: Latency::default(),
            error: None,
            judge: Vec::new(),
            tenant: None,
            policy_set: None,
            shadow: None,
            texts: Vec::new(),
        }
    }
}

/// Milliseconds of `d`, as a float with microsecond precision.
pub(crate) fn millis(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

fn serialize_rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

/// `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// One text the live policies scanned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScannedText {
    /// The stage it was scanned at.
    pub stage: Stage,
    /// The role, for input texts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Where it was: `messages[0].content`, `choices[0].content`, ...
    pub location: String,
    /// The text.
    pub text: String,
}

/// What the shadow candidate decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowRecord {
    /// `name@hash` of the candidate's policies.
    pub policy: String,
    /// The most severe action it would have taken.
    pub action: Action,
    /// Its findings.
    pub findings: Vec<AuditFinding>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record's time is written as RFC 3339, as before it was kept unformatted.
    #[test]
    fn record_time_is_written_as_rfc3339() {
        let mut r = AuditRecord::new("id".into(), "/r".into(), "p@h".into());
        r.time = UNIX_EPOCH + Duration::from_millis(1_709_251_199_123);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["time"], "2024-02-29T23:59:59.123Z");
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_199_123);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.123Z");
    }

    /// The span attribute and the audit log spell an outcome the same way.
    #[test]
    fn outcome_names_match_the_audit_log() {
        use Outcome::*;
        for o in [
            Completed,
            BlockedInput,
            BlockedOutput,
            Rejected,
            UpstreamStatus,
            UpstreamError,
            Timeout,
            Cancelled,
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
    }
}
