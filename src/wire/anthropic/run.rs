//! Consecutive text blocks of one streamed message, scanned as one text.
//!
//! Clients show consecutive `text` blocks as one text, so a blocked phrase may be split across
//! them ("…pipe" | " bomb…"). The stream pushes their deltas through one channel of the
//! filter. The later block's `content_block_start` (and any other event of it) is held until
//! the text released reaches the earlier block's end, and so is the earlier block's
//! `content_block_stop`: no byte of the later block goes out before the earlier block's tail
//! is decided. While every release is a prefix of the text pushed (nothing edited), released
//! text is cut at the block boundaries, so each block keeps its own text; after an edit (a
//! redaction) the rest of the run's text goes into the block then open and the later blocks
//! come out empty, so the text the client joins is the same.

use serde_json::Value;

use crate::wire::ChannelId;

/// An event kept back, to go out as it came.
#[derive(Debug)]
pub(super) struct Held {
    /// Its `event:` name.
    pub name: Option<String>,
    /// Its `id:`.
    pub id: Option<String>,
    /// Its JSON.
    pub data: Value,
}

/// What goes to the client, in order.
#[derive(Debug)]
pub(super) enum Piece {
    /// Text for the block at this index (one `text_delta`).
    Text(u64, String),
    /// An event kept back.
    Event(Held),
}

#[derive(Debug)]
struct Member {
    index: u64,
    /// Events kept back until the block is announced (its start first).
    held: Vec<Held>,
    /// Its `content_block_stop`, kept back until the text released passes its end.
    stop: Option<Held>,
    /// Where its text ends in the run's text, once it stopped.
    end: Option<usize>,
    announced: bool,
}

/// Consecutive text blocks sharing one channel. See the [module docs](self).
#[derive(Debug)]
pub(super) struct TextRun {
    /// The channel their text goes through.
    pub channel: ChannelId,
    members: Vec<Member>,
    cur: usize,
    pushed: usize,
    released: usize,
    /// Text pushed and not yet released, while every release so far was a prefix of it.
    pending: String,
    in_sync: bool,
}

impl TextRun {
    /// A run starting with the (announced) block `index`.
    pub(super) fn new(channel: ChannelId, index: u64) -> Self {
        TextRun {
            channel,
            members: vec![Member {
                index,
                held: Vec::new(),
                stop: None,
                end: None,
                announced: true,
            }],
            cur: 0,
            pushed: 0,
            released: 0,
            pending: String::new(),
            in_sync: true,
        }
    }

    /// The last block of the run stopped: a next text block may join.
    pub(super) fn last_ended(&self) -> bool {
        self.members.last().is_some_and(|m| m.end.is_some())
    }

    /// The index of the run's last block.
    pub(super) fn last_index(&self) -> u64 {
        self.members.last().map_or(0, |m| m.index)
    }

    /// Block `index` is in the run.
    pub(super) fn contains(&self, index: u64) -> bool {
        self.members.iter().any(|m| m.index == index)
    }

    /// Block `index` is in the run and the client has not seen its start yet.
    pub(super) fn is_held(&self, index: u64) -> bool {
        self.members
            .iter()
            .any(|m| m.index == index && !m.announced)
    }

    /// Block `index` joins the run, its start kept back.
    pub(super) fn join(&mut self, index: u64, start: Held) {
        self.members.push(Member {
            index,
            held: vec![start],
            stop: None,
            end: None,
            announced: false,
        });
    }

    /// Keeps an event of the not yet announced block `index` back.
    pub(super) fn hold(&mut self, index: u64, ev: Held) {
        if let Some(m) = self.members.iter_mut().find(|m| m.index == index) {
            m.held.push(ev);
        }
    }

    /// Block `index` stopped: its text ends here; its stop is kept back.
    pub(super) fn stop(&mut self, index: u64, ev: Held) {
        let pushed = self.pushed;
        if let Some(m) = self.members.iter_mut().find(|m| m.index == index) {
            m.end = Some(pushed);
            m.stop = Some(ev);
        }
    }

    /// `text` was pushed into the channel.
    pub(super) fn pushed(&mut self, text: &str) {
        self.pushed += text.len();
        if self.in_sync {
            self.pending.push_str(text);
        }
    }

    /// The channel released `s`: the pieces to send.
    pub(super) fn release(&mut self, s: &str, out: &mut Vec<Piece>) {
        if s.is_empty() {
            return;
        }
        if self.in_sync && self.pending.starts_with(s) {
            self.pending.drain(..s.len());
        } else {
            self.in_sync = false;
            self.pending.clear();
        }
        let mut rest = s;
        while self.in_sync && self.cur + 1 < self.members.len() {
            let Some(end) = self.members[self.cur].end else {
                break;
            };
            let take = end.saturating_sub(self.released);
            if take > rest.len() {
                break;
            }
            let Some((a, b)) = rest.split_at_checked(take) else {
                self.in_sync = false;
                break;
            };
            if !a.is_empty() {
                out.push(Piece::Text(self.members[self.cur].index, a.to_owned()));
            }
            self.released += take;
            rest = b;
            self.advance(out);
        }
        if !rest.is_empty() {
            self.released += rest.len();
            out.push(Piece::Text(self.members[self.cur].index, rest.to_owned()));
        }
    }

    /// The channel is closed and its last text released: the stops and starts still held.
    pub(super) fn finish(&mut self, out: &mut Vec<Piece>) {
        while self.cur + 1 < self.members.len() {
            self.advance(out);
        }
        if let Some(stop) = self.members[self.cur].stop.take() {
            out.push(Piece::Event(stop));
        }
    }

    /// The open block's stop, then the next block's start and what it held.
    fn advance(&mut self, out: &mut Vec<Piece>) {
        if let Some(stop) = self.members[self.cur].stop.take() {
            out.push(Piece::Event(stop));
        }
        self.cur += 1;
        let m = &mut self.members[self.cur];
        m.announced = true;
        out.extend(m.held.drain(..).map(Piece::Event));
    }
}
