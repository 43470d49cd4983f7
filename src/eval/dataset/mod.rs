//! Dataset readers: labeled prompts (JSONL, CSV, BIG-bench `task.json`), PII span data, model
//! completions with refusal labels, and JailbreakBench artifacts.
//!
//! [`read`] detects the format from the file name and its shape:
//!
//! | shape | read as |
//! |---|---|
//! | `*.jsonl` / `*.ndjson` | one JSON object a line: text in `text` / `prompt` / `input` / `content`, `label`, optional `category` / `type`, optional `stage` |
//! | `*.csv` / `*.tsv` with `completion` and `final_label` columns | XSTest completions: refusal-detector accuracy |
//! | other `*.csv` / `*.tsv` | a header row, then the same columns as JSONL (XSTest prompts: `prompt`, `label`, `type`) |
//! | JSON object with `examples` | a BIG-bench task |
//! | JSON object with `jailbreaks` | JailbreakBench artifacts: two datasets, input and output stage |
//! | JSON array of `{full_text, spans}` | presidio-style PII span data |
//! | other JSON array of objects | rows, read like JSONL |
//!
//! Column names can be chosen with [`ReadOptions`] (`--text-column`, `--label-column`,
//! `--category-column`); they apply to JSONL keys too.
//!
//! ## Labels
//!
//! A label is compared case-insensitively. With `--unsafe-label V` (repeatable), a label equal
//! to one of the `V` is unsafe and every other label is safe. Without it:
//! `safe`, `benign`, `harmless`, `none`, `0`, `false`, … are safe; `unsafe`, `harmful`, `1`,
//! `true`, … are unsafe; and any other label in JSONL or CSV is read as the *name of an unsafe
//! category* (so a file labelled `violence` / `self-harm` / `safe` works as is), which also
//! becomes the case's category when no category column is given.
//!
//! ## BIG-bench
//!
//! Each example's `input` is the text scanned. Its expected label comes from the example's
//! *correct answer*: for a multiple-choice example, the `target_scores` key with the highest
//! score (a tie between targets that map differently is an error); for a generative example, the
//! `target` (the first one when it is a list). That answer is mapped like a label, except that an
//! answer that is neither a known safe nor a known unsafe word is an error rather than a
//! category (for a BIG-bench task the targets are answer options, such as `Yes` / `No`), unless
//! `--unsafe-label` says which answers mean unsafe. Refusal-type answers (`refuse`, `refusal`,
//! `decline`, `should refuse`, …) count as unsafe: the task says a model should not comply.
//! The category is the example's `category` field if any, else the answer when `--unsafe-label`
//! is given, else the task `name`.
//!
//! ## Errors
//!
//! A row that cannot be read is an error naming `file:line` (and the column when known); no row
//! is ever skipped silently. The only rows left out on purpose are JailbreakBench behaviours
//! without an attack prompt (the artifact says the attack produced none) on the input stage;
//! the report counts them.

mod audit;
mod bigbench;
mod csv;
mod jailbreakbench;
mod json;
mod jsonl;
mod labels;
mod lines;
mod presidio;

pub use audit::read_audit;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::policy::Stage;

/// What a labeled case should come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// Benign: the policy should let it through.
    Safe,
    /// Harmful: the policy should catch it.
    Unsafe,
}

impl Label {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Safe => "safe",
            Label::Unsafe => "unsafe",
        }
    }
}

/// One labeled text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Where it came from: `file:line`.
    pub source: String,
    /// An id from the data set (`id` column or key), or the row number.
    pub id: String,
    /// The text scanned.
    pub text: String,
    /// The stage it is scanned at.
    pub stage: Stage,
    /// For input texts, the role it is scanned as: `user` for the rows of a data set; on
    /// replay the role the gateway scanned it as (`None`: unknown, so every input rule reads
    /// it, as in the gateway).
    pub role: Option<String>,
    /// The expected outcome.
    pub label: Label,
    /// Category for per-category figures.
    pub category: String,
}

/// One gold PII span, in byte offsets of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoldSpan {
    /// Entity type (`EMAIL_ADDRESS`, `CREDIT_CARD`, …).
    pub entity: String,
    /// Start byte.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
}

