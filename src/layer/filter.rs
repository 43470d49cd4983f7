//! The layer's side of the wire seam for answers: [`OutputFilter`], a [`TextFilter`] (its
//! counterpart for requests is [`InputScan`](super::input_scan::InputScan)). Adapters hand it
//! texts by channel; it runs the policy set, records findings, strips deliberation blocks,
//! applies the operator's reasoning mode and decodes JSON texts — so no adapter knows about
//! policies.

use super::audit::Deliberation;
use super::chain::{self, ChainScanner, PolicyFinding};
use super::deliberation::DeliberationStripper;
use super::exchange::Exchange;
use super::options::ReasoningMode;
use super::shape::ShapeCheck;
use crate::engine::apply_redactions;
use crate::engine::judge::{Escalation, JudgeMode};
use crate::policy::{Action, Stage};
use crate::wire::json_text::{self, Decoder, Encoder};
use crate::wire::{Channel, ChannelId, ChannelKind, TextFilter, Verdict};

/// What the filter keeps across the events of one answer.
#[derive(Debug, Default)]
pub(crate) struct FilterState {
    channels: Vec<ChannelState>,
    blocked: Vec<u32>,
    /// The refusal of the first block.
    pub refusal: Option<String>,
    /// Every unit is refused (see [`FilterState::refusing`]).
    refuse_all: bool,
    /// Whether released content text is kept for the judge (judged streams).
    pub collect: bool,
    /// The answer is a stream: escalations of whole-scanned fields are not judged (nothing
    /// waits for a verdict there), so escalating rules act as their fallback, except on
    /// content channels with `escalating`.
    pub streaming: bool,
    /// Streams whose body waits for verdicts on escalations (a judge is configured and the
    /// stream is not judged unprompted): `escalate` rules on content text are flagged, their
    /// text released into [`escalations`](Self::escalations)' hold instead of decided here.
    pub escalating: bool,
    /// Escalations found on content text since the stream body last took them: the policy
    /// index and what it escalates. The body holds everything from the event that found them
    /// until the judge has spoken on the content released so far.
    pub escalations: Vec<(usize, Escalation)>,
    /// What the content chain still held when the last escalation was flagged: a later
    /// policy of the set may hold part of the escalated match, which the judge must read too.
    pub escalation_held: String,
    /// Released content text, per unit (choice), when `collect` is set.
    pub collected: Vec<(u32, String)>,
    /// Streams: the end of what each whole-scanned field (unknown strings, by unit and
    /// location) said in earlier events, so that a phrase split across two events is seen.
    whole_tails: Vec<((u32, String), String)>,
}

impl FilterState {
    /// The state of a streamed answer.
    pub fn streaming() -> Self {
        FilterState {
            streaming: true,
            ..Default::default()
        }
    }

    /// A state in which every unit is already refused with `refusal`: running an answer
    /// through it re-encodes each unit as the refusal (a judge's block of a buffered answer).
    pub fn refusing(refusal: String) -> Self {
        FilterState {
            refuse_all: true,
            refusal: Some(refusal),
            ..Default::default()
        }
    }

    fn is_refused(&self, unit: u32) -> bool {
        self.refuse_all || self.blocked.contains(&unit)
    }

    /// Released content text of all units, for the judge.
    pub fn collected_text(&self) -> String {
        let mut parts: Vec<&(u32, String)> = self.collected.iter().collect();
        parts.sort_by_key(|(u, _)| *u);
        parts
            .iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    fn keep(&mut self, unit: u32, text: &str) {
        if !self.collect || text.is_empty() {
            return;
        }
        match self.collected.iter_mut().find(|(u, _)| *u == unit) {
            Some((_, t)) => t.push_str(text),
            None => self.collected.push((unit, text.to_owned())),
        }
    }
}

#[derive(Debug)]
struct ChannelState {
    channel: Channel,
    /// `None` for reasoning the operator passes or strips.
    chain: Option<ChainScanner>,
    strippers: Vec<DeliberationStripper>,
    json: Option<(Decoder, Encoder)>,
    /// JSON channels: the structure of what was scanned against the structure of what is
    /// released, so a redaction that would change the JSON is refused, as on buffered answers.
    shape: Option<ShapeCheck>,
    /// The last redaction found on this channel (the finding a structure change refuses with).
    redaction: Option<PolicyFinding>,
}

/// A [`TextFilter`] over one exchange. Short-lived: made for each event or buffered answer.
pub(crate) struct OutputFilter<'a> {
    pub ex: &'a mut Exchange,
    pub state: &'a mut FilterState,
}

