//! The `segment` rewrite step: words run together (`makesarin`, `hireahitman`,
//! `DoAnythingNow`) read as words (`make sarin`, `hire a hitman`, `do anything now`). One
//! concern in one file (over 600 lines with its tests): the step's lexicon and where it cuts.
//!
//! A unit of ASCII letters (punctuation at its edges aside) is cut
//! - where its original text turns from a lower-case to an upper-case letter (`synthesiseLSD`,
//!   `uncensoredAI`) or a run of capitals ends before a word (`HireAHitman`; not `APIs`),
//!   unless the whole word is in the lexicon; with a lexicon, a cut that would leave a scrap
//!   of one or two letters that is no word is not made (`secretLY`), and a run of capitals
//!   gives its last letter to the next word when only that makes words (`MAKEsarin`), and
//! - inside each such piece of six letters or more, where it is a run of words of the
//!   [`Lexicon`] — the words of the policy's own keywords and patterns — and a short fixed list
//!   of function words (`a`, `of`, `my`, …). The first and the last word must be lexicon words
//!   of three letters or more, not function words, so `therapist` never reads `the rapist`
//!   and `abomb` stays a word; among the ways to cut a piece, the one with the fewest words wins.
//!
//! Each inserted space stands for no original byte (an empty range where the next word
//! starts), so a match across it maps back to the run-together word. The step decides from the
//! unit alone, as every rewrite step does, so a stream reads it the same. What it cannot know
//! is whether a run-together word is itself an English word made of two lexicon words
//! (`bombshell` with `shell` in the lexicon); that is measured on a dictionary in
//! `policies/README.md`.

use super::Source;
use crate::text::options::MAX_UNIT_BYTES;

/// Words a cut may leave between two lexicon words, whether or not the policy uses them, and
/// never at an edge (particles too: `crackdown` is not `crack down`).
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "of", "for", "to", "my", "your", "his", "her", "its", "our", "their", "some",
    "any", "in", "on", "at", "by", "with", "and", "or", "me", "him", "them", "this", "that",
    "from", "into", "all", "how", "up", "down", "out", "off", "over",
];

/// The words the `segment` step may cut a run-together word into: lower-case ASCII words of
/// two letters or more, usually the words of a policy's keyword and regex leaves that read the
/// step (the engine builds it when the policy loads).
///
/// ```
/// use deliberate::text::Lexicon;
///
/// let lex = Lexicon::new(["make", "sarin", "hire", "hitman"]);
/// assert_eq!(lex.split("makesarin"), Some(vec![4]));
/// assert_eq!(lex.split("hireahitman"), Some(vec![4, 5]));
/// // The first and last words must be lexicon words, not function words.
/// assert_eq!(lex.split("asarin"), None);
/// assert_eq!(lex.split("sarinmake"), Some(vec![5]));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Lexicon {
    /// FNV, not SipHash: keys are a few bytes, looked up dozens of times per candidate word,
    /// and come from the policy, not from the text being scanned.
    words: fnv::FnvHashSet<Box<[u8]>>,
    /// Length of the longest word (function words included).
    longest: usize,
    /// Bit per first three letters of a word that may start a cut unit (`heads`) or last
    /// three of one that may end it (`tails`): 26³ bits each.
    heads: Vec<u64>,
    tails: Vec<u64>,
    /// Every word and function word, for walking the words that start at one place of a
    /// candidate (anchored: a walk stops at the first byte no word continues with), and per
    /// pattern its length and whether it may stand at an edge.
    walk: Option<Walk>,
}

#[derive(Debug, Clone)]
struct Walk {
    dfa: aho_corasick::dfa::DFA,
    start: aho_corasick::automaton::StateID,
    /// Per pattern: its length and whether it may be the first or last word of a cut.
    patterns: Vec<(usize, bool)>,
}

const TRIGRAMS: usize = 26 * 26 * 26;

fn trigram(w: &[u8]) -> usize {
    let l = |b: u8| usize::from(b.to_ascii_lowercase() - b'a');
    (l(w[0]) * 26 + l(w[1])) * 26 + l(w[2])
}

fn is_function(w: &[u8]) -> bool {
    FUNCTION_WORDS.iter().any(|f| f.as_bytes() == w)
}

