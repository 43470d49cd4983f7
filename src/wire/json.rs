//! Strict JSON parsing for bodies the gateway inspects, and OpenAI-shaped error bodies.
//!
//! `serde_json` silently keeps the last of two equal keys (`{"role":"user","role":"system"}`
//! reads as `system`), and so do most clients and providers, but not all of them: a gateway that
//! reads one value while the upstream reads the other can be bypassed. [`parse_strict`] therefore
//! rejects a repeated key at any depth, names it and its path, and keeps `serde_json`'s
//! `line:column` on every syntax error.
//!
//! Limitations, inherited from `serde_json` without the `arbitrary_precision` feature: an
//! integer outside `i64`/`u64` is read as the nearest `f64`, and object keys are re-serialized
//! in sorted order. Nesting is limited to 128 levels. A leading byte order mark is rejected.

use std::fmt;

use serde::de::{DeserializeOwned, DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::error::{ErrorInfo, ErrorKind};

/// An error reading a JSON body off the wire.
///
/// Each variant carries what a client needs to fix its request; [`WireError::code`] and
/// [`WireError::info`] turn it into the error the gateway answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The body is not valid UTF-8.
    #[error("body is not valid UTF-8 at line {line}, column {column} (byte {offset})")]
    InvalidUtf8 {
        /// 1-based line of the first invalid byte.
        line: usize,
        /// 1-based column (in characters) of the first invalid byte.
        column: usize,
        /// 0-based byte offset of the first invalid byte.
        offset: usize,
    },
    /// The body is not well-formed JSON.
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// What `serde_json` found wrong, without its position suffix.
        message: String,
        /// 1-based line, as reported by `serde_json`.
        line: usize,
        /// Column, as reported by `serde_json` (0 when the input ended early on an empty line).
        column: usize,
    },
    /// An object repeats a key.
    #[error("duplicate key `{key}` at {path} (line {line}, column {column})")]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// Where the second occurrence sits, e.g. `messages[0].content`.
        path: String,
        /// 1-based line of the second occurrence, as reported by `serde_json`.
        line: usize,
        /// Column of the second occurrence's closing quote, as reported by `serde_json`.
        column: usize,
    },
    /// The JSON is well-formed but not shaped like the expected type (a missing field, a string
    /// where a number belongs, ...).
    #[error("unexpected JSON shape: {message}")]
    Shape {
        /// What did not fit, as reported by `serde_json`.
        message: String,
    },
}

/// The OpenAI error `type` used for every [`WireError`].
pub const INVALID_REQUEST_ERROR: &str = "invalid_request_error";

/// Reads `bytes` as one JSON value, rejecting invalid UTF-8, trailing data and duplicate object
/// keys at any depth.
///
/// ```
/// use deliberate::wire::{WireError, parse_strict};
///
/// let v = parse_strict(br#"{"model": "m", "messages": []}"#).unwrap();
/// assert_eq!(v["model"], "m");
///
/// let err = parse_strict(br#"{"messages": [{"role": "user", "role": "system"}]}"#).unwrap_err();
/// assert!(matches!(err, WireError::DuplicateKey { ref path, .. } if path == "messages[0].role"));
/// ```
pub fn parse_strict(bytes: &[u8]) -> Result<Value, WireError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let (line, column) = line_column(&bytes[..offset]);
        WireError::InvalidUtf8 {
            line,
            column,
            offset,
        }
    })?;
    let mut de = serde_json::Deserializer::from_str(text);
    let mut duplicate = None;
    let seed = ValueSeed {
        path: &Path::Root,
        duplicate: &mut duplicate,
    };
    let value = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match value {
        Ok(value) => Ok(value),
        Err(err) => Err(match duplicate {
            Some(Duplicate { key, path }) => WireError::DuplicateKey {
                key,
                path,
                line: err.line(),
                column: err.column(),
            },
            None => syntax_error(&err),
        }),
    }
}

