//! The letter-spacing and leetspeak parts of the rewrite steps: single letters spelled one by
//! one (`p i p e`, `p.i.p.e`), the article before such a run, and leetspeak letters.

use super::{Source, Step, Writer, unit_end};
use crate::text::offsets::OffsetMap;
use crate::text::options::NormalizeOptions;

/// Most single letters one collapsed run takes; a longer run goes on as a new run.
const MAX_RUN_LETTERS: usize = 32;

/// The letter a unit of one character stands for, when it is a letter (or, with leetspeak,
/// a digit or symbol read as one).
pub(super) fn single_letter(opts: NormalizeOptions, unit: &str) -> Option<char> {
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
pub(super) fn leet(c: char) -> Option<char> {
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
pub(super) fn narrow_gap(src: &Source<'_>, pos: usize, c: char) -> Option<char> {
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
pub(super) fn letter_run(
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
            .take_while(|&b| closing_punct(b))
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
pub(super) fn numeric_with_unit(unit: &str) -> bool {
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
pub(super) fn article_before_run(
    opts: NormalizeOptions,
    src: &Source<'_>,
    at: usize,
    finish: bool,
) -> Step {
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
        Step::Done(_) => {
            // With the policy's lexicon at hand, `a n t h r a x` spells `anthrax`, not
            // `a nthrax`: the letter starts the word when only the two together are a word.
            let word: String = out.chars().take_while(char::is_ascii_alphabetic).collect();
            let joined = format!("{}{word}", &text[at..end]);
            let lexicon = src.lexicon.filter(|_| opts.segment);
            if lexicon.is_some_and(|l| !l.contains(&word) && l.contains(&joined)) {
                Step::No
            } else {
                Step::Done(run)
            }
        }
        other => other,
    }
}

/// Punctuation that may close a spelled-out word or a spaced key (`m y  n a m e?`, `… MPLE.`)
/// without being part of it.
pub(super) const fn closing_punct(b: u8) -> bool {
    matches!(
        b,
        b'?' | b'.' | b'!' | b',' | b';' | b':' | b')' | b'"' | b'\''
    )
}
