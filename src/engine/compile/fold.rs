//! Whether a regex parsed as written matches the same as its case-insensitive parse on text a
//! case-folding view produces.
//!
//! Such a view lowercases every character (after NFKC, when the view has it), so its text only
//! holds characters that lowercase to themselves. Case-insensitive parsing replaces each
//! letter by its simple case-folding orbit (`k` → `[kKK]`) and folds each class; both only
//! add characters. Where every character they would add is one the view's text cannot hold,
//! the pattern as written matches exactly the same spans there, and is cheaper to compile and
//! smaller to run. The check is conservative: a negated class that would fold
//! (`[^a-z]`) or an upper-case letter keeps the case-insensitive parse.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use regex_syntax::hir::{Class, ClassUnicode, ClassUnicodeRange, Hir, HirKind};
use unicode_normalization::{IsNormalized, is_nfkc_quick};

/// Whether `hir` (parsed case-sensitively) matches on folded text exactly what its
/// case-insensitive parse matches. `nfkc`: the view applies NFKC before folding.
pub(super) fn same_on_folded_text(hir: &Hir, nfkc: bool) -> bool {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => true,
        HirKind::Literal(l) => match std::str::from_utf8(&l.0) {
            Ok(s) => s.chars().all(|c| char_safe(c, nfkc)),
            // Bytes that are not UTF-8 only come from `(?-u)` escapes: ASCII folding applies
            // to the ASCII ones.
            Err(_) => l.0.iter().all(|&b| !b.is_ascii_uppercase()),
        },
        HirKind::Class(Class::Unicode(c)) => class_safe(c, nfkc),
        HirKind::Class(Class::Bytes(c)) => c.ranges().iter().all(|r| {
            (r.start()..=r.end()).all(|b| {
                // An upper-case letter whose lower case is outside the class: folding adds
                // the lower case, which the text can hold.
                !b.is_ascii_uppercase()
                    || c.ranges().iter().any(|o| {
                        let l = b.to_ascii_lowercase();
                        o.start() <= l && l <= o.end()
                    })
            })
        }),
        HirKind::Repetition(r) => same_on_folded_text(&r.sub, nfkc),
        HirKind::Capture(c) => same_on_folded_text(&c.sub, nfkc),
        HirKind::Concat(subs) | HirKind::Alternation(subs) => {
            subs.iter().all(|h| same_on_folded_text(h, nfkc))
        }
    }
}

/// Whether a character can occur in a folded view's text: it lowercases to itself and, with
/// NFKC, is in NFKC form on its own. A superset of what the view produces (look-alike folding
/// only removes characters), so the check stays on the safe side.
fn may_occur(c: char, nfkc: bool) -> bool {
    let mut lower = c.to_lowercase();
    if lower.next() != Some(c) || lower.next().is_some() {
        return false;
    }
    if !nfkc {
        return true;
    }
    let mut buf = [0u8; 4];
    match is_nfkc_quick(c.encode_utf8(&mut buf).chars()) {
        IsNormalized::Yes => true,
        // "Maybe" only for characters that may compose with what precedes them: keep them.
        IsNormalized::Maybe => true,
        IsNormalized::No => false,
    }
}

/// Whether a literal character matches the same as its case-folding orbit on folded text:
/// no other member of its orbit can occur there.
fn char_safe(c: char, nfkc: bool) -> bool {
    if c.is_ascii() {
        static ASCII: OnceLock<[[bool; 128]; 2]> = OnceLock::new();
        let table = ASCII.get_or_init(|| {
            let mut t = [[false; 128]; 2];
            for (i, row) in t.iter_mut().enumerate() {
                for (b, slot) in row.iter_mut().enumerate() {
                    *slot = orbit_safe(char::from(b as u8), i == 1);
                }
            }
            t
        });
        return table[usize::from(nfkc)][c as usize];
    }
    orbit_safe(c, nfkc)
}

