//! Server-sent events: an incremental decoder and an encoder, following the WHATWG
//! [event stream interpretation](https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
//!
//! One concern in one file (over 600 lines with its tests): the event-stream format, both ways.
//!
//! The decoder takes bytes as they arrive, split anywhere (inside a line ending, inside a UTF-8
//! character), and yields [`SseItem`]s in stream order. It differs from the spec in three
//! deliberate ways, each because a gateway must not guess:
//!
//! - invalid UTF-8 is an error ([`SseError::InvalidUtf8`]), not U+FFFD;
//! - an event (its fields so far plus the line being read) larger than the configured limit is
//!   an error ([`SseError::EventTooLarge`]), so memory per stream stays bounded;
//! - an event the stream ends in the middle of is handed out by [`SseDecoder::finish`] instead of
//!   being dropped silently; the caller decides whether a truncated stream is acceptable.
//!
//! Comments and `retry:` fields are reported as items of their own, so a proxy can tell that a
//! keep-alive arrived (and reset its idle timer) without forwarding anything.

use bytes::BufMut;

/// The `data` of the event that ends an OpenAI stream.
pub const DONE: &str = "[DONE]";

/// The whole frame that ends an OpenAI stream: `data: [DONE]` and a blank line.
pub const DONE_FRAME: &[u8] = b"data: [DONE]\n\n";

/// The UTF-8 byte order mark, ignored once at the start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SseEvent {
    /// The `event:` field; `None` for the default type (`message`), also when it was empty.
    pub event: Option<String>,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
    /// The `id:` field of this event, if it had one (an `id:` with an empty value is
    /// `Some("")`, which resets the last event id). See [`SseDecoder::last_event_id`] for the
    /// id that carries over from earlier events.
    pub id: Option<String>,
}

/// What the decoder found in the stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SseItem {
    /// A complete event.
    Event(SseEvent),
    /// A comment line (`: keep-alive`), without the colon and one leading space.
    Comment(String),
    /// A valid `retry:` field: the reconnection time the server asks for, in milliseconds.
    Retry(u64),
}

/// Why a stream could not be decoded or an event could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// An event grew larger than the decoder's limit.
    #[error("server-sent event larger than {limit} bytes")]
    EventTooLarge {
        /// The decoder's `max_event_bytes`.
        limit: usize,
    },
    /// A line is not valid UTF-8.
    #[error("server-sent event stream is not valid UTF-8 on line {line}")]
    InvalidUtf8 {
        /// 1-based line number in the stream.
        line: u64,
    },
    /// A field cannot be encoded without changing the stream's framing.
    #[error("cannot encode server-sent event field `{field}`: {reason}")]
    Unencodable {
        /// The field: `event` or `id`.
        field: &'static str,
        /// What is wrong with its value.
        reason: &'static str,
    },
}

/// An incremental server-sent-events decoder.
///
/// ```
/// use deliberate::wire::sse::{SseDecoder, SseEvent, SseItem};
///
/// let mut dec = SseDecoder::new(64 * 1024);
/// let mut items = dec.push(b": keep-alive\r\ndata: {\"a\"").unwrap();
/// items.extend(dec.push(b":1}\r").unwrap());
/// items.extend(dec.push(b"\n\r\ndata: [DONE]").unwrap());
/// assert_eq!(items, [
///     SseItem::Comment("keep-alive".into()),
///     SseItem::Event(SseEvent { data: "{\"a\":1}".into(), ..Default::default() }),
/// ]);
/// // The stream ended without the blank line after the last event.
/// assert_eq!(dec.finish().unwrap().map(|e| e.data), Some("[DONE]".into()));
/// ```
#[derive(Debug, Clone)]
pub struct SseDecoder {
    max_event_bytes: usize,
    /// The bytes of the line being read (only when it spans pushes).
    line: Vec<u8>,
    /// The last byte seen was a CR that ended a line; an LF right after it belongs to it.
    after_cr: bool,
    /// No line has been completed yet, so a BOM may still have to be skipped.
    at_start: bool,
    /// Lines completed so far, for error messages.
    line_number: u64,
    /// The data buffer: each `data:` value followed by `\n`.
    data: String,
    /// The event type buffer.
    event: String,
    /// The `id:` field of the event being read.
    id: Option<String>,
    /// The id of the last dispatched event that had one.
    last_event_id: String,
    /// The error that ended decoding, returned again on every later call.
    failed: Option<SseError>,
}