impl Lexicon {
    /// A lexicon of `words`: each is lower-cased; those that are not two or more ASCII letters
    /// are left out.
    pub fn new<I, S>(words: I) -> Lexicon
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut lex = Lexicon {
            words: fnv::FnvHashSet::default(),
            longest: FUNCTION_WORDS.iter().map(|f| f.len()).max().unwrap_or(0),
            heads: vec![0; TRIGRAMS.div_ceil(64)],
            tails: vec![0; TRIGRAMS.div_ceil(64)],
            walk: None,
        };
        for w in words {
            let w = w.as_ref().to_ascii_lowercase();
            if w.len() < 2 || w.len() > MAX_UNIT_BYTES || !w.bytes().all(|b| b.is_ascii_lowercase())
            {
                continue;
            }
            let b = w.as_bytes();
            if b.len() >= 3 && !is_function(b) {
                let (h, t) = (trigram(b), trigram(&b[b.len() - 3..]));
                lex.heads[h / 64] |= 1 << (h % 64);
                lex.tails[t / 64] |= 1 << (t % 64);
            }
            lex.longest = lex.longest.max(b.len());
            lex.words.insert(b.into());
        }
        lex.walk = lex.build_walk();
        lex
    }

    fn build_walk(&self) -> Option<Walk> {
        use aho_corasick::automaton::Automaton;
        if self.words.is_empty() {
            return None;
        }
        let mut all: Vec<&[u8]> = self.words.iter().map(|w| &**w).collect();
        all.extend(
            FUNCTION_WORDS
                .iter()
                .map(|f| f.as_bytes())
                .filter(|f| !self.words.contains(*f)),
        );
        all.sort_unstable();
        let dfa = aho_corasick::dfa::DFA::builder()
            .match_kind(aho_corasick::MatchKind::Standard)
            .start_kind(aho_corasick::StartKind::Anchored)
            .build(&all)
            .ok()?;
        let start = dfa.start_state(aho_corasick::Anchored::Yes).ok()?;
        let patterns = all.iter().map(|w| (w.len(), self.edge(w))).collect();
        Some(Walk {
            dfa,
            start,
            patterns,
        })
    }

    /// Calls `f(end, edge)` for each lexicon or function word `w[p..end]`.
    fn words_at(&self, w: &[u8], p: usize, mut f: impl FnMut(usize, bool)) {
        use aho_corasick::automaton::Automaton;
        let Some(walk) = &self.walk else { return };
        let mut sid = walk.start;
        for (q, &b) in w.iter().enumerate().skip(p) {
            sid = walk.dfa.next_state(aho_corasick::Anchored::Yes, sid, b);
            if walk.dfa.is_dead(sid) {
                return;
            }
            if walk.dfa.is_match(sid) {
                for k in 0..walk.dfa.match_len(sid) {
                    let (len, edge) = walk.patterns[walk.dfa.match_pattern(sid, k).as_usize()];
                    // A match state also reports words that end here but start later.
                    if len == q + 1 - p {
                        f(q + 1, edge);
                    }
                }
            }
        }
    }

    /// Number of words (function words not counted).
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether the lexicon has no word.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Whether `word` (lower case) is in the lexicon.
    pub fn contains(&self, word: &str) -> bool {
        self.words.contains(word.as_bytes())
    }

    /// Whether the `segment` step may cut a unit of `chars`, the per-character pass of `orig`
    /// (the step also decides, with letter spacing, whether `a` starts a spelled-out word; a
    /// scan keeps the step whenever letter spacing stays):
    /// `false` when `orig` never turns from lower to upper case and no run of ASCII letters
    /// splits into lexicon words (a necessary condition, and exact for units of one run: most
    /// prose fails it, and a scan then leaves the step out).
    pub fn may_cut(&self, chars: &str, orig: &str) -> bool {
        if has_case_turn(orig) {
            return true;
        }
        // One pass over the bytes: letter runs, and units longer than the unit loop's cut
        // (whose pieces are not whole runs). A non-ASCII byte counts as part of a unit, so a
        // unit is never shorter here than the unit loop sees it.
        let b = chars.as_bytes();
        let (mut unit, mut run) = (0usize, 0usize);
        for (i, &c) in b.iter().enumerate() {
            if c.is_ascii_alphabetic() {
                run += 1;
            } else {
                if self.run_splits(&b[i - run..i]) {
                    return true;
                }
                run = 0;
            }
            if c.is_ascii_whitespace() {
                unit = 0;
            } else {
                unit += 1;
                if unit > MAX_UNIT_BYTES {
                    return true;
                }
            }
        }
        self.run_splits(&b[b.len() - run..])
    }

    /// Whether the letter run `run` splits into lexicon words.
    fn run_splits(&self, run: &[u8]) -> bool {
        if run.len() > MAX_UNIT_BYTES || !self.may_split(run) {
            return false;
        }
        let mut lower = [0u8; MAX_UNIT_BYTES];
        let lower = &mut lower[..run.len()];
        lower.copy_from_slice(run);
        lower.make_ascii_lowercase();
        self.split_into(lower, 0, &mut Vec::new())
    }

    /// Whether a cut may start at the start of `w` and end at its end: its first and last
    /// three letters are those of lexicon words (a necessary condition, from two bit tests).
    fn may_split(&self, w: &[u8]) -> bool {
        if w.len() < 6 || self.words.is_empty() {
            return false;
        }
        let (h, t) = (trigram(w), trigram(&w[w.len() - 3..]));
        self.heads[h / 64] >> (h % 64) & 1 == 1 && self.tails[t / 64] >> (t % 64) & 1 == 1
    }

    fn edge(&self, w: &[u8]) -> bool {
        w.len() >= 3 && !is_function(w) && self.words.contains(w)
    }

    /// Where `word` (ASCII letters) splits into lexicon words: the offsets before which a
    /// space goes, or `None` when it does not split. The fewest words win.
    pub fn split(&self, word: &str) -> Option<Vec<usize>> {
        let w = word.as_bytes();
        if w.len() > MAX_UNIT_BYTES || !w.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        let mut lower = [0u8; MAX_UNIT_BYTES];
        let lower = &mut lower[..w.len()];
        lower.copy_from_slice(w);
        lower.make_ascii_lowercase();
        let mut cuts = Vec::new();
        self.split_into(lower, 0, &mut cuts).then_some(cuts)
    }

    /// [`split`](Self::split) of lower-case `w`, its cuts pushed (offset by `base`) to `cuts`.
    fn split_into(&self, w: &[u8], base: usize, cuts: &mut Vec<usize>) -> bool {
        // A lexicon word stays whole (`pipebomb`, `bombshell` when the policy names them).
        if !self.may_split(w) || self.words.contains(w) {
            return false;
        }
        let n = w.len();
        // best[p]: fewest words covering w[..p] that start with an edge word, and where the
        // last of them starts.
        let mut best = [(u8::MAX, 0u8); MAX_UNIT_BYTES + 1];
        self.words_at(w, 0, |q, edge| {
            if edge && q <= n - 3 {
                best[q] = (1, 0);
            }
        });
        for p in 3..n {
            let (count, _) = best[p];
            if count == u8::MAX {
                continue;
            }
            self.words_at(w, p, |q, edge| {
                if (q < n || edge) && count + 1 < best[q].0 {
                    best[q] = (count + 1, p as u8);
                }
            });
        }
        if best[n].0 == u8::MAX {
            return false;
        }
        let from = cuts.len();
        let mut q = n;
        while best[q].0 > 1 {
            let p = usize::from(best[q].1);
            cuts.push(base + p);
            q = p;
        }
        cuts[from..].reverse();
        true
    }
}

