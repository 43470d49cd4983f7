//! The rewrite steps: what normalization undoes above the level of one character.
//!
//! They run over the output of the per-character steps (NFKC, case, invisible characters,
//! look-alikes, marks, separators), word by word: a *unit* is a run of text between white
//! space. Per unit, HTML entities and percent-escapes are decoded, markdown marks inside the
//! word dropped, letters joined by one punctuation character (`p/i/p/e`) joined, and leetspeak
//! read as letters; runs of single-letter units (`p i p e`) are collapsed into one word; a
//! unit that starts a base64 or hex run is replaced by the run's decoded text. Every output
//! byte keeps its place in the [`OffsetMap`]: decoded text maps to the whole encoded run.
//!
//! Every decision looks only forward from the start of its unit, and at most a bounded
//! distance ([`MAX_UNIT_BYTES`], [`MAX_RUN_LETTERS`], [`MAX_DECODE_BYTES`]), so a stream can
//! stop before an undecided unit and start again there: streamed and buffered output agree.

use super::decode::{decode_base64, decode_hex, html_entity, percent_escapes};
use super::joins::{Join, split_token};
use super::normalize::{NormalizeOptions, normalize, push_decoded};
use super::offsets::OffsetMap;

/// Longest unit, in bytes of normalized text, before it is cut regardless.
pub(crate) const MAX_UNIT_BYTES: usize = 64;
/// Most single letters one collapsed run takes; a longer run goes on as a new run.
const MAX_RUN_LETTERS: usize = 32;
/// Shortest base64 or hex run that is decoded.
const MIN_DECODE_CHARS: usize = 16;
/// Longest base64 or hex run read as one (a longer one is cut there).
pub(super) const MAX_DECODE_BYTES: usize = 4096;

/// The text the rewrite steps read: the per-character steps' output, its map into the
/// original, and the original (for the decoders, which need the original case).
pub(super) struct Source<'a> {
    pub text: &'a str,
    pub map: &'a OffsetMap,
    pub orig: &'a str,
    pub orig_base: usize,
}

/// The output side: normalized text and its map, with offsets counted from `norm_base`.
struct Writer<'o> {
    out: &'o mut String,
    map: &'o mut OffsetMap,
    out_start: usize,
    norm_base: usize,
    /// Copied source range `[s, e)` whose map pieces are not appended yet, and where it
    /// starts in the output: consecutive copies share one map lookup.
    pending: Option<(usize, usize, usize)>,
}

