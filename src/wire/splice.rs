//! Edits spliced into a JSON body's own bytes, for bodies already read by
//! [`parse_strict`](super::parse_strict): forwarding the client's bytes with one insertion costs
//! a copy, where re-serializing the parsed document cost as much as parsing it.
//!
//! The functions here only locate positions in a document that the strict parser accepted
//! (well-formed, UTF-8, no repeated key); on anything they do not expect they answer `None`,
//! and the caller serializes the parsed document instead. They never decide what a text says:
//! every text the model reads was taken from the parsed document and scanned there, and the
//! bytes around the insertion are the bytes that were parsed.

/// The byte offset just past the `[` that opens the array under the top-level key `key` of the
/// JSON object `doc`, and whether that array is empty. `None` when `doc` is not an object,
/// when the key is absent or written with escapes, or when its value is not an array.
///
/// `doc` must have been accepted by [`parse_strict`](super::parse_strict): a repeated key is
/// refused there, so the first raw match is the only one.
pub(crate) fn top_level_array(doc: &[u8], key: &[u8]) -> Option<(usize, bool)> {
    let mut i = skip_ws(doc, 0);
    if doc.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(doc, i);
        if doc.get(i) != Some(&b'"') {
            return None;
        }
        let end = string_end(doc, i)?;
        let name = &doc[i + 1..end];
        i = skip_ws(doc, end + 1);
        if doc.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(doc, i + 1);
        if name == key {
            if doc.get(i) != Some(&b'[') {
                return None;
            }
            let after = i + 1;
            let next = skip_ws(doc, after);
            return Some((after, doc.get(next) == Some(&b']')));
        }
        i = skip_ws(doc, skip_value(doc, i)?);
        if doc.get(i) != Some(&b',') {
            return None;
        }
        i += 1;
    }
}

/// `doc` with `element` inserted as the first element of the array `top_level_array` found
/// under `key`; `None` where that finds nothing.
pub(crate) fn prepend_element(doc: &[u8], key: &[u8], element: &[u8]) -> Option<Vec<u8>> {
    let (at, empty) = top_level_array(doc, key)?;
    let mut out = Vec::with_capacity(doc.len() + element.len() + 1);
    out.extend_from_slice(&doc[..at]);
    out.extend_from_slice(element);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(&doc[at..]);
    Some(out)
}

fn skip_ws(doc: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = doc.get(i) {
        i += 1;
    }
    i
}

/// The index of the closing quote of the string opening at `doc[i]` (a `"`).
fn string_end(doc: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match doc.get(j)? {
            b'"' => return Some(j),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
}

/// The index just past the value starting at `doc[i]`.
fn skip_value(doc: &[u8], i: usize) -> Option<usize> {
    match doc.get(i)? {
        b'"' => string_end(doc, i).map(|e| e + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match doc.get(j)? {
                    b'"' => j = string_end(doc, j)?,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while let Some(b) = doc.get(j) {
                if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Inserting with `prepend_element` gives the document serde would make by inserting the
    /// element into the parsed array; shapes it does not handle give `None`.
    #[test]
    fn prepends_like_the_parsed_document() {
        let el = br#"{"role":"system","content":"spec \"q\" \\ \n"}"#;
        let cases: &[&str] = &[
            r#"{"messages":[]}"#,
            r#"{"messages":[{"role":"user","content":"hi"}]}"#,
            " {\n \"model\" : \"m\" ,\n \"messages\" :\n [ \n {\"role\":\"user\",\"content\":\"a\"} ] , \"n\": 1 }\n",
            r#"{"a":{"messages":[1]},"b":["messages",{"x":"]}"}],"c":"\"messages\":[","messages":[{"content":"x"}]}"#,
            r#"{"t":true,"f":false,"z":null,"num":-1.5e3,"messages":[2]}"#,
            r#"{"k\"ey":1,"messages":[3]}"#,
        ];
        for case in cases {
            let out = prepend_element(case.as_bytes(), b"messages", el).expect(case);
            let got: Value = serde_json::from_slice(&out).expect(case);
            let mut want: Value = serde_json::from_str(case).unwrap();
            let el: Value = serde_json::from_slice(el).unwrap();
            want["messages"].as_array_mut().unwrap().insert(0, el);
            assert_eq!(got, want, "{case}");
        }
        let refused: &[&str] = &[
            r#"{}"#,
            r#"[]"#,
            r#""messages""#,
            r#"{"messages":null}"#,
            r#"{"messages":{"a":[]}}"#,
            r#"{"model":"m"}"#,
            // An escaped key is left to the serializer.
            r#"{"mess\u0061ges":[1]}"#,
            r#"{"a":{"messages":[1]}}"#,
        ];
        for case in refused {
            assert_eq!(
                prepend_element(case.as_bytes(), b"messages", el),
                None,
                "{case}"
            );
        }
    }
}
