//! Regex leaves: a pattern → a size-limited, linear-time regex with a bounded match length.

use regex_automata::nfa::thompson;
use regex_syntax::hir::{Class, Hir, HirKind};

use super::Compiler;
use super::fold;
use crate::engine::live::LiveDfa;
pub use crate::engine::program::REGEX_SIZE_LIMIT;
use crate::engine::program::{LeafRegex, RegexLeaf};
use crate::policy::raw::RawMatch;
use crate::policy::{Loc, Sink, Stage};
use crate::text::NormalizeOptions;

/// Longest regex pattern accepted.
pub const MAX_PATTERN_CHARS: usize = 4096;

impl Compiler {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn regex(
        &mut self,
        pattern: &str,
        raw: &RawMatch,
        norm: NormalizeOptions,
        stages: &[Stage],
        rule: Option<&str>,
        loc: Loc,
        sink: &mut Sink<'_>,
    ) -> Option<RegexLeaf> {
        if pattern.chars().count() > MAX_PATTERN_CHARS {
            sink.error(
                loc,
                rule,
                format!("regex is longer than {MAX_PATTERN_CHARS} characters"),
            );
            return None;
        }
        // A case-folding view only ever holds text that is already folded, so a pattern that
        // reads the same on such text either way is parsed as written: case-insensitive
        // parsing turns every letter into a class, which costs most of a policy's load and
        // gives larger automata. Anything else keeps today's case-insensitive parse.
        let parsed = parse_regex(pattern, false).and_then(|h| {
            if norm.casefold && !fold::same_on_folded_text(&h, norm.nfkc) {
                parse_regex(pattern, true)
            } else {
                Ok(h)
            }
        });
        let hir = match parsed {
            Ok(h) => h,
            Err(msg) => {
                let last = msg
                    .lines()
                    .rev()
                    .find(|l| l.starts_with("error:"))
                    .unwrap_or(&msg);
                sink.error(
                    loc,
                    rule,
                    format!("invalid regex: {}", last.trim_start_matches("error: ")),
                );
                return None;
            }
        };
        let props = hir.properties();
        if props.minimum_len() == Some(0) || props.minimum_len().is_none() {
            sink.error(
                loc,
                rule,
                "regex can match the empty string; it would match everywhere",
            );
            return None;
        }
        if let (Some(d), Some(min)) = (raw.max_len, props.minimum_len())
            && (d as usize) < min
        {
            sink.error(
                loc,
                rule,
                format!("max_len {d} is shorter than the shortest match ({min} bytes): the rule could never match"),
            );
            return None;
        }
        let max_len = match (props.maximum_len(), raw.max_len) {
            (Some(m), Some(d)) => m.min(d as usize),
            (Some(m), None) => m,
            (None, Some(d)) => d as usize,
            (None, None) => {
                if stages.iter().any(|s| *s != Stage::Input) {
                    sink.error(
                        loc,
                        rule,
                        "regex has no bounded match length, so it cannot be enforced on a stream: \
                         bound its repetitions (`{1,64}` instead of `+`) or declare `max_len`",
                    );
                    return None;
                }
                // Input-only rules are scanned buffered; a generous bound keeps the
                // truncation semantics the same everywhere.
                64 * 1024
            }
        };
        if max_len > 64 * 1024 {
            sink.warn(
                loc,
                rule,
                format!(
                    "regex matches can be {max_len} bytes long; streams hold back that much text"
                ),
            );
        }
        let looks = props.look_set();
        if looks.contains_word_unicode() {
            sink.warn(
                loc,
                rule,
                "Unicode `\\b` makes the regex engine leave its fast DFA on non-ASCII text \
                 (scans can fall below 1 MB/s); use `(?-u:\\b)` or keywords",
            );
        }
        // The leaf's own regex is compiled lazily (`LeafRegex`), and its stage's set checks
        // the limits of all regexes together; one that may be large on its own is checked
        // alone here, so the error points at it.
        if hir_weight(&hir) > 4096
            && let Err(e) = thompson::Compiler::new()
                .configure(thompson::Config::new().nfa_size_limit(Some(REGEX_SIZE_LIMIT)))
                .build_from_hir(&hir)
        {
            sink.error(
                loc,
                rule,
                format!("regex does not compile within limits: {e}"),
            );
            return None;
        }
        // Input-only regexes are scanned buffered: they need no live DFA.
        let live = if stages.iter().any(|s| *s != Stage::Input) {
            LiveDfa::build(&hir)
        } else {
            Err("input only".to_owned())
        };
        Some(RegexLeaf {
            regex: LeafRegex::new(hir),
            max_len,
            validate: raw.validate,
            live,
        })
    }
}

