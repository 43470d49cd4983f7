//! The state of one streamed content block: what its deltas carry and the channel its text
//! goes through.

use super::run::Held;
use crate::wire::{Channel, ChannelId, ChannelKind, Verdict};

/// What a content block carries in its deltas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `text`: `text_delta`s, answer content.
    Text,
    /// `thinking`: `thinking_delta`s, reasoning.
    Thinking,
    /// `tool_use`, `server_tool_use`, `mcp_tool_use`: `input_json_delta`s, JSON.
    Tool,
    /// Anything else: complete in its start event, or scanned delta by delta.
    Other,
}

impl Kind {
    /// The delta type and its text field.
    pub(super) fn delta(self) -> Option<(&'static str, &'static str)> {
        match self {
            Kind::Text => Some(("text_delta", "text")),
            Kind::Thinking => Some(("thinking_delta", "thinking")),
            Kind::Tool => Some(("input_json_delta", "partial_json")),
            Kind::Other => None,
        }
    }

    /// The kind of block a delta type belongs to.
    pub(super) fn of_delta(delta_type: &str) -> Kind {
        match delta_type {
            "text_delta" => Kind::Text,
            "thinking_delta" => Kind::Thinking,
            "input_json_delta" => Kind::Tool,
            _ => Kind::Other,
        }
    }
}

/// One content block of the stream.
#[derive(Debug)]
pub(super) struct Block {
    /// Its `index`.
    pub index: u64,
    /// What its deltas carry.
    pub kind: Kind,
    /// The channel its text goes through, while open.
    pub channel: Option<ChannelId>,
    /// Some of its text reached the client.
    pub sent: bool,
    /// Its `content_block_stop` went out.
    pub stopped: bool,
    /// The client saw its `content_block_start`.
    pub announced: bool,
    /// Its `content_block_stop` came from the upstream.
    pub ended: bool,
    /// A `thinking` block's text pushed and not yet released, while nothing was edited.
    pub pending: String,
    /// The gateway changed the text of this `thinking` block (its signature no longer fits).
    pub edited: bool,
    /// Its `signature_delta`, held until the block stops.
    pub signature: Option<Held>,
}

impl Block {
    /// Notes what the filter released of a `thinking` block: anything but a prefix of the text
    /// pushed is an edit. Stripping is the operator's choice, not an edit.
    pub(super) fn track(&mut self, verdict: &Verdict) {
        if let Verdict::Send(s) = verdict {
            if !self.edited && self.pending.starts_with(s.as_str()) {
                self.pending.drain(..s.len());
            } else {
                self.edited = true;
                self.pending.clear();
            }
        } else if let Verdict::Strip = verdict {
            self.pending.clear();
        }
    }
}

/// The channel of a block of `kind` at `index`.
pub(super) fn channel_for(kind: Kind, index: u64) -> Channel {
    match kind {
        Kind::Text => Channel::new(ChannelKind::Content, 0, format!("content[{index}].text")),
        Kind::Thinking => Channel::new(
            ChannelKind::Reasoning,
            0,
            format!("content[{index}].thinking"),
        ),
        Kind::Tool => Channel::new(
            ChannelKind::ToolArguments,
            0,
            format!("content[{index}].input"),
        )
        .json(),
        Kind::Other => Channel::new(ChannelKind::Other, 0, format!("content[{index}]")),
    }
}
