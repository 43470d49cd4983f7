//! Texts that hold JSON — tool-call `arguments`, Anthropic `input_json_delta`, Responses
//! `function_call_arguments.delta` — read the way the client will read them.
//!
//! Scanning the raw JSON text would let `{"q":"pipe \u0062omb"}` past a rule against "pipe
//! bomb": the client's JSON parser turns the escape into a `b`. [`Decoder`] turns JSON text into
//! its *scan view*: the same text with every string escape decoded, except `\"` and `\\`, which
//! stay as they are so the view still tells where each string ends. The view is what the rules
//! read. [`Encoder`] turns a view (after redactions) back into valid JSON text: outside strings
//! it copies, inside strings it escapes the control characters the decoder let through. A view
//! that was not edited encodes to JSON with the same value as the original.
//!
//! Both work on pieces: an escape split across stream events (`\u00` + `62`) is held until it
//! is complete, so a stream decodes exactly as the whole text would.
//!
//! ```
//! use deliberate::wire::json_text::{decode, encode};
//!
//! let raw = r#"{"q":"pipe \u0062omb","n":"a\"b\nc"}"#;
//! let view = decode(raw);
//! assert_eq!(view, "{\"q\":\"pipe bomb\",\"n\":\"a\\\"b\nc\"}");
//! let back = encode(&view);
//! let a: serde_json::Value = serde_json::from_str(raw).unwrap();
//! let b: serde_json::Value = serde_json::from_str(&back).unwrap();
//! assert_eq!(a, b);
//! ```
//!
//! A redaction whose span crosses a string's quote would change the JSON's structure: the
//! layer refuses the text instead (buffered: the result must parse; streamed: the structure of
//! what is released must follow the structure of what was scanned).

/// Incremental JSON text → scan view. See the [module docs](self).
#[derive(Debug, Default, Clone)]
pub struct Decoder {
    in_string: bool,
    /// An escape not yet complete (starts with `\`), or a decoded high surrogate's escape
    /// waiting for its low half.
    pending: String,
}

impl Decoder {
    /// A decoder at the start of a JSON text.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes a piece; what an incomplete escape at its end needs waits for the next piece.
    pub fn push(&mut self, piece: &str, out: &mut String) {
        for c in piece.chars() {
            self.char(c, out);
        }
    }

    /// The text is over: an incomplete escape is written as it came.
    pub fn finish(&mut self, out: &mut String) {
        out.push_str(&self.pending);
        self.pending.clear();
    }

