//! The rewrite steps: what normalization undoes above the level of one character. One
//! concern in one file (over 600 lines): the unit-by-unit rewrite pass and the steps it
//! applies to a unit; decoders, joins, letter runs, word segmentation and tags split by white
//! space are in the submodules.
//!
//! They run over the output of the per-character steps (NFKC, case, invisible characters,
//! look-alikes, marks, separators), word by word: a *unit* is a run of text between white
//! space. Per unit, HTML entities and percent-escapes are decoded, markdown marks inside the
//! word dropped, letters joined by one punctuation character (`p/i/p/e`) joined, and leetspeak
//! read as letters; runs of single-letter units (`p i p e`) are collapsed into one word; a
//! unit that starts a base64 or hex run is replaced by the run's decoded text. Every output
//! byte keeps its place in the [`OffsetMap`]: decoded text maps to the whole encoded run.
//!
//! Every decision looks only forward from the start of its unit (the article before a
//! spelled-out word: from the space before it), and at most a bounded distance (64 bytes a
//! unit, 32 letters a run, 4096 bytes a decoded run), so a stream can stop before an
//! undecided unit and start again there: streamed and buffered output agree.
//!
//! This file is the driver and the per-unit steps, one concern (over 600 lines: the unit
//! loop, its fast path, the byte classes both read, and the HTML tags of `markup`); `letters.rs` holds letter runs and
//! leetspeak, `decode.rs` the decoders, `joins.rs` split tokens, `segment.rs` words run
//! together, `tags.rs` HTML tags that white space splits.

mod decode;
mod joins;
mod letters;
mod prune;
mod resume;
mod segment;
mod tags;

use super::push_decoded;
use crate::text::offsets::OffsetMap;
use crate::text::options::{MAX_UNIT_BYTES, NormalizeOptions};
use decode::{MIN_DECODE_CHARS, decode_run, html_entity, percent_escapes};
use joins::{Join, MAX_GROUP, may_be_group, may_start_join, spaced_key, split_token, token_byte};
use letters::{article_before_run, leet, letter_run, narrow_gap, numeric_with_unit, single_letter};
pub use prune::RewriteTriggers;
pub(crate) use prune::has_long_unit;
pub(super) use resume::{first_bytes, stable_prefix};
pub use segment::Lexicon;

/// The text the rewrite steps read: the per-character steps' output, its map into the
/// original, and the original (for the decoders, which need the original case).
pub(super) struct Source<'a> {
    pub text: &'a str,
    pub map: &'a OffsetMap,
    pub orig: &'a str,
    pub orig_base: usize,
    /// The words the `segment` step cuts run-together words into (`None`: case cuts only).
    pub lexicon: Option<&'a Lexicon>,
}

/// The output side: normalized text and its map, with offsets counted from `norm_base`.
pub(super) struct Writer<'o> {
    out: &'o mut String,
    map: &'o mut OffsetMap,
    out_start: usize,
    norm_base: usize,
    /// Copied source range `[s, e)` whose map pieces are not appended yet, and where it
    /// starts in the output: consecutive copies share one map lookup.
    pending: Option<(usize, usize, usize)>,
}

