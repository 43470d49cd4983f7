//! `*.json` files: which reader a JSON document goes to, and the line of each element of a JSON
//! array (serde_json gives positions only for errors).

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

/// Lines of the elements of the JSON array whose `[` is at byte `open` (for error messages):
/// one pass, aware of strings.
pub(super) fn element_lines(src: &str, open: usize) -> Vec<u64> {
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
pub(super) fn array_open(src: &str, key: &str) -> Option<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_lines_are_found() {
        let src = "{\"description\": \"the examples\",\n \"examples\": [\n  {\"input\": \"a,]\"},\n  {\"input\": \"b\"}\n ]\n}";
        let open = array_open(src, "examples").unwrap();
        assert_eq!(element_lines(src, open), [3, 4]);
    }
}