fn orbit_safe(c: char, nfkc: bool) -> bool {
    let single = ClassUnicode::new([ClassUnicodeRange::new(c, c)]);
    class_safe(&single, nfkc)
}

/// Whether folding `class` adds only characters the folded text cannot hold. Remembered per
/// class: policies repeat the same few (`\s`, `\w`) hundreds of times, and folding a large
/// class costs more than parsing the pattern.
fn class_safe(class: &ClassUnicode, nfkc: bool) -> bool {
    /// A class by NFKC-ness and ranges → whether it is safe.
    type Seen = HashMap<(bool, Vec<(char, char)>), bool>;
    thread_local! {
        static SEEN: RefCell<Seen> = RefCell::new(HashMap::new());
    }
    let key = (
        nfkc,
        class
            .ranges()
            .iter()
            .map(|r| (r.start(), r.end()))
            .collect::<Vec<_>>(),
    );
    if let Some(known) = SEEN.with(|s| s.borrow().get(&key).copied()) {
        return known;
    }
    let safe = fold_adds_nothing_occurring(class, nfkc);
    SEEN.with(|s| s.borrow_mut().insert(key, safe));
    safe
}

fn fold_adds_nothing_occurring(class: &ClassUnicode, nfkc: bool) -> bool {
    added_by_fold(class)
        .ranges()
        .iter()
        .all(|r| (r.start()..=r.end()).all(|d| !may_occur(d, nfkc)))
}

