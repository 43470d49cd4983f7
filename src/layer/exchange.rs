//! The state of one enforced request, from the request head to the end of the response body:
//! what was found, what was injected, timings, and the audit record it becomes.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};

use super::audit::{AuditFinding, AuditRecord, Latency, Outcome, millis};
use super::chain::PolicyFinding;
use super::policies::{PolicySet, header_value};
use super::shadow::{Capture, decide, sampled};
use super::shared::Shared;
use crate::policy::Action;
use crate::wire::{Adapter, RequestFacts};

/// `x-deliberate-policy`: `name@hash` of the enforced policies.
pub const POLICY_HEADER: HeaderName = HeaderName::from_static("x-deliberate-policy");
/// `x-deliberate-action`: `allow`, `flag`, `redact` or `block`.
pub const ACTION_HEADER: HeaderName = HeaderName::from_static("x-deliberate-action");
/// `x-deliberate-enforcement`: `full`, or `partial; reason="…"`.
pub const ENFORCEMENT_HEADER: HeaderName = HeaderName::from_static("x-deliberate-enforcement");
/// `x-deliberate-judge`: what the judge said, per stage (`input=no_violation`,
/// `output=timeout`, …); absent when the judge was not asked.
pub const JUDGE_HEADER: HeaderName = HeaderName::from_static("x-deliberate-judge");
/// `x-deliberate-request-id`: the id of the audit record.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-deliberate-request-id");

pub(crate) struct Exchange {
    pub shared: Arc<Shared>,
    pub set: Arc<PolicySet>,
    pub record: AuditRecord,
    started: Instant,
    /// Time spent in the gateway's own work.
    pub gateway: Duration,
    upstream_started: Option<Instant>,
    /// The API of the request.
    pub adapter: &'static dyn Adapter,
    /// Facts about the request (defaults until it was parsed).
    pub facts: RequestFacts,
    partial: Vec<&'static str>,
    /// Texts waiting for the judge (filled by the scans, taken by the response future).
    pub judge_jobs: Vec<super::judge::JudgeJob>,
    /// `stage=outcome` of each judge call, for the judge header.
    judge_notes: Vec<String>,
    /// While set, [`finish`](Exchange::finish) keeps the record back (a verdict is pending).
    hold_record: bool,
    deferred: Option<(Outcome, Option<u16>, Option<String>)>,
    stream_open: bool,
    done: bool,
    /// The texts scanned, when a shadow runs on this request or texts are recorded.
    pub capture: Option<Capture>,
    /// The shadow candidate, when this request is in its sample.
    shadow: Option<Arc<PolicySet>>,
    /// The request's span (see [`super::trace`]); its outcome fields are recorded at the end.
    pub span: tracing::Span,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("id", &self.record.id)
            .finish()
    }
}

impl Exchange {
    /// The exchange of a request to `route`, inside `span` (`None`: a span of its own).
    pub fn new(
        shared: Arc<Shared>,
        adapter: &'static dyn Adapter,
        route: &str,
        headers: &HeaderMap,
        span: Option<tracing::Span>,
    ) -> Self {
        let set = shared.policies.current();
        let id = request_id(headers);
        let span = span.unwrap_or_else(|| {
            let span = super::trace::request_span("POST", route);
            span.record("deliberate.api", adapter.name());
            span
        });
        if !span.is_disabled() {
            span.record("deliberate.request_id", id.as_str());
            span.record("deliberate.policy", set.label());
        }
        let record = AuditRecord::new(id, route.to_owned(), set.label().to_owned());
        let shadow = shared
            .shadow
            .as_ref()
            .filter(|s| sampled(s.sample, &record.id))
            .map(|s| s.policies.current())
            .filter(|s| !s.is_empty());
        let capture = (shadow.is_some() || shared.record_texts).then(Capture::default);
        Exchange {
            shared,
            set,
            record,
            started: Instant::now(),
            gateway: Duration::ZERO,
            upstream_started: None,
            adapter,
            facts: RequestFacts {
                n: 1,
                ..Default::default()
            },
            partial: Vec::new(),
            judge_jobs: Vec::new(),
            judge_notes: Vec::new(),
            hold_record: false,
            deferred: None,
            stream_open: false,
            done: false,
            capture,
            shadow,
            span,
        }
    }