    /// Bytes held back, waiting for the rest of an escape.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    fn char(&mut self, c: char, out: &mut String) {
        if !self.in_string {
            out.push(c);
            if c == '"' {
                self.in_string = true;
            }
            return;
        }
        if self.pending.is_empty() {
            match c {
                '\\' => self.pending.push(c),
                '"' => {
                    out.push(c);
                    self.in_string = false;
                }
                _ => out.push(c),
            }
            return;
        }
        self.pending.push(c);
        self.resolve(out);
    }

    /// Decides the pending escape if it is complete.
    fn resolve(&mut self, out: &mut String) {
        let p = self.pending.as_str();
        let b = p.as_bytes();
        if b.len() == 2 {
            let simple = match b[1] {
                b'"' => Some("\\\""),
                b'\\' => Some("\\\\"),
                b'/' => Some("/"),
                b'b' => Some("\u{8}"),
                b'f' => Some("\u{c}"),
                b'n' => Some("\n"),
                b'r' => Some("\r"),
                b't' => Some("\t"),
                b'u' => return,
                // Not a JSON escape: left as it came (the client's parser rejects it anyway).
                _ => None,
            };
            match simple {
                Some(s) => out.push_str(s),
                None => out.push_str(p),
            }
            self.pending.clear();
            return;
        }
        // `\uXXXX`, possibly followed by `\uYYYY`. A multi-byte character among the four can
        // take the length past 6 at once: it is no hex digit, and 6 is then no char boundary.
        if b.len() < 6 || !p.is_char_boundary(6) {
            if !b[b.len() - 1].is_ascii_hexdigit() {
                self.flush_raw(out);
            }
            return;
        }
        let Some(hi) = hex4(&p[2..6]) else {
            return self.flush_raw(out);
        };
        if b.len() == 6 {
            if (0xD800..0xDC00).contains(&hi) {
                return; // wait for the low half
            }
            if (0xDC00..0xE000).contains(&hi) {
                return self.flush_raw(out); // a lone low surrogate stays escaped
            }
            push_decoded(hi, out);
            self.pending.clear();
            return;
        }
        // A high surrogate and what follows it.
        let rest = &b[6..];
        let prefix_ok = match rest.len() {
            1 => rest[0] == b'\\',
            _ => rest[0] == b'\\' && rest[1] == b'u' && rest[2..].iter().all(u8::is_ascii_hexdigit),
        };
        if !prefix_ok {
            // Not followed by a low half: the high one stays escaped, the rest is read afresh.
            let tail = self.pending.split_off(6);
            out.push_str(&self.pending);
            self.pending.clear();
            for c in tail.chars() {
                self.char(c, out);
            }
            return;
        }
        if b.len() < 12 {
            return;
        }
        match hex4(&p[8..12]) {
            Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                push_decoded(cp, out);
                self.pending.clear();
            }
            _ => {
                let tail = self.pending.split_off(6);
                out.push_str(&self.pending);
                self.pending.clear();
                for c in tail.chars() {
                    self.char(c, out);
                }
            }
        }
    }

    fn flush_raw(&mut self, out: &mut String) {
        out.push_str(&self.pending);
        self.pending.clear();
    }
}

fn hex4(s: &str) -> Option<u32> {
    if s.len() == 4 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        u32::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// Writes a decoded code point into the view: quotes and backslashes stay escaped.
fn push_decoded(cp: u32, out: &mut String) {
    match char::from_u32(cp) {
        Some('"') => out.push_str("\\\""),
        Some('\\') => out.push_str("\\\\"),
        Some(c) => out.push(c),
        None => out.push('\u{FFFD}'),
    }
}

/// Incremental scan view → JSON text. See the [module docs](self).
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    in_string: bool,
    after_backslash: bool,
}

impl Encoder {
    /// An encoder at the start of a JSON text.
    pub fn new() -> Self {
        Self::default()
    }

    /// Encodes a piece of a view.
    pub fn push(&mut self, view: &str, out: &mut String) {
        for c in view.chars() {
            if !self.in_string {
                out.push(c);
                self.in_string = c == '"';
                continue;
            }
            if self.after_backslash {
                out.push(c);
                self.after_backslash = false;
                continue;
            }
            match c {
                '\\' => {
                    out.push(c);
                    self.after_backslash = true;
                }
                '"' => {
                    out.push(c);
                    self.in_string = false;
                }
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                }
                c => out.push(c),
            }
        }
    }
}

/// The scan view of a whole JSON text.
pub fn decode(raw: &str) -> String {
    let mut d = Decoder::new();
    let mut out = String::with_capacity(raw.len());
    d.push(raw, &mut out);
    d.finish(&mut out);
    out
}

