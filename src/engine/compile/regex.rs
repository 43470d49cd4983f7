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
