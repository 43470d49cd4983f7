//! The generated tables (`tables_data.rs`) against the Unicode data they come from, and their
//! generator: `DELIBERATE_WRITE_TABLES=1 cargo test --lib tables_are_current` rewrites the
//! file (after a dependency or toolchain update changes the data, which this test reports).

use unicode_normalization::char::{canonical_combining_class, decompose_compatible};
use unicode_normalization::{IsNormalized, is_nfkc_quick};

use super::{
    BOUNDARY, CASE_STABLE, CONFUSABLE, HAS_MARK, INVISIBLE, NFKC_INERT, bmp, data,
    is_strippable_mark,
};

/// Inclusive ranges or pairs of characters.
type CharPairs = Vec<(char, char)>;

/// The reference: what the tables were derived as at run time before they were generated.
fn reference_lists() -> (CharPairs, CharPairs) {
    let mut invisible: Vec<(char, char)> = Vec::new();
    let mut confusable = Vec::new();
    let planes = [(0x80u32, 0x2_FFFFu32), (0xE_0000, 0xE_0FFF)];
    let mut buf = [0u8; 4];
    for (lo, hi) in planes {
        for cp in lo..=hi {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let s: &str = c.encode_utf8(&mut buf);
            let mut sk = unicode_security::skeleton(s);
            match (sk.next(), sk.next()) {
                // The skeleton drops default-ignorable code points only.
                (None, _) if is_nfkc_quick(std::iter::once(c)) != IsNormalized::Maybe => {
                    match invisible.last_mut() {
                        Some(last) if last.1 as u32 + 1 == cp => last.1 = c,
                        _ => invisible.push((c, c)),
                    }
                }
                (Some(p), None) if p.is_ascii_alphabetic() && p != c => {
                    // UTS #39 folds `I` to `l`; an upper-case look-alike of I stays I.
                    let p = if p == 'l' && c.is_uppercase() { 'I' } else { p };
                    confusable.push((c, p));
                }
                _ => {}
            }
        }
    }
    (invisible, confusable)
}

fn reference_boundary(c: char) -> bool {
    if c.is_ascii() {
        return true;
    }
    if canonical_combining_class(c) != 0 {
        return false;
    }
    match is_nfkc_quick(std::iter::once(c)) {
        IsNormalized::Yes => true,
        IsNormalized::Maybe => false,
        IsNormalized::No => {
            let mut first = None;
            decompose_compatible(c, |d| {
                if first.is_none() {
                    first = Some(d);
                }
            });
            first.is_some_and(|d| canonical_combining_class(d) == 0)
        }
    }
}

/// The property bits of every BMP code point, from the reference functions.
fn reference_bmp(invisible: &[(char, char)], confusable: &[(char, char)]) -> Vec<u8> {
    (0u32..0x10000)
        .map(|cp| {
            let Some(c) = char::from_u32(cp) else {
                return 0;
            };
            let mut p = 0;
            if reference_boundary(c) {
                p |= BOUNDARY;
            }
            if is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes {
                p |= NFKC_INERT;
            }
            if invisible.iter().any(|&(lo, hi)| lo <= c && c <= hi) {
                p |= INVISIBLE;
            }
            if confusable.binary_search_by_key(&c, |&(f, _)| f).is_ok() {
                p |= CONFUSABLE;
            }
            let mut mark = false;
            if !c.is_ascii() {
                unicode_normalization::char::decompose_canonical(c, |d| {
                    mark |= is_strippable_mark(d);
                });
            }
            if mark {
                p |= HAS_MARK;
            }
            let mut l = c.to_lowercase();
            if l.next() == Some(c) && l.next().is_none() {
                p |= CASE_STABLE;
            }
            p
        })
        .collect()
}

fn ranges_of(props: &[u8], bit: u8) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for (cp, &p) in props.iter().enumerate() {
        if p & bit == 0 {
            continue;
        }
        let cp = cp as u32;
        match out.last_mut() {
            Some(last) if last.1 + 1 == cp => last.1 = cp,
            _ => out.push((cp, cp)),
        }
    }
    out
}

fn write_table<T>(out: &mut String, name: &str, ty: &str, items: &[T], f: impl Fn(&T) -> String) {
    out.push_str(&format!("pub(super) static {name}: &[{ty}] = &[\n"));
    // As many items a line as fit in 100 columns (the file is not formatted by rustfmt).
    let mut line = String::from("   ");
    for item in items.iter().map(&f) {
        if line.len() + item.len() + 2 > 100 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("   ");
        }
        line.push(' ');
        line.push_str(&item);
        line.push(',');
    }
    if line.len() > 3 {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("];\n");
}

fn generate() -> String {
    let (invisible, confusable) = reference_lists();
    let props = reference_bmp(&invisible, &confusable);
    let mut out = String::from(
        "//! Generated by `DELIBERATE_WRITE_TABLES=1 cargo test --lib tables_are_current` (see\n\
         //! `tables_tests.rs`) from `unicode-normalization`, `unicode-security` and the standard\n\
         //! library's case mapping; that test fails when they no longer agree. Ranges are\n\
         //! inclusive code point ranges. Not formatted by rustfmt (`#[rustfmt::skip]`).\n\n",
    );
    let ch = |c: char| format!("'\\u{{{:x}}}'", c as u32);
    write_table(
        &mut out,
        "INVISIBLE",
        "(char, char)",
        &invisible,
        |&(a, b)| format!("({}, {})", ch(a), ch(b)),
    );
    write_table(
        &mut out,
        "CONFUSABLE",
        "(char, char)",
        &confusable,
        |&(a, b)| format!("({}, '{b}')", ch(a)),
    );
    for (name, bit) in [
        ("BMP_BOUNDARY", BOUNDARY),
        ("BMP_NFKC_INERT", NFKC_INERT),
        ("BMP_HAS_MARK", HAS_MARK),
        ("BMP_CASE_STABLE", CASE_STABLE),
    ] {
        write_table(
            &mut out,
            name,
            "(u32, u32)",
            &ranges_of(&props, bit),
            |&(a, b)| format!("(0x{a:x}, 0x{b:x})"),
        );
    }
    out
}

#[test]
fn tables_are_current() {
    let generated = generate();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/text/tables_data.rs");
    if std::env::var_os("DELIBERATE_WRITE_TABLES").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let (invisible, confusable) = reference_lists();
    assert_eq!(
        data::INVISIBLE,
        invisible.as_slice(),
        "regenerate tables_data.rs"
    );
    assert_eq!(
        data::CONFUSABLE,
        confusable.as_slice(),
        "regenerate tables_data.rs"
    );
    let reference = reference_bmp(&invisible, &confusable);
    let built = bmp();
    for (cp, &want) in reference.iter().enumerate() {
        assert_eq!(built[cp], want, "U+{cp:04X}: regenerate tables_data.rs");
    }
}
