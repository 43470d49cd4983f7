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

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

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

fn err(path: &Path, line: Option<u64>, message: impl Into<String>) -> DatasetError {
    DatasetError {
        path: path.to_owned(),
        line,
        column: None,
        message: message.into(),
    }
}

fn json_err(path: &Path, e: &serde_json::Error) -> DatasetError {
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

// === labels ===

const SAFE_WORDS: &[&str] = &[
    "safe",
    "benign",
    "harmless",
    "none",
    "neutral",
    "normal",
    "clean",
    "legitimate",
    "ok",
    "allow",
    "allowed",
    "acceptable",
    "appropriate",
    "comply",
    "compliance",
    "not harmful",
    "not unsafe",
    "negative",
    "0",
    "false",
];

const UNSAFE_WORDS: &[&str] = &[
    "unsafe",
    "harmful",
    "harm",
    "toxic",
    "malicious",
    "jailbreak",
    "attack",
    "injection",
    "block",
    "blocked",
    "unacceptable",
    "inappropriate",
    "refuse",
    "refusal",
    "should refuse",
    "decline",
    "positive",
    "1",
    "true",
];

/// How a raw label maps: the label, and the category it names when it is a category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mapped {
    Known(Label),
    Category(Label, String),
    Unknown,
}

pub(crate) fn map_label(raw: &str, unsafe_labels: &[String]) -> Mapped {
    let t = raw.trim();
    if !unsafe_labels.is_empty() {
        return if unsafe_labels
            .iter()
            .any(|u| u.trim().eq_ignore_ascii_case(t))
        {
            Mapped::Category(Label::Unsafe, t.to_owned())
        } else {
            Mapped::Known(Label::Safe)
        };
    }
    let lower = t.to_lowercase();
    let lower = lower.trim_end_matches('.');
    if SAFE_WORDS.contains(&lower) {
        Mapped::Known(Label::Safe)
    } else if UNSAFE_WORDS.contains(&lower) {
        Mapped::Known(Label::Unsafe)
    } else {
        Mapped::Unknown
    }
}

fn value_as_label(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

// === entry point ===

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
        "jsonl" | "ndjson" => Ok(vec![read_jsonl(path, src, opts)?]),
        "csv" => read_csv(path, src, b',', opts).map(|d| vec![d]),
        "tsv" => read_csv(path, src, b'\t', opts).map(|d| vec![d]),
        _ => read_json(path, src, opts),
    }
}

fn dataset(path: &Path, format: &'static str, content: Content) -> Dataset {
    Dataset {
        name: path.display().to_string(),
        path: path.to_owned(),
        format,
        skipped: None,
        content,
    }
}

fn looks_like_jsonl(src: &str) -> bool {
    let mut lines = src.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next();
    let second = lines.next();
    matches!((first, second), (Some(a), Some(b)) if a.starts_with('{') && a.ends_with('}') && b.starts_with('{'))
}

fn read_json(path: &Path, src: &str, opts: &ReadOptions) -> Result<Vec<Dataset>, DatasetError> {
    let v: Value = match serde_json::from_str(src) {
        Ok(v) => v,
        Err(e) => {
            if looks_like_jsonl(src) {
                return Ok(vec![read_jsonl(path, src, opts)?]);
            }
            return Err(json_err(path, &e));
        }
    };
    match v {
        Value::Object(m) if m.contains_key("jailbreaks") => read_jailbreakbench(path, src, opts),
        Value::Object(m) if m.contains_key("examples") => Ok(vec![read_bigbench(path, src, opts)?]),
        Value::Array(a)
            if a.first()
                .and_then(Value::as_object)
                .is_some_and(|o| o.contains_key("full_text") && o.contains_key("spans")) =>
        {
            Ok(vec![read_presidio(path, src)?])
        }
        Value::Array(a) if a.is_empty() => Err(err(path, None, "empty JSON array: no rows")),
        Value::Array(rows) if rows.iter().all(Value::is_object) => {
            Ok(vec![read_json_rows(path, src, rows, opts)?])
        }
        _ => Err(err(
            path,
            None,
            "unrecognised JSON dataset: expected a BIG-bench task (object with `examples`), \
             JailbreakBench artifacts (object with `jailbreaks`), presidio span data (array of \
             `{full_text, spans}`), or JSONL (name the file *.jsonl)",
        )),
    }
}

