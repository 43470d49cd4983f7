//! Removing the model's deliberation block (`<deliberation>…</deliberation>`) from answers,
//! whatever the chunking.
//!
//! The injected preamble may ask the model to reason inside a tag; the client must not see that
//! block, the audit record keeps it. [`DeliberationStripper`] takes the answer in pieces and holds
//! back only a possible partial tag (at most the tag's length), so a tag split across stream
//! events is still found. Tags match ASCII case-insensitively; a block the answer ends inside of
//! is dropped whole. Whitespace right after a block that opens the answer is dropped too.
//!
//! ```
//! use deliberate::layer::DeliberationStripper;
//!
//! let mut s = DeliberationStripper::new("deliberation", 1024);
//! let mut shown = String::new();
//! for piece in ["<delib", "eration>privacy applies</del", "iberation>\n\nHello", "!"] {
//!     shown.push_str(&s.push(piece));
//! }
//! shown.push_str(&s.finish());
//! assert_eq!(shown, "Hello!");
//! assert_eq!(s.hidden(), "privacy applies");
//! ```

/// Strips `<tag>…</tag>` blocks from a text that arrives in pieces.
#[derive(Debug, Clone)]
pub struct DeliberationStripper {
    open: String,
    close: String,
    inside: bool,
    /// Text that may be the start of a tag.
    pending: String,
    hidden: String,
    max_hidden: usize,
    truncated: bool,
    /// Nothing visible was released yet.
    at_start: bool,
    /// Drop whitespace until visible text (after a block that opened the answer).
    trim: bool,
    blocks: usize,
}

impl DeliberationStripper {
    /// A stripper for `<tag>…</tag>` that keeps at most `max_hidden` bytes of the hidden text.
    pub fn new(tag: &str, max_hidden: usize) -> Self {
        DeliberationStripper {
            open: format!("<{}>", tag.to_ascii_lowercase()),
            close: format!("</{}>", tag.to_ascii_lowercase()),
            inside: false,
            pending: String::new(),
            hidden: String::new(),
            max_hidden,
            truncated: false,
            at_start: true,
            trim: false,
            blocks: 0,
        }
    }

    /// The hidden text so far (blocks joined by a blank line, cut at the limit).
    pub fn hidden(&self) -> &str {
        &self.hidden
    }

    /// Whether the hidden text was cut at the limit.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// How many blocks were opened.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// Feeds a piece; returns the visible text it released.
    pub fn push(&mut self, piece: &str) -> String {
        let mut buf = std::mem::take(&mut self.pending);
        buf.push_str(piece);
        let mut visible = String::new();
        let mut rest: &str = &buf;
        loop {
            let tag = if self.inside {
                self.close.clone()
            } else {
                self.open.clone()
            };
            match find_ascii_ci(rest, &tag) {
                Some(i) => {
                    let before = &rest[..i];
                    if self.inside {
                        self.keep_hidden(before);
                        self.inside = false;
                        if self.at_start && visible.is_empty() {
                            self.trim = true;
                        }
                    } else {
                        self.show(before, &mut visible);
                        self.inside = true;
                        self.blocks += 1;
                        if !self.hidden.is_empty() {
                            self.keep_hidden("\n\n");
                        }
                    }
                    rest = &rest[i + tag.len()..];
                }
                None => {
                    let keep = partial_suffix(rest, &tag);
                    let (now, later) = rest.split_at(rest.len() - keep);
                    if self.inside {
                        self.keep_hidden(now);
                    } else {
                        self.show(now, &mut visible);
                    }
                    self.pending = later.to_owned();
                    break;
                }
            }
        }
        visible
    }

    /// Ends the text; returns what was held back, unless it is inside an open block.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        let mut visible = String::new();
        if self.inside {
            self.keep_hidden(&rest);
        } else {
            self.show(&rest, &mut visible);
        }
        visible
    }

    fn show(&mut self, text: &str, visible: &mut String) {
        let text = if self.trim { text.trim_start() } else { text };
        if !text.is_empty() {
            self.trim = false;
            self.at_start = false;
            visible.push_str(text);
        }
    }

    fn keep_hidden(&mut self, text: &str) {
        let room = self.max_hidden.saturating_sub(self.hidden.len());
        if text.len() <= room {
            self.hidden.push_str(text);
        } else {
            let mut cut = room;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            self.hidden.push_str(&text[..cut]);
            self.truncated = true;
        }
    }
}

/// The first position of `needle` (lower-case ASCII) in `hay`, ignoring ASCII case.
fn find_ascii_ci(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Length of the longest proper suffix of `hay` that is a prefix of `tag` (ASCII
/// case-insensitively). Tags are ASCII, so the suffix starts on a character boundary.
fn partial_suffix(hay: &str, tag: &str) -> usize {
    let (h, t) = (hay.as_bytes(), tag.as_bytes());
    let max = (t.len() - 1).min(h.len());
    (1..=max)
        .rev()
        .find(|&k| h[h.len() - k..].eq_ignore_ascii_case(&t[..k]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[&str]) -> (String, String) {
        let mut s = DeliberationStripper::new("deliberation", 1 << 20);
        let mut out = String::new();
        for p in pieces {
            out.push_str(&s.push(p));
        }
        out.push_str(&s.finish());
        (out, s.hidden().to_owned())
    }

    #[test]
    fn every_split_gives_the_same_result() {
        let cases = [
            (
                "<deliberation>think</deliberation>\n\nAnswer é.",
                "Answer é.",
                "think",
            ),
            ("A <DELIBERATION>x</Deliberation> B", "A  B", "x"),
            (
                "no tags < here <deliberatio",
                "no tags < here <deliberatio",
                "",
            ),
            ("<deliberation>never closed", "", "never closed"),
            (
                "a<deliberation>1</deliberation>b<deliberation>2</deliberation>c",
                "abc",
                "1\n\n2",
            ),
        ];
        for (text, shown, hidden) in cases {
            let bounds: Vec<usize> = (0..=text.len())
                .filter(|&i| text.is_char_boundary(i))
                .collect();
            for &i in &bounds {
                for &j in bounds.iter().filter(|&&j| j >= i) {
                    let got = run(&[&text[..i], &text[i..j], &text[j..]]);
                    assert_eq!(
                        got,
                        (shown.to_owned(), hidden.to_owned()),
                        "{text:?} split {i},{j}"
                    );
                }
            }
        }
    }

    #[test]
    fn hidden_text_is_capped() {
        let mut s = DeliberationStripper::new("d", 4);
        assert_eq!(s.push("<d>ééé</d>ok"), "ok");
        assert_eq!(s.hidden(), "éé");
        assert!(s.truncated());
    }
}
