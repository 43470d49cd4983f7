//! Text normalization with an offset map back into the original text.
//!
//! This module is the per-character pass and the entry points; the steps it runs are chosen
//! by [`NormalizeOptions`] (`text/options.rs`), the rewrite steps above the level of one
//! character are its child `rewrite/` (with `letters.rs`, `decode.rs` and `joins.rs`; a decoded
//! run is normalized again, so the children call back into this module), and the map is
//! `text/offsets.rs`.
//!
//! Rules match on a normalized view of the text, so `ＢＯＭＢ`, `bo\u{200B}mb` and `bоmb` (with
//! a Cyrillic `о`) all read as `bomb`. Each finding must still point at the original bytes, so
//! normalization records an [`OffsetMap`] from normalized to original offsets.
//!
//! The text is cut into *segments*: a character that starts a new normalization unit (a starter
//! that nothing before it can compose with) plus the combining marks after it. Segments are
//! normalized independently, which makes normalization incremental: a stream can normalize all
//! segments but the last, whose combining marks may still arrive. The cut points depend only on
//! the text, never on how it was chunked, so streamed and buffered normalization agree.
//!
//! ```
//! use deliberate::text::{normalize, NormalizeOptions};
//!
//! let text = "ＢＯ\u{200B}МB"; // fullwidth B, O, a zero-width space, Cyrillic М, Latin B
//! let n = normalize(NormalizeOptions::all(), text);
//! assert_eq!(n.text, "bomb");
//! // The whole normalized text maps back to the whole original text.
//! assert_eq!(n.map.orig_span(0, 4), (0, text.len()));
//! ```

use std::borrow::Cow;
use unicode_normalization::char::{
    canonical_combining_class, decompose_canonical, decompose_compatible,
};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

mod rewrite;

pub use rewrite::{Lexicon, RewriteTriggers};
pub(crate) use rewrite::{has_long_unit, rot13_str};

pub use super::offsets::OffsetMap;
use super::offsets::Piece;
use super::options::{MAX_SEGMENT_CHARS, NormalizeOptions};
use super::tables::{
    BOUNDARY, NFKC_INERT, bmp, fold_confusable, has_mark, is_invisible, is_separator, is_simple,
    is_strippable_mark, is_symbol, simple_table,
};

// === normalize ===

/// A normalized text and its map back to the original.
#[derive(Debug, Clone, Default)]
pub struct NormText {
    /// The normalized text.
    pub text: String,
    /// Normalized → original offsets.
    pub map: OffsetMap,
}

/// Normalizes a whole text.
pub fn normalize(opts: NormalizeOptions, text: &str) -> NormText {
    let mut out = NormText::default();
    let consumed = normalize_into(opts, text, 0, 0, true, &mut out.text, &mut out.map);
    debug_assert_eq!(consumed, text.len());
    out
}

/// Normalizes a whole text, the `segment` step cutting words into those of `lexicon`.
pub fn normalize_with(opts: NormalizeOptions, lexicon: Option<&Lexicon>, text: &str) -> NormText {
    if lexicon.is_none() || !opts.segment {
        return normalize(opts, text);
    }
    let chars = normalize(opts.char_steps(), text);
    normalize_rewrites(opts, lexicon, &chars, text).into_owned()
}

/// Normalizes a whole text from its per-character pass: `chars` must be
/// `normalize(opts.char_steps(), orig)`. The result equals `normalize(opts, orig)`; several
/// views with the same per-character steps pay for that pass once, and a view whose rewrite
/// steps change nothing borrows it.
pub fn normalize_rewrites<'a>(
    opts: NormalizeOptions,
    lexicon: Option<&Lexicon>,
    chars: &'a NormText,
    orig: &str,
) -> Cow<'a, NormText> {
    if !opts.rewrites() {
        return Cow::Borrowed(chars);
    }
    let mut out = NormText::default();
    let cx = rewrite::Source {
        text: &chars.text,
        map: &chars.map,
        orig,
        orig_base: 0,
        lexicon,
    };
    if rewrite::rewrite_whole(opts, &cx, &mut out.text, &mut out.map) {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(chars)
    }
}

/// Normalizes a short string (a keyword) without keeping the map.
pub fn normalize_str(opts: NormalizeOptions, text: &str) -> String {
    normalize(opts, text).text
}