impl Writer<'_> {
    fn new<'o>(out: &'o mut String, map: &'o mut OffsetMap, norm_base: usize) -> Writer<'o> {
        Writer {
            out_start: out.len(),
            out,
            map,
            norm_base,
            pending: None,
        }
    }

    fn at(&self) -> usize {
        self.norm_base + (self.out.len() - self.out_start)
    }

    fn flush(&mut self, src: &Source<'_>) {
        if let Some((s, e, at)) = self.pending.take() {
            self.map.append_mapped(src.map, s, e, at);
        }
    }

    /// Copies `src.text[s..e]` unchanged.
    fn copy(&mut self, src: &Source<'_>, s: usize, e: usize) {
        match &mut self.pending {
            Some((_, pe, _)) if *pe == s => *pe = e,
            _ => {
                self.flush(src);
                self.pending = Some((s, e, self.at()));
            }
        }
        self.out.push_str(&src.text[s..e]);
    }

    /// Writes `text`, as long as `src.text[s..e]` and byte for byte in its place.
    fn copy_as(&mut self, src: &Source<'_>, s: usize, e: usize, text: &str) {
        debug_assert_eq!(text.len(), e - s);
        self.flush(src);
        let at = self.at();
        self.out.push_str(text);
        self.map.append_mapped(src.map, s, e, at);
    }

    /// Writes `text` standing for the original range `[os, oe)` as a whole.
    fn whole(&mut self, src: &Source<'_>, text: &str, os: usize, oe: usize) {
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
    let text = src.text;
    let mut scratch = Scratch::default();
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        if c.is_whitespace() {
            let e = i + c.len_utf8();
            if opts.letter_spacing && e == text.len() && !finish {
                // An `a` or `i` may follow: decided with the space (below).
                break;
            }
            if opts.letter_spacing && matches!(text.as_bytes().get(e), Some(b'a' | b'i')) {
                // After a plain space, `a` or `i` before a spelled-out word is a word of its
                // own; decided here, with the space, so that a stream resumes at the space.
                let plain = c == ' ' && narrow_gap(src, i, c) == Some(' ');
                match article_before_run(opts, src, e, finish) {
                    Step::Wait => break,
                    Step::Done(run) if plain => {
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
            match decode_run(opts, src, i, finish, &mut w) {
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
        if opts.joins {
            match split_token(src, i, end, finish) {
                Join::Wait => break,
                Join::At { tail_end, next } => {
                    emit_unit(opts, src, i, tail_end, &mut w, &mut scratch);
                    i = next;
                    continue;
                }
                Join::No => {}
            }
        }
        if opts.letter_spacing && single_letter(opts, &text[i..end]).is_some() {
            match letter_run(opts, src, i, end, finish, &mut w) {
                Step::Wait => break,
                Step::Done(next) => {
                    i = next;
                    continue;
                }
                Step::No => {}
            }
        }
        emit_unit(opts, src, i, end, &mut w, &mut scratch);
        i = end;
    }
    w.flush(src);
    if opts.rot13 {
        let from = w.out_start;
        // ROT13 maps ASCII letters to ASCII letters: lengths and offsets stay.
        let rotated: String = w.out[from..].chars().map(rot13).collect();
        w.out.truncate(from);
        w.out.push_str(&rotated);
    }
    i
}

/// What a step that may take more than one unit decided.
enum Step {
    /// It does not apply here.
    No,
    /// It wrote its output; go on at this offset.
    Done(usize),
    /// It cannot decide before more text arrives.
    Wait,
}

fn rot13(c: char) -> char {
    match c {
        'a'..='z' => (((c as u8 - b'a') + 13) % 26 + b'a') as char,
        'A'..='Z' => (((c as u8 - b'A') + 13) % 26 + b'A') as char,
        _ => c,
    }
}

/// The end of the unit that starts at `i`: the next white space, or a cut after
/// [`MAX_UNIT_BYTES`] where the map allows one. `None` when the text ends first and more may
/// come.
fn unit_end(src: &Source<'_>, i: usize, finish: bool) -> Option<usize> {
    for (off, c) in src.text[i..].char_indices() {
        let at = i + off;
        if c.is_whitespace() || (off >= MAX_UNIT_BYTES && src.map.clean_cut(at)) {
            return Some(at);
        }
    }
    finish.then_some(src.text.len())
}

/// The letter a unit of one character stands for, when it is a letter (or, with leetspeak,
/// a digit or symbol read as one).
fn single_letter(opts: NormalizeOptions, unit: &str) -> Option<char> {
    let mut chars = unit.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return None;
    };
    if c.is_alphabetic() {
        Some(c)
    } else if opts.leetspeak {
        leet(c)
    } else {
        None
    }
}

/// The letter a leetspeak digit or symbol stands for.
fn leet(c: char) -> Option<char> {
    Some(match c {
        '0' => 'o',
        '1' => 'i',
        '3' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' => 't',
        '8' => 'b',
        '9' => 'g',
        _ => return None,
    })
}

/// The original character the white space at `pos` stands for, or `None` when it stands for
/// more than one (`  `, ` - `, `\r\n`: a word break inside letter-spaced text).
fn narrow_gap(src: &Source<'_>, pos: usize, c: char) -> Option<char> {
    if src.text[pos + c.len_utf8()..]
        .chars()
        .next()
        .is_some_and(char::is_whitespace)
    {
        return None;
    }
    let (os, oe) = src.map.orig_span(pos, pos + c.len_utf8());
    let gap = src.orig.get(os - src.orig_base..oe - src.orig_base)?;
    let mut chars = gap.chars();
    match (chars.next(), chars.next()) {
        (Some(g), None) => Some(g),
        _ => None,
    }
}

/// A run of at least three single-letter units (two when a wide gap, closing punctuation or
/// the end of the text closes it), each after one narrow gap of the same
/// original character (`p i p e`, `p-i-p-e`; in `a p-i-p-e` the run starts at `p`), starting
/// with the unit `[i, end)`: written as one word.
fn letter_run(
    opts: NormalizeOptions,
    src: &Source<'_>,
    i: usize,
    end: usize,
    finish: bool,
    w: &mut Writer<'_>,
) -> Step {
    let text = src.text;
    let mut letters = vec![(i, end)];
    let mut pos = end;
    let mut gap_char = None;
    let mut closed = false;
    while letters.len() < MAX_RUN_LETTERS {
        let Some(space) = text[pos..].chars().next() else {
            if finish {
                break;
            }
            return Step::Wait;
        };
        if !space.is_whitespace() {
            break;
        }
        let after = pos + space.len_utf8();
        let Some(next) = text[after..].chars().next() else {
            if finish {
                break;
            }
            return Step::Wait;
        };
        if next.is_whitespace() {
            break;
        }
        let Some(g) = narrow_gap(src, pos, space) else {
            break;
        };
        if *gap_char.get_or_insert(g) != g {
            break;
        }
        let after_next = after + next.len_utf8();
        if single_letter(opts, &text[after..after_next]).is_none() {
            break;
        }
        // The letter ends its unit, or closing punctuation after it ends the run (`m?`).
        let punct = text[after_next..]
            .bytes()
            .take_while(|b| {
                matches!(
                    b,
                    b'?' | b'.' | b'!' | b',' | b';' | b':' | b')' | b'"' | b'\''
                )
            })
            .count();
        match text[after_next + punct..].chars().next() {
            None if !finish => return Step::Wait,
            Some(c) if !c.is_whitespace() => break,
            _ => {}
        }
        letters.push((after, after_next));
        pos = after_next;
        if punct > 0 {
            closed = true;
            break;
        }
    }
    if !closed {
        // A run closed by a wide gap, a different gap or the end of the text may have two
        // letters (`m y  n a m e`, `m.y n.a.m.e`).
        closed = match text[pos..].chars().next() {
            None => gap_char != Some(' '),
            Some(c) => {
                let next = narrow_gap(src, pos, c);
                c.is_whitespace() && (next.is_none() || (next != gap_char && gap_char != Some(' ')))
            }
        };
    }
    let ascii_letters = letters
        .iter()
        .filter(|&&(s, _)| text.as_bytes()[s].is_ascii_alphabetic())
        .count();
    let enough = letters.len() >= 3 || (letters.len() == 2 && closed);
    if !enough || (ascii_letters < 2 && opts.leetspeak) {
        return Step::No;
    }
    let mut buf = [0u8; 4];
    for &(s, e) in &letters {
        let c = single_letter(opts, &text[s..e]).unwrap_or(' ');
        if c.len_utf8() == e - s {
            w.copy_as(src, s, e, c.encode_utf8(&mut buf));
        } else {
            w.copy(src, s, e);
        }
    }
    Step::Done(pos)
}

/// Whether a unit is a number with a unit or ordinal suffix (`3d`, `4k`, `2nd`, `10am`,
/// `5mg`, `1080p`), which leetspeak leaves alone.
fn numeric_with_unit(unit: &str) -> bool {
    let word = unit.trim_end_matches(|c: char| c.is_ascii_punctuation());
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0
        && matches!(
            &word[digits..],
            "st" | "nd"
                | "rd"
                | "th"
                | "d"
                | "k"
                | "g"
                | "x"
                | "p"
                | "s"
                | "am"
                | "pm"
                | "mg"
                | "ml"
                | "kg"
                | "lb"
                | "lbs"
                | "oz"
                | "fps"
                | "gb"
                | "mb"
                | "tb"
                | "hz"
                | "ghz"
                | "mm"
                | "cm"
                | "km"
                | "m"
                | "h"
                | "min"
                | "v"
                | "w"
        )
}

/// At the single letter `a` or `i` (at `at`, after a plain space), a plain space and a run
/// of spelled-out letters: returns the run's start, where the run is read without the article
/// or pronoun (`make a b o m b`, `do I b u y`). So a spelled-out word that starts with `a` or
/// `i` after a word is read without its first letter (`buy a n t h r a x` reads
/// `buy a nthrax`); after a wide gap (`f u l l  a u t o`), at the start of a text, or with
/// other gaps (`a.n.t.h.r.a.x`) it is read whole.
fn article_before_run(opts: NormalizeOptions, src: &Source<'_>, at: usize, finish: bool) -> Step {
    let text = src.text;
    let b = text.as_bytes();
    let end = at + 1;
    match b.get(end) {
        None => return if finish { Step::No } else { Step::Wait },
        Some(b' ') => {}
        Some(_) => return Step::No,
    }
    if narrow_gap(src, end, ' ') != Some(' ') {
        return Step::No;
    }
    let run = end + 1;
    // The word after the article is one letter (or a letter and closing punctuation).
    match text[run..].chars().nth(1) {
        None if !finish => return Step::Wait,
        Some(c) if !c.is_whitespace() && !c.is_ascii_punctuation() => return Step::No,
        _ => {}
    }
    let Some(run_end) = unit_end(src, run, finish) else {
        return Step::Wait;
    };
    if single_letter(opts, &text[run..run_end]).is_none() {
        return Step::No;
    }
    // Whether a run starts there: try it on a scratch writer.
    let mut out = String::new();
    let mut map = OffsetMap::default();
    let mut scratch = Writer::new(&mut out, &mut map, 0);
    match letter_run(opts, src, run, run_end, finish, &mut scratch) {
        Step::Done(_) => Step::Done(run),
        other => other,
    }
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
}

/// Whether the unit may need more than a copy.
fn special(opts: NormalizeOptions, b: u8) -> bool {
    (opts.entities && matches!(b, b'&' | b'%'))
        || (opts.markup && matches!(b, b'*' | b'`' | b'~' | b'_'))
        || (opts.leetspeak && (b.is_ascii_digit() || matches!(b, b'@' | b'$')))
        || (opts.letter_spacing && is_spacing_punct(b))
}

/// Punctuation that may join letters spelled one by one inside a word (`p/i/p/e`).
fn is_spacing_punct(b: u8) -> bool {
    matches!(
        b,
        b'/' | b'|' | b',' | b'+' | b':' | b';' | b'*' | b'~' | b'^' | b'=' | b'!' | b'#' | b'\\'
    )
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
    if !text.as_bytes()[s..e].iter().any(|&b| special(opts, b)) {
        w.copy(src, s, e);
        return;
    }
    let toks = &mut scratch.toks;
    let buf = &mut scratch.buf;
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
        let kept: Vec<usize> = (0..toks.len()).filter(|&k| toks[k].keep).collect();
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

// === decoding runs ===

/// A base64 or hex run at the unit that starts at `i` (after up to two quote or bracket
/// characters): its decoded text, normalized, is written in place of the run.
fn decode_run(
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
    let inner = normalize(opts.without_decoders(), decoded);
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

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
