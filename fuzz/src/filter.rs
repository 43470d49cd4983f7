//! An engine-backed [`TextFilter`] for the stream harnesses: the layer's part reduced to the
//! engine, one [`StreamScanner`] per channel, JSON channels through the scan-view decoder and
//! encoder (as the layer's own filter does).

use std::sync::{Arc, OnceLock};

use deliberate::engine::{CompiledPolicy, StreamOutput, StreamScanner};
use deliberate::policy::{Action, Stage};
use deliberate::wire::json_text::{Decoder, Encoder, decode, encode};
use deliberate::wire::{Channel, ChannelId, TextFilter, Verdict};

/// The refusal the filter blocks with.
pub const REFUSAL: &str = "Refused by policy.";

/// The harness policy: [`BLOCKED`](crate::BLOCKED) blocks, `secret-\d{4}` is redacted to
/// `[secret]`, for every role and stage.
pub const POLICY: &str = r#"
policy: fuzz
rules:
  - id: bomb
    stages: [input, output, reasoning]
    match: {keywords: ["pipe bomb"]}
    roles: ["*"]
    action: block
  - id: secret
    stages: [input, output, reasoning]
    match: {regex: 'secret-\d{4}'}
    roles: ["*"]
    action: redact
    replacement: "[secret]"
"#;

/// The harness policy, compiled once.
pub fn policy() -> Arc<CompiledPolicy> {
    static P: OnceLock<Arc<CompiledPolicy>> = OnceLock::new();
    P.get_or_init(|| {
        #[allow(clippy::expect_used)] // A constant policy: a failure is a bug of the harness.
        Arc::new(CompiledPolicy::from_yaml_str(POLICY, "fuzz.yaml").expect("harness policy"))
    })
    .clone()
}

struct Chan {
    channel: Channel,
    scanner: StreamScanner<'static>,
    dec: Decoder,
    enc: Encoder,
}

/// A [`TextFilter`] over [`policy`]: every channel at the output stage.
#[derive(Default)]
pub struct EngineFilter {
    chans: Vec<Chan>,
    blocked: Vec<u32>,
    /// Reasons reported partial.
    pub partial: Vec<&'static str>,
}

impl EngineFilter {
    fn block(&mut self, unit: u32) -> Verdict {
        if !self.blocked.contains(&unit) {
            self.blocked.push(unit);
        }
        Verdict::Block {
            refusal: REFUSAL.to_owned(),
            released: String::new(),
        }
    }

    fn verdict(&mut self, id: usize, o: StreamOutput) -> Verdict {
        let c = &mut self.chans[id];
        let (unit, json) = (c.channel.unit, c.channel.json);
        if o.blocked {
            return self.block(unit);
        }
        if json {
            let mut raw = String::new();
            c.enc.push(&o.text, &mut raw);
            Verdict::Send(raw)
        } else {
            Verdict::Send(o.text)
        }
    }
}

impl TextFilter for EngineFilter {
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
        let unit = c.channel.unit;
        if self.blocked.contains(&unit) {
            return self.block(unit);
        }
        let o = if c.channel.json {
            let mut view = String::new();
            c.dec.push(text, &mut view);
            c.scanner.push(&view)
        } else {
            c.scanner.push(text)
        };
        self.verdict(id.0, o)
    }

    fn close(&mut self, id: ChannelId) -> Verdict {
        let c = &mut self.chans[id.0];
        let unit = c.channel.unit;
        if self.blocked.contains(&unit) {
            return self.block(unit);
        }
        let mut o = if c.channel.json {
            let mut view = String::new();
            c.dec.finish(&mut view);
            c.scanner.push(&view)
        } else {
            StreamOutput::default()
        };
        if !o.blocked {
            let f = c.scanner.finish();
            o.text.push_str(&f.text);
            o.blocked = f.blocked;
        }
        self.verdict(id.0, o)
    }

    fn scan(&mut self, channel: &Channel, text: &str) -> Verdict {
        if self.blocked.contains(&channel.unit) {
            return self.block(channel.unit);
        }
        let view = if channel.json {
            decode(text)
        } else {
            text.to_owned()
        };
        let d = policy().scan(&view, Stage::Output, None);
        match d.action {
            Action::Block => self.block(channel.unit),
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