/// Normalizes the complete segments of `orig`, appending to `out` and `map`.
///
/// `orig_base` is the absolute offset of `orig[0]`; `norm_base` the absolute offset of the
/// end of `out` as the caller counts it (the length of everything normalized before). With
/// `finish` false, the last segment is left alone, since marks that combine with it may still
/// come. Returns how many bytes of `orig` were consumed; the caller keeps the rest and passes
/// it again with more text.
pub fn normalize_into(
    opts: NormalizeOptions,
    orig: &str,
    orig_base: usize,
    norm_base: usize,
    finish: bool,
    out: &mut String,
    map: &mut OffsetMap,
) -> usize {
    if !opts.rewrites() {
        return char_steps_into(opts, orig, orig_base, norm_base, finish, out, map);
    }
    // The per-character steps into a scratch text, then the rewrite steps over it. What the
    // rewrite steps leave unread is normalized again with the next piece.
    let mut first = String::new();
    let mut first_map = OffsetMap::default();
    let read = char_steps_into(opts, orig, orig_base, 0, finish, &mut first, &mut first_map);
    let used = rewrite_pass_into(
        opts, None, &first, &first_map, orig, orig_base, finish, norm_base, out, map,
    );
    if used >= first.len() {
        read
    } else {
        first_map.orig_start(used).map_or(read, |o| o - orig_base)
    }
}

/// The rewrite steps of [`normalize_into`] alone, over a per-character pass that the caller
/// keeps (a stream's views with the same per-character steps share it): `chars` is
/// `normalize_into(opts.char_steps(), …)`'s output from a point where `orig` (at absolute
/// offset `orig_base`) starts, and `chars_map` its map with normalized offsets counted from
/// the start of `chars`. Appends to `out` and `map` like [`normalize_into`] and returns how
/// many bytes of `chars` were read; the rest must be passed again with more text.
#[allow(clippy::too_many_arguments)]
pub fn rewrite_pass_into(
    opts: NormalizeOptions,
    lexicon: Option<&Lexicon>,
    chars: &str,
    chars_map: &OffsetMap,
    orig: &str,
    orig_base: usize,
    finish: bool,
    norm_base: usize,
    out: &mut String,
    map: &mut OffsetMap,
) -> usize {
    let cx = rewrite::Source {
        text: chars,
        map: chars_map,
        orig,
        orig_base,
        lexicon,
    };
    rewrite::rewrite_into(opts, &cx, finish, norm_base, out, map)
}

/// Where [`rewrite_pass_into`] stopped before the end of `chars` (a unit it cannot decide
/// yet): the ASCII bytes, as a bit set (bit `b` for byte `b`), that its output from there can
/// start with, whatever text follows. `unread` is the pass text it left unread, `orig` the
/// original text from the same point. `None` when any byte may come first.
///
/// A stream uses it to end matches in progress early: when no byte of the set continues
/// them, the text before the unit cannot be part of a match.
///
/// ```
/// use deliberate::text::{NormalizeOptions, rewrite_first_bytes};
///
/// let mut opts = NormalizeOptions::all();
/// opts.base64 = true;
/// // "Tom…" is copied (`t`) or, as a long base64 run, decoded: its first byte is then 0x4c-0x4f.
/// let set = rewrite_first_bytes(opts, "tom", "Tom").unwrap();
/// let bytes: Vec<u8> = (0..128u8).filter(|&b| set & (1 << b) != 0).collect();
/// assert_eq!(bytes, b"lmnot");
/// // A run starting with `E` decodes to a control character first: not text, not decoded.
/// assert_eq!(rewrite_first_bytes(opts, "eggs", "Eggs"), Some(1 << b'e'));
/// // One starting with `f` may decode to `~`, a mark later steps drop: anything may follow.
/// assert_eq!(rewrite_first_bytes(opts, "fig", "fig"), None);
/// ```
pub fn rewrite_first_bytes(opts: NormalizeOptions, unread: &str, orig: &str) -> Option<u128> {
    rewrite::first_bytes(opts, unread, orig)
}

/// Where [`rewrite_pass_into`] stopped before the end of `chars` at a word not yet complete:
/// how many bytes of `unread` its output from there will begin with, each copied in its place
/// (mapped to its own character of `unread`), whatever text follows; `0` when this cannot be
/// told. `unread` and `orig` as for [`rewrite_first_bytes`].
///
/// A stream feeds these bytes to copies of its automata: when no match can start in them, the
/// start of an unfinished word may go before its end arrives.
///
/// ```
/// use deliberate::text::{NormalizeOptions, rewrite_stable_prefix};
///
/// let mut opts = NormalizeOptions::keywords();
/// opts.base64 = true;
/// // `n` starts no readable base64 (its first byte would be 0x9c-0x9f): "nigh" is copied.
/// assert_eq!(rewrite_stable_prefix(opts, "nigh", "nigh"), 4);
/// // `Sil` may begin an encoded run (`J)`…): the decoder may take the whole word.
/// assert_eq!(rewrite_stable_prefix(opts, "sil", "Sil"), 0);
/// // Letters before a markup mark stay; the mark and what follows are not told.
/// assert_eq!(rewrite_stable_prefix(opts, "pi**pe", "pi**pe"), 2);
/// ```
pub fn rewrite_stable_prefix(opts: NormalizeOptions, unread: &str, orig: &str) -> usize {
    rewrite::stable_prefix(opts, unread, orig)
}