impl Writer<'_> {
    pub(super) fn new<'o>(
        out: &'o mut String,
        map: &'o mut OffsetMap,
        norm_base: usize,
    ) -> Writer<'o> {
        Writer {
            out_start: out.len(),
            out,
            map,
            norm_base,
            pending: None,
        }
    }

    fn at(&self) -> usize {
        let pending = self.pending.map_or(0, |(s, e, _)| e - s);
        self.norm_base + (self.out.len() - self.out_start) + pending
    }

    fn flush(&mut self, src: &Source<'_>) {
        if let Some((s, e, at)) = self.pending.take() {
            self.out.push_str(&src.text[s..e]);
            self.map.append_mapped(src.map, s, e, at);
        }
    }

    /// Whether everything written so far is one copy of `src.text` from its start to `end`
    /// (not flushed yet): the output would be the source text with the source map.
    fn is_copy_of(&self, end: usize) -> bool {
        self.out.len() == self.out_start
            && match self.pending {
                None => end == 0,
                Some((s, e, _)) => s == 0 && e == end,
            }
    }

    /// Copies `src.text[s..e]` unchanged.
    pub(super) fn copy(&mut self, src: &Source<'_>, s: usize, e: usize) {
        match &mut self.pending {
            Some((_, pe, _)) if *pe == s => *pe = e,
            _ => {
                self.flush(src);
                self.pending = Some((s, e, self.at()));
            }
        }
    }

    /// Writes `text`, as long as `src.text[s..e]` and byte for byte in its place.
    pub(super) fn copy_as(&mut self, src: &Source<'_>, s: usize, e: usize, text: &str) {
        debug_assert_eq!(text.len(), e - s);
        self.flush(src);
        let at = self.at();
        self.out.push_str(text);
        self.map.append_mapped(src.map, s, e, at);
    }

    /// Writes `text` standing for no original byte: the empty range at `o`.
    pub(super) fn whole_empty(&mut self, src: &Source<'_>, text: &str, o: usize) {
        self.flush(src);
        let at = self.at();
        self.out.push_str(text);
        self.map.push_whole(at, text.len(), o, 0);
    }

    /// Writes `text` standing for the original range `[os, oe)` as a whole.
    pub(super) fn whole(&mut self, src: &Source<'_>, text: &str, os: usize, oe: usize) {
        if text.is_empty() {
            return;
        }
        self.flush(src);
        let at = self.at();
        self.out.push_str(text);
        self.map.push_whole(at, text.len(), os, oe - os);
    }
}

/// Runs the rewrite steps of `opts` over `src.text`, appending to `out` and `map`. Returns
/// how many bytes of `src.text` were read; the rest waits for more text (never with
/// `finish`).
pub(super) fn rewrite_into(
    opts: NormalizeOptions,
    src: &Source<'_>,
    finish: bool,
    norm_base: usize,
    out: &mut String,
    map: &mut OffsetMap,
) -> usize {
    let mut w = Writer::new(out, map, norm_base);
    let read = rewrite_units(opts, src, finish, &mut w);
    finish_writer(opts, src, &mut w);
    read
}

/// Runs the rewrite steps of `opts` over the whole of `src.text` into `out` and `map`, or
/// returns `false` and writes nothing when they would leave it as it is (the same text
/// with the same map), which is the common case for ordinary prose.
pub(super) fn rewrite_whole(
    opts: NormalizeOptions,
    src: &Source<'_>,
    out: &mut String,
    map: &mut OffsetMap,
) -> bool {
    let mut w = Writer::new(out, map, 0);
    let read = rewrite_units(opts, src, true, &mut w);
    debug_assert_eq!(read, src.text.len());
    if !opts.rot13 && !opts.reverse && w.is_copy_of(src.text.len()) {
        return false;
    }
    finish_writer(opts, src, &mut w);
    true
}

fn finish_writer(opts: NormalizeOptions, src: &Source<'_>, w: &mut Writer<'_>) {
    w.flush(src);
    if opts.rot13 {
        let from = w.out_start;
        // ROT13 maps ASCII letters to ASCII letters and leaves every other byte (those of
        // multi-byte characters included) as it is: lengths and offsets stay, and so does UTF-8.
        let mut bytes = std::mem::take(w.out).into_bytes();
        for b in &mut bytes[from..] {
            *b = rot13_byte(*b);
        }
        *w.out = String::from_utf8(bytes).expect("ROT13 of UTF-8 is UTF-8");
    }
}