// === JSONL ===

const TEXT_KEYS: &[&str] = &["text", "prompt", "input", "content", "question"];
const CATEGORY_KEYS: &[&str] = &["category", "type"];

fn read_jsonl(path: &Path, src: &str, opts: &ReadOptions) -> Result<Dataset, DatasetError> {
    let mut cases = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let lineno = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| {
            let mut d = json_err(path, &e);
            d.line = Some(lineno);
            d
        })?;
        cases.push(case_from_row(path, lineno, v, opts)?);
    }
    if cases.is_empty() {
        return Err(err(path, None, "no rows"));
    }
    Ok(dataset(path, "jsonl", Content::Cases(cases)))
}

/// A JSON array of row objects, read like JSONL.
fn read_json_rows(
    path: &Path,
    src: &str,
    rows: Vec<Value>,
    opts: &ReadOptions,
) -> Result<Dataset, DatasetError> {
    let lines = src
        .find('[')
        .map(|o| element_lines(src, o))
        .unwrap_or_default();
    let mut cases = Vec::new();
    for (i, v) in rows.into_iter().enumerate() {
        let lineno = lines.get(i).copied().unwrap_or(0);
        cases.push(case_from_row(path, lineno, v, opts)?);
    }
    Ok(dataset(path, "json", Content::Cases(cases)))
}

/// One JSONL / JSON-array row.
fn case_from_row(
    path: &Path,
    lineno: u64,
    v: Value,
    opts: &ReadOptions,
) -> Result<Case, DatasetError> {
    {
        let Value::Object(obj) = v else {
            return Err(err(path, Some(lineno), "expected a JSON object"));
        };
        let get = |k: &str| obj.get(k).filter(|v| !v.is_null());
        let text = match &opts.text_column {
            Some(k) => get(k).ok_or_else(|| err(path, Some(lineno), format!("no `{k}` key")))?,
            None => TEXT_KEYS.iter().find_map(|k| get(k)).ok_or_else(|| {
                err(
                    path,
                    Some(lineno),
                    format!(
                        "no text: expected one of the keys {} (or pass --text-column)",
                        TEXT_KEYS.join(", ")
                    ),
                )
            })?,
        };
        let Value::String(text) = text else {
            return Err(err(path, Some(lineno), "the text is not a string"));
        };
        let label_key = opts.label_column.as_deref().unwrap_or("label");
        let raw_label = get(label_key)
            .ok_or_else(|| err(path, Some(lineno), format!("no `{label_key}` key")))?;
        let raw_label = value_as_label(raw_label).ok_or_else(|| {
            err(
                path,
                Some(lineno),
                format!("`{label_key}` must be a string, number or boolean"),
            )
        })?;
        let category = match &opts.category_column {
            Some(k) => {
                Some(get(k).ok_or_else(|| err(path, Some(lineno), format!("no `{k}` key")))?)
            }
            None => CATEGORY_KEYS.iter().find_map(|k| get(k)),
        }
        .map(|v| value_as_label(v).unwrap_or_else(|| v.to_string()));
        let stage = match get("stage") {
            None => opts.stage.unwrap_or(Stage::Input),
            Some(Value::String(s)) => s.parse::<Stage>().map_err(|e| err(path, Some(lineno), e))?,
            Some(_) => return Err(err(path, Some(lineno), "`stage` must be a string")),
        };
        let id = get("id")
            .and_then(value_as_label)
            .unwrap_or_else(|| lineno.to_string());
        let (label, category) =
            resolve_label(&raw_label, category, opts).map_err(|m| err(path, Some(lineno), m))?;
        Ok(Case {
            source: format!("{}:{lineno}", path.display()),
            id,
            text: text.clone(),
            stage,
            label,
            category,
        })
    }
}

