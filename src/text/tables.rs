//! Character tables for normalization, derived once from the Unicode data of
//! `unicode-normalization` and `unicode-security`.

use std::sync::OnceLock;

use unicode_normalization::{IsNormalized, is_nfkc_quick};

use super::normalize::{NormalizeOptions, is_boundary, nfkc_inert};

/// Tables derived once from the Unicode data of `unicode-security` (UTS #39).
struct Tables {
    /// Default-ignorable code points, as sorted ranges.
    invisible: Vec<(char, char)>,
    /// Non-ASCII characters whose UTS #39 prototype is one ASCII letter, sorted by source.
    confusable: Vec<(char, char)>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(build_tables)
}

fn build_tables() -> Tables {
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
    Tables {
        invisible,
        confusable,
    }
}

/// Bit set over the Basic Multilingual Plane: characters that normalization with some options
/// leaves unchanged and that stand alone as a segment.
pub(super) type SimpleTable = Vec<u64>;

/// The table of characters that `opts` leaves alone (built once per combination of steps).
pub(super) fn simple_table(opts: NormalizeOptions) -> &'static SimpleTable {
    static TABLES: [OnceLock<SimpleTable>; 128] = [const { OnceLock::new() }; 128];
    let key = usize::from(opts.nfkc)
        | usize::from(opts.casefold) << 1
        | usize::from(opts.strip_invisible) << 2
        | usize::from(opts.confusables) << 3
        | usize::from(opts.strip_marks) << 4
        | usize::from(opts.separators) << 5
        | usize::from(opts.separators && opts.symbols) << 6;
    TABLES[key].get_or_init(|| {
        let mut bits = vec![0u64; 0x10000 / 64];
        for cp in 0x80u32..0x10000 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let unchanged = !(opts.strip_invisible && is_invisible(c))
                && (!opts.nfkc || (is_boundary(c) && nfkc_inert(c)))
                && (!opts.confusables || fold_confusable(c) == c)
                && (!opts.strip_marks || !has_mark(c))
                && (!opts.separators || !is_separator(c))
                && !(opts.separators && opts.symbols && is_symbol(c))
                && (!opts.casefold || {
                    let mut l = c.to_lowercase();
                    l.next() == Some(c) && l.next().is_none()
                });
            if unchanged {
                bits[cp as usize / 64] |= 1 << (cp % 64);
            }
        }
        bits
    })
}

/// Whether the character `c` stands alone in the fast path of `table`.
pub(super) fn is_simple(table: &SimpleTable, c: char) -> bool {
    let cp = c as usize;
    cp < 0x10000 && table[cp / 64] & (1 << (cp % 64)) != 0
}

/// Whether `c` is invisible: a default-ignorable code point (zero-width characters, soft
/// hyphen, bidi controls, tag characters, variation selectors, fillers).
pub fn is_invisible(c: char) -> bool {
    if c.is_ascii() {
        return false;
    }
    let t = &tables().invisible;
    let idx = t.partition_point(|&(_, hi)| hi < c);
    t.get(idx).is_some_and(|&(lo, _)| lo <= c)
}

/// Folds a look-alike of a Latin letter (Cyrillic `а`, Greek `ο`, …) to that letter.
pub fn fold_confusable(c: char) -> char {
    let t = &tables().confusable;
    match t.binary_search_by_key(&c, |&(from, _)| from) {
        Ok(i) => t[i].1,
        Err(_) => c,
    }
}

/// Whether `c` is a diacritical mark that the `strip_marks` step drops: the combining marks of
/// the blocks Combining Diacritical Marks (and their Extended and Supplement blocks), Combining
/// Marks for Symbols and Combining Half Marks. Marks that are part of a script's spelling
/// (Indic vowel signs and viramas, Hebrew points, Arabic harakat) are kept.
pub fn is_strippable_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}')
}

/// Whether `c` is a strippable mark or canonically decomposes into one (`é`, `ñ`, `ǘ`).
pub(super) fn has_mark(c: char) -> bool {
    if c.is_ascii() {
        return false;
    }
    let mut found = false;
    unicode_normalization::char::decompose_canonical(c, |d| found |= is_strippable_mark(d));
    found
}

/// Whether `c` separates words for the `separators` step: white space, control characters,
/// `-`, `_`, `.`, the Unicode hyphens and dashes (U+2010 to U+2015, U+2212 minus) and their
/// full-width and small forms.
pub fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '-' | '_' | '.' | '\u{2010}'
                ..='\u{2015}'
                    | '\u{2024}'
                    | '\u{2027}'
                    | '\u{2212}'
                    | '\u{FE58}'
                    | '\u{FE63}'
                    | '\u{FF0D}'
                    | '\u{FF0E}'
                    | '\u{FF3F}'
        )
}

/// Whether `c` is an emoji or another pictographic symbol that the `symbols` step reads as a
/// separator: arrows, mathematical operators' neighbours in Miscellaneous Technical, box
/// drawing, block elements, geometric shapes, miscellaneous symbols, dingbats, the
/// supplemental arrows and symbols, and the emoji blocks of plane 1 (with skin-tone
/// modifiers and regional indicators). Letters in circles or squares are not symbols here.
pub fn is_symbol(c: char) -> bool {
    matches!(c,
        '\u{2190}'..='\u{21FF}'
        | '\u{2300}'..='\u{23FF}'
        | '\u{2500}'..='\u{27BF}'
        | '\u{2900}'..='\u{2BFF}'
        | '\u{3030}' | '\u{303D}'
        | '\u{1F000}'..='\u{1F0FF}'
        | '\u{1F1E6}'..='\u{1F1FF}'
        | '\u{1F300}'..='\u{1FAFF}')
}