/// The per-character steps (everything up to `separators`) of [`normalize_into`].
pub(super) fn char_steps_into(
    opts: NormalizeOptions,
    orig: &str,
    orig_base: usize,
    norm_base: usize,
    finish: bool,
    out: &mut String,
    map: &mut OffsetMap,
) -> usize {
    let bytes = orig.as_bytes();
    let out_start = out.len();
    let norm_at = |out: &String| norm_base + (out.len() - out_start);
    let simple = simple_table(opts);
    let mut i = 0;
    while i < bytes.len() {
        // Fast path: a run of characters that normalization leaves alone (ASCII, up to case,
        // and most letters of other scripts), mapped byte for byte.
        let mut end = i;
        while end < bytes.len() {
            let b = bytes[end];
            if b.is_ascii() {
                if opts.separators && is_ascii_separator(b) {
                    // A lone space between two other characters stays as it is.
                    let lone = b == b' '
                        && end > i
                        && bytes
                            .get(end + 1)
                            .is_some_and(|&n| !is_ascii_separator(n) && n.is_ascii());
                    if !lone {
                        break;
                    }
                }
                end += 1;
                continue;
            }
            let c = orig[end..].chars().next().unwrap_or('\u{FFFD}');
            if !is_simple(simple, c) {
                break;
            }
            end += c.len_utf8();
        }
        if end > i {
            if opts.nfkc {
                // The last character may combine with marks that follow.
                let follows_mark = match orig[end..].chars().next() {
                    Some(c) => !is_boundary(c),
                    None => !finish,
                };
                if follows_mark {
                    end -= orig[i..end].chars().next_back().map_or(0, char::len_utf8);
                }
            }
            if end > i {
                let n = norm_at(out);
                let from = out.len();
                out.push_str(&orig[i..end]);
                if opts.casefold {
                    out[from..].make_ascii_lowercase();
                }
                map.push(Piece {
                    norm: n,
                    orig: orig_base + i,
                    norm_len: end - i,
                    orig_len: end - i,
                    identity: true,
                });
                i = end;
            }
            if i == bytes.len() {
                break;
            }
        }
        if opts.separators
            && let Some(c) = orig[i..].chars().next()
            && is_separator_of(opts, c)
        {
            // A run of separators becomes one space.
            let Some(run_end) = separator_run_end(opts, orig, i, finish) else {
                break;
            };
            let n = norm_at(out);
            out.push(' ');
            map.push(Piece {
                norm: n,
                orig: orig_base + i,
                norm_len: 1,
                orig_len: run_end - i,
                identity: &orig[i..run_end] == " ",
            });
            i = run_end;
            continue;
        }
        // A segment starting at `i`.
        let seg_end = match segment_end(opts, orig, i) {
            Some(e) => e,
            None if finish => orig.len(),
            None => break,
        };
        let seg = &orig[i..seg_end];
        let n = norm_at(out);
        let before = out.len();
        push_segment(opts, seg, out);
        let produced = out.len() - before;
        if produced > 0 {
            let identity = &out[before..] == seg;
            map.push(Piece {
                norm: n,
                orig: orig_base + i,
                norm_len: produced,
                orig_len: seg.len(),
                identity,
            });
        }
        i = seg_end;
    }
    i
}

/// Whether `c` is a separator for `opts` (symbols count when that step is on).
pub(super) fn is_separator_of(opts: NormalizeOptions, c: char) -> bool {
    is_separator(c) || (opts.symbols && is_symbol(c))
}

/// Whether the ASCII byte `b` is a separator (see [`NormalizeOptions::separators`]).
fn is_ascii_separator(b: u8) -> bool {
    b.is_ascii_whitespace() || b.is_ascii_control() || matches!(b, b'-' | b'_' | b'.')
}