/// Label and category of a JSONL / CSV row.
fn resolve_label(
    raw: &str,
    category: Option<String>,
    opts: &ReadOptions,
) -> Result<(Label, String), String> {
    if raw.trim().is_empty() {
        return Err("empty label".into());
    }
    Ok(match map_label(raw, &opts.unsafe_labels) {
        Mapped::Known(l) => (l, category.unwrap_or_else(|| l.as_str().to_owned())),
        Mapped::Category(l, c) => (l, category.unwrap_or(c)),
        Mapped::Unknown => (
            Label::Unsafe,
            category.unwrap_or_else(|| raw.trim().to_owned()),
        ),
    })
}

// === CSV ===

fn find_column(headers: &csv::StringRecord, wanted: &str) -> Option<usize> {
    headers
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case(wanted))
}

fn read_csv(
    path: &Path,
    src: &str,
    delimiter: u8,
    opts: &ReadOptions,
) -> Result<Dataset, DatasetError> {
    let csv_err = |e: csv::Error| {
        let line = e.position().map(|p| p.line());
        err(path, line, e.to_string())
    };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(false)
        .from_reader(src.as_bytes());
    let headers = rdr.headers().map_err(csv_err)?.clone();
    if headers.is_empty() {
        return Err(err(path, Some(1), "no header row"));
    }
    if find_column(&headers, "completion").is_some()
        && find_column(&headers, "final_label").is_some()
    {
        return read_completions(path, rdr, &headers);
    }
    let text_col = match &opts.text_column {
        Some(c) => find_column(&headers, c)
            .ok_or_else(|| err(path, Some(1), format!("no column `{c}` in the header")))?,
        None => TEXT_KEYS
            .iter()
            .find_map(|k| find_column(&headers, k))
            .ok_or_else(|| {
                err(
                    path,
                    Some(1),
                    format!(
                        "no text column: expected one of {} (or pass --text-column)",
                        TEXT_KEYS.join(", ")
                    ),
                )
            })?,
    };
    let label_name = opts.label_column.as_deref().unwrap_or("label");
    let label_col = find_column(&headers, label_name).ok_or_else(|| {
        err(
            path,
            Some(1),
            format!("no column `{label_name}` in the header (pass --label-column)"),
        )
    })?;
    let cat_col = match &opts.category_column {
        Some(c) => Some(
            find_column(&headers, c)
                .ok_or_else(|| err(path, Some(1), format!("no column `{c}` in the header")))?,
        ),
        None => CATEGORY_KEYS.iter().find_map(|k| find_column(&headers, k)),
    };
    let id_col = find_column(&headers, "id");
    let mut cases = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(csv_err)?;
        let line = rec.position().map_or(0, |p| p.line());
        let field = |i: usize| rec.get(i).unwrap_or("");
        let text = field(text_col);
        if text.is_empty() {
            return Err(err(path, Some(line), "empty text"));
        }
        let category = cat_col
            .map(|c| field(c).trim().to_owned())
            .filter(|c| !c.is_empty());
        let (label, category) = resolve_label(field(label_col), category, opts)
            .map_err(|m| err(path, Some(line), m))?;
        cases.push(Case {
            source: format!("{}:{line}", path.display()),
            id: id_col
                .map(|c| field(c).to_owned())
                .unwrap_or_else(|| line.to_string()),
            text: text.to_owned(),
            stage: opts.stage.unwrap_or(Stage::Input),
            label,
            category,
        });
    }
    if cases.is_empty() {
        return Err(err(path, None, "no rows"));
    }
    Ok(dataset(path, "csv", Content::Cases(cases)))
}