/// The JSON text of a whole scan view.
pub fn encode(view: &str) -> String {
    let mut out = String::with_capacity(view.len() + 8);
    Encoder::new().push(view, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// Regression (fuzz target `stream_anthropic`): a multi-byte character inside a `\u`
    /// escape (`\u00爆`) took the pending escape past 6 bytes at once, and the decoder sliced
    /// it inside the character: a panic on an upstream's tool-call arguments.
    #[test]
    fn multibyte_character_inside_a_unicode_escape() {
        for raw in [
            "\"\\u00爆\"",
            "\"\\u0é\"",
            "\"\\ud83d\\u00爆\"",
            "\"\\u爆\"",
        ] {
            let whole = decode(raw);
            let mut d = Decoder::new();
            let mut pieced = String::new();
            for c in raw.chars() {
                d.push(c.encode_utf8(&mut [0; 4]), &mut pieced);
            }
            d.finish(&mut pieced);
            assert_eq!(pieced, whole, "{raw}");
            assert!(
                whole.contains('爆') || whole.contains('é'),
                "{raw}: {whole}"
            );
        }
    }

    #[test]
    fn escapes_are_decoded_for_scanning() {
        let cases = [
            (r#""pipe \u0062omb""#, "\"pipe bomb\""),
            (r#""secret\u002d1234""#, "\"secret-1234\""),
            (r#""a\/b""#, "\"a/b\""),
            (r#""x\ny\tz""#, "\"x\ny\tz\""),
            (r#""q\"uote\\""#, r#""q\"uote\\""#),
            (r#""\u0022""#, r#""\"""#),
            (r#""\u005c""#, r#""\\""#),
            (r#""\ud83d\ude00""#, "\"\u{1F600}\""),
            // A lone surrogate cannot be decoded: it stays escaped.
            (r#""\ud83dx""#, r#""\ud83dx""#),
            (r#""\ude00""#, r#""\ude00""#),
            (r#""\ud83d\u0041""#, r#""\ud83dA""#),
            // Outside strings nothing changes.
            (r#"{"a": [1, true, null]}"#, r#"{"a": [1, true, null]}"#),
        ];
        for (raw, view) in cases {
            assert_eq!(decode(raw), view, "{raw}");
        }
    }

    #[test]
    fn incomplete_escape_at_the_end_is_kept() {
        assert_eq!(decode(r#""ab\u00"#), r#""ab\u00"#);
        assert_eq!(decode(r#""ab\"#), r#""ab\"#);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
            proptest::collection::vec(any::<char>(), 0..8)
                .prop_map(|v| Value::from(v.into_iter().collect::<String>())),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map("[a-z\"\\\\]{0,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Writes `v` with every character of its strings escaped as `\uXXXX`, the most hostile
    /// spelling a client's parser still reads as the same value.
    fn escape_all(v: &Value) -> String {
        match v {
            Value::String(s) => {
                let mut out = String::from("\"");
                for u in s.encode_utf16() {
                    out.push_str(&format!("\\u{u:04x}"));
                }
                out.push('"');
                out
            }
            Value::Array(a) => format!(
                "[{}]",
                a.iter().map(escape_all).collect::<Vec<_>>().join(",")
            ),
            Value::Object(m) => format!(
                "{{{}}}",
                m.iter()
                    .map(|(k, v)| format!(
                        "{}:{}",
                        escape_all(&Value::from(k.as_str())),
                        escape_all(v)
                    ))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            v => v.to_string(),
        }
    }

    proptest! {
        /// Decoding then encoding keeps the value, whatever the spelling of the escapes.
        #[test]
        fn round_trip_keeps_the_value(v in json_value(), hostile in any::<bool>()) {
            let raw = if hostile { escape_all(&v) } else { v.to_string() };
            let back = encode(&decode(&raw));
            let parsed: Value = serde_json::from_str(&back).expect("valid JSON");
            prop_assert_eq!(parsed, v);
        }

        /// Pieces decode as the whole does, wherever the splits fall.
        #[test]
        fn pieces_decode_like_the_whole(v in json_value(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6)) {
            let raw = escape_all(&v);
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(raw.len() + 1)).collect();
            points.sort_unstable();
            let mut d = Decoder::new();
            let mut out = String::new();
            let mut last = 0;
            for p in points {
                // `escape_all` writes ASCII only, so every byte is a boundary.
                d.push(&raw[last..p], &mut out);
                last = p;
            }
            d.push(&raw[last..], &mut out);
            d.finish(&mut out);
            prop_assert_eq!(out, decode(&raw));
        }
    }
}
