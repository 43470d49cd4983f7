//! The incremental JSON-string decoder ([`Decoder`]) and its encoder.
//!
//! Oracles, on arbitrary text cut anywhere (at character boundaries, as stream events are
//! strings): decoding in pieces gives the whole text's view; encoding the view in pieces gives
//! the whole view's encoding; for valid JSON, the view's encoding has the same value as the
//! text, and a JSON string's view is `serde_json`'s decoding of it (with `\"` and `\\` kept
//! escaped, as the view keeps them).

use arbitrary::Unstructured;
use deliberate::wire::json_text::{Decoder, Encoder, decode, encode};
use serde_json::Value;

use crate::char_pieces;

/// The decoder and encoder in pieces against the whole and against `serde_json`.
pub fn json_text(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let ncuts = usize::from(u.arbitrary::<u8>().unwrap_or(0) % 12);
    let cuts: Vec<usize> = (0..ncuts)
        .map(|_| usize::from(u.arbitrary::<u16>().unwrap_or(0)))
        .collect();
    let raw = String::from_utf8_lossy(u.take_rest()).into_owned();

    let view = decode(&raw);
    let mut dec = Decoder::new();
    let mut pieced = String::new();
    for p in char_pieces(&raw, &cuts) {
        dec.push(p, &mut pieced);
        assert!(
            dec.held() <= 12,
            "the decoder holds more than an escape pair"
        );
    }
    dec.finish(&mut pieced);
    assert_eq!(pieced, view, "pieces {cuts:?} decode differently");

    let encoded = encode(&view);
    let mut enc = Encoder::new();
    let mut pieced = String::new();
    for p in char_pieces(&view, &cuts) {
        enc.push(p, &mut pieced);
    }
    assert_eq!(
        pieced, encoded,
        "the view in pieces {cuts:?} encodes differently"
    );

    let Ok(value) = serde_json::from_str::<Value>(&raw) else {
        return;
    };
    let back: Value = serde_json::from_str(&encoded).unwrap_or_else(|e| {
        panic!("the view of valid JSON encodes to invalid JSON ({e}): {encoded:?}")
    });
    assert_eq!(back, value, "the view's encoding changed the value");
    if let Value::String(s) = &value {
        let inner = view
            .trim_matches(|c: char| c.is_ascii_whitespace())
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or_else(|| panic!("the view of a JSON string is not quoted: {view:?}"));
        assert_eq!(
            unescape_view(inner),
            *s,
            "the view is not serde_json's decoding"
        );
    }
}

/// A string's view with its two kept escapes (`\"`, `\\`) undone.
fn unescape_view(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ ('"' | '\\')) => out.push(n),
                Some(n) => panic!("the view keeps an escape `\\{n}`"),
                None => panic!("the view ends in a backslash"),
            }
        } else {
            out.push(c);
        }
    }
    out
}
