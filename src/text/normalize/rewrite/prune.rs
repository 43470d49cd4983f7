//! Which rewrite steps can change a given text: a summary of one per-character pass, read once,
//! that turns off the steps with nothing to act on before the unit loop runs.
//!
//! Each condition is a necessary one for its step to change anything (what the step's code
//! needs before it acts), never a guess: leaving a step on when it would change nothing only
//! costs time, turning it off when it would change something loses a match. A test checks
//! that the pruned steps give the same text and map as the full ones on random texts.
//!
//! Two steps produce text the other steps read again — HTML entities and percent-escapes
//! decoded inside a unit, base64 and hex runs decoded and normalized with the view's steps —
//! so when either may act, nothing is pruned.

use super::joins::{MAX_GROUP, token_byte};
use super::letters::closing_punct;
use super::{MIN_DECODE_CHARS, is_spacing_punct};
use crate::text::normalize::NormText;
use crate::text::options::{MAX_UNIT_BYTES, NormalizeOptions};

/// What one per-character pass holds that a rewrite step may act on.
///
/// ```
/// use deliberate::text::{NormalizeOptions, RewriteTriggers, normalize};
///
/// let text = "Can I move my flight to Thursday?";
/// let opts = NormalizeOptions::keywords();
/// let chars = normalize(opts.char_steps(), text);
/// // Nothing here is markup, an entity or letters spelled out: no rewrite step can act.
/// assert!(!RewriteTriggers::of(&chars, text).needed(opts).rewrites());
/// let spelled = "how to make a p i p e bomb";
/// let chars = normalize(opts.char_steps(), spelled);
/// assert!(RewriteTriggers::of(&chars, spelled).needed(opts).letter_spacing);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RewriteTriggers {
    /// The classes of every byte of the pass, or-ed together (`ENTITY` and `MARKUP` are read).
    classes: u16,
    /// Two units in a row of one character each (closing punctuation after it allowed), as a
    /// letter run or an article before one starts: `p i`.
    single_pair: bool,
    /// A unit longer than the unit loop's cut: its pieces are units of their own there.
    long_unit: bool,
    /// A unit with an ASCII letter and a digit, `@` or `$`: leetspeak reads such words.
    leet_word: bool,
    /// A run of eight or more key characters with a digit (a piece that joins across a break),
    /// or four or more units that may be groups of a spaced key, 16 characters together, one
    /// with a digit.
    key_like: bool,
    /// Spacing punctuation inside a unit with a letter after it (`p/i/p/e`; not the comma
    /// that ends `regions,`).
    inner_spacing: bool,
    /// A run of base64 or hex characters in the original long enough to be decoded.
    decodable: bool,
}

// Byte classes, one table lookup per byte.
/// ASCII white space (non-ASCII white space is decoded at its lead byte, `WS_LEAD`).
const SPACE: u16 = 1;
const WS_LEAD: u16 = 1 << 1;
/// A UTF-8 continuation byte.
const CONT: u16 = 1 << 2;
const ALPHA: u16 = 1 << 3;
const LOWER: u16 = 1 << 4;
const DIGIT: u16 = 1 << 5;
/// A digit, `@` or `$`.
const LEET: u16 = 1 << 6;
/// What a spelled-out letter may be: an ASCII letter or digit, `@`, `$`, or non-ASCII.
const WORDY: u16 = 1 << 7;
const SPACING: u16 = 1 << 8;
/// A key character, which is also a base64 / hex run character.
const TOKEN: u16 = 1 << 9;
const CLOSING: u16 = 1 << 10;
const ENTITY: u16 = 1 << 11;
const MARKUP: u16 = 1 << 12;

const CLASS: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        let mut f = 0;
        if matches!(c, b' ' | b'\t'..=b'\r') {
            f |= SPACE;
        }
        if matches!(c, 0xC2 | 0xE1 | 0xE2 | 0xE3) {
            f |= WS_LEAD;
        }
        if c & 0xC0 == 0x80 {
            f |= CONT;
        }
        if c.is_ascii_alphabetic() {
            f |= ALPHA;
        }
        if c.is_ascii_lowercase() {
            f |= LOWER;
        }
        if c.is_ascii_digit() {
            f |= DIGIT | LEET;
        }
        if matches!(c, b'@' | b'$') {
            f |= LEET;
        }
        if c >= 0x80 || c.is_ascii_alphanumeric() || matches!(c, b'@' | b'$') {
            f |= WORDY;
        }
        if is_spacing_punct(c) {
            f |= SPACING;
        }
        if token_byte(c) {
            f |= TOKEN;
        }
        if closing_punct(c) {
            f |= CLOSING;
        }
        if matches!(c, b'&' | b'%') {
            f |= ENTITY;
        }
        if matches!(c, b'*' | b'`' | b'~' | b'_' | b'<') {
            f |= MARKUP;
        }
        t[b] = f;
        b += 1;
    }
    t
};