/// The unit loop of [`rewrite_into`]: returns how many bytes of `src.text` it read.
fn rewrite_units(
    opts: NormalizeOptions,
    src: &Source<'_>,
    finish: bool,
    w: &mut Writer<'_>,
) -> usize {
    let text = src.text;
    let mut scratch = Scratch::default();
    let mut i = 0;
    if only_rot13(opts) {
        // ROT13 alone changes no unit's extent: the whole text is one copy.
        w.copy(src, 0, text.len());
        i = text.len();
    }
    let mask = special_mask(opts);
    let mut dashes = None;
    // Whether the original turns from lower to upper case anywhere (a case cut needs that).
    let turns = opts.segment && segment::has_case_turn(src.orig);
    while let Some(c) = text[i..].chars().next() {
        if opts.reverse && !c.is_whitespace() {
            // Each word backwards, standing for its whole original span.
            let Some(end) = unit_end(src, i, finish) else {
                break;
            };
            let (os, oe) = src.map.orig_span(i, end);
            // Punctuation at the word's edges goes: a reversed "full auto?" reads "auto full",
            // not "auto? full" (a word of punctuation alone stays).
            let word = text[i..end].trim_matches(|c: char| c.is_ascii_punctuation());
            let word = if word.is_empty() { &text[i..end] } else { word };
            scratch.buf.clear();
            scratch.buf.extend(word.chars().rev());
            w.whole(src, &scratch.buf, os, oe);
            i = end;
            continue;
        }
        if let Some(end) = plain_unit(opts, mask, src, i, finish, &mut dashes) {
            if opts.segment
                && segment::unit_cuts(src.lexicon, src, i, end, turns, &mut scratch.cuts)
            {
                emit_cut(opts, src, i, end, w, &mut scratch);
            } else {
                w.copy(src, i, end);
            }
            i = end;
            continue;
        }
        if c.is_whitespace() {
            let e = i + c.len_utf8();
            if opts.letter_spacing && e == text.len() && !finish {
                // An `a` or `i` may follow: decided with the space (below).
                break;
            }
            if opts.letter_spacing && matches!(text.as_bytes().get(e), Some(b'a' | b'i')) {
                // After a plain space, `a` or `i` before a spelled-out word is a word of its
                // own; decided here, with the space, so that a stream resumes at the space.
                match article_before_run(opts, src, e, finish) {
                    Step::Wait => break,
                    Step::Done(run) if c == ' ' && narrow_gap(src, i, c) == Some(' ') => {
                        w.copy(src, i, run);
                        i = run;
                        continue;
                    }
                    _ => {}
                }
            }
            w.copy(src, i, e);
            i = e;
            continue;
        }
        if opts.base64 || opts.hex {
            match decode_run(opts, src, i, finish, w) {
                Step::Wait => break,
                Step::Done(next) => {
                    i = next;
                    continue;
                }
                Step::No => {}
            }
        }
        let Some(end) = unit_end(src, i, finish) else {
            break;
        };
        if opts.markup {
            // A tag with attributes or a comment, which white space splits over units.
            match tags::spanning_tag(src, i, end, finish, &mut scratch.keep) {
                tags::Tag::Wait => break,
                tags::Tag::At { lt, next } => {
                    if lt > i {
                        emit_unit(opts, src, i, lt, w, &mut scratch);
                    }
                    // The tag's text (a value with a space, a comment) as words of its own.
                    // (A space before them unless a unit boundary is there, and after them.)
                    for (k, &(s, e)) in scratch.keep.iter().enumerate() {
                        if k == 0 && lt > i {
                            let o = src.map.orig_start(s).unwrap_or_else(|| src.map.orig_end());
                            w.whole_empty(src, " ", o);
                        }
                        w.copy(src, s, e);
                        let o = src.map.orig_start(e).unwrap_or_else(|| src.map.orig_end());
                        w.whole_empty(src, " ", o);
                    }
                    i = next;
                    continue;
                }
                tags::Tag::No => {}
            }
        }
        if opts.joins {
            match spaced_key(src, i, end, finish, w) {
                Step::Wait => break,
                Step::Done(next) => {
                    i = next;
                    continue;
                }
                Step::No => {}
            }
            match split_token(src, i, end, finish) {
                Join::Wait => break,
                Join::At { tail_end, next } => {
                    emit_unit(opts, src, i, tail_end, w, &mut scratch);
                    i = next;
                    continue;
                }
                Join::No => {}
            }
        }
        if opts.letter_spacing && single_letter(opts, &text[i..end]).is_some() {
            match letter_run(opts, src, i, end, finish, w) {
                Step::Wait => break,
                Step::Done(next) => {
                    i = next;
                    continue;
                }
                Step::No => {}
            }
        }
        // Whether a unit is cut depends on the unit alone, never on which other steps are on
        // (a buffered scan leaves out steps that cannot act, a stream does not).
        if opts.segment && segment::unit_cuts(src.lexicon, src, i, end, turns, &mut scratch.cuts) {
            emit_cut(opts, src, i, end, w, &mut scratch);
        } else {
            emit_unit(opts, src, i, end, w, &mut scratch);
        }
        i = end;
    }
    i
}

