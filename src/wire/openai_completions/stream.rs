//! A streamed legacy completion: `text_completion` chunks with `choices[].text` deltas, then
//! `data: [DONE]`.
//!
//! Each choice's text is its own channel (unit = choice index). A chunk goes on with only the
//! released text; a choice's `finish_reason` closes its channel first (the held text goes out
//! in that same chunk). A block ends the choice in-band with `finish_reason:
//! "content_filter"` (the refusal as its text when nothing of it was sent); once every choice
//! is over and one was blocked, `data: [DONE]` ends the stream.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};

use super::{
    CHOICE_OWN, COMPLETION_META, CONTENT_FILTER, ID_PREFIX, blocked_choice, channel, completion,
    index_of, scan_fields, zero_usage,
};
use crate::wire::sse::{DONE, DONE_FRAME, encode_data};
use crate::wire::walk::Edit;
use crate::wire::{
    ChannelId, Emit, ErrorInfo, ErrorKind, RequestFacts, SseEvent, Step, StreamEnd, StreamRewriter,
    TextFilter, Verdict, WireError,
};

/// What every chunk of one completion shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) id: String,
    pub(crate) created: u64,
    pub(crate) model: String,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Meta {
    /// A fresh id (`cmpl-deliberate-` and 24 hex digits) and the current time.
    pub(crate) fn new(model: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(count);
        hasher.write_u64(now());
        Meta {
            id: format!("{ID_PREFIX}{:016x}{:08x}", hasher.finish(), count as u32),
            created: now(),
            model: model.to_owned(),
        }
    }

    /// The `id`, `created` and `model` of an upstream chunk (made up where missing).
    fn of(chunk: &Value, model: &str) -> Self {
        let mut m = Meta::new(model);
        let text = |k: &str| {
            chunk
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        if let Some(id) = text("id") {
            m.id = id.to_owned();
        }
        if let Some(model) = text("model") {
            m.model = model.to_owned();
        }
        if let Some(c) = chunk.get("created").and_then(Value::as_u64) {
            m.created = c;
        }
        m
    }

    fn chunk(&self, index: u32, text: &str, finish: Option<&str>) -> Value {
        let choice =
            json!({"text": text, "index": index, "logprobs": null, "finish_reason": finish});
        completion(&self.id, self.created, &self.model, json!([choice]))
    }
}

/// A whole refusal stream of `facts.n` choices: the refusal text, `content_filter`, the usage
/// chunk when asked for, `[DONE]`.
pub(crate) fn refusal_stream(meta: &Meta, facts: &RequestFacts, text: &str) -> Bytes {
    let mut out = BytesMut::new();
    let n = facts.n.max(1);
    for i in 0..n {
        encode_data(&meta.chunk(i, text, None).to_string(), &mut out);
    }
    for i in 0..n {
        encode_data(
            &meta.chunk(i, "", Some(CONTENT_FILTER)).to_string(),
            &mut out,
        );
    }
    if facts.include_usage {
        let mut u = completion(&meta.id, meta.created, &meta.model, json!([]));
        u["usage"] = zero_usage();
        encode_data(&u.to_string(), &mut out);
    }
    out.extend_from_slice(DONE_FRAME);
    out.freeze()
}

#[derive(Debug)]
struct Choice {
    index: u32,
    id: Option<ChannelId>,
    sent: bool,
    finished: bool,
    blocked: bool,
}

/// Rewrites one streamed completion. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct CompletionsStream {
    facts: RequestFacts,
    meta: Option<Meta>,
    choices: Vec<Choice>,
    ended: Option<StreamEnd>,
}

impl CompletionsStream {
    pub(crate) fn new(facts: &RequestFacts) -> Self {
        CompletionsStream {
            facts: facts.clone(),
            meta: None,
            choices: Vec::new(),
            ended: None,
        }
    }

    fn meta(&self) -> Meta {
        self.meta
            .clone()
            .unwrap_or_else(|| Meta::new(&self.facts.model))
    }

    fn state(&mut self, index: u32) -> usize {
        match self.choices.iter().position(|c| c.index == index) {
            Some(i) => i,
            None => {
                self.choices.push(Choice {
                    index,
                    id: None,
                    sent: false,
                    finished: false,
                    blocked: false,
                });
                self.choices.len() - 1
            }
        }
    }

