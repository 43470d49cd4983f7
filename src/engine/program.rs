//! The compiled program: what [`compile`](super::compile) builds from a policy file and the
//! scanners run. Immutable once built; shared behind an `Arc`, a reload builds a new one.
//!
//! The public part is what a caller reads (rules, spec, warnings) and calls (scans, refusal
//! texts); the match trees, leaves and automata are the engine's own.

use std::path::PathBuf;
use std::sync::Arc;

use super::live::{KeywordDepths, LiveDfa};
use crate::policy::{Action, Diagnostic, InjectMode, InjectRole, Loc, Severity, Stage};
use crate::text::{NormalizeOptions, Validator};

/// Bytes of lookahead a regex assertion (`\b`, `$`) can need: one character.
pub(crate) const LOOKAHEAD: usize = 4;

/// The spec shown to the model.
#[derive(Debug, Clone)]
pub struct Spec {
    /// How much to inject.
    pub inject: InjectMode,
    /// As which role.
    pub role: InjectRole,
    /// Text before the sections.
    pub preamble: String,
    /// Tag the model deliberates in, stripped from answers.
    pub deliberation_tag: Option<String>,
    /// The sections, in file order (included files first).
    pub sections: Vec<Section>,
}

/// One section of the spec.
#[derive(Debug, Clone)]
pub struct Section {
    /// Stable id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Text for the model.
    pub text: String,
    /// Always injected.
    pub always: bool,
    /// What a judge model needs to classify against this section.
    pub judge: Option<super::judge_policy::SectionJudge>,
    pub(crate) trigger: Option<Node>,
}

/// A rule's inline examples.
#[derive(Debug, Clone, Default)]
pub struct RuleExamples {
    /// Must fire.
    pub should_match: Vec<String>,
    /// Must not fire.
    pub no_match: Vec<String>,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique id.
    pub id: String,
    /// Description.
    pub description: Option<String>,
    /// Spec section.
    pub section: Option<String>,
    /// Stages it applies to.
    pub stages: Vec<Stage>,
    /// Input roles it reads.
    pub roles: Vec<String>,
    /// Action (for an `escalate` rule: its fallback, what it does without a judge).
    pub action: Action,
    /// Whether the rule escalates to the judge instead of deciding.
    pub escalate: bool,
    /// Replacement for redactions.
    pub replacement: String,
    /// Severity.
    pub severity: Severity,
    /// Examples.
    pub examples: RuleExamples,
    /// Where it is defined.
    pub file: PathBuf,
    /// Where in the file.
    pub loc: Loc,
    pub(crate) node: Node,
    /// The leaves `node` uses, each once.
    pub(crate) leaves: Vec<usize>,
    /// For allow rules: the rules they exempt (`None`: all).
    pub(crate) overrides: Option<Vec<usize>>,
    /// Farthest distance, in original bytes, between a match's end and a partner that can
    /// still change whether it fires; `None` when unbounded (`all`, `not`, `min_count`).
    pub(crate) reach: Option<usize>,
    /// Whether the rule uses `not` (it can only be decided at the end of a text).
    pub(crate) has_not: bool,
}

impl Rule {
    /// Whether the rule applies to `stage`.
    pub fn applies_to(&self, stage: Stage) -> bool {
        self.stages.contains(&stage)
    }

    /// Whether an input rule reads messages of `role` (`None`: no role, always read).
    pub fn reads_role(&self, role: Option<&str>) -> bool {
        role.is_none_or(|r| self.roles.iter().any(|x| x == r || x == "*"))
    }

    /// Whether the stream scanner can decide this rule before the text ends.
    pub fn is_bounded(&self) -> bool {
        self.reach.is_some()
    }
}

/// A match tree over leaves.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Leaf(usize),
    Any(Vec<Node>),
    All(Vec<Node>),
    Not(Box<Node>),
    Near {
        a: Box<Node>,
        b: Box<Node>,
        within: usize,
    },
    Count {
        node: Box<Node>,
        min: usize,
    },
}

impl Node {
    /// Calls `f` with every leaf the tree uses (a leaf used twice, twice).
    pub(crate) fn for_each_leaf(&self, f: &mut impl FnMut(usize)) {
        match self {
            Node::Leaf(i) => f(*i),
            Node::Any(v) | Node::All(v) => v.iter().for_each(|n| n.for_each_leaf(f)),
            Node::Not(n) | Node::Count { node: n, .. } => n.for_each_leaf(f),
            Node::Near { a, b, .. } => {
                a.for_each_leaf(f);
                b.for_each_leaf(f);
            }
        }
    }
}

