//! XSTest v2 completions (CSV with `completion` and `final_label`): a model's answers with human
//! refusal labels, for the refusal detector's accuracy.

use std::path::Path;

use super::find_column;
use crate::eval::dataset::{
    Completion, Content, Dataset, DatasetError, RefusalLabel, dataset, err,
};

pub(super) fn read_completions(
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
