//! JSONL (`*.jsonl`, `*.ndjson`) and JSON arrays of row objects: one labeled case a row.

use std::path::Path;

use serde_json::Value;

use super::labels::{resolve_label, value_as_label};
use super::lines::element_lines;
use super::{Case, Content, Dataset, DatasetError, ReadOptions, dataset, err, json_err};
use crate::policy::Stage;

// === JSONL ===

pub(super) const TEXT_KEYS: &[&str] = &["text", "prompt", "input", "content", "question"];
pub(super) const CATEGORY_KEYS: &[&str] = &["category", "type"];

pub(super) fn read_jsonl(
    path: &Path,
    src: &str,
    opts: &ReadOptions,
) -> Result<Dataset, DatasetError> {
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
pub(super) fn read_json_rows(
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
pub(super) fn case_from_row(
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
            role: Some("user".to_owned()),
            label,
            category,
        })
    }
}