/// Whether ROT13 is the only rewrite step of `opts`.
fn only_rot13(opts: NormalizeOptions) -> bool {
    let mut o = opts;
    o.rot13 = false;
    opts.rot13 && !o.rewrites()
}

/// The ASCII bytes a step of `opts` reacts to (`special`), as a bit set: from constant sets, as
/// a stream computes it for every piece of every view (a test checks it against `special`).
pub(super) fn special_mask(opts: NormalizeOptions) -> u128 {
    const fn set(bytes: &[u8]) -> u128 {
        let (mut m, mut i) = (0u128, 0);
        while i < bytes.len() {
            m |= 1 << bytes[i];
            i += 1;
        }
        m
    }
    const STEPS: [u128; 4] = [
        set(b"&%"),
        set(b"*`~_<"),
        set(b"0123456789@$"),
        set(b"/|,+:;*~^=!#\\"),
    ];
    let on = [
        opts.entities,
        opts.markup,
        opts.leetspeak,
        opts.letter_spacing,
    ];
    (0..4).filter(|&k| on[k]).fold(0, |m, k| m | STEPS[k])
}

/// The end of the unit at `i` when the steps would copy it unchanged: a fast path over the
/// common case that decides exactly as the full steps would, or `None` to take them. Such a
/// unit holds no byte a step of `opts` reacts to (`mask`), is more than one letter when
/// letters may be spelled out, does not start a decodable run (its leading base64/hex
/// characters are fewer than a run needs, and it is not the first part of a dashed run), is
/// not the first part of a split key, and ends where [`unit_end`] ends it.
///
/// Why the decoders would say no: a decodable run is counted in the original text, and an
/// original character that may be part of a run is ASCII, which the per-character steps keep
/// as one ASCII byte, except `-` and `_`, which become the space that ends the unit. So the
/// run is no longer than the unit's leading ASCII run unless a dash follows the unit.
fn plain_unit(
    opts: NormalizeOptions,
    mask: u128,
    src: &Source<'_>,
    i: usize,
    finish: bool,
    dashes: &mut Option<bool>,
) -> Option<usize> {
    let text = src.text;
    let b = text.as_bytes();
    let decoders = opts.base64 || opts.hex;
    if decoders
        && matches!(
            b.get(i),
            Some(b'"' | b'\'' | b'(' | b'[' | b'{' | b'<' | b'`')
        )
    {
        return None;
    }
    let mut e = i;
    let mut chars = 0usize;
    // Length of the leading run of base64/hex characters, while it lasts.
    let mut token = 0usize;
    let mut in_token = true;
    let mut key_hint = false;
    let mut unspaced = false;
    loop {
        let Some(&c) = b.get(e) else {
            if !finish {
                return None;
            }
            break;
        };
        if c < 0x80 {
            if c.is_ascii_whitespace() || c == 0x0B {
                break;
            }
            if (mask >> c) & 1 == 1 {
                return None;
            }
        }
        if e - i >= MAX_UNIT_BYTES && src.map.clean_cut(e) {
            break;
        }
        if c >= 0x80 && e > i && unspaced_cut(src, e) {
            // A piece of an unspaced run is never a spelled-out letter (no white space
            // follows it): the one-letter check below does not apply.
            unspaced = true;
            break;
        }
        let len = if c < 0x80 {
            1
        } else {
            let ch = text[e..].chars().next()?;
            if ch.is_whitespace() {
                break;
            }
            ch.len_utf8()
        };
        key_hint |= c.is_ascii_digit() || c.is_ascii_uppercase() || matches!(c, b'_' | b'-');
        if in_token && (c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')) {
            token += 1;
        } else {
            in_token = false;
        }
        chars += 1;
        e += len;
    }
    if chars == 0 || (chars == 1 && opts.letter_spacing && !unspaced) {
        return None;
    }
    // A split key's first part has a digit, an upper-case letter or a key prefix (`joins.rs`).
    if opts.joins && may_start_join(e - i, key_hint) {
        return None;
    }
    // A group of a spaced key is followed by one space and more key characters.
    if opts.joins
        && e - i <= MAX_GROUP
        && b.get(e) == Some(&b' ')
        && b.get(e + 1).is_none_or(|&c| token_byte(c))
        && may_be_group(&b[i..e])
    {
        return None;
    }
    if decoders {
        if token >= MIN_DECODE_CHARS {
            return None;
        }
        if in_token && e < b.len() {
            // A `-` or `_` the separators step read as a space may continue a base64url run.
            let any =
                *dashes.get_or_insert_with(|| src.orig.bytes().any(|c| matches!(c, b'-' | b'_')));
            let dashed = any
                && src
                    .map
                    .orig_start(e)
                    .and_then(|o| src.orig.as_bytes().get(o - src.orig_base))
                    .is_some_and(|c| matches!(c, b'-' | b'_'));
            if dashed {
                return None;
            }
        }
    }
    Some(e)
}