fn read_completions(
    path: &Path,
    mut rdr: csv::Reader<&[u8]>,
    headers: &csv::StringRecord,
) -> Result<Dataset, DatasetError> {
    let col = |n: &str| find_column(headers, n);
    let (Some(c_completion), Some(c_label)) = (col("completion"), col("final_label")) else {
        return Err(err(path, Some(1), "no `completion` / `final_label` column"));
    };
    let c_prompt = col("prompt");
    let c_type = col("type").or_else(|| col("category"));
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| err(path, e.position().map(|p| p.line()), e.to_string()))?;
        let line = rec.position().map_or(0, |p| p.line());
        let field = |i: usize| rec.get(i).unwrap_or("");
        let label = match field(c_label).trim() {
            "1_full_compliance" => RefusalLabel::FullCompliance,
            "2_full_refusal" => RefusalLabel::FullRefusal,
            "3_partial_refusal" => RefusalLabel::PartialRefusal,
            other => {
                return Err(err(
                    path,
                    Some(line),
                    format!(
                        "final_label `{other}`: expected 1_full_compliance, 2_full_refusal or \
                         3_partial_refusal"
                    ),
                ));
            }
        };
        out.push(Completion {
            source: format!("{}:{line}", path.display()),
            prompt: c_prompt.map(|c| field(c).to_owned()).unwrap_or_default(),
            completion: field(c_completion).to_owned(),
            label,
            category: c_type.map(|c| field(c).to_owned()).unwrap_or_default(),
        });
    }
    if out.is_empty() {
        return Err(err(path, None, "no rows"));
    }
    Ok(dataset(
        path,
        "xstest-completions",
        Content::Completions(out),
    ))
}

// === BIG-bench ===

#[derive(Deserialize)]
struct BigBenchTask {
    #[serde(default)]
    name: Option<String>,
    examples: Vec<BigBenchExample>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct BigBenchExample {
    input: String,
    #[serde(default)]
    target: Option<StringOrList>,
    #[serde(default)]
    target_scores: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    category: Option<String>,
}

/// Lines of the elements of the JSON array whose `[` is at byte `open` (for error messages):
/// one pass, aware of strings.
fn element_lines(src: &str, open: usize) -> Vec<u64> {
    let mut out = Vec::new();
    let mut line = line_of(src, open);
    let (mut depth, mut in_str, mut esc, mut seen_value) = (0usize, false, false, false);
    for c in src[open + 1..].chars() {
        if c == '\n' {
            line += 1;
        }
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        if depth == 0 && !seen_value && !c.is_whitespace() && !matches!(c, ',' | ']') {
            seen_value = true;
            out.push(line);
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => depth += 1,
            '}' | ']' => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            ',' if depth == 0 => seen_value = false,
            _ => {}
        }
    }
    out
}

/// Byte offset of the `[` of the array under `"key":` (the first such key followed by an
/// array; good enough to skip mentions of the word in descriptions).
fn array_open(src: &str, key: &str) -> Option<usize> {
    let quoted = format!("\"{key}\"");
    let mut from = 0;
    while let Some(i) = src[from..].find(&quoted) {
        let at = from + i;
        let rest = &src[at + quoted.len()..];
        let trimmed = rest.trim_start();
        if let Some(after_colon) = trimmed.strip_prefix(':') {
            let t = after_colon.trim_start();
            if t.starts_with('[') {
                return Some(src.len() - t.len());
            }
        }
        from = at + quoted.len();
    }
    None
}

fn line_of(src: &str, byte: usize) -> u64 {
    src.as_bytes()[..byte]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64
        + 1
}

fn read_bigbench(path: &Path, src: &str, opts: &ReadOptions) -> Result<Dataset, DatasetError> {
    let task: BigBenchTask = serde_json::from_str(src).map_err(|e| json_err(path, &e))?;
    let task_name = task.name.clone().unwrap_or_else(|| {
        path.parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "task".into())
    });
    let lines = array_open(src, "examples")
        .map(|o| element_lines(src, o))
        .unwrap_or_default();
    let mut cases = Vec::new();
    for (i, ex) in task.examples.iter().enumerate() {
        let line = lines.get(i).copied();
        let fail = |m: String| err(path, line, format!("examples[{i}]: {m}"));
        let answer: String = match (&ex.target_scores, &ex.target) {
            (Some(scores), _) if !scores.is_empty() => {
                let best = scores.values().copied().fold(f64::NEG_INFINITY, f64::max);
                let tops: Vec<&String> = scores
                    .iter()
                    .filter(|(_, s)| **s == best)
                    .map(|(k, _)| k)
                    .collect();
                let labels: Vec<Mapped> = tops
                    .iter()
                    .map(|t| map_label(t, &opts.unsafe_labels))
                    .collect();
                if labels
                    .windows(2)
                    .any(|w| label_of(&w[0]) != label_of(&w[1]))
                {
                    return Err(fail(format!(
                        "targets {tops:?} tie for the highest score but map to different labels"
                    )));
                }
                tops[0].clone()
            }
            (_, Some(StringOrList::One(t))) => t.clone(),
            (_, Some(StringOrList::Many(ts))) if !ts.is_empty() => ts[0].clone(),
            _ => {
                return Err(fail(
                    "needs `target_scores` (multiple choice) or `target` (generative)".into(),
                ));
            }
        };
        let (label, answer_category) = match map_label(&answer, &opts.unsafe_labels) {
            Mapped::Known(l) => (l, None),
            Mapped::Category(l, c) => (l, Some(c)),
            Mapped::Unknown => {
                return Err(fail(format!(
                    "cannot tell whether the answer {answer:?} means safe or unsafe; pass \
                     --unsafe-label with the answers that mean unsafe"
                )));
            }
        };
        let category = ex
            .category
            .clone()
            .or(answer_category)
            .unwrap_or_else(|| task_name.clone());
        cases.push(Case {
            source: format!("{}:{}", path.display(), line.unwrap_or(0)),
            id: format!("examples[{i}]"),
            text: ex.input.clone(),
            stage: opts.stage.unwrap_or(Stage::Input),
            label,
            category,
        });
    }
    if cases.is_empty() {
        return Err(err(path, None, "no examples"));
    }
    Ok(dataset(path, "bigbench", Content::Cases(cases)))
}