    /// Runs one upstream choice through its channel; `None` when the choice is already over.
    fn choice(
        &mut self,
        mut c: Value,
        filter: &mut dyn TextFilter,
        out: &mut Emit,
    ) -> Option<Value> {
        let index = index_of(&c);
        let si = self.state(index);
        if self.choices[si].finished {
            return None;
        }
        let st = &mut self.choices[si];
        // The choice's other fields first (`logprobs` tokens, a `message`, vendor fields): a
        // block there ends the choice before its text is read, and nothing of them goes out.
        if let Edit::Blocked(refusal) =
            scan_fields(filter, index, &mut c, &|k| !CHOICE_OWN.contains(&k), &|k| {
                format!("choices[{index}].{k}")
            })
        {
            st.blocked = true;
            st.finished = true;
            out.progress = true;
            let text = if st.sent { "" } else { refusal.as_str() };
            st.sent = true;
            return Some(blocked_choice(index, text));
        }
        let id = *st.id.get_or_insert_with(|| filter.open(channel(index)));
        let upstream = c
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let mut verdict = if upstream.is_empty() {
            Verdict::Send(String::new())
        } else {
            filter.push(id, &upstream)
        };
        let finishing = c.get("finish_reason").is_some_and(|f| !f.is_null());
        if finishing && let Verdict::Send(s) = &mut verdict {
            st.finished = true;
            match filter.close(id) {
                Verdict::Send(rest) => s.push_str(&rest),
                v => verdict = v,
            }
        }
        let text = match verdict {
            Verdict::Send(s) => s,
            Verdict::Strip => String::new(),
            Verdict::Block { refusal, .. } => {
                st.blocked = true;
                st.finished = true;
                c["finish_reason"] = CONTENT_FILTER.into();
                if st.sent { String::new() } else { refusal }
            }
        };
        if text != upstream && c.get("logprobs").is_some() {
            // Log probabilities carry the tokens of the upstream's text.
            c["logprobs"] = Value::Null;
        }
        if !text.is_empty() {
            st.sent = true;
        }
        out.progress |= !text.is_empty() || st.finished;
        // Text all held back and nothing else in the choice: not sent (an empty `text` tells
        // the client nothing).
        let bare = text.is_empty()
            && !upstream.is_empty()
            && !st.finished
            && c.as_object().is_some_and(|o| {
                o.iter().all(|(k, v)| {
                    matches!(k.as_str(), "index" | "text" | "logprobs" | "finish_reason")
                        || v.is_null()
                })
            });
        if bare {
            return None;
        }
        c["text"] = Value::String(text);
        Some(c)
    }

    fn all_over(&self) -> bool {
        let n = self.facts.n.max(1) as usize;
        self.choices.iter().filter(|c| c.finished).count() >= n
    }

    fn finish(&mut self, out: &mut Emit, end: StreamEnd) -> StreamEnd {
        out.buf.extend_from_slice(DONE_FRAME);
        out.progress = true;
        self.ended = Some(end);
        end
    }

    fn all_blocked(&self) -> bool {
        !self.choices.is_empty() && self.choices.iter().all(|c| c.blocked)
    }

    /// A block outside any choice: every choice not over yet ends with `content_filter` (the
    /// refusal as its text when nothing of it was sent), then `[DONE]`.
    fn block_all(&mut self, out: &mut Emit, refusal: &str) -> StreamEnd {
        for i in 0..self.facts.n.max(1) {
            self.state(i);
        }
        let meta = self.meta();
        for st in self.choices.iter_mut().filter(|c| !c.finished) {
            st.blocked = true;
            st.finished = true;
            let text = if st.sent { "" } else { refusal };
            encode_data(
                &meta.chunk(st.index, text, Some(CONTENT_FILTER)).to_string(),
                &mut out.buf,
            );
        }
        let end = StreamEnd {
            all_blocked: self.all_blocked(),
            complete: true,
            terminal_seen: false,
        };
        self.finish(out, end)
    }