// === impl SseDecoder ===

impl SseDecoder {
    /// A decoder that fails with [`SseError::EventTooLarge`] once the event being read
    /// (its `data`, `event` and `id` values so far plus the unfinished line) would hold more than
    /// `max_event_bytes` bytes. This bounds the decoder's buffers (up to allocator growth),
    /// whatever the upstream sends.
    pub fn new(max_event_bytes: usize) -> Self {
        SseDecoder {
            max_event_bytes,
            line: Vec::new(),
            after_cr: false,
            at_start: true,
            line_number: 0,
            data: String::new(),
            event: String::new(),
            id: None,
            last_event_id: String::new(),
            failed: None,
        }
    }

    /// The limit given to [`SseDecoder::new`].
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// Decodes the next piece of the stream and returns the items it completed.
    ///
    /// After an error the stream cannot be resynchronized: this and every later call return the
    /// same error, and the items completed earlier in the same piece are lost (use
    /// [`SseDecoder::push_into`] to keep them).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseItem>, SseError> {
        let mut out = Vec::new();
        self.push_into(bytes, &mut out)?;
        Ok(out)
    }

    /// Like [`SseDecoder::push`], but appends the items to `out` (which can be reused, so a
    /// call allocates nothing for the list), including those completed before an error.
    pub fn push_into(&mut self, bytes: &[u8], out: &mut Vec<SseItem>) -> Result<(), SseError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.push_lines(bytes, out);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    /// Ends the stream: reads an unterminated last line, and returns the event the stream ended
    /// in the middle of, if it has data (the spec would drop it). A comment or `retry:` on an
    /// unterminated last line is dropped.
    ///
    /// The decoder is then reset for a new stream, except [`SseDecoder::last_event_id`], which
    /// a reconnecting client would send.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let mut event = None;
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            let mut ignored = Vec::new();
            if let Err(err) = self.process_line(&line, &mut ignored) {
                self.failed = Some(err.clone());
                return Err(err);
            }
        }
        if !self.data.is_empty() {
            event = self.dispatch();
        }
        let last_event_id = std::mem::take(&mut self.last_event_id);
        *self = SseDecoder {
            last_event_id,
            ..SseDecoder::new(self.max_event_bytes)
        };
        Ok(event)
    }

    /// `true` when the decoder holds part of an event or line: the stream would be truncated if
    /// it ended now.
    pub fn has_partial(&self) -> bool {
        !self.line.is_empty()
            || !self.data.is_empty()
            || !self.event.is_empty()
            || self.id.is_some()
    }

    /// The last event id (the spec's "last event ID string"): the `id` of the most recent
    /// event block that had one, which a reconnecting client sends as `Last-Event-ID`.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    fn push_lines(&mut self, mut bytes: &[u8], out: &mut Vec<SseItem>) -> Result<(), SseError> {
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            let mut next = end + 1;
            if bytes[end] == b'\r' {
                match bytes.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            let content = &bytes[..end];
            if self.line.is_empty() {
                self.check_size(content.len())?;
                self.process_line(content, out)?;
            } else {
                self.check_size(self.line.len() + content.len())?;
                self.line.extend_from_slice(content);
                let line = std::mem::take(&mut self.line);
                let result = self.process_line(&line, out);
                // Keep the buffer's capacity for the next long line.
                self.line = line;
                self.line.clear();
                result?;
            }
            bytes = &bytes[next..];
        }
        self.check_size(self.line.len() + bytes.len())?;
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// Fails when a line of `line_len` bytes would take the event over the limit.
    fn check_size(&self, line_len: usize) -> Result<(), SseError> {
        let held = self.data.len() + self.event.len() + self.id.as_ref().map_or(0, String::len);
        if held.saturating_add(line_len) > self.max_event_bytes {
            return Err(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        Ok(())
    }

    /// Interprets one complete line (without its line ending).
    fn process_line(&mut self, mut line: &[u8], out: &mut Vec<SseItem>) -> Result<(), SseError> {
        self.line_number += 1;
        if self.at_start {
            self.at_start = false;
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::InvalidUtf8 {
            line: self.line_number,
        })?;
        if line.is_empty() {
            if let Some(event) = self.dispatch() {
                out.push(SseItem::Event(event));
            }
            return Ok(());
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.push(SseItem::Comment(strip_one_space(comment).to_owned()));
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, strip_one_space(value)),
            None => (line, ""),
        };
        match field {
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => {
                let id = self.id.get_or_insert_with(String::new);
                id.clear();
                id.push_str(value);
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // A value too large for u64 is ignored like any other invalid one.
                if let Ok(ms) = value.parse() {
                    out.push(SseItem::Retry(ms));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The spec's "dispatch the event", at a blank line.
    fn dispatch(&mut self) -> Option<SseEvent> {
        let id = self.id.take();
        if let Some(id) = &id {
            self.last_event_id.clone_from(id);
        }
        if self.data.is_empty() {
            self.event.clear();
            return None;
        }
        self.data.pop(); // The `\n` after the last data line.
        let event = (!self.event.is_empty()).then(|| std::mem::take(&mut self.event));
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
            id,
        })
    }
}

/// Removes one leading U+0020 SPACE, as the spec does for field values.
fn strip_one_space(value: &str) -> &str {
    value.strip_prefix(' ').unwrap_or(value)
}

// === encoder ===

/// Writes `data` as one event: a `data:` line per line of `data`, then a blank line.
///
/// CR, LF and CRLF in `data` all become line breaks, so they decode as `\n` (an event cannot
/// carry a CR). JSON text has no raw line breaks, so a JSON payload is one `data:` line.
///
/// ```
/// use deliberate::wire::sse::encode_data;
///
/// let mut out = Vec::new();
/// encode_data("{\"a\":1}", &mut out);
/// encode_data("two\nlines", &mut out);
/// assert_eq!(out, b"data: {\"a\":1}\n\ndata: two\ndata: lines\n\n");
/// ```
pub fn encode_data(data: &str, out: &mut impl BufMut) {
    write_data_lines(data, out);
    out.put_u8(b'\n');
}

/// Writes a whole event: `event:` (unless `None` or empty), `id:` (unless `None`), the data
/// lines as [`encode_data`] does, and a blank line.
///
/// Fails, writing nothing, when `event` or `id` holds a CR or LF, or `id` a NUL: the decoder
/// would read a different event back.
pub fn encode_event(event: &SseEvent, out: &mut impl BufMut) -> Result<(), SseError> {
    let name = event.event.as_deref().unwrap_or("");
    if name.contains(['\r', '\n']) {
        return Err(SseError::Unencodable {
            field: "event",
            reason: "contains a line break",
        });
    }
    if let Some(id) = &event.id {
        if id.contains(['\r', '\n']) {
            return Err(SseError::Unencodable {
                field: "id",
                reason: "contains a line break",
            });
        }
        if id.contains('\0') {
            return Err(SseError::Unencodable {
                field: "id",
                reason: "contains NUL",
            });
        }
    }
    if !name.is_empty() {
        write_field("event", name, out);
    }
    if let Some(id) = &event.id {
        write_field("id", id, out);
    }
    encode_data(&event.data, out);
    Ok(())
}

/// Writes a comment (one comment line per line of `text`) followed by a blank line, the usual
/// keep-alive: `: keep-alive\n\n`. Decoders dispatch nothing for it.
pub fn encode_comment(text: &str, out: &mut impl BufMut) {
    for line in lines(text) {
        write_field("", line, out);
    }
    out.put_u8(b'\n');
}

/// Writes a `retry:` field followed by a blank line.
pub fn encode_retry(milliseconds: u64, out: &mut impl BufMut) {
    write_field("retry", &milliseconds.to_string(), out);
    out.put_u8(b'\n');
}

/// Writes any [`SseItem`]; see [`encode_event`] for when it fails.
pub fn encode_item(item: &SseItem, out: &mut impl BufMut) -> Result<(), SseError> {
    match item {
        SseItem::Event(event) => encode_event(event, out)?,
        SseItem::Comment(text) => encode_comment(text, out),
        SseItem::Retry(ms) => encode_retry(*ms, out),
    }
    Ok(())
}

fn write_data_lines(data: &str, out: &mut impl BufMut) {
    for line in lines(data) {
        write_field("data", line, out);
    }
}

/// Writes `name: value\n` (`name:\n` for an empty value). The space keeps a value that starts
/// with a space intact, since decoders strip one.
fn write_field(name: &str, value: &str, out: &mut impl BufMut) {
    out.put_slice(name.as_bytes());
    out.put_u8(b':');
    if !value.is_empty() {
        out.put_u8(b' ');
        out.put_slice(value.as_bytes());
    }
    out.put_u8(b'\n');
}

/// Splits at CRLF, LF and CR, like the decoder; always yields at least one (maybe empty) line.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.find(['\r', '\n']) {
            Some(end) => {
                let skip = if text[end..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&text[end + skip..]);
                Some(&text[..end])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(data: &str) -> SseItem {
        SseItem::Event(SseEvent {
            data: data.to_owned(),
            ..SseEvent::default()
        })
    }

    fn ev_full(event: Option<&str>, data: &str, id: Option<&str>) -> SseItem {
        SseItem::Event(SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
            id: id.map(str::to_owned),
        })
    }

    fn comment(text: &str) -> SseItem {
        SseItem::Comment(text.to_owned())
    }

    /// Decodes `input` in one piece, then one byte at a time, and checks both agree; returns
    /// the items and what `finish` returned.
    fn decode(input: &[u8]) -> (Vec<SseItem>, Option<SseEvent>) {
        let mut dec = SseDecoder::new(1 << 20);
        let whole = dec.push(input).unwrap();
        let tail = dec.finish().unwrap();

        let mut dec = SseDecoder::new(1 << 20);
        let mut bytewise = Vec::new();
        for b in input {
            bytewise.extend(dec.push(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(whole, bytewise, "chunking changed the result for {input:?}");
        assert_eq!(tail, dec.finish().unwrap());
        (whole, tail)
    }

    #[test]
    fn decodes_table() {
        #[rustfmt::skip]
        let cases: Vec<(&[u8], Vec<SseItem>, Option<&str>)> = vec![
            // WHATWG spec examples.
            (b"data: YHOO\ndata: +2\ndata: 10\n\n", vec![ev("YHOO\n+2\n10")], None),
            (b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n",
             vec![comment("test stream"), ev_full(None, "first event", Some("1")),
                  ev_full(None, "second event", Some(""))],
             Some(" third event")),
            (b"data\n\ndata\ndata\n\ndata:", vec![ev(""), ev("\n")], Some("")),
            (b"data:test\n\ndata: test\n\n", vec![ev("test"), ev("test")], None),
            // Line endings: LF, CRLF, lone CR, mixed.
            (b"data: a\r\n\r\ndata: b\r\rdata: c\n\r\n", vec![ev("a"), ev("b"), ev("c")], None),
            (b"data: a\r\ndata: b\r\n\r\n", vec![ev("a\nb")], None),
            (b"data: a\rdata: b\r\r", vec![ev("a\nb")], None),
            // `\n\r` is two line endings (LF, then CR), so this is a blank line.
            (b"data: a\n\rdata: b\n\n", vec![ev("a"), ev("b")], None),
            // Fields.
            (b"event: add\ndata: 1\n\n", vec![ev_full(Some("add"), "1", None)], None),
            (b"event: add\nevent: remove\ndata: 1\n\n", vec![ev_full(Some("remove"), "1", None)], None),
            (b"event\ndata: 1\n\n", vec![ev("1")], None),
            (b"event:\ndata: 1\n\n", vec![ev("1")], None),
            (b"id: 7\nid: 8\ndata: x\n\n", vec![ev_full(None, "x", Some("8"))], None),
            (b"id: a\0b\ndata: x\n\n", vec![ev("x")], None),
            (b"retry: 3000\n\n", vec![SseItem::Retry(3000)], None),
            (b"retry: 3s\nretry:\nretry: -1\nretry: 99999999999999999999999\n\n", vec![], None),
            (b"retry:10\ndata: x\n\n", vec![SseItem::Retry(10), ev("x")], None),
            // A space after the colon is stripped once; tabs are not.
            (b"data:  two\n\ndata:\tt\n\ndata:no\n\n", vec![ev(" two"), ev("\tt"), ev("no")], None),
            // Only the first colon separates; field names are case-sensitive; unknown ignored.
            (b"data: a: b:c\nData: no\nfoo: bar\n\n", vec![ev("a: b:c")], None),
            // Blocks without data dispatch nothing, and their event type does not leak.
            (b"event: e\n\ndata: x\n\n", vec![ev("x")], None),
            (b"\n\n\n", vec![], None),
            // Comments.
            (b":\n:  two spaces\n: keep-alive\n\n", vec![comment(""), comment(" two spaces"), comment("keep-alive")], None),
            (b"data: a\n: in the middle\ndata: b\n\n", vec![comment("in the middle"), ev("a\nb")], None),
            // A BOM is skipped once at the start only.
            (b"\xEF\xBB\xBFdata: x\n\n", vec![ev("x")], None),
            (b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n", vec![], None),
            (b"data: \xEF\xBB\xBFx\n\n", vec![ev("\u{FEFF}x")], None),
            // Unicode passes through.
            ("data: héllo 😀 世界\n\n".as_bytes(), vec![ev("héllo 😀 世界")], None),
            // OpenAI's stream end.
            (b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n", vec![ev("{\"choices\":[]}"), ev(DONE)], None),
            // A stream cut before the blank line: the event comes from `finish`.
            (b"data: [DONE]\n", vec![], Some(DONE)),
            (b"data: [DO", vec![], Some("[DO")),
            (b"event: x\n", vec![], None),
            (b": bye", vec![], None),
        ];
        for (input, items, tail) in cases {
            let (got, got_tail) = decode(input);
            assert_eq!(got, items, "{}", String::from_utf8_lossy(input));
            assert_eq!(
                got_tail.map(|e| e.data).as_deref(),
                tail,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn crlf_split_across_pushes_is_one_line_ending() {
        let mut dec = SseDecoder::new(1024);
        assert_eq!(dec.push(b"data: a\r").unwrap(), []);
        // If the LF were a second line ending, this would dispatch "a" now.
        assert_eq!(dec.push(b"\n").unwrap(), []);
        assert_eq!(dec.push(b"data: b\r").unwrap(), []);
        assert_eq!(dec.push(b"").unwrap(), []);
        assert_eq!(dec.push(b"\n\r").unwrap(), [ev("a\nb")]);
        // A CR ends its line at once: no waiting for the next byte to dispatch.
        assert_eq!(dec.push(b"data: c\r\r").unwrap(), [ev("c")]);
        assert_eq!(dec.push(b"\n").unwrap(), []);
        assert_eq!(dec.push(b"data: d\n\n").unwrap(), [ev("d")]);
    }

    #[test]
    fn utf8_split_inside_a_character() {
        let text = "data: 😀é\n\n".as_bytes();
        for cut in 0..=text.len() {
            let mut dec = SseDecoder::new(1024);
            let mut got = dec.push(&text[..cut]).unwrap();
            got.extend(dec.push(&text[cut..]).unwrap());
            assert_eq!(got, [ev("😀é")], "cut at {cut}");
        }
    }

    #[test]
    fn bom_split_across_pushes() {
        let mut dec = SseDecoder::new(1024);
        let mut got = dec.push(b"\xEF").unwrap();
        got.extend(dec.push(b"\xBB").unwrap());
        got.extend(dec.push(b"\xBFdata: x\n\n").unwrap());
        assert_eq!(got, [ev("x")]);
    }

    #[test]
    fn invalid_utf8_is_an_error_and_sticks() {
        let mut dec = SseDecoder::new(1024);
        let mut out = Vec::new();
        let err = dec
            .push_into(b"data: ok\n\n: c\ndata: \xff\n\n", &mut out)
            .unwrap_err();
        assert_eq!(err, SseError::InvalidUtf8 { line: 4 });
        // What was complete before the error is kept by `push_into`.
        assert_eq!(out, [ev("ok"), comment("c")]);
        assert_eq!(dec.push(b"data: fine\n\n"), Err(err.clone()));
        assert_eq!(dec.finish(), Err(err));

        // A truncated character at the very end is caught by `finish`.
        let mut dec = SseDecoder::new(1024);
        assert_eq!(dec.push(b"data: \xF0\x9F").unwrap(), []);
        assert_eq!(dec.finish(), Err(SseError::InvalidUtf8 { line: 1 }));
        // An encoded surrogate is not UTF-8.
        assert!(SseDecoder::new(64).push(b"data: \xED\xA0\x80\n").is_err());
    }

    #[test]
    fn events_are_bounded() {
        let limit = 32;
        // Exactly at the limit is fine: a 32-byte line, or fields adding up to 32 bytes.
        let line = format!("data: {}\n\n", "x".repeat(limit - 6));
        assert_eq!(
            decode_with_limit(line.as_bytes(), limit),
            Ok(vec![ev(&"x".repeat(limit - 6))])
        );
        // One more byte in one line.
        let line = format!("data: {}\n\n", "x".repeat(limit - 5));
        assert_eq!(
            decode_with_limit(line.as_bytes(), limit),
            Err(SseError::EventTooLarge { limit })
        );
        // Many small data lines adding up.
        let many = "data: 0123456789\n".repeat(5);
        assert_eq!(
            decode_with_limit(many.as_bytes(), limit),
            Err(SseError::EventTooLarge { limit })
        );
        // An endless line with no line ending, fed in small pieces, fails without growing.
        let mut dec = SseDecoder::new(limit);
        let mut failed = false;
        for _ in 0..100 {
            if dec.push(b"data: xxxxxxx").is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
        assert!(dec.line.capacity() <= 2 * limit);
        // The limit is per event: many events each under it are fine.
        let stream = "data: 0123456789\n\n".repeat(1000);
        assert_eq!(
            decode_with_limit(stream.as_bytes(), limit).map(|v| v.len()),
            Ok(1000)
        );
    }

    fn decode_with_limit(input: &[u8], limit: usize) -> Result<Vec<SseItem>, SseError> {
        let mut dec = SseDecoder::new(limit);
        let mut out = Vec::new();
        for piece in input.chunks(3) {
            dec.push_into(piece, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn last_event_id_carries_over_and_survives_finish() {
        let mut dec = SseDecoder::new(1024);
        let got = dec.push(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\n\n").unwrap();
        assert_eq!(got, [ev_full(None, "a", Some("1")), ev("b")]);
        // An id-only block dispatches nothing but still sets the last event id.
        assert_eq!(dec.last_event_id(), "2");
        assert_eq!(dec.push(b"id\n\n").unwrap(), []);
        assert_eq!(dec.last_event_id(), "");
        dec.push(b"id: 3\ndata: c\n").unwrap();
        assert!(dec.has_partial());
        assert_eq!(
            dec.finish().unwrap(),
            Some(SseEvent {
                event: None,
                data: "c".into(),
                id: Some("3".into())
            })
        );
        assert!(!dec.has_partial());
        assert_eq!(dec.last_event_id(), "3");
        // After `finish` a new stream starts: a BOM is skipped again.
        assert_eq!(dec.push(b"\xEF\xBB\xBFdata: new\n\n").unwrap(), [ev("new")]);
    }

    #[test]
    fn has_partial_tracks_unfinished_events() {
        let mut dec = SseDecoder::new(1024);
        assert!(!dec.has_partial());
        dec.push(b"event: x\n").unwrap();
        assert!(dec.has_partial());
        dec.push(b"\n").unwrap();
        assert!(!dec.has_partial());
        dec.push(b"da").unwrap();
        assert!(dec.has_partial());
    }

    #[test]
    fn encodes_table() {
        #[rustfmt::skip]
        let cases: Vec<(SseItem, &[u8])> = vec![
            (ev("{\"a\":1}"), b"data: {\"a\":1}\n\n"),
            (ev(""), b"data:\n\n"),
            (ev("a\nb"), b"data: a\ndata: b\n\n"),
            (ev("a\r\nb\rc\n"), b"data: a\ndata: b\ndata: c\ndata:\n\n"),
            (ev(" lead"), b"data:  lead\n\n"),
            (ev(DONE), DONE_FRAME),
            (ev_full(Some("error"), "x", Some("9")), b"event: error\nid: 9\ndata: x\n\n"),
            (ev_full(Some(""), "x", Some("")), b"id:\ndata: x\n\n"),
            (comment("keep-alive"), b": keep-alive\n\n"),
            (comment(""), b":\n\n"),
            (comment("a\nb"), b": a\n: b\n\n"),
            (SseItem::Retry(1500), b"retry: 1500\n\n"),
        ];
        for (item, expected) in cases {
            let mut out = Vec::new();
            encode_item(&item, &mut out).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(expected),
                "{item:?}"
            );
        }
        // BytesMut works as well as Vec.
        let mut buf = bytes::BytesMut::new();
        encode_data("x", &mut buf);
        assert_eq!(&buf[..], b"data: x\n\n");
    }

    #[test]
    fn refuses_to_encode_what_would_not_decode_back() {
        let bad = [
            ev_full(Some("a\nb"), "x", None),
            ev_full(Some("a\r"), "x", None),
            ev_full(None, "x", Some("1\n2")),
            ev_full(None, "x", Some("1\u{0}2")),
        ];
        for item in bad {
            let mut out = Vec::new();
            assert!(matches!(
                encode_item(&item, &mut out),
                Err(SseError::Unencodable { .. })
            ));
            assert!(out.is_empty(), "wrote {out:?} for {item:?}");
        }
    }

    // === property tests ===

    fn item_strategy() -> impl Strategy<Value = SseItem> {
        let name = proptest::option::of("[^\r\n]{0,8}");
        let id = proptest::option::of("[^\r\n\x00]{0,8}");
        let data = "(.|\n|\r\n){0,24}";
        prop_oneof![
            6 => (name, data, id).prop_map(|(event, data, id)| SseItem::Event(SseEvent { event, data, id })),
            2 => "[^\r\n]{0,8}".prop_map(SseItem::Comment),
            1 => any::<u64>().prop_map(SseItem::Retry),
        ]
    }

    /// What decoding an encoded item gives back.
    fn expected(item: &SseItem) -> SseItem {
        match item {
            SseItem::Event(e) => SseItem::Event(SseEvent {
                event: e.event.clone().filter(|n| !n.is_empty()),
                data: e.data.replace("\r\n", "\n").replace('\r', "\n"),
                id: e.id.clone(),
            }),
            other => other.clone(),
        }
    }

    /// Replaces each LF of `encoded` (the encoder's only line ending) with LF, CRLF or CR as
    /// `choices` say, never putting an LF right after a CR ending (that would read as one CRLF).
    fn with_line_endings(encoded: &[u8], choices: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(encoded.len() * 2);
        let mut choices = choices.iter().cycle();
        for &b in encoded {
            if b != b'\n' {
                out.push(b);
                continue;
            }
            let after_cr = out.last() == Some(&b'\r');
            match choices.next().copied().unwrap_or(0) % 3 {
                0 if !after_cr => out.push(b'\n'),
                0 | 1 => out.extend_from_slice(b"\r\n"),
                _ => out.push(b'\r'),
            }
        }
        out
    }

    fn split_points(len: usize, cuts: &[prop::sample::Index]) -> Vec<usize> {
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(len + 1)).collect();
        points.sort_unstable();
        points.dedup();
        points
    }

    proptest! {
        #[test]
        fn encode_then_decode_at_any_split(
            items in prop::collection::vec(item_strategy(), 0..8),
            endings in prop::collection::vec(any::<u8>(), 1..16),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            bom in any::<bool>(),
        ) {
            let mut encoded = Vec::new();
            if bom {
                encoded.extend_from_slice(BOM);
            }
            for item in &items {
                encode_item(item, &mut encoded).unwrap();
            }
            let stream = with_line_endings(&encoded, &endings);

            let mut dec = SseDecoder::new(1 << 16);
            let mut got = Vec::new();
            let mut start = 0;
            for end in split_points(stream.len(), &cuts).into_iter().chain([stream.len()]) {
                dec.push_into(&stream[start..end], &mut got).unwrap();
                start = end;
            }
            prop_assert_eq!(dec.finish().unwrap(), None);
            let want: Vec<SseItem> = items.iter().map(expected).collect();
            prop_assert_eq!(got, want);
        }

        /// On any input, valid or not, the result does not depend on where the bytes are split.
        #[test]
        fn chunking_never_changes_the_result(
            stream in prop::collection::vec(
                prop::sample::select(b"data: \r\n:evntidry\xC3\xA9\xFF\xEF\xBB\xBF0".to_vec()), 0..64),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            limit in 4usize..64,
        ) {
            let run = |pieces: &[&[u8]]| {
                let mut dec = SseDecoder::new(limit);
                let mut out = Vec::new();
                for piece in pieces {
                    if let Err(e) = dec.push_into(piece, &mut out) {
                        return (out, Err(e));
                    }
                }
                let tail = dec.finish();
                (out, tail)
            };
            let mut pieces = Vec::new();
            let mut start = 0;
            for end in split_points(stream.len(), &cuts).into_iter().chain([stream.len()]) {
                pieces.push(&stream[start..end]);
                start = end;
            }
            prop_assert_eq!(run(&pieces), run(&[&stream]));
        }
    }
}
