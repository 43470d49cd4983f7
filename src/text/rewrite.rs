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
//! Every decision looks only forward from the start of its unit (the article before a
//! spelled-out word: from the space before it), and at most a bounded distance (64 bytes a
//! unit, 32 letters a run, 4096 bytes a decoded run), so a stream can stop before an
//! undecided unit and start again there: streamed and buffered output agree.
//!
//! This file is the driver and the per-unit steps; `letters.rs` holds letter runs and
//! leetspeak, `decode.rs` the decoders, `joins.rs` split tokens.

use super::decode::{decode_run, html_entity, percent_escapes};
use super::joins::{Join, split_token};
use super::letters::{
    article_before_run, leet, letter_run, narrow_gap, numeric_with_unit, single_letter,
};
use super::normalize::{NormalizeOptions, push_decoded};
use super::offsets::OffsetMap;

/// Longest unit, in bytes of normalized text, before it is cut regardless.
pub(crate) const MAX_UNIT_BYTES: usize = 64;
pub(super) use super::decode::MAX_DECODE_BYTES;

/// The text the rewrite steps read: the per-character steps' output, its map into the
/// original, and the original (for the decoders, which need the original case).
pub(super) struct Source<'a> {
    pub text: &'a str,
    pub map: &'a OffsetMap,
    pub orig: &'a str,
    pub orig_base: usize,
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
        self.norm_base + (self.out.len() - self.out_start)
    }

    fn flush(&mut self, src: &Source<'_>) {
        if let Some((s, e, at)) = self.pending.take() {
            self.map.append_mapped(src.map, s, e, at);
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
        self.out.push_str(&src.text[s..e]);
    }

    /// Writes `text`, as long as `src.text[s..e]` and byte for byte in its place.
    pub(super) fn copy_as(&mut self, src: &Source<'_>, s: usize, e: usize, text: &str) {
        debug_assert_eq!(text.len(), e - s);
        self.flush(src);
        let at = self.at();
        self.out.push_str(text);
        self.map.append_mapped(src.map, s, e, at);
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
pub(super) enum Step {
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
pub(super) fn unit_end(src: &Source<'_>, i: usize, finish: bool) -> Option<usize> {
    for (off, c) in src.text[i..].char_indices() {
        let at = i + off;
        if c.is_whitespace() || (off >= MAX_UNIT_BYTES && src.map.clean_cut(at)) {
            return Some(at);
        }
    }
    finish.then_some(src.text.len())
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

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
