//! What the rewrite steps will write first where they stopped: the bytes the output for a
//! unit not yet complete can start with, whatever text comes after it.
//!
//! A stream's rewrite pass reads a word only once it ends, so a match in progress before the
//! word (`1 ` in front of `years old`) stays alive until the next white space arrives, and
//! everything from its start waits. When every output the word can still have starts with a
//! byte that ends every such match (`T…` never continues `1 years`), the text before the
//! word can go. This module says which bytes those are; the stream scanner asks its automata.

use super::decode::base64_value;
use crate::text::options::NormalizeOptions;

/// The ASCII bytes, as a bit set, that the rewrite steps' output for `unread` can start
/// with, however the text it begins goes on: `unread` is the per-character pass's text where
/// the rewrite steps stopped (not empty), `orig` the original text from the same point.
/// `None` when this cannot tell (the output may start with anything).
///
/// What it covers: a unit that starts with an opening quote or bracket writes it first; a
/// unit that starts with an ASCII letter keeps that letter first under every
/// step that copies, joins or collapses (markup, entities, letter spacing, leetspeak, split and
/// spaced keys: they drop or fold what comes after a letter, never the letter itself), so the
/// letter is one candidate. The decoders replace a unit that starts a long enough run by its
/// decoded text, trimmed: the run's first character fixes the decoded text's first byte up to
/// its low bits (six known bits for base64, four for hex), so each byte it can be is another
/// candidate — unless it cannot start readable UTF-8 text (a control character, a continuation
/// byte: such a run is not decoded). A letter stays (folded), a digit stays or is read as a
/// letter, punctuation that no step touches at the start of a text stays; for any other byte
/// the output may start with anything (white space and separators are trimmed, markup marks
/// dropped, entities decoded, a multi-byte character normalized to any letter): `None`.
/// ROT13 and reversed views are not covered.
pub(in crate::text::normalize) fn first_bytes(
    opts: NormalizeOptions,
    unread: &str,
    orig: &str,
) -> Option<u128> {
    if opts.rot13 || opts.reverse {
        return None;
    }
    let c = *unread.as_bytes().first()?;
    if matches!(c, b'"' | b'\'' | b'(' | b'[' | b'{') {
        // An opening quote or bracket is copied first, whether the unit is copied or decoded
        // (a decoder keeps such leading characters and writes the decoded text after them).
        return Some(1 << c);
    }
    if !c.is_ascii_alphabetic() {
        return None;
    }
    let mut mask = 1u128 << c;
    let Some(&o) = orig.as_bytes().first() else {
        return Some(mask);
    };
    if opts.base64
        && let Some(v) = base64_value(o)
    {
        let first = v << 2;
        mask |= decoded_first(opts, first..=first | 0b11)?;
    }
    if opts.hex
        && let Some(h) = char::from(o).to_digit(16)
    {
        let first = (h as u8) << 4;
        mask |= decoded_first(opts, first..=first | 0x0f)?;
    }
    Some(mask)
}

/// The first byte of the normalized decoded text, for each first decoded byte in `bytes`.
fn decoded_first(opts: NormalizeOptions, bytes: std::ops::RangeInclusive<u8>) -> Option<u128> {
    if opts.nfkc && !opts.strip_marks {
        // The decoded text is normalized again: NFKC composes its first character with a
        // combining mark after it (`e` + U+0301 → `é`, `=` + U+0338 → `≠`), and no step strips
        // the mark first, so the output may start with any byte.
        return None;
    }
    let mut mask = 0u128;
    for b in bytes {
        match b {
            // Not readable text: a run decoding to it is left as it is (the plain candidate).
            0x00..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f | 0x7f => {}
            0x80..=0xc1 | 0xf5..=0xff => {}
            b if b.is_ascii_alphabetic() => {
                mask |= 1
                    << if opts.casefold {
                        b.to_ascii_lowercase()
                    } else {
                        b
                    };
            }
            // Read as a letter by leetspeak, or kept.
            b'0'..=b'9' | b'@' | b'$' => {
                mask |= 1 << b;
                if opts.leetspeak
                    && let Some(l) = super::leet(char::from(b))
                {
                    mask |= 1 << l as u8;
                }
            }
            // Punctuation no step drops or rewrites at the start of a text.
            b'!' | b'"' | b'#' | b'\'' | b'(' | b')' | b'+' | b',' | b'/' | b':' | b';' | b'='
            | b'>' | b'?' | b'[' | b'\\' | b']' | b'^' | b'{' | b'|' | b'}' => mask |= 1 << b,
            // White space and separators (trimmed), markup (dropped), entities and escapes
            // (decoded), multi-byte characters (normalized to anything).
            _ => return None,
        }
    }
    Some(mask)
}