impl OutputFilter<'_> {
    /// What a piece of channel `id` comes to before it is read: nothing for a channel the
    /// filter does not know, the refusal for a unit already refused; `None`: scan it.
    fn gate(&self, id: ChannelId) -> Option<Verdict> {
        let Some(st) = self.state.channels.get(id.0) else {
            return Some(Verdict::Send(String::new()));
        };
        let refusal = self.state.refusal.as_ref()?;
        (self.state.refuse_all || self.state.blocked.contains(&st.channel.unit)).then(|| {
            Verdict::Block {
                refusal: refusal.clone(),
                released: String::new(),
            }
        })
    }

    fn stage_of(&self, kind: ChannelKind) -> Option<Stage> {
        match kind {
            ChannelKind::Reasoning => match self.ex.shared.opts.reasoning {
                ReasoningMode::Scan => Some(Stage::Reasoning),
                ReasoningMode::Pass | ReasoningMode::Strip => None,
            },
            _ => Some(Stage::Output),
        }
    }

    /// What reasoning becomes when it is not scanned.
    fn unscanned(&mut self, text: &str) -> Verdict {
        match self.ex.shared.opts.reasoning {
            ReasoningMode::Strip => Verdict::Strip,
            _ => {
                if !text.is_empty() {
                    self.ex.partial("reasoning not scanned");
                }
                Verdict::Send(text.to_owned())
            }
        }
    }

    fn strippers(&self) -> Vec<DeliberationStripper> {
        let max = self.ex.shared.opts.max_audit_deliberation_bytes;
        self.ex
            .set
            .policies()
            .iter()
            .filter_map(|p| p.spec.deliberation_tag.as_deref())
            .map(|t| DeliberationStripper::new(t, max))
            .collect()
    }

    /// Keeps the hidden deliberation of `unit` in the audit record.
    fn record_deliberation(&mut self, unit: u32, strippers: &[DeliberationStripper]) {
        for s in strippers {
            if s.blocks() > 0 {
                let text = mask_deliberation(self.ex, s.hidden());
                self.ex.record.deliberation.push(Deliberation {
                    choice: unit,
                    text,
                    truncated: s.truncated(),
                });
            }
        }
    }

    /// A stream field scanned whole in each event (an unknown string) may carry one phrase
    /// in two events: scans what the field said before (up to the policy's holdback) joined
    /// with `view`, and returns the blocking or redacting finding that crosses from one to the
    /// other (or the block that only the joined text makes). Its first part already went out,
    /// so nothing can be redacted: the caller refuses. Then remembers the joined text's end.
    fn across_events(
        &mut self,
        channel: &Channel,
        stage: Stage,
        view: &str,
    ) -> Option<PolicyFinding> {
        let slot = match self
            .state
            .whole_tails
            .iter()
            .position(|((unit, location), _)| {
                *unit == channel.unit && *location == channel.location
            }) {
            Some(i) => i,
            None => {
                let key = (channel.unit, channel.location.clone());
                self.state.whole_tails.push((key, String::new()));
                self.state.whole_tails.len() - 1
            }
        };
        let tail = std::mem::take(&mut self.state.whole_tails[slot].1);
        let mut joined = tail;
        let cut = joined.len();
        joined.push_str(view);
        let found = if cut == 0 {
            None
        } else {
            let set = self.ex.set.clone();
            let j = chain::scan(&set, &joined, stage, None, false);
            let crossing = j.findings.into_iter().find(|(_, f)| {
                matches!(f.action, Action::Block | Action::Redact) && f.start < cut && f.end > cut
            });
            crossing.or(j.block)
        };
        let keep = self
            .ex
            .set
            .policies()
            .iter()
            .map(|p| p.holdback(stage))
            .max()
            .unwrap_or(0);
        self.state.whole_tails[slot].1 = tail_of(&joined, keep).to_owned();
        found
    }

    fn blocked(&mut self, unit: u32, (pi, f): &PolicyFinding, released: String) -> Verdict {
        self.ex.act(Action::Block);
        let refusal = self
            .ex
            .set
            .policies()
            .get(*pi)
            .map(|p| p.refusal_for(p.rule(&f.rule)))
            .unwrap_or_default();
        if !self.state.blocked.contains(&unit) {
            self.state.blocked.push(unit);
        }
        self.state.refusal.get_or_insert_with(|| refusal.clone());
        Verdict::Block { refusal, released }
    }

    /// When `f` is a finding of an `escalate` rule on a content channel of an escalating
    /// stream (reported as a flag by the scanner): notes the escalation for the stream body
    /// and returns the finding with its rule's own action, for the record.
    fn escalated(&mut self, content: bool, (pi, f): &PolicyFinding) -> Option<PolicyFinding> {
        if !(content && self.state.escalating) {
            return None;
        }
        let policy = self.ex.set.policies().get(*pi)?;
        // Only a policy that judges output had its scanner report escalations as flags.
        if f.action != Action::Flag || policy.judge.mode(Stage::Output) == JudgeMode::Off {
            return None;
        }
        let rule = policy.rule(&f.rule).filter(|r| r.escalate)?;
        let mut original = f.clone();
        original.action = rule.action;
        match self.state.escalations.iter_mut().find(|(p, _)| p == pi) {
            Some((_, e)) => e.add(f),
            None => {
                let mut e = Escalation::default();
                e.add(f);
                self.state.escalations.push((*pi, e));
            }
        }
        Some((*pi, original))
    }

    /// Keeps a scanned piece of channel `i` for the shadow and the record.
    fn capture(&mut self, i: usize, piece: &str) {
        let Some(st) = self.state.channels.get(i) else {
            return;
        };
        if let Some(stage) = self.stage_of(st.channel.kind)
            && let Some(c) = self.ex.capture.as_mut()
        {
            c.piece(i, stage, &st.channel.location, piece);
        }
    }

    /// Runs a piece (or, with `fin`, the end) of channel `i` through its chain.
    fn run(&mut self, i: usize, view: &str, fin: bool) -> Verdict {
        let Some(st) = self.state.channels.get_mut(i) else {
            return Verdict::Send(String::new());
        };
        let Some(chain) = st.chain.as_mut() else {
            return Verdict::Send(view.to_owned());
        };
        let mut o = if view.is_empty() && !fin {
            Default::default()
        } else {
            chain.push(view)
        };
        if fin && o.block.is_none() {
            let f = chain.finish();
            o.text.push_str(&f.text);
            o.findings.extend(f.findings);
            o.block = f.block;
        }
        let held = (self.state.escalating && o.findings.iter().any(|f| f.1.action == Action::Flag))
            .then(|| chain.held_text());
        if let Some(f) = o
            .findings
            .iter()
            .rev()
            .find(|f| f.1.action == Action::Redact)
        {
            st.redaction = Some(f.clone());
        }
        let broken = st.shape.as_mut().is_some_and(|shape| {
            shape.scanned(view);
            !shape.released(&o.text) || (fin && o.block.is_none() && !shape.finished())
        });
        let redaction = st.redaction.clone();
        let mut text = o.text;
        if let Some((_, enc)) = st.json.as_mut() {
            let mut raw = String::with_capacity(text.len());
            enc.push(&text, &mut raw);
            text = raw;
        }
        let unit = st.channel.unit;
        let content = st.channel.kind == ChannelKind::Content;
        let location = st.channel.location.clone();
        for f in &o.findings {
            match self.escalated(content, f) {
                Some(f) => {
                    self.ex.escalated_finding(&f, || location.clone());
                    if let Some(h) = &held {
                        self.state.escalation_held.clone_from(h);
                    }
                }
                None => self.ex.finding(f, || location.clone()),
            }
        }
        if broken && o.block.is_none() {
            // A redaction would change the structure of the JSON the client parses: refuse
            // instead (nothing of this piece is sent).
            if let Some(f) = redaction {
                return self.blocked(unit, &f, String::new());
            }
        }
        match o.block {
            Some(b) => self.blocked(unit, &b, text),
            None => {
                if content {
                    self.state.keep(unit, &text);
                }
                Verdict::Send(text)
            }
        }
    }
}

