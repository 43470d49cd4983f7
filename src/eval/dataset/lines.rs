//! Where the elements of a JSON array start, for error messages that name a line (serde_json
//! gives positions only for errors). Used by every JSON reader.

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
