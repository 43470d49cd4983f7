//! The `joins` rewrite step: a token split across lines or string literals reads as one.
//!
//! `"sk-proj-AbCd…" + "EfGh…"`, `"sk-proj-AbCd…"\n"EfGh…"` and a key broken over two lines
//! are joined, so a secret rule matches the whole key or nothing (a redaction never leaves
//! half a key behind). Only key-like pieces join: the piece before the break is at least 8
//! characters of `[A-Za-z0-9_+/=-]` with a letter and a digit, and so is the piece after it.
//! Prose lines and `name = value` lines do not join.

use super::Source;
use crate::text::options::MAX_UNIT_BYTES;

/// Where a unit's key-like tail continues after a break.
pub(super) enum Join {
    /// No break to join here.
    No,
    /// The text ends before the break is decided.
    Wait,
    /// Write the unit up to `tail_end`, skip the break, go on at `next`.
    At { tail_end: usize, next: usize },
}

fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'/' | b'=' | b'-')
}

fn key_like(piece: &[u8], min: usize) -> bool {
    let letters = piece.iter().any(u8::is_ascii_alphabetic);
    let digits = piece.iter().any(u8::is_ascii_digit);
    piece.len() >= min && letters && digits
}

/// Whether the unit `[i, end)` ends in a key-like piece that continues after a line break or
/// a string concatenation (`" + "`, `"\n"`).
pub(super) fn split_token(src: &Source<'_>, i: usize, end: usize, finish: bool) -> Join {
    let b = src.text.as_bytes();
    let mut tail_end = end;
    let quoted = tail_end > i && matches!(b[tail_end - 1], b'"' | b'\'');
    if quoted {
        tail_end -= 1;
    }
    let tail_start = (i..tail_end)
        .rev()
        .take_while(|&k| token_byte(b[k]))
        .last()
        .unwrap_or(tail_end);
    if !key_like(&b[tail_start..tail_end], 8) {
        return Join::No;
    }
    // The break: white space with one line break, or a closing quote, white space, an
    // optional `+`, white space and an opening quote.
    let mut p = end;
    let mut newlines = 0;
    let mut plus = false;
    let limit = end + MAX_UNIT_BYTES;
    loop {
        match b.get(p) {
            None if !finish => return Join::Wait,
            None => return Join::No,
            Some(b'\n') => newlines += 1,
            Some(b' ' | b'\t' | b'\r') => {}
            Some(b'+') if quoted && !plus => plus = true,
            Some(_) => break,
        }
        p += 1;
        if p > limit {
            return Join::No;
        }
    }
    if quoted {
        if !matches!(b[p], b'"' | b'\'') {
            return Join::No;
        }
        p += 1;
    } else if newlines != 1 || plus {
        return Join::No;
    }
    let rest = b[p..]
        .iter()
        .take(MAX_UNIT_BYTES)
        .take_while(|&&c| token_byte(c))
        .count();
    if p + rest == b.len() && !finish && rest < MAX_UNIT_BYTES {
        return Join::Wait;
    }
    if !key_like(&b[p..p + rest], 8) || (newlines == 0 && !quoted) {
        return Join::No;
    }
    Join::At { tail_end, next: p }
}
