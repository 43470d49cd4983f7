//! Decoders for the rewrite steps: HTML character references, percent-escapes, and base64 /
//! hex runs that decode to readable text, and the rewrite step that puts a decoded run in
//! place of its token (mapped back to the whole token).

use super::{Source, Step, Writer};
use crate::text::normalize::normalize_with;
use crate::text::options::{MAX_DECODE_BYTES, NormalizeOptions};

/// Shortest base64 or hex run that is decoded.
pub(super) const MIN_DECODE_CHARS: usize = 16;

// === entities and escapes ===

/// An HTML character reference at the start of `s`: the character and the reference's
/// length.
pub(super) fn html_entity(s: &str) -> Option<(char, usize)> {
    let semi = s.get(..16.min(s.len())).unwrap_or(s).find(';')?;
    let body = &s[1..semi];
    let c = if let Some(num) = body.strip_prefix('#') {
        let cp = match num.strip_prefix(['x', 'X']) {
            Some(hex) if (1..=6).contains(&hex.len()) => u32::from_str_radix(hex, 16).ok()?,
            Some(_) => return None,
            None if (1..=7).contains(&num.len()) && num.bytes().all(|b| b.is_ascii_digit()) => {
                num.parse().ok()?
            }
            None => return None,
        };
        char::from_u32(cp)?
    } else {
        match body {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" => ' ',
            "shy" => '\u{AD}',
            "zwj" => '\u{200D}',
            "zwnj" => '\u{200C}',
            "ndash" => '–',
            "mdash" => '—',
            "hellip" => '…',
            _ => return None,
        }
    };
    Some((c, semi + 1))
}

/// A run of percent-escapes at the start of `s` that spells UTF-8 text: the text and the
/// length of the escapes it took.
pub(super) fn percent_escapes(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let mut bytes = Vec::new();
    let mut p = 0;
    while bytes.len() < 16 && p + 3 <= b.len() && b[p] == b'%' {
        let hex = s.get(p + 1..p + 3)?;
        let Ok(v) = u8::from_str_radix(hex, 16) else {
            break;
        };
        bytes.push(v);
        p += 3;
    }
    let valid = match std::str::from_utf8(&bytes) {
        Ok(t) => t.len(),
        Err(e) => e.valid_up_to(),
    };
    if valid == 0 {
        return None;
    }
    let text = String::from_utf8_lossy(&bytes[..valid]).into_owned();
    Some((text, valid * 3))
}

// === runs ===

/// Whether decoded bytes are text a person could have written: UTF-8 with few control
/// characters and mostly letters and spaces.
fn readable(bytes: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?;
    let total = s.chars().count();
    let good = s
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace() || ".,;:!?'\"-()/".contains(*c))
        .count();
    let control = s
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        .count();
    (total >= 4 && control == 0 && good * 10 >= total * 9).then(|| s.to_owned())
}

pub(super) fn decode_hex(run: &str) -> Option<String> {
    let b = run.as_bytes();
    if b.len() % 2 != 0 || !b.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let bytes: Option<Vec<u8>> = b
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    readable(&bytes?)
}

/// The six bits a base64 or base64url character stands for.
pub(super) fn base64_value(b: u8) -> Option<u8> {
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    })
}

pub(super) fn decode_base64(run: &str) -> Option<String> {
    let body = run.trim_end_matches('=');
    let url = body.contains(['-', '_']);
    if url && body.contains(['+', '/']) || body.contains('=') || body.len() % 4 == 1 {
        return None;
    }
    let mut bytes = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in body.bytes() {
        let v = base64_value(b)?;
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    readable(&bytes)
}

// === decoding runs ===

/// A base64 or hex run at the unit that starts at `i` (after up to two quote or bracket
/// characters): its decoded text, normalized, is written in place of the run.
pub(super) fn decode_run(
    opts: NormalizeOptions,
    src: &Source<'_>,
    i: usize,
    finish: bool,
    w: &mut Writer<'_>,
) -> Step {
    let text = src.text;
    let lead = text[i..]
        .bytes()
        .take(2)
        .take_while(|b| matches!(b, b'"' | b'\'' | b'(' | b'[' | b'{' | b'<' | b'`'))
        .count();
    // Cheap test first: a run of 16 characters, or a shorter word cut off by a `-` or `_`
    // that the separators step read as a space (base64url).
    let from = i + lead;
    let unit_len = text.as_bytes()[from..]
        .iter()
        .take_while(|b| !b.is_ascii_whitespace())
        .count();
    let after = from + unit_len;
    if unit_len < MIN_DECODE_CHARS && (after < text.len() || finish) {
        let token = text.as_bytes()[from..after]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
        let dashed = token
            && after < text.len()
            && src
                .map
                .orig_start(after)
                .and_then(|o| src.orig.as_bytes().get(o - src.orig_base))
                .is_some_and(|b| matches!(b, b'-' | b'_'));
        if !dashed {
            return Step::No;
        }
    }
    let Some(os) = src.map.orig_start(from) else {
        return Step::No;
    };
    let local = os - src.orig_base;
    let orig = src.orig.as_bytes();
    let run_len = orig[local..]
        .iter()
        .take(MAX_DECODE_BYTES)
        .take_while(|&&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-')
        })
        .count();
    if local + run_len == orig.len() && !finish && run_len < MAX_DECODE_BYTES {
        return Step::Wait;
    }
    if run_len < MIN_DECODE_CHARS {
        return Step::No;
    }
    let run = &src.orig[local..local + run_len];
    let decoded = (opts.hex)
        .then(|| decode_hex(run))
        .flatten()
        .or_else(|| opts.base64.then(|| decode_base64(run)).flatten());
    let Some(decoded) = decoded else {
        return Step::No;
    };
    let Some(next) = src.map.norm_for_orig(os + run_len) else {
        if !finish {
            return Step::Wait;
        }
        return finish_decoded(
            opts,
            src,
            i,
            lead,
            text.len(),
            os,
            os + run_len,
            &decoded,
            w,
        );
    };
    let oe = src
        .map
        .orig_start(next)
        .unwrap_or(os + run_len)
        .max(os + run_len);
    finish_decoded(opts, src, i, lead, next, os, oe, &decoded, w)
}

#[allow(clippy::too_many_arguments)]
fn finish_decoded(
    opts: NormalizeOptions,
    src: &Source<'_>,
    i: usize,
    lead: usize,
    next: usize,
    os: usize,
    oe: usize,
    decoded: &str,
    w: &mut Writer<'_>,
) -> Step {
    if lead > 0 {
        w.copy(src, i, i + lead);
    }
    let inner = normalize_with(opts.without_decoders(), src.lexicon, decoded);
    // A space keeps the decoded text apart from a neighbour it touches.
    let mut text = String::new();
    if lead > 0 {
        text.push(' ');
    }
    text.push_str(inner.text.trim());
    if src.text[next..]
        .chars()
        .next()
        .is_some_and(|c| !c.is_whitespace())
    {
        text.push(' ');
    }
    w.whole(src, &text, os, oe);
    Step::Done(next.max(i + lead))
}
