//! Raw policy types: exactly what the YAML file says, strictly typed.
//!
//! Every struct rejects unknown fields. Values that later checks need to point at carry their
//! source location through [`Spanned`], so diagnostics can say `file:line:col`. An absent
//! optional field is `None` (serde's rule for `Option`); lists and flags say their default with
//! `#[serde(default)]`. The engine's compiler turns these into an `engine::CompiledPolicy`.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Severity, Stage};
use crate::text::Validator;

/// A whole policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Policy name (`policy: default`).
    pub policy: Spanned<String>,
    /// Free-form version string, reported in headers and audit records.
    pub version: Option<String>,
    /// One-line description.
    pub description: Option<String>,
    /// Other policy files this one builds on, relative to this file.
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    /// Default normalization steps for every rule.
    pub normalize: Option<Vec<Spanned<NormalizeStep>>>,
    /// The written spec shown to the model.
    pub spec: Option<RawSpec>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<Spanned<RawRule>>,
    /// Refusal template; `{section}`, `{rule}` and `{title}` are filled in.
    pub refusal: Option<String>,
    /// When a judge model classifies texts against the spec (used only when the operator
    /// configures a judge).
    pub judge: Option<Spanned<super::raw_judge::RawJudgePolicy>>,
}

/// One normalization step.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum NormalizeStep {
    /// Unicode compatibility composition (fullwidth letters, ligatures, superscripts …).
    Nfkc,
    /// Case folding (lower-casing, character by character).
    Casefold,
    /// Removal of invisible characters: zero-width, soft hyphen, bidi controls, tags,
    /// variation selectors.
    StripInvisible,
    /// Folding of look-alike letters from other scripts (Cyrillic `а`, Greek `ο`) to Latin.
    Confusables,
    /// Reading `0`, `1`, `3`, `4`, `5`, `7`, `8`, `@`, `$` as the letters they stand for
    /// (opt-in; for keyword rules).
    Leetspeak,
    /// Removal of diacritical marks (`é` → `e`, combining accents put on letters to evade).
    StripMarks,
    /// Reading any run of white space, control characters, `-`, `_` and `.` as one space
    /// (on by default for keywords; opt-in for regexes).
    Separators,
    /// Reading emoji and pictographic symbols as separators (`pipe💣bomb`).
    Symbols,
    /// Collapsing letters spelled one by one (`p i p e`, `p.i.p.e`, `p/i/p/e`).
    LetterSpacing,
    /// Dropping markdown emphasis and code marks inside words (`pi**pe**`).
    Markup,
    /// Decoding HTML character references and percent-escapes (`&#98;`, `%62`).
    Entities,
    /// Decoding base64 / base64url runs of 16 or more characters into readable text.
    Base64,
    /// Decoding hex runs of 16 or more digits into readable text.
    Hex,
    /// Reading the text through ROT13 (an optional view for a copy of a rule).
    Rot13,
    /// Reading each word backwards (an optional view for a rule of its own: reversed text
    /// reads as its words in reverse order).
    Reverse,
    /// Joining a key-like token split across lines or string literals (for secret rules).
    Joins,
    /// Reading words run together as words (`makesarin` → `make sarin`).
    Segment,
}

/// How much of the spec to inject.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectMode {
    /// Sections whose triggers or input rules fired, plus `always` sections.
    #[default]
    Relevant,
    /// Every section.
    All,
    /// Nothing.
    Off,
}

/// Which message role carries the injected spec.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectRole {
    /// A `system` message.
    #[default]
    System,
    /// A `developer` message (newer OpenAI models).
    Developer,
}

/// The `spec:` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    /// `relevant` (default), `all` or `off`.
    #[serde(default)]
    pub inject: InjectMode,
    /// `system` (default) or `developer`.
    #[serde(default)]
    pub role: InjectRole,
    /// Text placed before the sections.
    pub preamble: Option<String>,
    /// If set, the preamble asks the model to deliberate inside `<tag>…</tag>`, and the
    /// gateway strips that block from answers.
    pub deliberation_tag: Option<Spanned<String>>,
    /// The sections.
    #[serde(default)]
    pub sections: Vec<Spanned<RawSection>>,
}

/// One spec section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSection {
    /// Stable id, referenced by rules.
    pub id: Spanned<String>,
    /// Human title.
    pub title: Option<String>,
    /// Policy text shown to the model.
    pub text: String,
    /// Inject this section whenever injection is on, relevant or not.
    #[serde(default)]
    pub always: bool,
    /// Extra match that makes the section relevant (besides its input rules firing).
    pub triggers: Option<Spanned<RawMatch>>,
    /// What a judge model needs to classify against this section: definitions, what
    /// violates, what is safe, labeled examples.
    pub judge: Option<Spanned<super::raw_judge::RawSectionJudge>>,
}

