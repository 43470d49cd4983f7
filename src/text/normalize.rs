//! Text normalization with an offset map back into the original text.
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

use std::sync::OnceLock;

use unicode_normalization::char::{
    canonical_combining_class, decompose_canonical, decompose_compatible,
};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

use super::tables::{
    fold_confusable, has_mark, is_invisible, is_separator, is_simple, is_strippable_mark,
    simple_table,
};

/// The most characters one segment may hold before it is cut regardless (a guard against
/// endless runs of combining marks).
const MAX_SEGMENT_CHARS: usize = 32;

/// Which normalization steps to apply.
///
/// More steps may come, so the struct cannot be built with a literal outside this crate:
/// start from [`all`](Self::all), [`none`](Self::none) or `Default` and set fields.
///
/// ```
/// use deliberate::text::{normalize, NormalizeOptions};
///
/// let mut opts = NormalizeOptions::none();
/// opts.casefold = true;
/// // Case folding alone: the fullwidth `Ｂ` becomes a fullwidth `ｂ`, not a Latin `b`.
/// assert_eq!(normalize(opts, "ＢOMB").text, "ｂomb");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct NormalizeOptions {
    /// Unicode NFKC.
    pub nfkc: bool,
    /// Lower-case each character.
    pub casefold: bool,
    /// Drop default-ignorable (invisible) characters.
    pub strip_invisible: bool,
    /// Fold non-Latin look-alikes of Latin letters to those letters.
    pub confusables: bool,
    /// Read digits and symbols written for letters as those letters (`0`→o, `1`→i, `3`→e,
    /// `4`→a, `5`→s, `7`→t, `8`→b, `@`→a, `$`→s). Off by default: it would break patterns
    /// over numbers; turn it on for keyword rules.
    pub leetspeak: bool,
    /// Drop diacritical marks (`é`→e, `p\u{0301}ipe`→pipe, stacked "Zalgo" marks); marks that
    /// spell a script (Indic vowel signs, Hebrew points, Arabic harakat) stay.
    pub strip_marks: bool,
    /// Read any run of white space, control characters, `-`, `_`, `.` and dashes as one space,
    /// so that a keyword `pipe bomb` also matches `pipe-bomb`, `pipe\tbomb`, `pipe  bomb` and
    /// `pipe\u{0}bomb`. Runs are cut every 32 characters (a bounded look-ahead for streams).
    pub separators: bool,
}

impl NormalizeOptions {
    /// The default steps: NFKC, case folding, invisible characters, look-alikes and diacritical
    /// marks (leetspeak and separators are opt-in; keyword leaves get separators by default).
    pub const fn all() -> Self {
        NormalizeOptions {
            nfkc: true,
            casefold: true,
            strip_invisible: true,
            confusables: true,
            leetspeak: false,
            strip_marks: true,
            separators: false,
        }
    }

    /// The default for keyword leaves: [`all`](Self::all) plus [`separators`](Self::separators).
    pub const fn keywords() -> Self {
        let mut o = Self::all();
        o.separators = true;
        o
    }

    /// Longest run of original characters that one normalized unit may still be waiting for:
    /// a segment of combining marks or a run of separators. A stream scanner holds back at
    /// most this many characters (4 bytes each) that the normalizer has not consumed yet.
    pub const fn max_pending_chars(self) -> usize {
        MAX_SEGMENT_CHARS
    }

    /// No step: matching on the raw text.
    pub const fn none() -> Self {
        NormalizeOptions {
            nfkc: false,
            casefold: false,
            strip_invisible: false,
            confusables: false,
            leetspeak: false,
            strip_marks: false,
            separators: false,
        }
    }
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        Self::all()
    }
}

// === OffsetMap ===

/// One piece of the offset map: either a run where normalized and original bytes correspond
/// one to one, or a segment whose normalized bytes all stem from one original range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    norm: usize,
    orig: usize,
    norm_len: usize,
    orig_len: usize,
    identity: bool,
}

/// Maps offsets in normalized text to offsets in the original text.
///
/// Offsets are absolute (from the start of the whole text or stream), so a streaming scanner
/// can drop old pieces with [`OffsetMap::forget_before`] and keep using the same offsets.
#[derive(Debug, Clone, Default)]
pub struct OffsetMap {
    pieces: Vec<Piece>,
}

