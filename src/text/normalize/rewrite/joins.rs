//! The `joins` rewrite step: a token split across lines or string literals reads as one.
//!
//! `"sk-proj-AbCd…" + "EfGh…"`, `"sk-proj-AbCd…"\n"EfGh…"` and a key broken over two lines
//! are joined, so a secret rule matches the whole key or nothing (a redaction never leaves
//! half a key behind). Only key-like pieces join: both pieces around the break are at least 8
//! characters of `[A-Za-z0-9_+/=-]` with a letter, one of them has a digit, and the other has a
//! digit too, or reads like a random run of letters (a lower-case letter followed by an upper-case
//! one: `AbCdEfGh`), or has no lower-case letter (`AKIAIOSF`). A key's random body almost always
//! has one of those in 8 characters; prose words and `name = value` lines do not join. A piece
//! that starts with a well-known key prefix (`ghp_`, `sk-`, `xoxb-`, … in any case) is key-like
//! whatever its letters (`ghp_abcdefghijklmnop` + `qrstuvwxyz0123456789`).
//!
//! A key written in groups after single spaces (`AKIA IOSF ODNN 7EXA MPLE`, or letter by letter:
//! `s k - p r o j - …`) reads as one token too ([`spaced_key`]): at least four pieces of one
//! length (the last may be shorter), 16 characters or more with a digit; groups of two or more
//! characters only in upper case and digits, as printed codes are, so words never join.

use super::letters::{closing_punct, narrow_gap};
use super::{Source, Step, Writer};
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

pub(super) const fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'/' | b'=' | b'-')
}

/// The least length of a piece that joins.
const MIN_PIECE: usize = 8;

/// How much a piece looks like part of a key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Piece {
    /// Not key-like: too short, no letter, or a word of lower-case letters.
    Prose,
    /// Letters in random case (`AbCdEfGh`) or upper case and digits without a digit.
    Letters,
    /// Letters and digits.
    Mixed,
}

/// Prefixes of well-known key formats (compared without case): GitHub, GitLab, OpenAI and
/// Anthropic, Stripe, Slack, Hugging Face, npm, PyPI, Google API keys.
const KEY_PREFIXES: &[&[u8]] = &[
    b"ghp_",
    b"gho_",
    b"ghu_",
    b"ghs_",
    b"ghr_",
    b"github_pat_",
    b"glpat-",
    b"sk-",
    b"sk_live_",
    b"sk_test_",
    b"rk_live_",
    b"rk_test_",
    b"xoxb-",
    b"xoxp-",
    b"xoxa-",
    b"xoxr-",
    b"xoxs-",
    b"xoxe-",
    b"xapp-",
    b"hf_",
    b"npm_",
    b"pypi-",
    b"aiza",
];

fn has_key_prefix(piece: &[u8]) -> bool {
    KEY_PREFIXES
        .iter()
        .any(|p| piece.len() > p.len() && piece[..p.len()].eq_ignore_ascii_case(p))
}

fn piece(piece: &[u8]) -> Piece {
    if piece.len() < MIN_PIECE || !piece.iter().any(u8::is_ascii_alphabetic) {
        return Piece::Prose;
    }
    if piece.iter().any(u8::is_ascii_digit) {
        return Piece::Mixed;
    }
    if has_key_prefix(piece) {
        return Piece::Letters;
    }
    let case_switch = piece
        .windows(2)
        .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
    if case_switch || !piece.iter().any(u8::is_ascii_lowercase) {
        Piece::Letters
    } else {
        Piece::Prose
    }
}

/// Whether two pieces around a break join: both key-like, at least one with a digit.
fn joins(before: Piece, after: Piece) -> bool {
    before.min(after) >= Piece::Letters && before.max(after) == Piece::Mixed
}