    /// Closes every choice still open, each in a chunk of its own.
    fn flush(&mut self, filter: &mut dyn TextFilter, out: &mut Emit) {
        let meta = self.meta();
        for st in self.choices.iter_mut().filter(|c| !c.finished) {
            let Some(id) = st.id else { continue };
            let (text, finish) = match filter.close(id) {
                Verdict::Send(s) => (s, None),
                Verdict::Strip => (String::new(), None),
                Verdict::Block { refusal: r, .. } => {
                    st.blocked = true;
                    st.finished = true;
                    (
                        if st.sent { String::new() } else { r },
                        Some(CONTENT_FILTER),
                    )
                }
            };
            if !text.is_empty() || finish.is_some() {
                st.sent |= !text.is_empty();
                out.progress = true;
                encode_data(
                    &meta.chunk(st.index, &text, finish).to_string(),
                    &mut out.buf,
                );
            }
        }
    }
}

impl StreamRewriter for CompletionsStream {
    fn event(
        &mut self,
        event: &SseEvent,
        filter: &mut dyn TextFilter,
        out: &mut Emit,
    ) -> Result<Step, WireError> {
        if let Some(end) = self.ended {
            return Ok(Step::Ended(end));
        }
        if event.data == DONE {
            self.flush(filter, out);
            let end = StreamEnd {
                all_blocked: self.all_blocked(),
                complete: true,
                terminal_seen: true,
            };
            return Ok(Step::Ended(self.finish(out, end)));
        }
        let mut v = crate::wire::parse_strict(event.data.as_bytes())?;
        if self.meta.is_none() {
            self.meta = Some(Meta::of(&v, &self.facts.model));
        }
        // The chunk's own fields (`usage`, an `error` object, vendor fields): a block there
        // ends every choice, and this chunk is not sent.
        if let Edit::Blocked(refusal) = scan_fields(
            filter,
            0,
            &mut v,
            &|k| k != "choices" && !COMPLETION_META.contains(&k),
            &|k| k.to_owned(),
        ) {
            return Ok(Step::Ended(self.block_all(out, &refusal)));
        }
        let had_choices;
        match v.get_mut("choices") {
            Some(Value::Array(choices)) => {
                had_choices = !choices.is_empty();
                let kept: Vec<Value> = std::mem::take(choices)
                    .into_iter()
                    .filter_map(|c| self.choice(c, filter, out))
                    .collect();
                let keep_chunk = !had_choices
                    || !kept.is_empty()
                    || v.get("usage").is_some_and(|u| !u.is_null());
                v["choices"] = Value::Array(kept);
                if keep_chunk {
                    encode_data(&v.to_string(), &mut out.buf);
                }
            }
            _ => {
                return Err(WireError::Shape {
                    message: "a completion chunk has `choices`".to_owned(),
                });
            }
        }
        if self.all_over() && self.choices.iter().any(|c| c.blocked) {
            let end = StreamEnd {
                all_blocked: self.all_blocked(),
                complete: true,
                terminal_seen: false,
            };
            return Ok(Step::Ended(self.finish(out, end)));
        }
        Ok(Step::Continue)
    }

    fn end(&mut self, filter: &mut dyn TextFilter, out: &mut Emit) -> StreamEnd {
        if let Some(end) = self.ended {
            return end;
        }
        self.flush(filter, out);
        let complete = self.all_over();
        if !complete {
            // No `[DONE]` and a choice without its `finish_reason`: the client is told.
            let e = ErrorInfo::new(
                ErrorKind::Upstream,
                "upstream stream ended before it was complete",
                "upstream_truncated",
            );
            encode_data(&e.openai_body().to_string(), &mut out.buf);
        }
        let end = StreamEnd {
            all_blocked: self.all_blocked(),
            complete,
            terminal_seen: false,
        };
        self.finish(out, end)
    }

    fn refusal(&self, text: &str) -> Bytes {
        refusal_stream(&self.meta(), &self.facts, text)
    }

    fn error(&self, error: &ErrorInfo, out: &mut Emit) {
        encode_data(&error.openai_body().to_string(), &mut out.buf);
        out.buf.extend_from_slice(DONE_FRAME);
        out.progress = true;
    }
}