/// The characters folding `class` adds: `fold(C) − C`. Folding walks every character of a
/// range, so a large class (`.`, `[^a-z]`, `\S`) is handled through its small complement N:
/// a character of N is added exactly when its orbit leaves N, i.e. `N ∩ fold(fold(N) − N)`.
fn added_by_fold(class: &ClassUnicode) -> ClassUnicode {
    let size: u64 = class
        .ranges()
        .iter()
        .map(|r| u64::from(r.end()) - u64::from(r.start()) + 1)
        .sum();
    if size <= 0x8_0000 {
        let mut folded = class.clone();
        folded.case_fold_simple();
        folded.difference(class);
        return folded;
    }
    let mut outside = class.clone();
    outside.negate();
    let mut leaving = outside.clone();
    leaving.case_fold_simple();
    leaving.difference(&outside);
    leaving.case_fold_simple();
    leaving.intersect(&outside);
    leaving
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safe(pattern: &str, nfkc: bool) -> bool {
        let hir = regex_syntax::ParserBuilder::new()
            .build()
            .parse(pattern)
            .unwrap();
        same_on_folded_text(&hir, nfkc)
    }

    #[test]
    fn lower_case_words_and_perl_classes_read_as_written() {
        assert!(safe(r"(?-u:\b)pipe\s?bombs?(?-u:\b)", true));
        assert!(safe(r"[a-z0-9._%+-]{1,64}@[a-z0-9-]{1,63}", true));
        assert!(safe(r"\w{2,8}\d\s", true));
        assert!(safe(r"someone[’']s café", true));
        assert!(safe(r"(?-u)\bsk-[a-z0-9]{20}", true));
    }

    #[test]
    fn upper_case_and_folding_classes_keep_the_case_insensitive_parse() {
        assert!(!safe("AKIA", true));
        assert!(!safe("[A-Z0-9]{16}", true));
        assert!(!safe("(?-u)[A-Z]", true));
        assert!(!safe("[^a-z]", true));
        assert!(!safe("É", true));
        // Without NFKC the long s stays in the text and `s` would miss it.
        assert!(!safe("sarin", false));
        assert!(safe("sarin", true));
        // Both final and medial sigma are lower case: `σ` folds to `ς` too.
        assert!(!safe("σ", true));
    }

    #[test]
    fn large_classes_fold_through_their_complement() {
        for pattern in [
            ".",
            r"\S",
            r"\W",
            "[^a-z]",
            "[^A-Z]",
            r"[^\s]",
            "[^σ]",
            r"\p{Greek}",
        ] {
            let class = match regex_syntax::Parser::new()
                .parse(pattern)
                .unwrap()
                .into_kind()
            {
                HirKind::Class(Class::Unicode(c)) => c,
                other => panic!("{pattern}: {other:?}"),
            };
            let mut direct = class.clone();
            direct.case_fold_simple();
            direct.difference(&class);
            assert_eq!(added_by_fold(&class), direct, "{pattern}");
        }
        assert!(safe(".", true));
        assert!(safe(r"[^\s]{2}", true));
    }

    /// The shipped policies' patterns and a few that probe the edges.
    fn patterns() -> Vec<String> {
        let mut pats: Vec<String> = [
            r"(?-u:\b)sk-[a-z0-9]{4}",
            r"kelvin|sarin|straße|café|σοφία",
            r"[a-z]{2}\s[’']s",
            r"(?-u:\b)\w+ing(?-u:\b)",
            r"[^a-z ]{2}",
            r"AKIA[A-Z0-9]{4}",
            r"ǆ|ǅ|dž",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for file in ["default.yaml", "secrets.yaml", "pii.yaml"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("policies")
                .join(file);
            let text = std::fs::read_to_string(path).unwrap();
            let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
            collect(&doc, &mut pats);
        }
        pats
    }

    fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value;
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v.as_str()) {
                        ("regex", Some(p)) => out.push(p.to_owned()),
                        _ => collect(v, out),
                    }
                }
            }
            Value::Array(s) => s.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }

    type Pair = (
        String,
        regex_automata::meta::Regex,
        regex_automata::meta::Regex,
    );

    /// Each pattern the check lets through, built as written and case-insensitively.
    fn pairs() -> &'static [Pair] {
        static PAIRS: OnceLock<Vec<Pair>> = OnceLock::new();
        PAIRS.get_or_init(|| {
            let all = patterns();
            let pairs: Vec<Pair> = all
                .iter()
                .filter_map(|p| {
                    let cs = regex_syntax::ParserBuilder::new().build().parse(p).unwrap();
                    if !same_on_folded_text(&cs, true) {
                        return None;
                    }
                    let ci = regex_syntax::ParserBuilder::new()
                        .case_insensitive(true)
                        .build()
                        .parse(p)
                        .unwrap();
                    let build = |h: &Hir| {
                        regex_automata::meta::Regex::builder()
                            .build_from_hir(h)
                            .unwrap()
                    };
                    Some((p.clone(), build(&cs), build(&ci)))
                })
                .collect();
            // Most shipped patterns are written in lower case: the check must let them through.
            assert!(
                pairs.len() * 2 > all.len(),
                "{} of {}",
                pairs.len(),
                all.len()
            );
            pairs
        })
    }

    fn spans(re: &regex_automata::meta::Regex, hay: &str) -> Vec<(usize, usize)> {
        re.find_iter(hay).map(|m| (m.start(), m.end())).collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// On text the default view produced, every pattern the check lets through finds the
        /// same matches parsed as written as parsed case-insensitively.
        #[test]
        fn written_parse_matches_like_the_case_insensitive_one(
            words in proptest::collection::vec(
                proptest::sample::select(vec![
                    "Kelvin", "\u{212A}elvin", "ſarin", "SARIN", "Straße", "STRASSE", "ẞ",
                    "Café", "CAFÉ", "ΣΟΦΊΑ", "σοφίας", "İ", "ı", "ǅ", "DŽ", "ﬁre", "Ｋ",
                    "pipe", "bomb", "sk-AB12", "sk-ab12", "AKIAZZ12", "don’t", "kill", "how",
                    "to", "make", "someone", "people", "é", " ", "\n", "-", ".", "7",
                ]),
                1..24,
            )
        ) {
            let text = crate::text::normalize_str(crate::text::NormalizeOptions::all(), &words.concat());
            for (p, a, b) in pairs() {
                proptest::prop_assert_eq!(spans(a, &text), spans(b, &text), "{} on {:?}", p, text);
            }
        }
    }
}