impl OffsetMap {
    fn push(&mut self, p: Piece) {
        if let Some(last) = self.pieces.last_mut()
            && last.identity
            && p.identity
            && last.norm + last.norm_len == p.norm
            && last.orig + last.orig_len == p.orig
        {
            last.norm_len += p.norm_len;
            last.orig_len += p.orig_len;
            return;
        }
        self.pieces.push(p);
    }

    fn find(&self, norm: usize) -> Option<&Piece> {
        let idx = self.pieces.partition_point(|p| p.norm + p.norm_len <= norm);
        self.pieces.get(idx).filter(|p| p.norm <= norm)
    }

    /// The original byte where the normalized byte `norm` comes from (the start of its
    /// segment), or `None` past the end of the map.
    pub fn orig_start(&self, norm: usize) -> Option<usize> {
        self.find(norm).map(|p| {
            if p.identity {
                p.orig + (norm - p.norm)
            } else {
                p.orig
            }
        })
    }

    /// The original end (exclusive) of the normalized byte `norm`'s segment.
    pub fn orig_end_of(&self, norm: usize) -> Option<usize> {
        self.find(norm).map(|p| {
            if p.identity {
                p.orig + (norm - p.norm) + 1
            } else {
                p.orig + p.orig_len
            }
        })
    }

    /// Maps the normalized span `[start, end)` (`start < end`) to the smallest original span
    /// that produced it.
    ///
    /// # Panics
    /// Never for spans inside the map; out-of-range offsets clamp to the mapped ends.
    pub fn orig_span(&self, start: usize, end: usize) -> (usize, usize) {
        let s = self.orig_start(start).unwrap_or_else(|| self.orig_end());
        let e = if end > start {
            self.orig_end_of(end - 1).unwrap_or_else(|| self.orig_end())
        } else {
            s
        };
        (s, e.max(s))
    }

    /// The original offset just past the last mapped piece.
    pub fn orig_end(&self) -> usize {
        self.pieces.last().map_or(0, |p| p.orig + p.orig_len)
    }

    /// Drops pieces that end at or before normalized offset `norm`.
    pub fn forget_before(&mut self, norm: usize) {
        let idx = self.pieces.partition_point(|p| p.norm + p.norm_len <= norm);
        if idx > 0 {
            self.pieces.drain(..idx);
        }
    }

    /// Number of pieces held (for memory accounting in tests).
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }
}

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
                if opts.leetspeak {
                    out.extend(orig[i..end].chars().map(|c| fold_ascii(opts, c)));
                } else {
                    let from = out.len();
                    out.push_str(&orig[i..end]);
                    if opts.casefold {
                        out[from..].make_ascii_lowercase();
                    }
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
            && is_separator(c)
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
        let part = is_separator(c) || (opts.strip_invisible && is_invisible(c));
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
    if c.is_ascii() {
        return true;
    }
    let cp = c as usize;
    if cp < 0x10000 {
        return char_props()[cp] & BOUNDARY != 0;
    }
    compute_boundary(c)
}

/// Whether NFKC leaves `c` alone (quick check says yes).
pub(super) fn nfkc_inert(c: char) -> bool {
    let cp = c as usize;
    if cp < 0x10000 {
        return char_props()[cp] & NFKC_INERT != 0;
    }
    is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes
}

const BOUNDARY: u8 = 1;
const NFKC_INERT: u8 = 2;

/// Per-character properties over the BMP, computed once from `unicode-normalization`.
fn char_props() -> &'static [u8] {
    static PROPS: OnceLock<Vec<u8>> = OnceLock::new();
    PROPS.get_or_init(|| {
        (0u32..0x10000)
            .map(|cp| match char::from_u32(cp) {
                None => 0,
                Some(c) => {
                    let mut p = 0;
                    if c.is_ascii() || compute_boundary(c) {
                        p |= BOUNDARY;
                    }
                    if is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes {
                        p |= NFKC_INERT;
                    }
                    p
                }
            })
            .collect()
    })
}

fn compute_boundary(c: char) -> bool {
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

/// Case and leetspeak folding of one ASCII character (others pass unchanged). The mapping
/// is byte for byte, so offsets stay exact.
fn fold_ascii(opts: NormalizeOptions, c: char) -> char {
    let c = if opts.casefold {
        c.to_ascii_lowercase()
    } else {
        c
    };
    if !opts.leetspeak {
        return c;
    }
    match c {
        '0' => 'o',
        '1' => 'i',
        '3' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' => 't',
        '8' => 'b',
        other => other,
    }
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