/// What a step that may take more than one unit decided.
pub(super) enum Step {
    /// It does not apply here.
    No,
    /// It wrote its output; go on at this offset.
    Done(usize),
    /// It cannot decide before more text arrives.
    Wait,
}

/// `text` read through ROT13.
pub(crate) fn rot13_str(text: &str) -> String {
    let bytes = text.bytes().map(rot13_byte).collect();
    String::from_utf8(bytes).expect("ROT13 of UTF-8 is UTF-8")
}

fn rot13_byte(b: u8) -> u8 {
    match b {
        b'a'..=b'z' => (b - b'a' + 13) % 26 + b'a',
        b'A'..=b'Z' => (b - b'A' + 13) % 26 + b'A',
        _ => b,
    }
}

/// The end of the unit that starts at `i`: the next white space, or a cut after
/// [`MAX_UNIT_BYTES`] where the map allows one. `None` when the text ends first and more may
/// come.
pub(super) fn unit_end(src: &Source<'_>, i: usize, finish: bool) -> Option<usize> {
    for (off, c) in src.text[i..].char_indices() {
        let at = i + off;
        if c.is_whitespace()
            || (off >= MAX_UNIT_BYTES && src.map.clean_cut(at))
            || (off > 0 && unspaced_cut(src, at))
        {
            return Some(at);
        }
    }
    finish.then_some(src.text.len())
}

/// Whether `c` is written in a script that puts no spaces between words (Han, kana, Thai,
/// Lao, Khmer, Myanmar, and CJK punctuation).
fn is_unspaced(c: char) -> bool {
    matches!(u32::from(c),
        0x0E00..=0x0EFF | 0x1000..=0x109F | 0x1780..=0x17FF | 0x3000..=0x30FF
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x3FFFF)
}

/// Whether a unit ends before the character at `at` (not a unit's first) because it stands
/// between two characters of an unspaced script with a third after it: a sentence of Chinese,
/// Japanese or Thai is one run without white space, and a stream that waited for a unit's
/// end would hold it whole. The last piece of such a run keeps two characters, so a piece
/// of one character is never followed by white space (letter spacing reads only
/// those). Decided from `at` forward but for the character before it, which belongs to the
/// same unit, so a stream resuming at a unit's start decides the same.
fn unspaced_cut(src: &Source<'_>, at: usize) -> bool {
    // Every character of the three has a lead byte of 0xE0 or more (U+0800 and up).
    let b = src.text.as_bytes();
    if b[at] < 0xE0 {
        return false;
    }
    let mut after = src.text[at..].chars();
    let before = src.text[..at].chars().next_back();
    matches!((before, after.next(), after.next()),
        (Some(p), Some(c), Some(n)) if is_unspaced(c) && is_unspaced(p) && is_unspaced(n))
        && src.map.clean_cut(at)
}
// === one unit ===

/// One character or decoded sequence of a unit.
#[derive(Clone, Copy)]
struct Tok {
    /// Its range in the source text.
    s: usize,
    e: usize,
    /// Its decoded text in the scratch buffer, when it was decoded.
    decoded: Option<(usize, usize)>,
    /// The character, when it was not decoded.
    c: char,
    keep: bool,
}