/// What [`RewriteTriggers::of`] counts of the unit it is in.
#[derive(Default)]
struct Unit {
    bytes: usize,
    chars: usize,
    /// Closing punctuation at the end so far (`?`, `.`, `)`: not part of a spelled letter or
    /// a key group).
    closing: usize,
    /// Bytes that are not key characters (closing punctuation included).
    other: usize,
    /// The classes of its bytes, or-ed together.
    classes: u16,
    /// Spacing punctuation after the first byte.
    spacing: bool,
}

impl Unit {
    /// Whether the unit, closing punctuation taken off, may be a group of a spaced key (as
    /// `may_be_group` decides).
    fn group(&self) -> bool {
        let len = self.bytes - self.closing;
        self.other == self.closing
            && (1..=MAX_GROUP).contains(&len)
            && (len == 1 || self.classes & LOWER == 0)
    }
}

impl RewriteTriggers {
    /// Reads `chars`, the per-character pass of `orig` (`normalize(opts.char_steps(), orig)`):
    /// one table lookup per byte, decoding only the lead bytes of non-ASCII white space.
    pub fn of(chars: &NormText, orig: &str) -> RewriteTriggers {
        let mut t = RewriteTriggers {
            decodable: decodable_run(orig),
            ..RewriteTriggers::default()
        };
        let text = chars.text.as_bytes();
        let mut unit = Unit::default();
        let mut prev_single = false;
        // A chain of units that may be groups of a spaced key: count, characters, a digit.
        let mut chain = (0usize, 0usize, false);
        // The run of key characters so far, and whether it has a digit.
        let (mut run, mut run_digit) = (0usize, false);
        let mut i = 0;
        loop {
            // Most bytes are lower-case ASCII letters: a run of them at once.
            let n = text[i..]
                .iter()
                .take_while(|b| b.is_ascii_lowercase())
                .count();
            if n > 0 {
                const LETTER: u16 = CLASS[b'a' as usize];
                t.classes |= LETTER;
                unit.classes |= LETTER;
                unit.bytes += n;
                unit.chars += n;
                unit.closing = 0;
                t.inner_spacing |= unit.spacing;
                run += n;
                i += n;
            }
            let (f, len) = match text.get(i) {
                None => (SPACE, 1),
                Some(&b) => {
                    let f = CLASS[usize::from(b)];
                    if f & WS_LEAD != 0 {
                        let c = chars.text[i..].chars().next().unwrap_or(' ');
                        if c.is_whitespace() {
                            (f | SPACE, c.len_utf8())
                        } else {
                            (f, 1)
                        }
                    } else {
                        (f, 1)
                    }
                }
            };
            if f & TOKEN != 0 {
                run += 1;
                run_digit |= f & DIGIT != 0;
            } else {
                t.key_like |= run >= 8 && run_digit;
                (run, run_digit) = (0, false);
            }
            if f & SPACE != 0 {
                if unit.bytes > 0 {
                    t.long_unit |= unit.bytes > MAX_UNIT_BYTES;
                    let single = unit.chars - unit.closing == 1;
                    t.single_pair |= single && prev_single;
                    prev_single = single;
                    t.leet_word |= unit.classes & ALPHA != 0 && unit.classes & LEET != 0;
                    if unit.group() {
                        chain.0 += 1;
                        chain.1 += unit.bytes - unit.closing;
                        chain.2 |= unit.classes & DIGIT != 0;
                        t.key_like |= chain.0 >= 4 && chain.1 >= 16 && chain.2;
                    } else {
                        chain = (0, 0, false);
                    }
                    unit = Unit::default();
                }
                if i >= text.len() {
                    break;
                }
                i += len;
                continue;
            }
            t.classes |= f;
            unit.classes |= f;
            unit.bytes += 1;
            unit.chars += usize::from(f & CONT == 0);
            unit.other += usize::from(f & TOKEN == 0);
            unit.closing = if f & CLOSING != 0 {
                unit.closing + 1
            } else {
                0
            };
            // A letter (or a digit, a leet symbol, any non-ASCII character) after spacing
            // punctuation that is not the unit's first byte: `p/i`.
            t.inner_spacing |= unit.spacing && f & WORDY != 0;
            unit.spacing |= unit.bytes > 1 && f & SPACING != 0;
            i += len;
        }
        t
    }