/// What happens when a rule fires.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawAction {
    /// Refuse the whole request / answer.
    Block,
    /// Replace the matched spans.
    Redact,
    /// Record only.
    Flag,
    /// Exempt overlapping matches of other rules.
    Allow,
    /// Send the text to the judge model, which decides; without a judge the rule's
    /// `fallback` applies (default `block`).
    Escalate,
}

/// One rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Unique id, e.g. `privacy.card-number`.
    pub id: Spanned<String>,
    /// What the rule is for.
    pub description: Option<String>,
    /// The spec section it enforces.
    pub section: Option<Spanned<String>>,
    /// Stages; default `[input, output]`.
    pub stages: Option<Vec<Stage>>,
    /// Input roles read by this rule; default `[user, tool]`.
    pub roles: Option<Vec<String>>,
    /// The match.
    #[serde(rename = "match")]
    pub matcher: Spanned<RawMatch>,
    /// The action.
    pub action: RawAction,
    /// For `escalate` rules: the action without a judge (or when it fails closed):
    /// `block` (default), `redact` or `flag`.
    pub fallback: Option<Spanned<RawAction>>,
    /// Replacement text for `redact`.
    pub replacement: Option<String>,
    /// Severity.
    #[serde(default)]
    pub severity: Severity,
    /// Per-rule normalization override.
    pub normalize: Option<Vec<Spanned<NormalizeStep>>>,
    /// For `allow` rules: which rules they exempt (default: all).
    pub overrides: Option<Vec<Spanned<String>>>,
    /// Examples.
    pub tests: Option<RawRuleTests>,
}

/// Inline examples of a rule.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRuleTests {
    /// Texts the rule must match.
    #[serde(default, rename = "match")]
    pub should_match: Vec<String>,
    /// Texts the rule must not match.
    #[serde(default)]
    pub no_match: Vec<String>,
}

/// A match expression. Exactly one of `keywords`, `regex`, `all`, `any`, `not`, `near` is set;
/// the other fields are options of that kind.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// Literal phrases.
    pub keywords: Option<Vec<String>>,
    /// A regular expression.
    pub regex: Option<String>,
    /// Every sub-match must match.
    pub all: Option<Vec<Spanned<RawMatch>>>,
    /// At least one sub-match must match.
    pub any: Option<Vec<Spanned<RawMatch>>>,
    /// The sub-match must not match anywhere in the text.
    pub not: Option<Box<Spanned<RawMatch>>>,
    /// Two sub-matches within `within` characters of each other.
    pub near: Option<Vec<Spanned<RawMatch>>>,
    /// For `near`: the largest gap, in characters.
    pub within: Option<u32>,
    /// Fire only when at least this many matches are found.
    pub min_count: Option<u32>,
    /// For `keywords`: whole words only (default true).
    pub word: Option<bool>,
    /// For `regex`: a validator run on each match (`luhn`, `iban`).
    pub validate: Option<Validator>,
    /// For `regex`: declared upper bound of a match's length in bytes, for patterns whose
    /// length the compiler cannot bound.
    pub max_len: Option<u32>,
}

/// A test file (`policies/tests/*.yaml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTestFile {
    /// Policy file the cases run against, relative to the test file. Optional when the
    /// command names the policy.
    pub policy: Option<String>,
    /// The cases.
    pub cases: Vec<Spanned<RawTestCase>>,
}

/// One case of a test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTestCase {
    /// Name shown in reports.
    pub name: Option<String>,
    /// The text.
    pub text: String,
    /// Stage (default input).
    pub stage: Option<Stage>,
    /// Role for input cases (default user).
    pub role: Option<String>,
    /// Expected action.
    pub expect: RawExpectAction,
    /// Rule ids expected among the findings.
    pub rules: Option<Vec<String>>,
    /// Expected output text after actions.
    pub output: Option<String>,
    /// Expected finding spans `[start, end]` (byte offsets).
    pub spans: Option<Vec<[usize; 2]>>,
}

/// The action a test case expects (`allow` = nothing fired).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawExpectAction {
    /// Nothing fired.
    Allow,
    /// A flag at most.
    Flag,
    /// Redaction.
    Redact,
    /// Block.
    Block,
}