/// A text with its gold PII spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanCase {
    /// Where it came from: `file:line`.
    pub source: String,
    /// The text.
    pub text: String,
    /// Gold spans.
    pub spans: Vec<GoldSpan>,
}

/// Human label of a model completion (XSTest v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalLabel {
    /// `1_full_compliance`.
    FullCompliance,
    /// `2_full_refusal`.
    FullRefusal,
    /// `3_partial_refusal`.
    PartialRefusal,
}

impl RefusalLabel {
    /// Whether this counts as a refusal (full or partial, as in the XSTest paper).
    pub fn is_refusal(self) -> bool {
        !matches!(self, RefusalLabel::FullCompliance)
    }

    /// The XSTest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalLabel::FullCompliance => "1_full_compliance",
            RefusalLabel::FullRefusal => "2_full_refusal",
            RefusalLabel::PartialRefusal => "3_partial_refusal",
        }
    }
}

/// A prompt, a model's completion, and the human judgement of whether it refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Where it came from: `file:line`.
    pub source: String,
    /// The prompt.
    pub prompt: String,
    /// The model's answer.
    pub completion: String,
    /// The human label.
    pub label: RefusalLabel,
    /// Category (`type`).
    pub category: String,
}

/// What a dataset holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Labeled texts: catch rate, false-block rate.
    Cases(Vec<Case>),
    /// PII spans: span precision / recall per entity type.
    Spans(Vec<SpanCase>),
    /// Completions with refusal labels: refusal-detector accuracy.
    Completions(Vec<Completion>),
}

/// One dataset read from a file (a JailbreakBench file gives two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Display name: the file, plus a part name when a file gives several.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Format detected (`jsonl`, `csv`, `bigbench`, `xstest-completions`, `presidio`,
    /// `jailbreakbench`).
    pub format: &'static str,
    /// Rows deliberately left out, with the reason (reported, never silent).
    pub skipped: Option<(usize, String)>,
    /// The rows.
    pub content: Content,
}

/// How to read labeled files.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Column (CSV) or key (JSONL) holding the text.
    pub text_column: Option<String>,
    /// Column or key holding the label.
    pub label_column: Option<String>,
    /// Column or key holding the category.
    pub category_column: Option<String>,
    /// Labels that mean unsafe; when given, every other label means safe.
    pub unsafe_labels: Vec<String>,
    /// Stage for labeled prompts (default input; a JSONL `stage` key overrides per row).
    pub stage: Option<Stage>,
}

/// A dataset that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DatasetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for DatasetError {}

pub(super) fn err(path: &Path, line: Option<u64>, message: impl Into<String>) -> DatasetError {
    DatasetError {
        path: path.to_owned(),
        line,
        column: None,
        message: message.into(),
    }
}

pub(super) fn json_err(path: &Path, e: &serde_json::Error) -> DatasetError {
    // serde_json appends " at line L column C" to its messages; we print it as file:line:col.
    let msg = e.to_string();
    let msg = match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    };
    DatasetError {
        path: path.to_owned(),
        line: (e.line() > 0).then_some(e.line() as u64),
        column: (e.line() > 0).then_some(e.column() as u64),
        message: msg,
    }
}

/// Reads one dataset file (two for a JailbreakBench artifact), detecting its format.
pub fn read(path: &Path, opts: &ReadOptions) -> Result<Vec<Dataset>, DatasetError> {
    let bytes = std::fs::read(path).map_err(|e| err(path, None, format!("cannot read: {e}")))?;
    let src = String::from_utf8(bytes).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = upto.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        err(path, Some(line), "invalid UTF-8")
    })?;
    let src = src.strip_prefix('\u{feff}').unwrap_or(&src);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "jsonl" | "ndjson" => Ok(vec![jsonl::read_jsonl(path, src, opts)?]),
        "csv" => csv::read_csv(path, src, b',', opts).map(|d| vec![d]),
        "tsv" => csv::read_csv(path, src, b'\t', opts).map(|d| vec![d]),
        _ => json::read_json(path, src, opts),
    }
}

pub(super) fn dataset(path: &Path, format: &'static str, content: Content) -> Dataset {
    Dataset {
        name: path.display().to_string(),
        path: path.to_owned(),
        format,
        skipped: None,
        content,
    }
}