#[derive(Default)]
struct Scratch {
    toks: Vec<Tok>,
    buf: String,
    kept: Vec<usize>,
    cuts: Vec<usize>,
    keep: Vec<(usize, usize)>,
}

/// Writes the unit `[s, e)` with a space before each offset of `scratch.cuts` (all inside its
/// letters): the punctuation at its edges goes through [`emit_unit`] on its own, the letters are
/// copied. A space stands for no original byte (the empty range where the next word starts).
fn emit_cut(
    opts: NormalizeOptions,
    src: &Source<'_>,
    s: usize,
    e: usize,
    w: &mut Writer<'_>,
    scratch: &mut Scratch,
) {
    let cuts = std::mem::take(&mut scratch.cuts);
    let (cs, ce) = segment::core(src.text.as_bytes(), s, e);
    if cs > s {
        emit_unit(opts, src, s, cs, w, scratch);
    }
    let mut from = cs;
    for &c in &cuts {
        w.copy(src, from, c);
        let o = src.map.orig_start(c).unwrap_or_else(|| src.map.orig_end());
        w.whole_empty(src, " ", o);
        from = c;
    }
    w.copy(src, from, ce);
    if ce < e {
        emit_unit(opts, src, ce, e, w, scratch);
    }
    scratch.cuts = cuts;
}

/// Whether byte `b` may make a unit need more than a copy: the reference that
/// [`special_mask`]'s constant sets are tested against.
#[cfg(test)]
pub(super) fn special(opts: NormalizeOptions, b: u8) -> bool {
    (opts.entities && matches!(b, b'&' | b'%'))
        || (opts.markup && matches!(b, b'*' | b'`' | b'~' | b'_' | b'<'))
        || (opts.leetspeak && (b.is_ascii_digit() || matches!(b, b'@' | b'$')))
        || (opts.letter_spacing && is_spacing_punct(b))
}

/// Punctuation that may join letters spelled one by one inside a word (`p/i/p/e`).
const fn is_spacing_punct(b: u8) -> bool {
    matches!(
        b,
        b'/' | b'|' | b',' | b'+' | b':' | b';' | b'*' | b'~' | b'^' | b'=' | b'!' | b'#' | b'\\'
    )
}

/// Whether `unit` is letters joined by one spacing punctuation character each (`p/i/p/e`),
/// as the letter-spacing step of [`emit_unit`] reads a unit without other special bytes.
fn spelled_out(unit: &str) -> bool {
    let n = unit.chars().count();
    n >= 5
        && n % 2 == 1
        && unit.chars().enumerate().all(|(j, c)| {
            if j % 2 == 0 {
                c.is_alphabetic()
            } else {
                c.is_ascii() && is_spacing_punct(c as u8)
            }
        })
}

/// The length in tokens of an HTML tag without attributes (`<b>`, `</span>`, `<br/>`) at the
/// start of `toks`, if one is there. (Comments, `<!---->`, do not reach this step whole: the
/// separators step has read their dashes as a space.)
fn html_tag(toks: &[Tok]) -> Option<usize> {
    let c = |k: usize| toks.get(k).filter(|t| t.decoded.is_none()).map(|t| t.c);
    if c(0) != Some('<') {
        return None;
    }
    let mut k = 1;
    if c(k) == Some('/') {
        k += 1;
    }
    if !c(k).is_some_and(|x| x.is_ascii_alphabetic()) {
        return None;
    }
    while c(k).is_some_and(|x| x.is_ascii_alphanumeric()) {
        k += 1;
    }
    if c(k) == Some('/') {
        k += 1;
    }
    (c(k) == Some('>')).then_some(k + 1)
}

fn is_markup(c: char) -> bool {
    matches!(c, '*' | '`' | '~' | '_')
}

