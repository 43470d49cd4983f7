//! Test doubles for adapters: a [`TextFilter`] and a [`RequestSink`] backed by the real engine
//! (a tiny policy: "pipe bomb" blocks, `secret-\d{4}` is redacted to `[secret]`), and helpers
//! to check SSE output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::json_text::{Decoder, Encoder, decode, encode};
use super::sse::{SseDecoder, SseEvent, SseItem};
use super::{
    Channel, ChannelId, ChannelKind, Emit, Flow, InputText, RequestSink, Step, StreamEnd,
    StreamRewriter, TextFilter, Verdict,
};
use crate::engine::{CompiledPolicy, StreamScanner};
use crate::policy::{Action, Stage};

/// The refusal the test filter blocks with.
pub(crate) const REFUSAL: &str = "Refused by policy.";

const POLICY: &str = r#"
policy: wire-test
rules:
  - id: bomb
    match: {keywords: ["pipe bomb"]}
    roles: ["*"]
    action: block
  - id: secret
    match: {regex: 'secret-\d{4}'}
    roles: ["*"]
    action: redact
    replacement: "[secret]"
"#;

/// The test policy, compiled once.
pub(crate) fn policy() -> Arc<CompiledPolicy> {
    static P: OnceLock<Arc<CompiledPolicy>> = OnceLock::new();
    P.get_or_init(|| Arc::new(CompiledPolicy::from_yaml_str(POLICY, "wire-test.yaml").unwrap()))
        .clone()
}

struct Chan {
    channel: Channel,
    scanner: StreamScanner<'static>,
    dec: Decoder,
    enc: Encoder,
}

/// A [`TextFilter`] over the test policy: every channel at the output stage; JSON channels
/// through [`Decoder`] / [`Encoder`].
pub(crate) struct TestFilter {
    chans: Vec<Chan>,
    blocked: Vec<u32>,
    /// Reasons reported partial.
    pub partial: Vec<&'static str>,
    /// Strip reasoning channels instead of scanning them.
    pub strip_reasoning: bool,
    /// Every whole text scanned, with its channel.
    pub scanned: Vec<(Channel, String)>,
}

impl TestFilter {
    pub(crate) fn new() -> Self {
        TestFilter {
            chans: Vec::new(),
            blocked: Vec::new(),
            partial: Vec::new(),
            strip_reasoning: false,
            scanned: Vec::new(),
        }
    }

    fn out(
        &mut self,
        unit: u32,
        json: bool,
        o: crate::engine::StreamOutput,
        enc: &mut Encoder,
    ) -> Verdict {
        if o.blocked {
            self.blocked.push(unit);
            return Verdict::Block {
                refusal: REFUSAL.to_owned(),
                released: String::new(),
            };
        }
        if json {
            let mut raw = String::new();
            enc.push(&o.text, &mut raw);
            Verdict::Send(raw)
        } else {
            Verdict::Send(o.text)
        }
    }
}

impl TextFilter for TestFilter {
    fn open(&mut self, channel: Channel) -> ChannelId {
        self.chans.push(Chan {
            channel,
            scanner: StreamScanner::new_shared(policy(), Stage::Output),
            dec: Decoder::new(),
            enc: Encoder::new(),
        });
        ChannelId(self.chans.len() - 1)
    }

    fn push(&mut self, id: ChannelId, text: &str) -> Verdict {
        let c = &mut self.chans[id.0];
        let (unit, json) = (c.channel.unit, c.channel.json);
        if self.blocked.contains(&unit) {
            return Verdict::Block {
                refusal: REFUSAL.to_owned(),
                released: String::new(),
            };
        }
        if self.strip_reasoning && c.channel.kind == ChannelKind::Reasoning {
            return Verdict::Strip;
        }
        let o = if json {
            let mut view = String::new();
            c.dec.push(text, &mut view);
            c.scanner.push(&view)
        } else {
            c.scanner.push(text)
        };
        let mut enc = std::mem::take(&mut c.enc);
        let v = self.out(unit, json, o, &mut enc);
        self.chans[id.0].enc = enc;
        v
    }

