//! `*.json` files: which reader a JSON document goes to.

use std::path::Path;

use serde_json::Value;

use super::{Dataset, DatasetError, ReadOptions, err, json_err};
use super::{bigbench, jailbreakbench, jsonl, presidio};

fn looks_like_jsonl(src: &str) -> bool {
    let mut lines = src.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next();
    let second = lines.next();
    matches!((first, second), (Some(a), Some(b)) if a.starts_with('{') && a.ends_with('}') && b.starts_with('{'))
}

pub(super) fn read_json(
    path: &Path,
    src: &str,
    opts: &ReadOptions,
) -> Result<Vec<Dataset>, DatasetError> {
    let v: Value = match serde_json::from_str(src) {
        Ok(v) => v,
        Err(e) => {
            if looks_like_jsonl(src) {
                return Ok(vec![jsonl::read_jsonl(path, src, opts)?]);
            }
            return Err(json_err(path, &e));
        }
    };
    match v {
        Value::Object(m) if m.contains_key("jailbreaks") => {
            jailbreakbench::read_jailbreakbench(path, src, opts)
        }
        Value::Object(m) if m.contains_key("examples") => {
            Ok(vec![bigbench::read_bigbench(path, src, opts)?])
        }
        Value::Array(a)
            if a.first()
                .and_then(Value::as_object)
                .is_some_and(|o| o.contains_key("full_text") && o.contains_key("spans")) =>
        {
            Ok(vec![presidio::read_presidio(path, src)?])
        }
        Value::Array(a) if a.is_empty() => Err(err(path, None, "empty JSON array: no rows")),
        Value::Array(rows) if rows.iter().all(Value::is_object) => {
            Ok(vec![jsonl::read_json_rows(path, src, rows, opts)?])
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