    /// The rewrite steps of `opts` that may change the text these triggers were read from:
    /// the result normalizes it to the same text and map as `opts`, and often has no rewrite
    /// step at all (the per-character pass is then the view's text).
    pub fn needed(&self, opts: NormalizeOptions) -> NormalizeOptions {
        let decoders = opts.base64 || opts.hex;
        if (opts.entities && self.classes & ENTITY != 0) || (decoders && self.decodable) {
            return opts;
        }
        let mut o = opts;
        o.entities = false;
        o.base64 = false;
        o.hex = false;
        o.markup &= self.classes & MARKUP != 0;
        o.letter_spacing &= self.single_pair || self.long_unit || self.inner_spacing;
        // With letters spelled out, leetspeak also decides which runs count (a run needs two
        // ASCII letters then), so it stays with letter spacing.
        o.leetspeak &= self.leet_word || o.letter_spacing;
        o.joins &= self.key_like;
        o
    }
}

/// Whether `text` has a unit (a run between white space) longer than the unit loop's cut.
pub(crate) fn has_long_unit(text: &str) -> bool {
    text.split(char::is_whitespace)
        .any(|u| u.len() > MAX_UNIT_BYTES)
}

/// Whether `orig` has a run of base64 or hex characters as long as a decoder reads.
fn decodable_run(orig: &str) -> bool {
    let mut run = 0;
    for &b in orig.as_bytes() {
        if CLASS[usize::from(b)] & TOKEN != 0 {
            run += 1;
            if run >= MIN_DECODE_CHARS {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::RewriteTriggers;
    use crate::text::normalize::rewrite::tests::{b64, every, matrix_texts};
    use crate::text::{NormText, NormalizeOptions, normalize, normalize_rewrites};
    use proptest::prelude::*;

    /// The rewrite steps that `needed` may turn off, by index.
    const STEPS: usize = 9;

    fn with_steps(base: NormalizeOptions, bits: u16) -> NormalizeOptions {
        let mut o = base.char_steps();
        let on = |k: usize| bits >> k & 1 == 1;
        o.leetspeak = on(0);
        o.letter_spacing = on(1);
        o.markup = on(2);
        o.entities = on(3);
        o.base64 = on(4);
        o.hex = on(5);
        o.joins = on(6);
        o.rot13 = on(7);
        o.reverse = on(8);
        o
    }

    /// `opts` and the steps `needed` keeps of it give the same text and the same map, and
    /// returns whether the pruned steps were fewer.
    fn same(opts: NormalizeOptions, text: &str) -> bool {
        let chars = normalize(opts.char_steps(), text);
        let pruned = RewriteTriggers::of(&chars, text).needed(opts);
        let full = normalize_rewrites(opts, None, &chars, text);
        let fewer: &NormText = &normalize_rewrites(pruned, None, &chars, text);
        assert_eq!(
            fewer.text, full.text,
            "{text:?}: {opts:?} pruned to {pruned:?}"
        );
        for (i, c) in full.text.char_indices() {
            let e = i + c.len_utf8();
            assert_eq!(
                fewer.map.orig_span(i, e),
                full.map.orig_span(i, e),
                "{text:?}: {opts:?} pruned to {pruned:?}, byte {i}"
            );
        }
        pruned != opts
    }

    /// The shipped policy's views, over the evasion matrix and its benign look-alikes.
    #[test]
    fn pruned_steps_normalize_the_matrix_the_same() {
        let texts = matrix_texts();
        let mut secrets = NormalizeOptions::none();
        secrets.nfkc = true;
        secrets.strip_invisible = true;
        secrets.confusables = true;
        secrets.entities = true;
        secrets.joins = true;
        let mut secrets_b64 = secrets;
        secrets_b64.base64 = true;
        secrets_b64.hex = true;
        let mut pruned = 0;
        let views = [every(), NormalizeOptions::keywords(), secrets, secrets_b64];
        for opts in views {
            for text in &texts {
                pruned += usize::from(same(opts, text));
            }
        }
        // Plain-looking rows do lose steps: the comparison covers both outcomes.
        assert!(
            pruned > 100 && pruned < texts.len() * views.len(),
            "{pruned}"
        );
    }

    /// The decoders' run characters are the key characters, which the table's `TOKEN` has.
    #[test]
    fn token_class_is_the_decoders_alphabet() {
        for b in 0..=255u8 {
            let decoder =
                b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-');
            assert_eq!(
                super::CLASS[usize::from(b)] & super::TOKEN != 0,
                decoder,
                "{b}"
            );
        }
    }

    /// The table's entity and markup bytes are those `special_mask` gives those steps.
    #[test]
    fn entity_and_markup_classes_are_the_steps_bytes() {
        use super::super::special_mask;
        let mut entities = NormalizeOptions::none();
        entities.entities = true;
        let mut markup = NormalizeOptions::none();
        markup.markup = true;
        for b in 0..128u8 {
            let class = super::CLASS[usize::from(b)];
            assert_eq!(
                class & super::ENTITY != 0,
                special_mask(entities) >> b & 1 == 1,
                "{b}"
            );
            assert_eq!(
                class & super::MARKUP != 0,
                special_mask(markup) >> b & 1 == 1,
                "{b}"
            );
        }
    }

    #[test]
    fn ordinary_prose_needs_no_rewrite_step() {
        let text = "I booked a flight from Lisbon to Oslo for next Tuesday morning. Can I move \
                    it to Thursday without paying a change fee? (Booking reference 1234.)";
        for opts in [every(), NormalizeOptions::keywords()] {
            let chars = normalize(opts.char_steps(), text);
            assert!(!RewriteTriggers::of(&chars, text).needed(opts).rewrites());
        }
        // Each kind of evasion keeps its step.
        let mut all = every();
        all.joins = true;
        let keeps_with =
            |opts: NormalizeOptions, text: &str, step: fn(NormalizeOptions) -> bool| {
                let chars = normalize(opts.char_steps(), text);
                step(RewriteTriggers::of(&chars, text).needed(opts))
            };
        let keeps = |text: &str, step| keeps_with(all, text, step);
        let mut secrets = NormalizeOptions::none();
        secrets.joins = true;
        assert!(keeps("a p i p e bomb", |o| o.letter_spacing && o.leetspeak));
        assert!(keeps("a p.i.p.e bomb", |o| o.letter_spacing));
        assert!(keeps("a p/i/p/e bomb", |o| o.letter_spacing));
        assert!(keeps_with(secrets, "key AKIA IOSF ODNN 7EXA MPLE.", |o| o.joins));
        assert!(!keeps_with(secrets, "key AKIA IOSF ODNN EXAM PLES.", |o| o.joins));
        assert!(keeps("key sk-proj-Ab12Cd34\nEf56Gh78", |o| o.joins));
        // Eight characters each: the least pieces that join.
        let split = "key Ab12Cd34\nEf56Gh78 end";
        assert!(keeps_with(secrets, split, |o| o.joins));
        same(secrets, split);
        // Two letters closed by punctuation: `m y?`.
        let two = "say m y? now";
        assert!(keeps(two, |o| o.letter_spacing));
        same(all, two);
        assert!(!keeps("fee, and regions, too; 1234.", |o| o.letter_spacing
            || o.joins));
        assert!(keeps("a b0mb", |o| o.leetspeak && !o.letter_spacing));
        assert!(keeps("a pi**pe** bomb", |o| o.markup));
        assert!(keeps("a &#112;ipe bomb", |o| o.entities && o.markup));
        assert!(keeps("cGlwZSBib21iIGhvdyB0bw==", |o| o.base64 && o.leetspeak));
        // A unit past the loop's cut: its last letter is a unit of its own there.
        let long = format!("{}b c. and more", "ж".repeat(32));
        assert!(keeps(&long, |o| o.letter_spacing));
        same(every(), &long);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Random words, single letters, digits, markup, entities, key-like runs and encoded
        /// runs, under every subset of the rewrite steps with three sets of per-character steps.
        #[test]
        fn pruned_steps_normalize_random_text_the_same(
            parts in proptest::collection::vec(
                prop_oneof![
                    "[A-Za-z]{1,8}",
                    "[a-zé]",
                    "[A-Z0-9]{1,8}",
                    "[0-9@$]{1,3}",
                    "[a-z][0-9@$][a-z]{0,3}",
                    "[ \\n\t.*_`~<>&%#!/\"'(\\[{+=,;:?)-]{1,2}",
                    "&(#[0-9]{2,3}|amp|lt);",
                    "%[0-9A-F]{2}",
                    "[A-Za-z0-9_+/=-]{8,20}",
                    "[ -~]{1,12}".prop_map(|w| b64(w.as_bytes(), false)),
                    "[ -~]{8,12}".prop_map(|w| w.bytes().map(|b| format!("{b:02x}")).collect::<String>()),
                    "[\u{301}\u{200b}\u{ff41}-\u{ff5a}💣]",
                    "[a-z]{70}",
                    "ж{30,33}[a-z]",
                    "[a-z0-9]([/|,+:;=!#*~][a-z0-9@]){2,4}[?.,]?",
                    "([A-Z0-9]{2,4} ){3,5}[A-Z0-9]{1,4}[.)]?",
                    "([A-Z0-9]{4} ){3}[A-Z0-9]{4}",
                ],
                1..16,
            ),
            seps in proptest::collection::vec("( |  |\n|-|)", 16),
            bits in 0u16..(1 << STEPS),
        ) {
            let mut text = String::new();
            for (part, sep) in parts.iter().zip(&seps) {
                text.push_str(part);
                text.push_str(sep);
            }
            let mut plain = NormalizeOptions::all();
            plain.separators = false;
            for base in [NormalizeOptions::keywords(), plain, NormalizeOptions::none()] {
                same(with_steps(base, bits), &text);
            }
        }
    }
}
