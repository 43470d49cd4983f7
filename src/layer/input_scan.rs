//! The layer's side of the wire seam for requests: [`InputScan`], a [`RequestSink`]. The
//! adapter hands it each text of a request with its role; it scans the text with the input
//! rules of that role, records findings, applies redactions, notes the sections that fired for
//! injection and queues judge jobs (see [`OutputFilter`](super::filter::OutputFilter) for
//! answers).

use std::sync::Arc;

use super::chain::{self, ChainDecision, PolicyFinding};
use super::exchange::Exchange;
use super::judging::queue_jobs;
use super::policies::PolicySet;
use crate::policy::{Action, Stage};
use crate::wire::json_text;
use crate::wire::{Flow, InputText, RequestSink};

/// A [`RequestSink`]: scans each text of a request with the input rules of its role.
pub(crate) struct InputScan<'a> {
    pub ex: &'a mut Exchange,
    pub set: Arc<PolicySet>,
    /// Per policy: the sections whose rules or triggers fired (for injection).
    pub fired: Vec<Vec<String>>,
    /// The finding that refused the request.
    pub block: Option<PolicyFinding>,
    /// Some text was rewritten.
    pub changed: bool,
    /// Normalized bytes of the texts scanned so far (see [`super::budget`]).
    pub spent: usize,
    /// The scan budget ran out: what the request would have spent with the text that crossed
    /// it.
    pub over_budget: Option<usize>,
}

impl<'a> InputScan<'a> {
    pub fn new(ex: &'a mut Exchange) -> Self {
        let set = ex.set.clone();
        let n = set.policies().len();
        InputScan {
            ex,
            set,
            fired: vec![Vec::new(); n],
            block: None,
            changed: false,
            spent: 0,
            over_budget: None,
        }
    }

    /// The input scan of `text` for `role`, from the layer's scan cache when it has it.
    fn scan(&self, text: &str, role: Option<&str>) -> Arc<ChainDecision> {
        let judging = self.ex.shared.judge.is_some();
        let scan = || chain::scan(&self.set, text, Stage::Input, role, judging);
        match &self.ex.shared.scan_cache {
            // A text with no known role is keyed apart from every role name.
            Some(cache) => cache.get_or_scan(self.set.id(), role.unwrap_or("\0any"), text, scan),
            None => Arc::new(scan()),
        }
    }

    fn note(&mut self, findings: &[PolicyFinding], location: &dyn Fn() -> String) {
        for pf in findings {
            if pf.1.action != Action::Allow
                && let Some(s) = &pf.1.section
                && !self.fired[pf.0].contains(s)
            {
                self.fired[pf.0].push(s.clone());
            }
            self.ex.finding(pf, location);
        }
    }
}

impl RequestSink for InputScan<'_> {
    fn text(&mut self, t: InputText<'_>) -> Flow {
        let view = if t.json {
            std::borrow::Cow::Owned(json_text::decode(t.text))
        } else {
            std::borrow::Cow::Borrowed(t.text.as_str())
        };
        // The budget is checked before the scan, so a request past it costs no more than it.
        let spent = self
            .spent
            .saturating_add(super::budget::normalized_len(&view));
        if spent > self.ex.shared.opts.max_scan_bytes {
            self.over_budget = Some(spent);
            return Flow::Stop;
        }
        self.spent = spent;
        if let Some(c) = self.ex.capture.as_mut() {
            c.text(Stage::Input, t.role, (t.location)(), &view);
        }
        let d = self.scan(&view, t.role);
        self.note(&d.findings, t.location);
        if let Some(b) = &d.block {
            self.block = Some(b.clone());
            return Flow::Stop;
        }
        if self.ex.shared.judge.is_some() {
            // Escalated sections are relevant: the model reads them too.
            for (pi, esc, _) in &d.escalations {
                for s in &esc.sections {
                    if !self.fired[*pi].contains(s) {
                        self.fired[*pi].push(s.clone());
                    }
                }
            }
            let set = self.set.clone();
            // Instructions (system, developer) and the model's own turns are not judged
            // unprompted; what users and tools say is.
            let judged_role = t.role.is_none_or(|r| r == "user" || r == "tool");
            queue_jobs(
                self.ex,
                &set,
                &d,
                Stage::Input,
                &view,
                judged_role,
                t.location,
            );
        }
        // Section triggers came out of the same scan: no second pass to choose sections.
        for (pi, section) in &d.triggered {
            if !self.fired[*pi].contains(section) {
                self.fired[*pi].push(section.clone());
            }
        }
        if d.action == Action::Redact
            && let Some(output) = d.output.as_deref()
            && output != &*view
        {
            let out = if t.json {
                let raw = json_text::encode(output);
                let was_json = serde_json::from_str::<serde::de::IgnoredAny>(t.text).is_ok();
                if was_json && serde_json::from_str::<serde::de::IgnoredAny>(&raw).is_err() {
                    // The redaction would change the JSON's structure: refuse instead.
                    self.block = d
                        .findings
                        .iter()
                        .find(|f| f.1.action == Action::Redact)
                        .cloned();
                    return Flow::Stop;
                }
                raw
            } else {
                output.to_owned()
            };
            *t.text = out;
            self.changed = true;
        }
        Flow::Continue
    }

    fn partial(&mut self, reason: &'static str) {
        self.ex.partial(reason);
    }
}