/// The end of the separator run that starts at `start` (invisible characters inside it count
/// as part of it when they are stripped), or `None` when the text ends before the run is known
/// to be complete. Runs are cut after [`MAX_SEGMENT_CHARS`] characters.
fn separator_run_end(
    opts: NormalizeOptions,
    orig: &str,
    start: usize,
    finish: bool,
) -> Option<usize> {
    let mut count = 0;
    for (off, c) in orig[start..].char_indices() {
        if count >= MAX_SEGMENT_CHARS {
            return Some(start + off);
        }
        let part = is_separator_of(opts, c) || (opts.strip_invisible && is_invisible(c));
        if !part {
            return Some(start + off);
        }
        count += 1;
    }
    if finish || count >= MAX_SEGMENT_CHARS {
        Some(orig.len())
    } else {
        None
    }
}

/// The end of the segment that starts at `start`, or `None` when the text ends before the
/// segment is known to be complete.
fn segment_end(opts: NormalizeOptions, orig: &str, start: usize) -> Option<usize> {
    let mut chars = orig[start..].char_indices();
    let (_, first) = chars.next()?;
    if !opts.nfkc {
        return Some(start + first.len_utf8());
    }
    let mut count = 1;
    for (off, c) in chars {
        if is_boundary(c) || count >= MAX_SEGMENT_CHARS {
            return Some(start + off);
        }
        count += 1;
    }
    if count >= MAX_SEGMENT_CHARS {
        Some(orig.len())
    } else {
        None
    }
}

/// Whether normalization may cut the text just before `c`: `c` is a starter that nothing
/// before it can compose with, and its decomposition starts with such a starter.
pub(super) fn is_boundary(c: char) -> bool {
    let cp = c as usize;
    if cp < 0x10000 {
        return bmp()[cp] & BOUNDARY != 0;
    }
    compute_boundary(c)
}

/// Whether NFKC leaves `c` alone (quick check says yes).
pub(super) fn nfkc_inert(c: char) -> bool {
    let cp = c as usize;
    if cp < 0x10000 {
        return bmp()[cp] & NFKC_INERT != 0;
    }
    is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes
}

/// [`is_boundary`] computed from the Unicode data (the tables hold it for the BMP).
pub(super) fn compute_boundary(c: char) -> bool {
    if canonical_combining_class(c) != 0 {
        return false;
    }
    match is_nfkc_quick(std::iter::once(c)) {
        IsNormalized::Yes => true,
        IsNormalized::Maybe => false,
        IsNormalized::No => {
            let mut first = None;
            decompose_compatible(c, |d| {
                if first.is_none() {
                    first = Some(d);
                }
            });
            first.is_some_and(|d| canonical_combining_class(d) == 0)
        }
    }
}

fn push_segment(opts: NormalizeOptions, seg: &str, out: &mut String) {
    let mut chars = seg.chars();
    if let (Some(c), None) = (chars.next(), chars.clone().next()) {
        // One character: the common case, with no allocation.
        if opts.strip_invisible && is_invisible(c) {
            return;
        }
        if !opts.nfkc || nfkc_inert(c) {
            push_folded(opts, c, out);
            return;
        }
    }
    let kept = seg
        .chars()
        .filter(|&c| !(opts.strip_invisible && is_invisible(c)));
    if opts.nfkc {
        for c in kept.nfkc() {
            if !(opts.strip_invisible && is_invisible(c)) {
                push_folded(opts, c, out);
            }
        }
    } else {
        for c in kept {
            push_folded(opts, c, out);
        }
    }
}

fn push_folded(opts: NormalizeOptions, c: char, out: &mut String) {
    if opts.strip_marks && !c.is_ascii() {
        if is_strippable_mark(c) {
            return;
        }
        if has_mark(c) {
            decompose_canonical(c, |d| {
                if !is_strippable_mark(d) {
                    push_char(opts, d, out);
                }
            });
            return;
        }
    }
    push_char(opts, c, out);
}

fn push_char(opts: NormalizeOptions, c: char, out: &mut String) {
    let c = if opts.confusables && !c.is_ascii() {
        fold_confusable(c)
    } else {
        c
    };
    if c.is_ascii() {
        out.push(fold_ascii(opts, c));
    } else if opts.casefold {
        out.extend(c.to_lowercase());
    } else {
        out.push(c);
    }
}

/// Case folding of one ASCII character (others pass unchanged).
fn fold_ascii(opts: NormalizeOptions, c: char) -> char {
    if opts.casefold {
        c.to_ascii_lowercase()
    } else {
        c
    }
}

/// Normalizes one character decoded by a rewrite step (an HTML entity, a percent-escape) as
/// the per-character steps would have normalized it in the text.
pub(super) fn push_decoded(opts: NormalizeOptions, c: char, out: &mut String) {
    if opts.separators && is_separator_of(opts, c) {
        out.push(' ');
        return;
    }
    let mut buf = [0u8; 4];
    push_segment(opts, c.encode_utf8(&mut buf), out);
}

#[cfg(test)]
mod tests;