fn label_of(m: &Mapped) -> Option<Label> {
    match m {
        Mapped::Known(l) | Mapped::Category(l, _) => Some(*l),
        Mapped::Unknown => None,
    }
}

// === presidio ===

#[derive(Deserialize)]
struct PresidioItem {
    full_text: String,
    spans: Vec<PresidioSpan>,
}

#[derive(Deserialize)]
struct PresidioSpan {
    entity_type: String,
    start_position: usize,
    end_position: usize,
}

fn read_presidio(path: &Path, src: &str) -> Result<Dataset, DatasetError> {
    let items: Vec<PresidioItem> = serde_json::from_str(src).map_err(|e| json_err(path, &e))?;
    let lines = src
        .find('[')
        .map(|o| element_lines(src, o))
        .unwrap_or_default();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let line = lines.get(i).copied();
        // Offsets are in characters (Python string indices); convert to bytes.
        let mut char_to_byte: Vec<usize> = item.full_text.char_indices().map(|(b, _)| b).collect();
        char_to_byte.push(item.full_text.len());
        let mut spans = Vec::with_capacity(item.spans.len());
        for s in item.spans {
            let (Some(&start), Some(&end)) = (
                char_to_byte.get(s.start_position),
                char_to_byte.get(s.end_position),
            ) else {
                return Err(err(
                    path,
                    line,
                    format!(
                        "item {i}: span {}..{} ({}) is outside the text ({} characters)",
                        s.start_position,
                        s.end_position,
                        s.entity_type,
                        char_to_byte.len() - 1
                    ),
                ));
            };
            if start > end {
                return Err(err(
                    path,
                    line,
                    format!("item {i}: span start after its end"),
                ));
            }
            spans.push(GoldSpan {
                entity: s.entity_type,
                start,
                end,
            });
        }
        out.push(SpanCase {
            source: format!("{}:{}", path.display(), line.unwrap_or(0)),
            text: item.full_text,
            spans,
        });
    }
    Ok(dataset(path, "presidio", Content::Spans(out)))
}

