//! Tests of the Messages adapter against the real engine: a [`TextFilter`] and a
//! [`RequestSink`] backed by a compiled policy (a blocked keyword, a redacted secret).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod answer;
mod events;
mod fail_closed;
mod request;
mod stream;

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::engine::{CompiledPolicy, StreamScanner};
use crate::policy::{Action, Stage};
use crate::wire::json_text::{Decoder, Encoder, decode, encode};
use crate::wire::{
    Channel, ChannelId, ChannelKind, Flow, InputText, RequestSink, TextFilter, Verdict,
};

const POLICY: &str = r#"
policy: t
rules:
  - id: bomb
    stages: [input, output, reasoning]
    roles: [system, developer, user, assistant, tool, tool_definition]
    match:
      keywords: ["pipe bomb"]
    action: block
  - id: secret
    stages: [input, output, reasoning]
    roles: [system, developer, user, assistant, tool, tool_definition]
    match:
      regex: 'secret-\d{4}'
    action: redact
    replacement: "[secret]"
refusal: "Refused under {section}."
"#;

/// The test policy, compiled once.
fn policy() -> Arc<CompiledPolicy> {
    static P: OnceLock<Arc<CompiledPolicy>> = OnceLock::new();
    P.get_or_init(|| Arc::new(CompiledPolicy::from_yaml_str(POLICY, "t.yaml").expect("compiles")))
        .clone()
}

/// The refusal of the test policy's block.
fn refusal() -> String {
    let p = policy();
    p.refusal_for(p.rule("bomb"))
}

fn stage_of(kind: ChannelKind) -> Stage {
    match kind {
        ChannelKind::Reasoning => Stage::Reasoning,
        _ => Stage::Output,
    }
}

/// A whole text through the buffered engine: the decision's output, or `None` on a block.
/// JSON text is decoded first and the output re-encoded.
fn scan_whole(text: &str, json: bool, stage: Stage, role: Option<&str>) -> Option<String> {
    let p = policy();
    let view = if json { decode(text) } else { text.to_owned() };
    let d = p.scan(&view, stage, role);
    if d.action == Action::Block {
        return None;
    }
    Some(if json { encode(&d.output) } else { d.output })
}

struct Chan {
    channel: Channel,
    scanner: StreamScanner<'static>,
    decoder: Decoder,
    encoder: Encoder,
}

/// The layer's part, as small as it gets: one [`StreamScanner`] per channel, JSON channels
/// through the [`Decoder`] / [`Encoder`], every verdict recorded.
#[derive(Default)]
pub(super) struct EngineFilter {
    chans: Vec<Chan>,
    blocked: bool,
    pub partial: Vec<&'static str>,
    /// Every whole text scanned, with its channel.
    pub scanned: Vec<(Channel, String)>,
}

impl EngineFilter {
    fn verdict(&mut self, out: crate::engine::StreamOutput, json: bool, enc: usize) -> Verdict {
        if out.blocked {
            self.blocked = true;
            return Verdict::Block {
                refusal: refusal(),
                released: String::new(),
            };
        }
        if json {
            let mut s = String::new();
            self.chans[enc].encoder.push(&out.text, &mut s);
            Verdict::Send(s)
        } else {
            Verdict::Send(out.text)
        }
    }
}

impl TextFilter for EngineFilter {
    fn open(&mut self, channel: Channel) -> ChannelId {
        let scanner = StreamScanner::new_shared(policy(), stage_of(channel.kind));
        self.chans.push(Chan {
            channel,
            scanner,
            decoder: Decoder::new(),
            encoder: Encoder::new(),
        });
        ChannelId(self.chans.len() - 1)
    }

    fn push(&mut self, id: ChannelId, text: &str) -> Verdict {
        if self.blocked {
            return Verdict::Block {
                refusal: refusal(),
                released: String::new(),
            };
        }
        let c = &mut self.chans[id.0];
        let json = c.channel.json;
        let out = if json {
            let mut view = String::new();
            c.decoder.push(text, &mut view);
            c.scanner.push(&view)
        } else {
            c.scanner.push(text)
        };
        self.verdict(out, json, id.0)
    }

    fn close(&mut self, id: ChannelId) -> Verdict {
        if self.blocked {
            return Verdict::Block {
                refusal: refusal(),
                released: String::new(),
            };
        }
        let c = &mut self.chans[id.0];
        let json = c.channel.json;
        let mut view = String::new();
        c.decoder.finish(&mut view);
        let mut out = c.scanner.push(&view);
        if !out.blocked {
            let f = c.scanner.finish();
            out.text.push_str(&f.text);
            out.blocked = f.blocked;
        }
        self.verdict(out, json, id.0)
    }

    fn scan(&mut self, channel: &Channel, text: &str) -> Verdict {
        self.scanned.push((channel.clone(), text.to_owned()));
        if self.blocked {
            return Verdict::Block {
                refusal: refusal(),
                released: String::new(),
            };
        }
        match scan_whole(text, channel.json, stage_of(channel.kind), None) {
            Some(s) => Verdict::Send(s),
            None => {
                self.blocked = true;
                Verdict::Block {
                    refusal: refusal(),
                    released: String::new(),
                }
            }
        }
    }

    fn partial(&mut self, reason: &'static str) {
        self.partial.push(reason);
    }

    fn is_blocked(&self, _unit: u32) -> bool {
        self.blocked
    }
}

/// One text a [`RecordingSink`] read.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Seen {
    pub role: Option<String>,
    pub location: String,
    pub text: String,
    pub json: bool,
}

/// A request sink that records every text, redacts and stops on a block, as the layer does.
#[derive(Debug, Default)]
pub(super) struct RecordingSink {
    pub seen: Vec<Seen>,
    pub partial: Vec<&'static str>,
    pub stopped: bool,
}

impl RequestSink for RecordingSink {
    fn text(&mut self, t: InputText<'_>) -> Flow {
        self.seen.push(Seen {
            role: t.role.map(str::to_owned),
            location: (t.location)(),
            text: t.text.clone(),
            json: t.json,
        });
        match scan_whole(t.text, t.json, Stage::Input, t.role) {
            Some(s) => {
                *t.text = s;
                Flow::Continue
            }
            None => {
                self.stopped = true;
                Flow::Stop
            }
        }
    }

    fn partial(&mut self, reason: &'static str) {
        self.partial.push(reason);
    }
}

/// Parses JSON or fails the test.
fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}
