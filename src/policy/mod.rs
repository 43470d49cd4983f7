//! The policy file format: what a policy file may say, and what is wrong with one.
//!
//! This module is the *syntax* of a policy, as `regex-syntax` is the syntax of a regex: strict
//! raw serde types ([`raw`], unknown fields rejected), hardened YAML parsing ([`parse_yaml`]:
//! duplicate keys rejected, alias and size budgets), includes collected into [`Unit`]s, and
//! [`Diagnostic`]s with `file:line:col`. The vocabulary the whole crate speaks — [`Stage`],
//! [`Action`], [`Severity`] — lives here too. Compiling and running a policy is the
//! `engine`'s job; this module imports nothing from it.
//!
//! ```
//! use deliberate::policy::parse_yaml;
//! use deliberate::policy::raw::RawPolicy;
//!
//! let raw: RawPolicy = parse_yaml(r#"
//! policy: example
//! rules:
//!   - id: no-bombs
//!     match: {keywords: ["pipe bomb"]}
//!     action: block
//! "#).unwrap();
//! assert_eq!(raw.policy.value, "example");
//! assert_eq!(raw.rules[0].value.id.value, "no-bombs");
//!
//! // A misspelt field is an error that points at it.
//! let (loc, message) = parse_yaml::<RawPolicy>("policy: x\nrulez: []\n").unwrap_err();
//! assert_eq!((loc.line, loc.column), (2, 1));
//! assert!(message.contains("rulez"), "{message}");
//! ```

mod diag;
mod include;
pub mod raw;
pub mod raw_judge;
mod yaml;

pub use diag::{Diagnostic, Level, LoadError, Loc, Sink};
pub use include::{Unit, parse_units, read_units};
pub use raw::{InjectMode, InjectRole};
pub use yaml::{MAX_POLICY_BYTES, parse_yaml};

/// Where a stage of the data path is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Request messages, before the model sees them.
    Input,
    /// Model answers, before the client sees them.
    Output,
    /// Model reasoning fields.
    Reasoning,
}

impl Stage {
    /// All stages.
    pub const ALL: [Stage; 3] = [Stage::Input, Stage::Output, Stage::Reasoning];

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Input => "input",
            Stage::Output => "output",
            Stage::Reasoning => "reasoning",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::str::FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "input" => Ok(Stage::Input),
            "output" => Ok(Stage::Output),
            "reasoning" => Ok(Stage::Reasoning),
            other => Err(format!(
                "unknown stage `{other}` (input, output, reasoning)"
            )),
        }
    }
}

/// What a rule does, and what a decision comes to. Ordered by precedence: a decision takes the
/// most severe action among its findings (`Block` > `Redact` > `Flag` > `Allow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// For a rule: exempt overlapping matches of other rules. For a decision: nothing fired.
    Allow,
    /// Record, change nothing.
    Flag,
    /// Replace the matched spans.
    Redact,
    /// Refuse.
    Block,
}

impl Action {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Flag => "flag",
            Action::Redact => "redact",
            Action::Block => "block",
        }
    }
}

/// Rule severity (`medium` when a rule does not say).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Low.
    Low,
    /// Medium (the default).
    #[default]
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}