/// A leaf matcher.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub kind: LeafKind,
}

#[derive(Debug, Clone)]
pub(crate) enum LeafKind {
    Keywords,
    Regex(Box<RegexLeaf>),
}

#[derive(Debug, Clone)]
pub(crate) struct RegexLeaf {
    /// The leaf's own regex, for the spans of its hits: compiled the first time a scan needs
    /// them (the view's [`RegexSet`] says which leaves match at all, so most scans never do).
    pub regex: LeafRegex,
    /// Largest match length in normalized bytes (computed or declared).
    pub max_len: usize,
    pub validate: Option<Validator>,
    /// Tells where a match still in progress could start; `Err`: why this regex falls back to
    /// the worst-case back-off.
    pub live: Result<LiveDfa, String>,
}

/// Matchers for one normalization view of one stage.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub opts: NormalizeOptions,
    pub keywords: Option<KeywordSet>,
    /// Regex leaves of this view.
    pub regexes: Vec<usize>,
    /// One pass that tells which regexes match at all; shared by the stages whose views have
    /// the same regexes.
    pub regex_set: Option<Arc<RegexSet>>,
    /// For a view of keywords alone whose only rewrite step is ROT13 or reversed words:
    /// strings one of which its per-character pass must hold for any keyword to match the
    /// view's text (see [`pass_prefilter`](crate::engine::compile)). A buffered scan whose pass
    /// holds none skips the view's rewrite pass: the view has no hits.
    pub pass_prefilter: Option<aho_corasick::AhoCorasick>,
}

/// A multi-pattern regex that reports every pattern matching a text (`MatchKind::All`),
/// pattern `i` being `View::regexes[i]`.
///
/// Only a forward search is ever asked of it (which patterns match, not where), so it holds a
/// forward Thompson NFA, a lazy DFA over it and a PikeVM for when the lazy DFA gives up (its
/// cache thrashing, or a Unicode `\b` on non-ASCII text). `regex-automata`'s meta regex would
/// also compile every pattern a second time, reversed, for searches this set never runs: that
/// was a third of loading the default policy.
pub(crate) struct RegexSet {
    dfa: regex_automata::hybrid::dfa::DFA,
    pikevm: regex_automata::nfa::thompson::pikevm::PikeVM,
    caches: regex_automata::util::pool::Pool<SetCache, SetCacheFn>,
}

/// The lazy DFA's cache, and the PikeVM's once it was needed (it is large: a slot table per
/// NFA state, so it is only made for a search the lazy DFA gave up on).
type SetCache = (
    regex_automata::hybrid::dfa::Cache,
    Option<regex_automata::nfa::thompson::pikevm::Cache>,
);
type SetCacheFn =
    Box<dyn Fn() -> SetCache + Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe>;

impl std::fmt::Debug for RegexSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegexSet")
            .field("patterns", &self.pikevm.get_nfa().pattern_len())
            .finish_non_exhaustive()
    }
}

impl RegexSet {
    /// Compiles `hirs` together under [`set_config`]'s limits.
    pub(crate) fn build(hirs: &[&regex_syntax::hir::Hir]) -> Result<RegexSet, String> {
        use regex_automata::hybrid::dfa::DFA;
        use regex_automata::nfa::thompson::{self, pikevm::PikeVM};
        let limit = set_limit();
        let nfa = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .nfa_size_limit(Some(limit))
                    .shrink(false)
                    .which_captures(thompson::WhichCaptures::Implicit),
            )
            .build_many_from_hir(hirs)
            .map_err(|e| e.to_string())?;
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(regex_automata::MatchKind::All)
                    .unicode_word_boundary(true)
                    .cache_capacity(limit)
                    .minimum_cache_clear_count(Some(3))
                    .minimum_bytes_per_state(Some(10)),
            )
            .build_from_nfa(nfa.clone())
            .map_err(|e| e.to_string())?;
        let pikevm = PikeVM::builder()
            .configure(PikeVM::config().match_kind(regex_automata::MatchKind::All))
            .build_from_nfa(nfa)
            .map_err(|e| e.to_string())?;
        let d = dfa.clone();
        let create: SetCacheFn = Box::new(move || (d.create_cache(), None));
        Ok(RegexSet {
            dfa,
            pikevm,
            caches: regex_automata::util::pool::Pool::new(create),
        })
    }

    /// Which patterns match `hay[start..]` (with `hay[..start]` as look-behind context).
    pub(crate) fn matches_at(&self, hay: &str, start: usize) -> SetMatches {
        let input = regex_automata::Input::new(hay).range(start..);
        let mut set = regex_automata::PatternSet::new(self.pikevm.get_nfa().pattern_len());
        let mut caches = self.caches.get();
        let (dfa_cache, vm_cache) = &mut *caches;
        if self
            .dfa
            .try_which_overlapping_matches(dfa_cache, &input, &mut set)
            .is_err()
        {
            set.clear();
            let vm_cache = vm_cache.get_or_insert_with(|| self.pikevm.create_cache());
            self.pikevm
                .which_overlapping_matches(vm_cache, &input, &mut set);
        }
        SetMatches(set)
    }
}

