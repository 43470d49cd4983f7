//! An incremental server-sent-events decoder.
//!
//! Feed it the body bytes as they arrive, in any chunking; it yields the `data` of each event
//! once the blank line that ends the event has arrived. Lines end with `\n` or `\r\n`;
//! `event:`, `id:`, `retry:` fields and `:` comments are skipped — OpenAI-style streams only
//! use `data:`.

/// Incremental SSE decoder; see the [module docs](self).
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes received but not yet split into lines.
    pending: Vec<u8>,
    /// `data` lines of the event being read, joined with `\n`.
    data: Vec<u8>,
    /// Whether the current event has at least one `data` line.
    has_data: bool,
}

impl SseDecoder {
    /// A decoder with no pending input.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The data of the next complete event, if one has fully arrived.
    pub fn next_event(&mut self) -> Option<Vec<u8>> {
        let mut consumed = 0;
        let mut event = None;
        while let Some(newline) = self.pending[consumed..].iter().position(|&b| b == b'\n') {
            let end = consumed + newline;
            let mut line = &self.pending[consumed..end];
            consumed = end + 1;
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.is_empty() {
                if self.has_data {
                    self.has_data = false;
                    event = Some(std::mem::take(&mut self.data));
                    break;
                }
                continue;
            }
            if let Some(value) = line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
        }
        self.pending.drain(..consumed);
        event
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<String> {
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            while let Some(event) = decoder.next_event() {
                events.push(String::from_utf8(event).unwrap());
            }
        }
        events
    }

    #[test]
    fn splits_events_at_every_chunking() {
        let stream = b"data: {\"a\":1}\n\n: comment\ndata: x\r\ndata: y\r\n\r\ndata: [DONE]\n\n";
        let expected = vec!["{\"a\":1}", "x\ny", "[DONE]"];
        assert_eq!(decode_all(&[stream]), expected);
        for split in 0..stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(decode_all(&[a, b]), expected, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_all(&bytes), expected);
    }

    #[test]
    fn ignores_blank_lines_without_data() {
        assert_eq!(decode_all(&[b"\n\nevent: ping\n\ndata: 1\n\n"]), vec!["1"]);
    }
}