/// Short words a case cut may leave as a piece of their own besides the lexicon's and the
/// function words (`HowDoIMakeSarin`, `WhatIsTheBestWay`).
const CASE_PIECES: &[&str] = &[
    "i", "do", "does", "did", "is", "are", "was", "be", "can", "could", "would", "should", "will",
    "it", "we", "you", "he", "she", "they", "us", "not", "no", "so", "as", "if", "what", "why",
    "who", "where", "when", "which", "get", "now", "new", "one",
];

impl Lexicon {
    /// Whether lower-case `w` may be a piece a case cut leaves: a lexicon, function or common
    /// short word, or a run of lexicon words.
    fn wordish(&self, w: &[u8]) -> bool {
        !w.is_empty()
            && (self.words.contains(w)
                || is_function(w)
                || CASE_PIECES.iter().any(|c| c.as_bytes() == w)
                || self.split_into(w, 0, &mut Vec::new()))
    }

    /// Of the `n` case cuts in `pieces` (ascending; `runs[i]` when cut `i` is inside a run of
    /// capitals), keeps those that leave no scrap (a piece of one or two letters that is no
    /// word: `secretLY` stays `secretly`), moving a capital-run cut one letter on where only
    /// that leaves words on both sides (`MAKE|sarin`, not `MAK|Esarin`; `HTTP|Server` stays);
    /// returns how many stay. A dropped cut joins its pieces.
    fn keep_word_cuts(&self, lower: &[u8], pieces: &mut [usize], runs: &[bool], n: usize) -> usize {
        let words = |a: &[u8], b: &[u8]| self.wordish(a) && self.wordish(b);
        let scrap = |w: &[u8]| w.len() < 3 && !self.wordish(w);
        let (mut kept, mut from) = (0, 0);
        for i in 0..n {
            let (k, run) = (pieces[i], runs[i]);
            let next = if i + 1 < n {
                pieces[i + 1]
            } else {
                lower.len()
            };
            let cut = if run
                && k + 1 < next
                && !words(&lower[from..k], &lower[k..next])
                && words(&lower[from..k + 1], &lower[k + 1..next])
            {
                Some(k + 1)
            } else if scrap(&lower[from..k]) || scrap(&lower[k..next]) {
                None
            } else {
                Some(k)
            };
            if let Some(c) = cut {
                pieces[kept] = c;
                kept += 1;
                from = c;
            }
        }
        kept
    }
}