/// The patterns of a [`RegexSet`] that matched.
#[derive(Debug, Clone)]
pub(crate) struct SetMatches(regex_automata::PatternSet);

impl SetMatches {
    /// Whether pattern `i` matched.
    pub(crate) fn matched(&self, i: usize) -> bool {
        self.0.contains(regex_automata::PatternID::new_unchecked(i))
    }

    /// The patterns that matched, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().map(|p| p.as_usize())
    }
}

/// A regex compiled on first use from its parsed form. The policy loader has compiled the
/// same pattern forward inside its stage's [`RegexSet`] under the same size limit, and checked
/// each large pattern alone against [`REGEX_SIZE_LIMIT`] (an eighth of it), so the lazy build
/// (forward and reverse) stays within limits for any pattern a load accepted unless a pattern
/// the size heuristic let through has a reverse NFA over 16 MiB; should the build fail, the
/// scan fails closed (`matcher::next_regex_hit` reports the rest of the text as a hit).
#[derive(Debug, Clone)]
pub(crate) struct LeafRegex {
    pub hir: regex_syntax::hir::Hir,
    cell: std::sync::OnceLock<Result<regex_automata::meta::Regex, String>>,
}

impl LeafRegex {
    /// A regex to be compiled from `hir` when first used.
    pub(crate) fn new(hir: regex_syntax::hir::Hir) -> Self {
        LeafRegex {
            hir,
            cell: std::sync::OnceLock::new(),
        }
    }

