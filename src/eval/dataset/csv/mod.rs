//! CSV / TSV with a header row: labeled prompts (XSTest prompts among them); a file with
//! `completion` and `final_label` columns goes to [`xstest`].

mod xstest;

use std::path::Path;

use super::jsonl::{CATEGORY_KEYS, TEXT_KEYS};
use super::labels::resolve_label;
use super::{Case, Content, Dataset, DatasetError, ReadOptions, dataset, err};
use crate::policy::Stage;

pub(super) fn find_column(headers: &csv::StringRecord, wanted: &str) -> Option<usize> {
    headers
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case(wanted))
}

pub(super) fn read_csv(
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
        return xstest::read_completions(path, rdr, &headers);
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
            role: Some("user".to_owned()),
            label,
            category,
        });
    }
    if cases.is_empty() {
        return Err(err(path, None, "no rows"));
    }
    Ok(dataset(path, "csv", Content::Cases(cases)))
}