    fn close(&mut self, id: ChannelId) -> Verdict {
        let c = &mut self.chans[id.0];
        let (unit, json) = (c.channel.unit, c.channel.json);
        if self.blocked.contains(&unit) {
            return Verdict::Block {
                refusal: REFUSAL.to_owned(),
                released: String::new(),
            };
        }
        if self.strip_reasoning && c.channel.kind == ChannelKind::Reasoning {
            return Verdict::Strip;
        }
        let mut o = if json {
            let mut view = String::new();
            c.dec.finish(&mut view);
            c.scanner.push(&view)
        } else {
            Default::default()
        };
        if !o.blocked {
            let f = c.scanner.finish();
            o.text.push_str(&f.text);
            o.blocked = f.blocked;
        }
        let mut enc = std::mem::take(&mut c.enc);
        let v = self.out(unit, json, o, &mut enc);
        self.chans[id.0].enc = enc;
        v
    }

    fn scan(&mut self, channel: &Channel, text: &str) -> Verdict {
        self.scanned.push((channel.clone(), text.to_owned()));
        if self.blocked.contains(&channel.unit) {
            return Verdict::Block {
                refusal: REFUSAL.to_owned(),
                released: String::new(),
            };
        }
        if self.strip_reasoning && channel.kind == ChannelKind::Reasoning {
            return Verdict::Strip;
        }
        let view = if channel.json {
            decode(text)
        } else {
            text.to_owned()
        };
        let d = policy().scan(&view, Stage::Output, None);
        match d.action {
            Action::Block => {
                self.blocked.push(channel.unit);
                Verdict::Block {
                    refusal: REFUSAL.to_owned(),
                    released: String::new(),
                }
            }
            Action::Redact if channel.json => Verdict::Send(encode(&d.output)),
            Action::Redact => Verdict::Send(d.output),
            _ => Verdict::Send(text.to_owned()),
        }
    }

    fn partial(&mut self, reason: &'static str) {
        self.partial.push(reason);
    }

    fn is_blocked(&self, unit: u32) -> bool {
        self.blocked.contains(&unit)
    }
}

/// A [`RequestSink`] over the test policy (input stage): records every text, redacts in place,
/// stops at a block.
#[derive(Default)]
pub(crate) struct TestSink {
    /// `(role, location, text as read, json)`.
    pub texts: Vec<(Option<String>, String, String, bool)>,
    pub partial: Vec<&'static str>,
    pub blocked: bool,
}

impl RequestSink for TestSink {
    fn text(&mut self, t: InputText<'_>) -> Flow {
        self.texts.push((
            t.role.map(str::to_owned),
            (t.location)(),
            t.text.clone(),
            t.json,
        ));
        let view = if t.json {
            decode(t.text)
        } else {
            t.text.clone()
        };
        let d = policy().scan(&view, Stage::Input, t.role);
        match d.action {
            Action::Block => {
                self.blocked = true;
                Flow::Stop
            }
            Action::Redact => {
                *t.text = if t.json { encode(&d.output) } else { d.output };
                Flow::Continue
            }
            _ => Flow::Continue,
        }
    }

    fn partial(&mut self, reason: &'static str) {
        self.partial.push(reason);
    }
}

/// Runs `rw` over the SSE body `pieces` (any split), as the layer would.
pub(crate) fn run_stream(
    rw: &mut dyn StreamRewriter,
    filter: &mut TestFilter,
    pieces: &[&[u8]],
) -> (Vec<u8>, StreamEnd, bool) {
    let mut dec = SseDecoder::new(1 << 20);
    let mut out = Emit::default();
    let mut progress = false;
    for p in pieces {
        for item in dec.push(p).unwrap() {
            let SseItem::Event(e) = item else { continue };
            if let Step::Ended(end) = rw.event(&e, filter, &mut out).unwrap() {
                return (out.buf.to_vec(), end, progress || out.progress);
            }
            progress |= out.progress;
        }
    }
    if let Some(e) = dec.finish().unwrap()
        && let Step::Ended(end) = rw.event(&e, filter, &mut out).unwrap()
    {
        return (out.buf.to_vec(), end, true);
    }
    let end = rw.end(filter, &mut out);
    (out.buf.to_vec(), end, progress || out.progress)
}

/// The events of an SSE body.
pub(crate) fn events(body: &[u8]) -> Vec<SseEvent> {
    let mut dec = SseDecoder::new(1 << 20);
    let mut out: Vec<SseEvent> = dec
        .push(body)
        .unwrap()
        .into_iter()
        .filter_map(|i| match i {
            SseItem::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    out.extend(dec.finish().unwrap());
    out
}

/// The data of each event, parsed (`[DONE]` left out).
pub(crate) fn json_events(body: &[u8]) -> Vec<Value> {
    events(body)
        .into_iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

/// Every way to cut `body` in two.
pub(crate) fn splits(body: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    (0..=body.len()).map(move |i| body.split_at(i))
}