    /// Records a finding of an escalated rule: audited, but it decides nothing (the judge
    /// does), so the action is not raised.
    pub fn escalated_finding(
        &mut self,
        (pi, f): &PolicyFinding,
        location: impl FnOnce() -> String,
    ) {
        let label = self.set.policy_label(*pi);
        self.record
            .findings
            .push(AuditFinding::new(label, f, location()));
    }

    /// Records a judge call, for the audit record and the judge header.
    pub fn judged(&mut self, rec: super::judge::JudgeRecord) {
        let note = format!("{}={}", rec.stage.as_str(), rec.outcome);
        if !self.judge_notes.contains(&note) {
            self.judge_notes.push(note);
        }
        if matches!(rec.outcome, "timeout" | "error" | "malformed" | "skipped") {
            self.partial_judge(rec.outcome);
        }
        self.record.judge.push(rec);
    }

    fn partial_judge(&mut self, outcome: &'static str) {
        let reason = match outcome {
            "timeout" => "judge timed out",
            "error" => "judge error",
            "malformed" => "judge answer malformed",
            _ => "judge skipped",
        };
        self.partial(reason);
    }

    /// Keeps the audit record back until [`release_record`](Exchange::release_record): a
    /// verdict on the whole answer is still to come.
    pub fn hold_record(&mut self) {
        self.hold_record = true;
    }

    /// Changes the outcome of a record kept back (a judge refused the answer).
    pub fn override_outcome(&mut self, outcome: Outcome) {
        if let Some(d) = self.deferred.as_mut() {
            d.0 = outcome;
        }
    }

    /// Writes the record kept back, if the exchange ended meanwhile.
    pub fn release_record(&mut self) {
        self.hold_record = false;
        if let Some((o, s, e)) = self.deferred.take() {
            self.finish(o, s, e);
        }
    }

    /// Records a finding of policy `pi` at `location`.
    pub fn finding(&mut self, (pi, f): &PolicyFinding, location: impl FnOnce() -> String) {
        if f.action != Action::Allow {
            self.record.action = self.record.action.max(f.action);
        }
        let label = self.set.policy_label(*pi);
        self.record
            .findings
            .push(AuditFinding::new(label, f, location()));
    }

    /// Marks the enforcement partial for `reason`.
    pub fn partial(&mut self, reason: &'static str) {
        if !self.partial.contains(&reason) {
            self.partial.push(reason);
        }
    }

    /// Raises the recorded action to `action`.
    pub fn act(&mut self, action: Action) {
        self.record.action = self.record.action.max(action);
    }

    pub fn enforcement(&self) -> String {
        if self.partial.is_empty() {
            "full".to_owned()
        } else {
            format!("partial; reason=\"{}\"", self.partial.join(", "))
        }
    }

    /// Adds the `x-deliberate-*` headers.
    pub fn set_headers(&self, headers: &mut HeaderMap) {
        headers.insert(POLICY_HEADER, self.set.label_header().clone());
        headers.insert(
            ACTION_HEADER,
            HeaderValue::from_static(self.record.action.as_str()),
        );
        headers.insert(ENFORCEMENT_HEADER, header_value(&self.enforcement()));
        if !self.judge_notes.is_empty() {
            headers.insert(JUDGE_HEADER, header_value(&self.judge_notes.join(", ")));
        }
        headers.insert(REQUEST_ID_HEADER, header_value(&self.record.id));
    }

    pub fn upstream_called(&mut self) {
        self.upstream_started = Some(Instant::now());
    }