/// Parses `pattern`; `Err`: regex-syntax's message.
fn parse_regex(pattern: &str, case_insensitive: bool) -> Result<Hir, String> {
    regex_syntax::ParserBuilder::new()
        .case_insensitive(case_insensitive)
        .nest_limit(64)
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())
}

/// A rough size of the automaton `hir` compiles to: nodes, class ranges, repetitions
/// multiplied out (saturating). Cheap; only says whether a regex is worth checking alone.
fn hir_weight(hir: &Hir) -> usize {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => 1,
        HirKind::Literal(l) => l.0.len(),
        HirKind::Class(Class::Unicode(c)) => c.ranges().len().saturating_mul(4),
        HirKind::Class(Class::Bytes(c)) => c.ranges().len(),
        HirKind::Repetition(r) => {
            let times = r.max.unwrap_or(r.min).max(r.min).max(1) as usize;
            hir_weight(&r.sub).saturating_mul(times)
        }
        HirKind::Capture(c) => hir_weight(&c.sub),
        HirKind::Concat(subs) | HirKind::Alternation(subs) => subs
            .iter()
            .map(hir_weight)
            .fold(1usize, |a, b| a.saturating_add(b)),
    }
}

// === the lexicon of the `segment` step ===

/// Most spellings one word of a pattern is read in (`synthesi[sz]e`: two) before the
/// lexicon gives up on it.
const MAX_SPELLINGS: usize = 64;

/// The words a pattern spells with letters (lower case, two letters or more): `make|making`,
/// `get\shold\sof` → `get`, `hold`, `of`; `synthesi[sz]e` → both spellings; `bombs?` → `bomb`,
/// `bombs`. What a word of the pattern is built from other than literal letters, small
/// classes of letters and optional letters ends it.
pub(super) fn pattern_words(hir: &Hir, out: &mut Vec<String>) {
    match hir.kind() {
        HirKind::Concat(subs) => concat_words(subs, out),
        HirKind::Literal(_) => concat_words(std::slice::from_ref(hir), out),
        HirKind::Alternation(subs) => subs.iter().for_each(|s| pattern_words(s, out)),
        HirKind::Capture(c) => pattern_words(&c.sub, out),
        HirKind::Repetition(r) => pattern_words(&r.sub, out),
        HirKind::Empty | HirKind::Class(_) | HirKind::Look(_) => {}
    }
}

/// The lower-case letters `hir` matches one of, when it is a literal letter or a class of at
/// most four ASCII letters in either case (and other characters a case-insensitive parse
/// adds, such as the Kelvin sign with `k`, which a folded text does not hold).
fn letter_options(hir: &Hir) -> Option<Vec<u8>> {
    let mut letters: Vec<u8> = Vec::new();
    let mut add = |c: u32| -> bool {
        match u8::try_from(c) {
            Ok(b) if b.is_ascii_alphabetic() => {
                let l = b.to_ascii_lowercase();
                if !letters.contains(&l) {
                    letters.push(l);
                }
                true
            }
            Ok(b) if b.is_ascii() => false,
            _ => char::from_u32(c).is_some_and(char::is_alphabetic),
        }
    };
    let ok = match hir.kind() {
        HirKind::Literal(l) => l.0.len() == 1 && add(u32::from(l.0[0])),
        HirKind::Class(Class::Unicode(c)) => {
            c.ranges().len() <= 8
                && c.ranges().iter().all(|r| {
                    (u32::from(r.start())..=u32::from(r.end())).count() <= 4
                        && (u32::from(r.start())..=u32::from(r.end())).all(&mut add)
                })
        }
        HirKind::Class(Class::Bytes(c)) => {
            c.ranges().len() <= 8
                && c.ranges().iter().all(|r| {
                    (r.start()..=r.end()).count() <= 4
                        && (r.start()..=r.end()).all(|b| add(u32::from(b)))
                })
        }
        _ => false,
    };
    (ok && !letters.is_empty() && letters.len() <= 4).then_some(letters)
}