/// [`parse_strict`], then converts the value into `T`; a value of the wrong shape gives
/// [`WireError::Shape`].
///
/// ```
/// use deliberate::wire::json::parse_strict_as;
/// use deliberate::wire::openai_chat::ChatRequest;
///
/// let req: ChatRequest = parse_strict_as(br#"{"messages": [{"role": "user", "content": "hi"}]}"#)
///     .unwrap();
/// assert_eq!(req.messages[0].text(), "hi");
/// ```
pub fn parse_strict_as<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    from_value(parse_strict(bytes)?)
}

/// Converts an already parsed value into `T`; a value of the wrong shape gives
/// [`WireError::Shape`].
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, WireError> {
    serde_json::from_value(value).map_err(|e| WireError::Shape {
        message: e.to_string(),
    })
}

// === impl WireError ===

impl WireError {
    /// The error without any text it quotes from the body: for an upstream's answer, whose
    /// strings and keys nobody has scanned (`duplicate key `…``, `invalid type: string "…"`),
    /// so the gateway's own error never carries them to the client. Positions are kept.
    pub fn without_quotes(&self) -> String {
        match self {
            WireError::InvalidUtf8 { .. } => self.to_string(),
            // serde_json's syntax messages name what it expected, never the input's text.
            WireError::Syntax { line, column, .. } => {
                format!("malformed JSON at line {line}, column {column}")
            }
            WireError::DuplicateKey { line, column, .. } => {
                format!("duplicate key at line {line}, column {column}")
            }
            WireError::Shape { .. } => "unexpected JSON shape".to_owned(),
        }
    }

    /// A stable machine-readable code for the OpenAI error body's `code` field.
    pub fn code(&self) -> &'static str {
        match self {
            WireError::InvalidUtf8 { .. } => "invalid_utf8",
            WireError::Syntax { .. } => "invalid_json",
            WireError::DuplicateKey { .. } => "duplicate_key",
            WireError::Shape { .. } => "invalid_request_shape",
        }
    }

    /// This error as the gateway answers it (an invalid request).
    pub fn info(&self) -> ErrorInfo {
        ErrorInfo::new(ErrorKind::InvalidRequest, self.to_string(), self.code())
    }
}

/// Builds [`WireError::Syntax`] from a `serde_json` error, dropping the position suffix that
/// `serde_json` appends to its message (the position has its own fields).
fn syntax_error(err: &serde_json::Error) -> WireError {
    let (line, column) = (err.line(), err.column());
    let mut message = err.to_string();
    let suffix = format!(" at line {line} column {column}");
    if message.ends_with(&suffix) {
        message.truncate(message.len() - suffix.len());
    }
    WireError::Syntax {
        message,
        line,
        column,
    }
}

/// The 1-based line and column (in characters) just past `prefix`.
fn line_column(prefix: &[u8]) -> (usize, usize) {
    let line_start = prefix
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = 1 + prefix.iter().filter(|&&b| b == b'\n').count();
    // `prefix` is valid UTF-8 (it ends where the invalid bytes start); count characters by
    // counting the bytes that start one.
    let column = 1 + prefix[line_start..]
        .iter()
        .filter(|&&b| (b & 0xC0) != 0x80)
        .count();
    (line, column)
}

// === Path ===

/// Where a value sits in the document, as a linked list on the stack (no allocation unless an
/// error needs it rendered).
enum Path<'a> {
    Root,
    Key { parent: &'a Path<'a>, key: &'a str },
    Index { parent: &'a Path<'a>, index: usize },
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key { parent, key } => {
                write!(f, "{parent}")?;
                let plain = !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                match (plain, matches!(parent, Path::Root)) {
                    (true, true) => f.write_str(key),
                    (true, false) => write!(f, ".{key}"),
                    // `Value`'s Display renders a JSON string literal, escapes included.
                    (false, _) => write!(f, "[{}]", Value::from(*key)),
                }
            }
            Path::Index { parent, index } => write!(f, "{parent}[{index}]"),
        }
    }
}

// === ValueSeed ===