    pub fn upstream_answered(&mut self, status: u16) {
        self.record.upstream_status = Some(status);
        if let Some(t) = self.upstream_started {
            self.record.latency.upstream_ms = Some(millis(t.elapsed()));
        }
    }

    /// Counts `f`'s running time as gateway time.
    pub fn timed<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let t = Instant::now();
        let out = f(self);
        self.gateway += t.elapsed();
        out
    }

    /// Counts the stream as open. An exchange that already ended (the whole stream was decided
    /// before its head went out) is not counted: nothing would close it again.
    pub fn open_stream(&mut self) {
        if !self.stream_open && !self.done {
            self.stream_open = true;
            if let Some(o) = &self.shared.observer {
                o.stream_opened();
            }
        }
    }

    /// Ends the exchange: writes the audit record. Later calls do nothing.
    pub fn finish(&mut self, outcome: Outcome, status: Option<u16>, error: Option<String>) {
        if self.done {
            return;
        }
        if self.hold_record {
            if self.deferred.is_none() {
                self.deferred = Some((outcome, status, error));
            }
            return;
        }
        self.done = true;
        self.record.outcome = outcome;
        if status.is_some() {
            self.record.status = status;
        }
        if error.is_some() {
            self.record.error = error;
        }
        self.record.enforcement = self.enforcement();
        self.record.latency = Latency {
            total_ms: millis(self.started.elapsed()),
            upstream_ms: self.record.latency.upstream_ms,
            gateway_ms: millis(self.gateway),
        };
        if self.stream_open {
            self.stream_open = false;
            if let Some(o) = &self.shared.observer {
                o.stream_closed();
            }
        }
        if let Some(cap) = self.capture.take() {
            if let Some(set) = &self.shadow {
                let span = super::trace::shadow_scan(&self.span, set.label());
                let shadow = span.in_scope(|| decide(set, &cap.texts));
                span.record("deliberate.shadow.action", shadow.action.as_str());
                self.record.shadow = Some(shadow);
            }
            if self.shared.record_texts {
                self.record.texts = cap.texts;
            }
        }
        self.record_span();
        if let Some(o) = &self.shared.observer {
            o.record(&self.record);
        }
    }

    /// Writes the outcome into the request span.
    fn record_span(&self) {
        let span = &self.span;
        if span.is_disabled() {
            return;
        }
        let r = &self.record;
        span.record("deliberate.action", r.action.as_str());
        span.record("deliberate.outcome", r.outcome.as_str());
        span.record("deliberate.enforcement", r.enforcement.as_str());
        if let Some(t) = &r.tenant {
            span.record("deliberate.tenant", t.as_str());
        }
        if let Some(s) = &r.policy_set {
            span.record("deliberate.policy_set", s.as_str());
        }
        if let Some(s) = r.status {
            span.record("http.response.status_code", s);
        }
        if matches!(
            r.outcome,
            Outcome::UpstreamError | Outcome::Timeout | Outcome::Cancelled
        ) || r.status.is_some_and(|s| s >= 500)
        {
            span.record("otel.status_code", "error");
        }
    }

    /// Notes the status sent (headers out), without ending the exchange.
    pub fn sent(&mut self, status: u16) {
        self.record.status = Some(status);
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.hold_record = false;
        if let Some((o, s, e)) = self.deferred.take() {
            self.finish(o, s, e);
        }
        if !self.done {
            self.finish(
                Outcome::Cancelled,
                None,
                Some("client went away".to_owned()),
            );
        }
    }
}

/// The client's `x-request-id` when it is short and plain, else a fresh id.
fn request_id(headers: &HeaderMap) -> String {
    if let Some(v) = headers.get("x-request-id").and_then(|v| v.to_str().ok())
        && !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return v.to_owned();
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    format!("req-{:016x}{:06x}", h.finish(), n & 0xff_ffff)
}
