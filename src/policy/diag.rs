//! Diagnostics: errors and warnings about a policy, each with file, line and column.

use std::fmt;
use std::path::{Path, PathBuf};

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The policy still loads.
    Warning,
    /// The policy cannot be used.
    Error,
}

/// One message about a policy file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub level: Level,
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub column: u64,
    /// The rule concerned, if any.
    pub rule: Option<String>,
    /// What is wrong and, where possible, what to do.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {level}: ",
            self.file.display(),
            self.line,
            self.column
        )?;
        if let Some(rule) = &self.rule {
            write!(f, "rule `{rule}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A source location inside a policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
}

impl From<serde_saphyr::Location> for Loc {
    fn from(l: serde_saphyr::Location) -> Self {
        Loc {
            line: l.line(),
            column: l.column(),
        }
    }
}

/// Collects diagnostics for one file: the compiler reports through it, so every message
/// names the file it is about.
#[derive(Debug)]
pub struct Sink<'a> {
    /// The file the diagnostics are about.
    pub file: &'a Path,
    /// Where they go.
    pub out: &'a mut Vec<Diagnostic>,
}

impl Sink<'_> {
    /// Records a diagnostic of `level` at `loc`, about `rule` if given.
    pub fn push(&mut self, level: Level, loc: Loc, rule: Option<&str>, message: impl Into<String>) {
        self.out.push(Diagnostic {
            level,
            file: self.file.to_path_buf(),
            line: loc.line,
            column: loc.column,
            rule: rule.map(str::to_owned),
            message: message.into(),
        });
    }

    /// Records an error: the policy will not load.
    pub fn error(&mut self, loc: Loc, rule: Option<&str>, message: impl Into<String>) {
        self.push(Level::Error, loc, rule, message);
    }

    /// Records a warning: the policy still loads.
    pub fn warn(&mut self, loc: Loc, rule: Option<&str>, message: impl Into<String>) {
        self.push(Level::Warning, loc, rule, message);
    }
}

/// Loading a policy failed; the diagnostics say why.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(.diagnostics))]
pub struct LoadError {
    /// Everything found, errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
}

fn render(diags: &[Diagnostic]) -> String {
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.level == Level::Error)
        .map(ToString::to_string)
        .collect();
    if errors.is_empty() {
        "policy failed to load".to_owned()
    } else {
        errors.join("\n")
    }
}