/// A repeated key, recorded before the parse is aborted (a `serde` error can only carry a
/// message, so the details travel beside it).
struct Duplicate {
    key: String,
    path: String,
}

/// Deserializes a [`Value`] like `Value::deserialize`, but fails on a repeated object key.
struct ValueSeed<'p, 'd> {
    path: &'p Path<'p>,
    duplicate: &'d mut Option<Duplicate>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // `serde_json` never yields a non-finite float; map one to null as `Value` does.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        loop {
            let path = Path::Index {
                parent: self.path,
                index: items.len(),
            };
            let seed = ValueSeed {
                path: &path,
                duplicate: &mut *self.duplicate,
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            // One search per key: the entry says whether it was there and keeps the place.
            match map.entry(key) {
                serde_json::map::Entry::Occupied(o) => {
                    let key = o.key().clone();
                    let rendered = Path::Key {
                        parent: self.path,
                        key: &key,
                    }
                    .to_string();
                    let message = format!("duplicate key `{key}` at {rendered}");
                    *self.duplicate = Some(Duplicate {
                        key,
                        path: rendered,
                    });
                    return Err(A::Error::custom(message));
                }
                serde_json::map::Entry::Vacant(v) => {
                    let path = Path::Key {
                        parent: self.path,
                        key: v.key(),
                    };
                    let seed = ValueSeed {
                        path: &path,
                        duplicate: &mut *self.duplicate,
                    };
                    let value = access.next_value_seed(seed)?;
                    v.insert(value);
                }
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dup(input: &str) -> (String, String) {
        match parse_strict(input.as_bytes()) {
            Err(WireError::DuplicateKey { key, path, .. }) => (key, path),
            other => panic!("expected a duplicate key error for {input}, got {other:?}"),
        }
    }

    #[test]
    fn accepts_what_serde_json_accepts() {
        let cases = [
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"n":1}"#,
            r#"[1, -2, 3.5, 1e300, true, false, null, "\u00e9\ud83d\ude00", {}, []]"#,
            "  \n\t{\"a\": {\"b\": {\"c\": [[], [{}]]}}}\r\n ",
            r#""just a string""#,
            "18446744073709551615",
            "-9223372036854775808",
            // Same key in sibling objects is fine.
            r#"[{"a":1},{"a":2}]"#,
            r#"{"a":{"x":1},"b":{"x":2}}"#,
        ];
        for case in cases {
            let ours = parse_strict(case.as_bytes()).unwrap();
            let theirs: Value = serde_json::from_str(case).unwrap();
            assert_eq!(ours, theirs, "{case}");
        }
    }

    #[test]
    fn rejects_duplicate_keys_at_any_depth() {
        let cases = [
            (r#"{"model":"a","model":"b"}"#, "model", "model"),
            (
                r#"{"messages":[{"role":"user","role":"system"}]}"#,
                "role",
                "messages[0].role",
            ),
            (
                r#"{"messages":[{"role":"user"},{"content":[{"type":"text","text":"a","text":"b"}]}]}"#,
                "text",
                "messages[1].content[0].text",
            ),
            (r#"[[{"a":1}],[{"b":1,"b":2}]]"#, "b", "[1][0].b"),
            (
                r#"{"a.b":{"x y":{"k":1,"k":2}}}"#,
                "k",
                r#"["a.b"]["x y"].k"#,
            ),
            (r#"{"":1,"":2}"#, "", r#"[""]"#),
            // Escapes are decoded before comparing: `\u0061` is `a`.
            (r#"{"a":1,"\u0061":2}"#, "a", "a"),
            // The duplicate is caught even when its value is a container.
            (r#"{"tools":[],"tools":{}}"#, "tools", "tools"),
        ];
        for (input, key, path) in cases {
            assert_eq!(dup(input), (key.to_owned(), path.to_owned()), "{input}");
        }
    }

    /// The repeated key is found through the map's entry, in objects larger than one tree node
    /// too, and the same key one level down is not a repetition.
    #[test]
    fn rejects_duplicates_in_large_objects() {
        let mut keys: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        let ok = format!("{{{}}}", keys.join(","));
        assert!(parse_strict(ok.as_bytes()).is_ok());
        for again in ["k0", "k17", "k39"] {
            keys.push(format!("\"{again}\":null"));
            let doc = format!("{{\"outer\":{{{}}}}}", keys.join(","));
            assert_eq!(
                dup(&doc),
                (again.to_owned(), format!("outer.{again}")),
                "{again}"
            );
            keys.pop();
        }
        assert_eq!(
            dup(r#"{"a":{"a":1},"a":2}"#),
            ("a".to_owned(), "a".to_owned())
        );
        assert!(parse_strict(br#"{"a":{"a":{"a":[{"a":1}]}}}"#).is_ok());
    }

    #[test]
    fn duplicate_key_carries_a_position() {
        let err = parse_strict(b"{\n  \"a\": 1,\n  \"a\": 2\n}").unwrap_err();
        match err {
            // The position is that of the repeated key's closing quote.
            WireError::DuplicateKey { line, column, .. } => assert_eq!((line, column), (3, 5)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let cases: [(&[u8], usize, usize); 6] = [
            (b"{\"a\": 1,}", 1, 9),
            (b"{\n  \"a\": [1 2]\n}", 2, 11),
            (b"", 1, 0),
            (b"{} {}", 1, 4),
            (b"\xEF\xBB\xBF{}", 1, 1),
            (b"[\"\\ud800\"]", 1, 9),
        ];
        for (input, line, column) in cases {
            match parse_strict(input) {
                Err(WireError::Syntax {
                    line: l,
                    column: c,
                    message,
                }) => {
                    assert_eq!((l, c), (line, column), "{input:?}: {message}");
                    assert!(!message.contains(" at line "), "{message}");
                    assert!(!message.is_empty());
                }
                other => panic!("expected a syntax error for {input:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_invalid_utf8_with_position() {
        let cases: [(&[u8], usize, usize, usize); 4] = [
            (b"\"\xff\"", 1, 2, 1),
            (b"{\"a\":\n \"\xc3\xa9\xc3\"}", 2, 4, 10),
            // A lone continuation byte.
            (b"\x80", 1, 1, 0),
            // An encoded surrogate (CESU-8) is not UTF-8.
            (b"\"\xed\xa0\x80\"", 1, 2, 1),
        ];
        for (input, line, column, offset) in cases {
            assert_eq!(
                parse_strict(input),
                Err(WireError::InvalidUtf8 {
                    line,
                    column,
                    offset
                }),
                "{input:?}"
            );
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            parse_strict(deep.as_bytes()),
            Err(WireError::Syntax { .. })
        ));
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_strict(ok.as_bytes()).is_ok());
    }

    #[test]
    fn shape_errors() {
        #[derive(Debug, serde::Deserialize)]
        struct Need {
            #[allow(dead_code)]
            n: u32,
        }
        let err = parse_strict_as::<Need>(br#"{"n": "one"}"#).unwrap_err();
        assert!(
            matches!(err, WireError::Shape { ref message } if message.contains("invalid type"))
        );
        assert_eq!(err.code(), "invalid_request_shape");
        // A syntax error wins over a shape error.
        assert!(matches!(
            parse_strict_as::<Need>(b"{"),
            Err(WireError::Syntax { .. })
        ));
    }

    #[test]
    fn error_bodies_are_openai_shaped() {
        let body = crate::wire::error::openai_error_body("nope", "invalid_request_error", None);
        assert_eq!(
            body,
            serde_json::json!({"error": {"message": "nope", "type": "invalid_request_error", "param": null, "code": null}})
        );
        let err = parse_strict(br#"{"a":1,"a":2}"#).unwrap_err();
        let body = err.info().openai_body();
        assert_eq!(body["error"]["code"], "duplicate_key");
        assert_eq!(body["error"]["type"], INVALID_REQUEST_ERROR);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("duplicate key `a`")
        );
    }
}