/// Whether a word written `o` is cut before letter `k` by its case: a lower-case letter
/// followed by an upper-case one (`makeSarin`), the last capital of a run of them followed
/// by two lower-case letters (`HireAHitman`, `HTTPServer`; not `APIs`), or a lone lower-case
/// `a` between two runs of capitals, the article written small (`BUILDaBOMB`; the cut after
/// it is the first kind).
fn case_cut(o: &[u8], k: usize) -> bool {
    let (before, at) = (o[k - 1], o[k]);
    let upper = |j: usize| o.get(j).is_some_and(u8::is_ascii_uppercase);
    (at.is_ascii_uppercase()
        && (before.is_ascii_lowercase()
            || (before.is_ascii_uppercase()
                && o.get(k + 1).is_some_and(u8::is_ascii_lowercase)
                && o.get(k + 2).is_some_and(u8::is_ascii_lowercase))))
        || (at == b'a' && k >= 2 && upper(k - 2) && upper(k - 1) && upper(k + 1) && upper(k + 2))
}

/// Whether `orig` has a place where [`case_cut`] could cut (a lower-case letter before an
/// upper-case one, or two capitals before a lower-case letter): without one, no unit of it
/// has a case cut.
pub(super) fn has_case_turn(orig: &str) -> bool {
    orig.as_bytes().windows(2).enumerate().any(|(k, p)| {
        p[1].is_ascii_uppercase()
            && (p[0].is_ascii_lowercase()
                || (p[0].is_ascii_uppercase()
                    && orig
                        .as_bytes()
                        .get(k + 2)
                        .is_some_and(u8::is_ascii_lowercase)))
    })
}

/// The unit `[i, end)` without the ASCII punctuation at its edges.
pub(super) fn core(b: &[u8], i: usize, end: usize) -> (usize, usize) {
    let edge = |c: u8| c.is_ascii_punctuation();
    let mut s = i;
    while s < end && edge(b[s]) {
        s += 1;
    }
    let mut e = end;
    while e > s && edge(b[e - 1]) {
        e -= 1;
    }
    (s, e)
}