/// Whether a unit of `len` bytes might end in the first piece of a split key, from what the
/// fast path of the rewrite steps knows about it (`key_hint`: a digit, an upper-case letter,
/// `_` or `-` in it — every key prefix has one of the last two).
pub(super) fn may_start_join(len: usize, key_hint: bool) -> bool {
    len >= MIN_PIECE && key_hint
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
    let before = piece(&b[tail_start..tail_end]);
    if before == Piece::Prose {
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
    if !joins(before, piece(&b[p..p + rest])) || (newlines == 0 && !quoted) {
        return Join::No;
    }
    Join::At { tail_end, next: p }
}

/// Most pieces of one spaced key; a longer run goes on as a new one.
const MAX_GROUPS: usize = 64;
/// Longest group of a spaced key.
pub(super) const MAX_GROUP: usize = 8;
/// Least pieces, and least characters, of a spaced key.
const MIN_GROUPS: usize = 4;
const MIN_SPACED_KEY: usize = 16;

/// Whether `unit` may be a group of a spaced key: key characters only, at most [`MAX_GROUP`]
/// of them, and no lower-case letter unless it is one character. The fast path asks this of a
/// unit followed by one space, so that such a unit takes [`spaced_key`].
pub(super) fn may_be_group(unit: &[u8]) -> bool {
    !unit.is_empty()
        && unit.len() <= MAX_GROUP
        && unit.iter().all(|&b| token_byte(b))
        && (unit.len() == 1 || !unit.iter().any(u8::is_ascii_lowercase))
}

/// A key written in groups, starting with the unit `[i, end)`: pieces of key characters, each
/// after one plain space (one space in the original as well), all as long as the first (1 to
/// [`MAX_GROUP`] characters; the last may be shorter and may end in closing punctuation), at
/// least [`MIN_GROUPS`] of them and [`MIN_SPACED_KEY`] characters together, with a digit and a
/// letter. Written as one token (the spaces dropped), each piece mapped to its original.
pub(super) fn spaced_key(
    src: &Source<'_>,
    i: usize,
    end: usize,
    finish: bool,
    w: &mut Writer<'_>,
) -> Step {
    let b = src.text.as_bytes();
    let len = end - i;
    if !may_be_group(&b[i..end]) {
        return Step::No;
    }
    // On the stack: prose in upper case (`THE NEW YORK …`) asks this at every word.
    let mut buf = [(0usize, 0usize); MAX_GROUPS];
    buf[0] = (i, end);
    let mut count = 1;
    let mut pos = end;
    // Closing punctuation after the last piece (`… MPLE.`), copied after the token.
    let mut tail = None;
    while count < MAX_GROUPS {
        match b.get(pos) {
            None if !finish => return Step::Wait,
            Some(b' ') => {}
            _ => break,
        }
        let s = pos + 1;
        let Some(&first) = b.get(s) else {
            if finish {
                break;
            }
            return Step::Wait;
        };
        if !token_byte(first) || narrow_gap(src, pos, ' ') != Some(' ') {
            break;
        }
        let n = b[s..]
            .iter()
            .take(MAX_GROUP + 1)
            .take_while(|&&c| token_byte(c))
            .count();
        let e = s + n;
        // Longer than the first group, or lower case in a group of two or more: no more text
        // makes it a group, so a word at the end of the text so far does not wait.
        if n > len || (n >= 2 && b[s..e].iter().any(u8::is_ascii_lowercase)) {
            break;
        }
        if e == b.len() && !finish {
            return Step::Wait;
        }
        let closing = b[e..].iter().take_while(|&&c| closing_punct(c)).count();
        let ends_unit = match src.text[e + closing..].chars().next() {
            None if !finish => return Step::Wait,
            None => true,
            Some(c) => c.is_whitespace(),
        };
        if !ends_unit || n > len || !may_be_group(&b[s..e]) {
            break;
        }
        buf[count] = (s, e);
        count += 1;
        pos = e;
        if closing > 0 || n < len {
            tail = (closing > 0).then_some((e, e + closing));
            pos = e + closing;
            break;
        }
    }
    let pieces = &buf[..count];
    let total: usize = pieces.iter().map(|(s, e)| e - s).sum();
    let chars = || pieces.iter().flat_map(|&(s, e)| b[s..e].iter());
    if pieces.len() < MIN_GROUPS
        || total < MIN_SPACED_KEY
        || !chars().any(u8::is_ascii_digit)
        || !chars().any(u8::is_ascii_alphabetic)
    {
        return Step::No;
    }
    for &(s, e) in pieces {
        w.copy(src, s, e);
    }
    if let Some((s, e)) = tail {
        w.copy(src, s, e);
    }
    Step::Done(pos)
}