// === JailbreakBench ===

#[derive(Deserialize)]
struct JbbArtifact {
    #[serde(default)]
    parameters: Option<JbbParameters>,
    jailbreaks: Vec<JbbItem>,
}

#[derive(Deserialize)]
struct JbbParameters {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
struct JbbItem {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    category: Option<String>,
    prompt: Option<String>,
    response: Option<String>,
    jailbroken: bool,
}

fn read_jailbreakbench(
    path: &Path,
    src: &str,
    _opts: &ReadOptions,
) -> Result<Vec<Dataset>, DatasetError> {
    let art: JbbArtifact = serde_json::from_str(src).map_err(|e| json_err(path, &e))?;
    let lines = array_open(src, "jailbreaks")
        .map(|o| element_lines(src, o))
        .unwrap_or_default();
    let mut input = Vec::new();
    let mut output = Vec::new();
    let mut no_prompt = 0;
    let mut no_response = 0;
    for (i, it) in art.jailbreaks.iter().enumerate() {
        let line = lines.get(i).copied().unwrap_or(0);
        let source = format!("{}:{line}", path.display());
        let id = it.index.map_or_else(|| i.to_string(), |x| x.to_string());
        let category = it.category.clone().unwrap_or_else(|| "-".into());
        match &it.prompt {
            Some(p) => input.push(Case {
                source: source.clone(),
                id: id.clone(),
                text: p.clone(),
                stage: Stage::Input,
                label: Label::Unsafe,
                category: category.clone(),
            }),
            None => no_prompt += 1,
        }
        match &it.response {
            Some(r) => output.push(Case {
                source,
                id,
                text: r.clone(),
                stage: Stage::Output,
                label: if it.jailbroken {
                    Label::Unsafe
                } else {
                    Label::Safe
                },
                category,
            }),
            None => no_response += 1,
        }
    }
    let what = art
        .parameters
        .map(|p| {
            format!(
                "{} on {}",
                p.method.unwrap_or_default(),
                p.model.unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut a = dataset(path, "jailbreakbench", Content::Cases(input));
    a.name = format!("{} [attack prompts, input; {what}]", path.display());
    if no_prompt > 0 {
        a.skipped = Some((no_prompt, "behaviours with no attack prompt".into()));
    }
    out.push(a);
    let mut b = dataset(path, "jailbreakbench", Content::Cases(output));
    b.name = format!("{} [responses, output; {what}]", path.display());
    if no_response > 0 {
        b.skipped = Some((no_response, "behaviours with no response".into()));
    }
    out.push(b);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_as_documented() {
        let none: Vec<String> = Vec::new();
        assert_eq!(map_label("Safe", &none), Mapped::Known(Label::Safe));
        assert_eq!(map_label(" unsafe ", &none), Mapped::Known(Label::Unsafe));
        assert_eq!(map_label("1", &none), Mapped::Known(Label::Unsafe));
        assert_eq!(map_label("violence", &none), Mapped::Unknown);
        let v = vec!["Yes".to_string()];
        assert_eq!(
            map_label("yes", &v),
            Mapped::Category(Label::Unsafe, "yes".into())
        );
        assert_eq!(map_label("unsafe", &v), Mapped::Known(Label::Safe));
    }

    #[test]
    fn example_lines_are_found() {
        let src = "{\"description\": \"the examples\",\n \"examples\": [\n  {\"input\": \"a,]\"},\n  {\"input\": \"b\"}\n ]\n}";
        let open = array_open(src, "examples").unwrap();
        assert_eq!(element_lines(src, open), [3, 4]);
    }
}
