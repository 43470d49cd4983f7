//! Shadow policies and recorded texts.
//!
//! A **shadow** candidate ([`PolicyLayer::shadow`](super::PolicyLayer::shadow)) is scanned
//! over the same texts the live policies scanned — request texts by role, and each answer
//! channel's whole text, streams included (the streamed decision equals the buffered one) —
//! after the exchange ended, so it never changes what the client gets. Its decision goes to
//! the audit record as `shadow` ([`ShadowRecord`], defined with the record in `audit.rs`). A sample rate bounds the cost; `0` (the
//! default) turns it off.
//!
//! With `record_texts` (off by default) the record also keeps those texts (`texts`), for
//! `deliberate eval --replay`. **They are the users' prompts and the model's answers,
//! unredacted** (what the live policies saw before their redactions): an audit log with texts
//! is personal data; keep it only as long as a replay needs it and restrict who reads it.

use std::hash::{BuildHasher, Hasher};

pub use super::audit::{ScannedText, ShadowRecord};

use super::audit::AuditFinding;
use super::chain;
use super::policies::{PolicySet, SharedPolicies};
use crate::policy::{Action, Stage};

/// A candidate policy set run in shadow, and how often.
#[derive(Debug, Clone)]
pub struct ShadowConfig {
    /// The candidate.
    pub policies: SharedPolicies,
    /// Share of requests scanned by it, `0.0..=1.0`.
    pub sample: f64,
}

/// Whether the request with id `id` is in the sample.
pub(crate) fn sampled(sample: f64, id: &str) -> bool {
    if sample <= 0.0 {
        return false;
    }
    if sample >= 1.0 {
        return true;
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(id.as_bytes());
    (h.finish() as f64 / u64::MAX as f64) < sample
}

/// Scans `texts` with `set`: the shadow decision.
pub(crate) fn decide(set: &PolicySet, texts: &[ScannedText]) -> ShadowRecord {
    let mut action = Action::Allow;
    let mut findings = Vec::new();
    for t in texts {
        let d = chain::scan(set, &t.text, t.stage, t.role.as_deref(), false);
        action = action.max(d.action);
        for (pi, f) in &d.findings {
            let label = set.policy_label(*pi);
            findings.push(AuditFinding::new(label, f, t.location.clone()));
        }
    }
    ShadowRecord {
        policy: set.label().to_owned(),
        action,
        findings,
    }
}

/// The texts of one exchange, input texts one by one and answer channels appended piece by
/// piece.
#[derive(Debug, Default)]
pub(crate) struct Capture {
    pub texts: Vec<ScannedText>,
    /// Answer channel index → position in `texts`.
    channels: Vec<(usize, usize)>,
}

impl Capture {
    pub fn text(&mut self, stage: Stage, role: Option<&str>, location: String, text: &str) {
        self.texts.push(ScannedText {
            stage,
            role: role.map(str::to_owned),
            location,
            text: text.to_owned(),
        });
    }

    /// Appends `piece` to answer channel `channel`.
    pub fn piece(&mut self, channel: usize, stage: Stage, location: &str, piece: &str) {
        if let Some(&(_, i)) = self.channels.iter().find(|(c, _)| *c == channel)
            && let Some(t) = self.texts.get_mut(i)
        {
            t.text.push_str(piece);
            return;
        }
        self.channels.push((channel, self.texts.len()));
        self.text(stage, None, location.to_owned(), piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_off_at_zero_and_always_at_one() {
        assert!(!sampled(0.0, "a"));
        assert!(sampled(1.0, "a"));
        let n = (0..2000)
            .filter(|i| sampled(0.25, &format!("req-{i}")))
            .count();
        assert!((300..700).contains(&n), "{n}");
    }

    #[test]
    fn pieces_of_a_channel_join() {
        let mut c = Capture::default();
        c.text(
            Stage::Input,
            Some("user"),
            "messages[0].content".into(),
            "hi",
        );
        c.piece(0, Stage::Output, "choices[0].content", "pipe ");
        c.piece(1, Stage::Output, "choices[1].content", "x");
        c.piece(0, Stage::Output, "choices[0].content", "bomb");
        assert_eq!(c.texts.len(), 3);
        assert_eq!(c.texts[1].text, "pipe bomb");
    }
}