impl TextFilter for OutputFilter<'_> {
    fn open(&mut self, channel: Channel) -> ChannelId {
        let stage = self.stage_of(channel.kind);
        let escalating = self.state.escalating
            && channel.kind == ChannelKind::Content
            && stage == Some(Stage::Output);
        let chain = stage.map(|s| ChainScanner::new(&self.ex.set, s, escalating));
        let strippers = if channel.kind == ChannelKind::Content {
            self.strippers()
        } else {
            Vec::new()
        };
        let json = channel.json.then(|| (Decoder::new(), Encoder::new()));
        let shape = channel.json.then(ShapeCheck::default);
        self.state.channels.push(ChannelState {
            channel,
            chain,
            strippers,
            json,
            shape,
            redaction: None,
        });
        ChannelId(self.state.channels.len() - 1)
    }

    fn push(&mut self, id: ChannelId, text: &str) -> Verdict {
        if let Some(v) = self.gate(id) {
            return v;
        }
        let Some(st) = self.state.channels.get_mut(id.0) else {
            return Verdict::Send(String::new());
        };
        if st.chain.is_none() {
            return self.unscanned(text);
        }
        let mut visible = text.to_owned();
        for s in st.strippers.iter_mut() {
            visible = s.push(&visible);
        }
        if let Some((dec, _)) = st.json.as_mut() {
            let mut view = String::with_capacity(visible.len());
            dec.push(&visible, &mut view);
            visible = view;
        }
        self.capture(id.0, &visible);
        self.run(id.0, &visible, false)
    }

    fn close(&mut self, id: ChannelId) -> Verdict {
        if let Some(v) = self.gate(id) {
            return v;
        }
        let Some(st) = self.state.channels.get_mut(id.0) else {
            return Verdict::Send(String::new());
        };
        let unit = st.channel.unit;
        if st.chain.is_none() {
            return self.unscanned("");
        }
        // What the strippers held, then what the scanners held.
        let mut tail = String::new();
        for s in st.strippers.iter_mut() {
            let mut t = s.push(&tail);
            t.push_str(&s.finish());
            tail = t;
        }
        let strippers = std::mem::take(&mut st.strippers);
        if let Some((dec, _)) = st.json.as_mut() {
            let mut view = String::new();
            dec.push(&tail, &mut view);
            dec.finish(&mut view);
            tail = view;
        }
        self.record_deliberation(unit, &strippers);
        self.capture(id.0, &tail);
        self.run(id.0, &tail, true)
    }

    fn scan(&mut self, channel: &Channel, text: &str) -> Verdict {
        if let Some(refusal) = self.state.refusal.clone()
            && self.state.is_refused(channel.unit)
        {
            return Verdict::Block {
                refusal,
                released: String::new(),
            };
        }
        let Some(stage) = self.stage_of(channel.kind) else {
            return self.unscanned(text);
        };
        let mut visible = std::borrow::Cow::Borrowed(text);
        if channel.kind == ChannelKind::Content {
            let mut strippers = self.strippers();
            let mut v = visible.into_owned();
            for s in strippers.iter_mut() {
                let mut out = s.push(&v);
                out.push_str(&s.finish());
                v = out;
            }
            self.record_deliberation(channel.unit, &strippers);
            visible = std::borrow::Cow::Owned(v);
        }
        let view = if channel.json {
            std::borrow::Cow::Owned(json_text::decode(&visible))
        } else {
            visible.clone()
        };
        if let Some(c) = self.ex.capture.as_mut() {
            c.text(stage, None, channel.location.clone(), &view);
        }
        let set = self.ex.set.clone();
        // A stream event's whole-string fields (tool names, unknown fields) are scanned here
        // too: there, nothing waits for a verdict, so escalating rules keep their fallback.
        let judging = self.ex.shared.judge.is_some() && !self.state.streaming;
        let d = chain::scan(&set, &view, stage, None, judging);
        for f in &d.findings {
            self.ex.finding(f, || channel.location.clone());
        }
        if let Some(b) = &d.block {
            return self.blocked(channel.unit, b, String::new());
        }
        if self.state.streaming
            && let Some(f) = self.across_events(channel, stage, &view)
        {
            self.ex.finding(&f, || channel.location.clone());
            return self.blocked(channel.unit, &f, String::new());
        }
        if judging {
            super::judging::queue_jobs(
                self.ex,
                &set,
                &d,
                stage,
                &view,
                channel.kind == ChannelKind::Content,
                &|| channel.location.clone(),
            );
        }
        if d.action == Action::Redact
            && let Some(output) = d.output.as_deref()
            && output != &*view
        {
            if !channel.json {
                return Verdict::Send(output.to_owned());
            }
            let raw = json_text::encode(output);
            // A redaction must not change the structure of the JSON the client parses.
            let was_json = serde_json::from_str::<serde::de::IgnoredAny>(&visible).is_ok();
            if was_json && serde_json::from_str::<serde::de::IgnoredAny>(&raw).is_err() {
                let f = d
                    .findings
                    .iter()
                    .find(|f| f.1.action == Action::Redact)
                    .cloned();
                if let Some(f) = f {
                    return self.blocked(channel.unit, &f, String::new());
                }
            }
            return Verdict::Send(raw);
        }
        Verdict::Send(visible.into_owned())
    }

    fn partial(&mut self, reason: &'static str) {
        self.ex.partial(reason);
    }

    fn is_blocked(&self, unit: u32) -> bool {
        self.state.is_refused(unit)
    }
}

/// A deliberation block for the audit log: redactions of the output stage applied.
pub(crate) fn mask_deliberation(ex: &Exchange, text: &str) -> String {
    let mut out = text.to_owned();
    for p in ex.set.policies() {
        let d = p.scan(&out, Stage::Output, None);
        if d.findings.iter().any(|f| f.action == Action::Redact) {
            out = apply_redactions(&out, &d.findings, |id| p.replacement(id));
        }
    }
    out
}

/// The last `keep` bytes of `text` or a little less: cut after a space where there is one, so
/// that the kept text does not begin inside a word (which could make a word boundary the text
/// never had).
fn tail_of(text: &str, keep: usize) -> &str {
    if text.len() <= keep {
        return text;
    }
    let mut start = text.len() - keep;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let rest = &text[start..];
    match rest.find(char::is_whitespace) {
        Some(i) => &rest[i..],
        None => rest,
    }
}