/// Where the unit `[i, end)` of `src.text` is cut (offsets into `src.text`, ascending), in
/// `cuts`; `false` when it is not. `turns`: whether the original may have a case cut at all.
pub(super) fn unit_cuts(
    lexicon: Option<&Lexicon>,
    src: &Source<'_>,
    i: usize,
    end: usize,
    turns: bool,
    cuts: &mut Vec<usize>,
) -> bool {
    cuts.clear();
    let b = src.text.as_bytes();
    let (s, e) = core(b, i, end);
    let core = &b[s..e];
    if core.len() < 4 || core.len() > MAX_UNIT_BYTES || !core.iter().all(u8::is_ascii_alphabetic) {
        return false;
    }
    let mut lower = [0u8; MAX_UNIT_BYTES];
    let lower = &mut lower[..core.len()];
    lower.copy_from_slice(core);
    lower.make_ascii_lowercase();
    let lex = lexicon.filter(|l| !l.is_empty());
    // A word the policy names stays whole, however it is written (`MolotovCocktail` when the
    // lexicon has `molotovcocktail`).
    if lex.is_some_and(|l| l.words.contains(&*lower)) {
        return false;
    }
    // Case cuts, read in the original: only where the unit is its original byte for byte.
    let mut pieces = [0usize; MAX_UNIT_BYTES + 1];
    let mut runs = [false; MAX_UNIT_BYTES + 1];
    let mut n_pieces = 0;
    if turns {
        let (os, oe) = src.map.orig_span(s, e);
        let orig = src
            .orig
            .as_bytes()
            .get(os - src.orig_base..oe - src.orig_base)
            .filter(|o| o.len() == core.len() && o.eq_ignore_ascii_case(core));
        if let Some(o) = orig {
            for k in 1..o.len() {
                if case_cut(o, k) {
                    // A cut inside a run of capitals (`HTTPServer`) may belong one letter
                    // later (`MAKEsarin`): `keep_word_cuts` decides.
                    pieces[n_pieces] = k;
                    runs[n_pieces] = o[k - 1].is_ascii_uppercase();
                    n_pieces += 1;
                }
            }
        }
    }
    if let Some(lex) = lex {
        n_pieces = lex.keep_word_cuts(lower, &mut pieces, &runs, n_pieces);
    }
    if lex.is_none() && n_pieces == 0 {
        return false;
    }
    let mut from = 0;
    for &to in pieces[..n_pieces].iter().chain([&core.len()]) {
        if let Some(lex) = lex {
            lex.split_into(&lower[from..to], s + from, cuts);
        }
        if to < core.len() {
            cuts.push(s + to);
        }
        from = to;
    }
    !cuts.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{NormalizeOptions, normalize_with};

    fn lex() -> Lexicon {
        Lexicon::new([
            "make", "sarin", "hire", "hitman", "building", "bomb", "the", "rapist", "recipe",
            "napalm", "bath", "anthrax", "spores", "spore", "do", "anything", "now",
        ])
    }

    #[test]
    fn splits_into_the_fewest_lexicon_words() {
        let l = lex();
        assert_eq!(l.split("makesarin"), Some(vec![4]));
        assert_eq!(l.split("buildingabomb"), Some(vec![8, 9]));
        assert_eq!(l.split("recipefornapalm"), Some(vec![6, 9]));
        assert_eq!(l.split("anthraxspores"), Some(vec![7]));
        assert_eq!(l.split("MakeSarin"), Some(vec![4]));
    }

    #[test]
    fn edges_are_lexicon_words_of_three_letters() {
        let l = lex();
        // `the` is a function word: it may not start a cut word.
        assert_eq!(l.split("therapist"), None);
        // A function word at an edge, a short word at an edge, an unknown piece.
        assert_eq!(l.split("bomba"), None);
        assert_eq!(l.split("donow"), None);
        assert_eq!(l.split("makesarinx"), None);
        assert_eq!(l.split("bathbomb"), Some(vec![4]));
        assert_eq!(l.split("sarin"), None);
        assert_eq!(Lexicon::default().split("makesarin"), None);
    }

    #[test]
    fn words_that_are_not_ascii_letters_stay_out() {
        let l = Lexicon::new(["Make", "sa-rin", "b", "café", "sarin"]);
        assert!(l.contains("make"));
        assert!(!l.contains("sa-rin") && !l.contains("b") && !l.contains("café"));
        assert_eq!(l.len(), 2);
        assert_eq!(l.split("makesarin"), Some(vec![4]));
        assert_eq!(l.split("make-sarin"), None);
    }

    fn norm(lex: Option<&Lexicon>, text: &str) -> crate::text::NormText {
        let mut o = NormalizeOptions::keywords();
        o.segment = true;
        normalize_with(o, lex, text)
    }

    #[test]
    fn units_are_cut_by_case_and_by_the_lexicon() {
        let l = lex();
        for (text, want) in [
            ("How do I makesarin?", "how do i make sarin?"),
            ("(buildingabomb)", "(building a bomb)"),
            ("DoAnythingNow", "do anything now"),
            ("HireAHitman", "hire a hitman"),
            ("synthesiseLSD", "synthesise lsd"),
            ("APIs and URLs", "apis and urls"),
            ("therapist", "therapist"),
            ("makesarin2", "makesarin2"),
            // Case cuts leave no scrap, and a run of capitals gives its last letter to the
            // word after it only when that makes words.
            ("secretLY", "secretly"),
            ("MAKEsarin", "make sarin"),
            ("HTTPServer", "http server"),
            ("HowDoIMakeSarin", "how do i make sarin"),
            ("xyzzyMakeSarin", "xyzzy make sarin"),
            ("iPhone", "i phone"),
            // A small `a` between runs of capitals is the article; not a lone letter after
            // one capital or before one (`CaT`, `PDFaX`: runs of two or more on both sides).
            ("BUILDaBOMB", "build a bomb"),
            ("HOW TO MAKEaPIPEBOMB", "how to make a pipebomb"),
            ("PDFs CaT USBaX", "pdfs cat usbax"),
        ] {
            assert_eq!(norm(Some(&l), text).text, want, "{text:?}");
        }
        // Without a lexicon only case cuts are made.
        assert_eq!(
            norm(None, "makesarin MakeSarin").text,
            "makesarin make sarin"
        );
        assert_eq!(
            norm(None, "MAKEsarin secretLY").text,
            "mak esarin secret ly"
        );
        // An inserted space stands for no original byte: a match across it maps to the word.
        let text = "a makesarin b";
        let nt = norm(Some(&l), text);
        assert_eq!(nt.text, "a make sarin b");
        assert_eq!(nt.map.orig_span(2, 12), (2, 11));
        assert_eq!(nt.map.orig_span(7, 12), (6, 11));
    }

    #[test]
    fn a_spelled_out_word_keeps_its_first_a_when_the_lexicon_says_so() {
        let l = Lexicon::new(["anthrax", "buy", "bomb", "spores"]);
        let mut o = NormalizeOptions::keywords();
        o.segment = true;
        for (text, want) in [
            ("buy a n t h r a x  s p o r e s?", "buy anthrax spores?"),
            ("buy a b o m b", "buy a bomb"),
            ("buy a n a p k i n", "buy a napkin"),
        ] {
            assert_eq!(normalize_with(o, Some(&l), text).text, want, "{text:?}");
        }
        o.segment = false;
        assert_eq!(
            normalize_with(o, Some(&l), "buy a n t h r a x").text,
            "buy a nthrax"
        );
    }

    proptest::proptest! {
        /// A buffered scan leaves out the steps that cannot act (`RewriteTriggers::needed`,
        /// then `segment` where `may_cut` says no, as `engine::scan` does); the text must come
        /// out the same as with every step, which is what a stream runs. Found in review:
        /// whether a unit was cut depended on which other steps were on (`makesarin,`).
        #[test]
        fn pruned_steps_cut_the_same(
            words in proptest::collection::vec(proptest::sample::select(vec![
                "makesarin", "makesarin,", "**makesarin**", "MakeSarin", "hireahitman!",
                "a", "n", "t", "h", "r", "x", "anthrax", "bomb", "b0mb", "p/i/p/e", ",", ";",
                "aGVsbG8gd29ybGQgaGVsbG8=", "&amp;", "AKIA1234ABCD5678", "  ", "\n",
            ]), 0..10),
        ) {
            let text = words.join(" ");
            let l = lex();
            let mut opts = NormalizeOptions::keywords();
            opts.segment = true;
            opts.leetspeak = true;
            opts.base64 = true;
            let chars = crate::text::normalize(opts.char_steps(), &text);
            let full = crate::text::normalize_rewrites(opts, Some(&l), &chars, &text);
            let mut pruned = crate::text::RewriteTriggers::of(&chars, &text).needed(opts);
            if pruned.segment && !pruned.letter_spacing {
                pruned.segment = l.may_cut(&chars.text, &text);
            }
            let fewer = crate::text::normalize_rewrites(pruned, Some(&l), &chars, &text);
            proptest::prop_assert_eq!(&full.text, &fewer.text, "{:?}", text);
        }
    }

    proptest::proptest! {
        /// Where `may_cut` says no, the step changes nothing: a scan may leave it out.
        #[test]
        fn may_cut_is_a_necessary_condition(
            words in proptest::collection::vec(proptest::sample::select(vec![
                "make", "sarin", "the", "rapist", "a", "bomb", "Bomb", "MAKE", "x", "bath",
                "anthrax", "spores", "now", "-", ".", "?", " ", "2", "é", "hitman", "hire",
            ]), 0..12),
            glue in proptest::collection::vec(proptest::bool::ANY, 12),
        ) {
            let mut text = String::new();
            for (k, w) in words.iter().enumerate() {
                text.push_str(w);
                if glue[k] {
                    text.push(' ');
                }
            }
            let l = lex();
            let mut o = NormalizeOptions::keywords();
            o.segment = true;
            // Letter spacing reads the lexicon too (`a n t h r a x`): a scan keeps the step
            // whenever letter spacing stays, so the claim is for views without it.
            o.letter_spacing = false;
            let chars = crate::text::normalize(o.char_steps(), &text);
            if !l.may_cut(&chars.text, &text) {
                let mut off = o;
                off.segment = false;
                let with = normalize_with(o, Some(&l), &text);
                let without = crate::text::normalize(off, &text);
                proptest::prop_assert_eq!(&with.text, &without.text);
            }
        }
    }
}
