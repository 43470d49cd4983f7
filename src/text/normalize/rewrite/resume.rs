//! What the rewrite steps will write first where they stopped: the bytes the output for a
//! unit not yet complete can start with, whatever text comes after it.
//!
//! A stream's rewrite pass reads a word only once it ends, so a match in progress before the
//! word (`1 ` in front of `years old`) stays alive until the next white space arrives, and
//! everything from its start waits. When every output the word can still have starts with a
//! byte that ends every such match (`T…` never continues `1 years`), the text before the
//! word can go. This module says which bytes those are; the stream scanner asks its automata.

use super::decode::{MIN_DECODE_CHARS, base64_value, decode_base64, decode_hex};
use crate::text::options::{MAX_DECODE_BYTES, NormalizeOptions};

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

/// How many bytes at the start of `unread` the rewrite steps' output will begin with, each
/// copied in its place (mapped to its own character), however the text goes on: `unread` and
/// `orig` as for [`first_bytes`]. `0` when this cannot tell.
///
/// A stream's rewrite pass waits for a word's end; meanwhile the stream scanner feeds these
/// bytes to copies of its automata, so the frontier can move into the word (`nigh` of
/// `nightingale` leaves when no match can start in it) instead of waiting for the white space.
///
/// What it covers: the unit is the last one (no white space after it yet), starts with an
/// ASCII letter (after up to two opening quotes or brackets, copied first) and is more than one
/// character (a single letter may be spelled out and
/// collapsed with the next ones). Its leading ASCII letters and digits that no step reacts to
/// (the special bytes of markup, entities, leetspeak and letter spacing) are copied by every
/// step that may still take the unit: the plain copy, a split or spaced key (its first part is
/// copied, the join comes after it), emphasis or entities later in the word (they drop or
/// decode what they cover, never the letters before). What could change them is a decoder
/// reading the unit as the start of a base64 or hex run, which replaces the whole run; so it
/// holds only when no run starting there can be decoded: the run ended short of 16
/// characters, is not hex digits, or what it decodes to so far is not the start of readable
/// UTF-8 text (an invalid or control byte stays in every longer run). Word cuts (`segment`)
/// may put a space between any two letters, and ROT13 and reversal rewrite every letter: not
/// covered.
pub(in crate::text::normalize) fn stable_prefix(
    opts: NormalizeOptions,
    unread: &str,
    orig: &str,
) -> usize {
    if opts.rot13 || opts.reverse || opts.segment {
        return 0;
    }
    let b = unread.as_bytes();
    // Up to two opening quotes or brackets are copied first (a decoder, too, keeps them and
    // reads the run after them).
    let lead = b
        .iter()
        .take(2)
        .take_while(|c| matches!(c, b'"' | b'\'' | b'(' | b'[' | b'{'))
        .count();
    if !b.get(lead).is_some_and(u8::is_ascii_alphabetic) || unread.chars().nth(1).is_none() {
        return 0;
    }
    if unread.chars().any(char::is_whitespace) || b.contains(&0x0b) {
        // An earlier unit waits for a step that may take several (a spelled-out word, a
        // spaced key): not the case this covers.
        return 0;
    }
    let mask = super::special_mask(opts);
    let letters = b[lead..]
        .iter()
        .take_while(|&&c| c.is_ascii_alphanumeric() && (mask >> c) & 1 == 0)
        .count();
    // The original must be those bytes as they are (up to case): an invisible character, a
    // mark or a look-alike the per-character steps removed or folded would put the run the
    // decoder reads elsewhere than here (`"\u{200B}MTIg…`: the decoder's run starts at `M`).
    let n = lead + letters;
    if !orig
        .as_bytes()
        .get(..n)
        .is_some_and(|o| o.eq_ignore_ascii_case(&b[..n]))
    {
        return 0;
    }
    if (opts.base64 || opts.hex) && may_decode(opts, &orig.as_bytes()[lead..]) {
        return 0;
    }
    lead + letters
}

/// How many characters of a run that may go on [`may_decode`] decodes to test it: what it
/// decodes to beyond them could only rule the run out, never in, so stopping early holds
/// more, never less. 64 base64 characters are 48 bytes.
const TESTED_CHARS: usize = 64;

/// Whether a base64 or hex run starting at `orig[0]` may still be decoded, whatever follows.
fn may_decode(opts: NormalizeOptions, orig: &[u8]) -> bool {
    let run = orig
        .iter()
        .take(MAX_DECODE_BYTES)
        .take_while(|&&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-')
        })
        .count();
    let run_bytes = &orig[..run];
    if run < orig.len() && run < MAX_DECODE_BYTES {
        // The run is over: it is decoded exactly when it decodes.
        if run < MIN_DECODE_CHARS {
            return false;
        }
        let text = std::str::from_utf8(run_bytes).expect("ASCII");
        return (opts.hex && decode_hex(text).is_some())
            || (opts.base64 && decode_base64(text).is_some());
    }
    let tested = &run_bytes[..run.min(TESTED_CHARS)];
    let mut buf = [0u8; TESTED_CHARS];
    let hex = opts.hex && run_bytes.iter().all(u8::is_ascii_hexdigit) && {
        let n = tested.len() / 2;
        for (k, p) in tested.chunks_exact(2).enumerate() {
            buf[k] = (hex_value(p[0]) << 4) | hex_value(p[1]);
        }
        readable_start(&buf[..n])
    };
    hex || (opts.base64 && base64_may_decode(run_bytes, tested, &mut buf))
}

fn hex_value(b: u8) -> u8 {
    char::from(b).to_digit(16).map_or(0, |d| d as u8)
}

/// Whether a base64 run that may go on, `run`, may still decode to readable text, testing what
/// its first characters (`tested`) decode to (into `buf`).
fn base64_may_decode(run: &[u8], tested: &[u8], buf: &mut [u8; TESTED_CHARS]) -> bool {
    let url = run.iter().any(|&b| matches!(b, b'-' | b'_'));
    if url && run.iter().any(|&b| matches!(b, b'+' | b'/')) {
        // Both alphabets: never decoded, however it goes on.
        return false;
    }
    let body = match run.iter().position(|&b| b == b'=') {
        // Padding: decoded only if nothing but padding follows; trailing `=` may still end it.
        Some(p) if !run[p..].iter().all(|&b| b == b'=') => return false,
        Some(p) => &tested[..p.min(tested.len())],
        None => tested,
    };
    let n = base64_bytes(body, buf);
    readable_start(&buf[..n])
}

/// Decodes the base64 characters of `body` into `out` (whole bytes only); returns how many.
fn base64_bytes(body: &[u8], out: &mut [u8]) -> usize {
    let (mut acc, mut bits, mut n) = (0u32, 0, 0);
    for &b in body {
        let Some(v) = base64_value(b) else { break };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out[n] = (acc >> bits) as u8;
            n += 1;
            acc &= (1 << bits) - 1;
        }
    }
    n
}

/// Whether `bytes` may begin readable text (the decoders' test, `decode.rs`): UTF-8 so far
/// (a character cut off at the end may still complete) with no control character other than
/// line breaks and tabs. Both conditions hold for every prefix of a readable text.
fn readable_start(bytes: &[u8]) -> bool {
    let valid = match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).expect("valid up to here")
        }
        Err(_) => return false,
    };
    !valid
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}