fn emit_unit(
    opts: NormalizeOptions,
    src: &Source<'_>,
    s: usize,
    e: usize,
    w: &mut Writer<'_>,
    scratch: &mut Scratch,
) {
    let text = src.text;
    let bytes = &text.as_bytes()[s..e];
    let has_special = |mask: u128| bytes.iter().any(|&b| b < 128 && (mask >> b) & 1 == 1);
    if !has_special(special_mask(opts)) {
        w.copy(src, s, e);
        return;
    }
    if opts.letter_spacing {
        // Punctuation alone (`regions,`) changes nothing unless it spells letters out.
        let mut others = opts;
        others.letter_spacing = false;
        if !has_special(special_mask(others)) && !spelled_out(&text[s..e]) {
            w.copy(src, s, e);
            return;
        }
    }
    let toks = &mut scratch.toks;
    let buf = &mut scratch.buf;
    let kept = &mut scratch.kept;
    toks.clear();
    buf.clear();
    let mut p = s;
    while let Some(c) = text[p..e].chars().next() {
        let decoded = if opts.entities && c == '&' {
            html_entity(&text[p..e]).map(|(d, len)| (d.to_string(), len))
        } else if opts.entities && c == '%' {
            percent_escapes(&text[p..e])
        } else {
            None
        };
        if let Some((d, len)) = decoded {
            let from = buf.len();
            for dc in d.chars() {
                push_decoded(opts, dc, buf);
            }
            toks.push(Tok {
                s: p,
                e: p + len,
                decoded: Some((from, buf.len())),
                c: '\u{FFFD}',
                keep: true,
            });
            p += len;
        } else {
            toks.push(Tok {
                s: p,
                e: p + c.len_utf8(),
                decoded: None,
                c,
                keep: true,
            });
            p += c.len_utf8();
        }
    }
    let wordy = |t: &Tok| t.decoded.is_none() && (t.c.is_alphanumeric() || leet(t.c).is_some());
    if opts.markup && toks.iter().any(wordy) {
        // HTML tags without attributes in a unit with a word character outside them go
        // (`pi<b>pe</b>`, `<span>pipe`, `bomb</i>`); a unit that is a tag alone (`<br>`) stays.
        let mut k = 0;
        let mut tags = false;
        while k < toks.len() {
            match html_tag(&toks[k..]) {
                Some(n) => {
                    for t in &mut toks[k..k + n] {
                        t.keep = false;
                    }
                    tags = true;
                    k += n;
                }
                None => k += 1,
            }
        }
        if tags && !toks.iter().any(|t| t.keep && wordy(t)) {
            for t in toks.iter_mut() {
                t.keep = true;
            }
        }
        // Emphasis and code marks in a unit with a word character in it go (`pi**pe**`,
        // `b`o`mb`, `**bomb**`); a unit of marks alone (`***`, a code fence) stays.
        for t in toks.iter_mut() {
            if t.decoded.is_none() && is_markup(t.c) {
                t.keep = false;
            }
        }
    }
    if opts.letter_spacing {
        // Letters joined by one punctuation character each: `p/i/p/e`.
        kept.clear();
        kept.extend((0..toks.len()).filter(|&k| toks[k].keep));
        let letter = |t: &Tok| {
            t.decoded.is_none() && (t.c.is_alphabetic() || (opts.leetspeak && leet(t.c).is_some()))
        };
        let punct = |t: &Tok| t.decoded.is_none() && t.c.is_ascii() && is_spacing_punct(t.c as u8);
        let n = kept.len();
        let spaced = n >= 5
            && n % 2 == 1
            && kept.iter().enumerate().all(|(j, &k)| {
                if j % 2 == 0 {
                    letter(&toks[k])
                } else {
                    punct(&toks[k])
                }
            });
        if spaced {
            for (j, &k) in kept.iter().enumerate() {
                if j % 2 == 1 {
                    toks[k].keep = false;
                }
            }
        }
    }
    let fold_leet = opts.leetspeak
        && toks
            .iter()
            .any(|t| t.keep && t.decoded.is_none() && t.c.is_ascii_alphabetic())
        && !numeric_with_unit(&text[s..e]);
    let mut cbuf = [0u8; 4];
    for t in toks.iter().filter(|t| t.keep) {
        match t.decoded {
            Some((from, to)) => {
                let (os, oe) = src.map.orig_span(t.s, t.e);
                w.whole(src, &buf[from..to], os, oe);
            }
            None => match leet(t.c).filter(|_| fold_leet) {
                Some(l) => w.copy_as(src, t.s, t.e, l.encode_utf8(&mut cbuf)),
                None => w.copy(src, t.s, t.e),
            },
        }
    }
}

#[cfg(test)]
mod tests;