    /// The compiled regex, compiling it now if no scan has yet.
    pub(crate) fn get(&self) -> Result<&regex_automata::meta::Regex, &str> {
        self.cell
            .get_or_init(|| {
                regex_automata::meta::Builder::new()
                    .configure(set_config())
                    .build_from_hir(&self.hir)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

/// Compiled size limit of one regex (the compiler checks each leaf against it).
pub const REGEX_SIZE_LIMIT: usize = 2 << 20;

/// The NFA, lazy-DFA cache and one-pass limits of a view's set and of each leaf regex.
fn set_limit() -> usize {
    REGEX_SIZE_LIMIT * 8
}

/// The regex engine's limits for each leaf regex: the same NFA limit as its view's set
/// ([`set_limit`]). The set compiles its patterns forward only; a leaf also compiles its
/// pattern reversed (to find where a match starts), which can be larger (2.2× for `\w{36}`),
/// so a leaf that fits in its set does not always fit alone: see [`LeafRegex`].
pub(crate) fn set_config() -> regex_automata::meta::Config {
    let limit = set_limit();
    regex_automata::meta::Config::new()
        .nfa_size_limit(Some(limit))
        .onepass_size_limit(Some(limit))
        .dfa_size_limit(Some(limit))
        .hybrid_cache_capacity(limit)
}

#[derive(Debug, Clone)]
pub(crate) struct KeywordSet {
    pub dfa: aho_corasick::dfa::DFA,
    /// Per pattern: its byte length and the leaves that use it, with their whole-word flag.
    pub patterns: Vec<(usize, Vec<(usize, bool)>)>,
    pub max_len: usize,
    /// Depth of every automaton state, for the live-match frontier; `None`: the longest
    /// keyword bounds it.
    pub depths: Option<KeywordDepths>,
}

/// Everything one stage needs.
#[derive(Debug, Clone, Default)]
pub(crate) struct StageIndex {
    pub views: Vec<View>,
    /// Rules of this stage, in policy order.
    pub rules: Vec<usize>,
    /// Holdback in normalized bytes.
    pub holdback: usize,
}

/// A policy ready to use: immutable, cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// Name.
    pub name: String,
    /// Version string.
    pub version: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Short hash of the source files, to tell versions apart.
    pub hash: String,
    /// The spec.
    pub spec: Spec,
    /// The rules.
    pub rules: Vec<Rule>,
    /// Refusal template.
    pub refusal: String,
    /// When and how a judge model classifies texts (used only when one is configured).
    pub judge: super::judge_policy::JudgePolicy,
    /// Source files, the main one first.
    pub sources: Vec<PathBuf>,
    /// Warnings found while compiling.
    pub warnings: Vec<Diagnostic>,
    pub(crate) leaves: Vec<Leaf>,
    pub(crate) stages: [StageIndex; 3],
    /// The words the `segment` step cuts run-together words into (`None`: no view reads it).
    pub(crate) lexicon: Option<crate::text::Lexicon>,
}

impl CompiledPolicy {
    /// `name@hash`, as shown in headers and audit records.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.hash)
    }

    /// Holdback of the stream scanner for `stage`: how far behind the received text the
    /// released text stays when no match is open. The larger of the longest keyword or regex
    /// match plus one character of look-ahead (normalized bytes) and the reach of `near` rules
    /// (original bytes); up to 3 bytes more to end on a character boundary, and the pieces of a
    /// normalization segment still open. Counted in normalized bytes, the original text held
    /// can be longer (invisible characters are stripped) or shorter (characters that expand).
    pub fn holdback(&self, stage: Stage) -> usize {
        self.stages[stage.index()].holdback
    }

    /// The words the `segment` step cuts run-together words into: those of the keyword and
    /// regex leaves that read it. `None` when no rule reads the step.
    pub fn lexicon(&self) -> Option<&crate::text::Lexicon> {
        self.lexicon.as_ref()
    }

    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The refusal text for a block by `rule`.
    pub fn refusal_for(&self, rule: Option<&Rule>) -> String {
        self.render_refusal(
            rule.and_then(|r| r.section.as_deref()).unwrap_or("policy"),
            rule.map_or("policy", |r| r.id.as_str()),
        )
    }

    /// The refusal template with `{section}`, its `{title}` and `{rule}` filled in.
    pub(crate) fn render_refusal(&self, section: &str, rule: &str) -> String {
        let title = self
            .spec
            .sections
            .iter()
            .find(|s| s.id == section)
            .map_or(section, |s| s.title.as_str());
        self.refusal
            .replace("{section}", section)
            .replace("{title}", title)
            .replace("{rule}", rule)
    }

    /// The replacement text of rule `rule_id`.
    pub fn replacement(&self, rule_id: &str) -> String {
        self.rule(rule_id)
            .map_or_else(|| "[redacted]".to_owned(), |r| r.replacement.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hir(pattern: &str) -> regex_syntax::hir::Hir {
        regex_syntax::Parser::new().parse(pattern).unwrap()
    }

    #[test]
    fn a_set_reports_every_pattern_that_matches_from_its_start() {
        let (a, b, c) = (hir("pipe bomb"), hir(r"bomb\w{0,3}"), hir("sarin"));
        let set = RegexSet::build(&[&a, &b, &c]).unwrap();
        let m = set.matches_at("a pipe bombs here", 0);
        assert_eq!(m.iter().collect::<Vec<_>>(), [0, 1]);
        // Look-behind context stays: from 7 only the second pattern can start.
        assert_eq!(
            set.matches_at("a pipe bombs here", 7)
                .iter()
                .collect::<Vec<_>>(),
            [1]
        );
        assert_eq!(set.matches_at("nothing", 0).iter().count(), 0);
    }

    #[test]
    fn a_unicode_word_boundary_on_non_ascii_text_falls_back_to_the_pikevm() {
        let (a, b) = (hir(r"\bcafé\b"), hir("noir"));
        let set = RegexSet::build(&[&a, &b]).unwrap();
        let hay = "un café noir";
        // The lazy DFA quits on the non-ASCII byte: the PikeVM must answer.
        let mut cache = set.dfa.create_cache();
        let mut probe = regex_automata::PatternSet::new(2);
        assert!(
            set.dfa
                .try_which_overlapping_matches(
                    &mut cache,
                    &regex_automata::Input::new(hay),
                    &mut probe
                )
                .is_err()
        );
        assert_eq!(set.matches_at(hay, 0).iter().collect::<Vec<_>>(), [0, 1]);
        assert_eq!(
            set.matches_at("cafés noirs", 0).iter().collect::<Vec<_>>(),
            [1]
        );
    }

    #[test]
    fn a_set_over_its_limits_is_an_error_not_a_panic() {
        let hirs: Vec<_> = (0..32)
            .map(|i| hir(&format!("{}{}\\w{{36}}", char::from(b'a' + i % 26), i / 26)))
            .collect();
        let refs: Vec<_> = hirs.iter().collect();
        assert!(RegexSet::build(&refs).is_err());
    }
}