fn concat_words(subs: &[Hir], out: &mut Vec<String>) {
    // The spellings of the word being read so far.
    let mut cur: Vec<Vec<u8>> = vec![Vec::new()];
    let flush = |cur: &mut Vec<Vec<u8>>, out: &mut Vec<String>| {
        for w in cur.drain(..) {
            if w.len() >= 2 {
                out.push(String::from_utf8(w).expect("ASCII letters"));
            }
        }
        cur.push(Vec::new());
    };
    for s in subs {
        if let HirKind::Literal(l) = s.kind() {
            for &b in l.0.iter() {
                if b.is_ascii_alphabetic() {
                    cur.iter_mut().for_each(|w| w.push(b.to_ascii_lowercase()));
                } else {
                    flush(&mut cur, out);
                }
            }
            continue;
        }
        if let Some(opts) = letter_options(s) {
            if cur.len() * opts.len() > MAX_SPELLINGS {
                cur = vec![Vec::new()];
                continue;
            }
            cur = cur
                .iter()
                .flat_map(|w| opts.iter().map(move |&b| [w.as_slice(), &[b]].concat()))
                .collect();
            continue;
        }
        if let HirKind::Repetition(r) = s.kind()
            && r.min == 0
            && r.max == Some(1)
        {
            // An optional letter or short run of letters (`bombs?`, `neighbou?r`).
            let optional = match r.sub.kind() {
                HirKind::Literal(l) if l.0.iter().all(u8::is_ascii_alphabetic) => {
                    Some(vec![l.0.to_ascii_lowercase()])
                }
                _ => letter_options(&r.sub).map(|o| o.into_iter().map(|b| vec![b]).collect()),
            };
            if let Some(optional) = optional {
                if cur.len() * (optional.len() + 1) > MAX_SPELLINGS {
                    cur = vec![Vec::new()];
                    continue;
                }
                let mut next = cur.clone();
                for w in &cur {
                    for o in &optional {
                        next.push([w.as_slice(), o].concat());
                    }
                }
                cur = next;
                continue;
            }
        }
        flush(&mut cur, out);
        pattern_words(s, out);
    }
    flush(&mut cur, out);
}

#[cfg(test)]
mod lexicon_tests {
    use super::pattern_words;

    fn words(pattern: &str, case_insensitive: bool) -> Vec<String> {
        let hir = regex_syntax::ParserBuilder::new()
            .case_insensitive(case_insensitive)
            .build()
            .parse(pattern)
            .expect("parses");
        let mut out = Vec::new();
        pattern_words(&hir, &mut out);
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn words_of_literals_small_classes_and_optional_letters() {
        let want = [
            "bomb",
            "bombs",
            "cocktail",
            "cocktails",
            "get",
            "hold",
            "molotov",
            "of",
            "synthesise",
            "synthesize",
        ];
        let pattern = r"(?x)(?-u:\b)(?: molotov\scocktails? | get\shold\sof | synthesi[sz]e | bombs? )[^a-z0-9-]";
        assert_eq!(words(pattern, false), want);
        // A case-insensitive parse turns letters into classes (`k` → `[kKK]`): same words.
        assert_eq!(words(pattern, true), want);
        // Optional runs and the spellings they give.
        assert_eq!(
            words(r"neighbou?rs?", false),
            ["neighbor", "neighbors", "neighbour", "neighbours"]
        );
        // What is not a letter ends a word; a class of many letters is not read.
        assert_eq!(words(r"[a-z]+ly|c\s?4|x[a-z]y", false), ["ly"]);
    }
}
