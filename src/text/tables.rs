//! Character tables for normalization. Their data (`tables_data.rs`) is generated from the
//! Unicode data of `unicode-normalization`, `unicode-security` (UTS #39) and the standard
//! library's case mapping, and checked against them by a test that also rewrites it
//! (`tables_tests.rs`): loading a policy used to derive them (about 200 M instructions, a
//! sixth of a load of the default policy). Run time only spreads the BMP ranges into a byte
//! per code point.

use std::sync::OnceLock;

use super::options::NormalizeOptions;

#[rustfmt::skip]
#[path = "tables_data.rs"]
mod data;

/// Property bits of a BMP code point ([`bmp`]).
pub(super) const BOUNDARY: u8 = 1;
pub(super) const NFKC_INERT: u8 = 2;
const INVISIBLE: u8 = 4;
const CONFUSABLE: u8 = 8;
const HAS_MARK: u8 = 16;
const CASE_STABLE: u8 = 32;

/// Per BMP code point, its property bits: [`BOUNDARY`] (normalization may cut before it),
/// [`NFKC_INERT`] (NFKC quick check says yes), invisible, a look-alike that folds, has a
/// strippable mark, lower-cases to itself.
pub(super) fn bmp() -> &'static [u8] {
    static PROPS: OnceLock<Vec<u8>> = OnceLock::new();
    PROPS.get_or_init(|| {
        let mut props = vec![0u8; 0x10000];
        let mut spread = |ranges: &[(u32, u32)], bit: u8| {
            for &(lo, hi) in ranges {
                props[lo as usize..=hi as usize]
                    .iter_mut()
                    .for_each(|p| *p |= bit);
            }
        };
        spread(data::BMP_BOUNDARY, BOUNDARY);
        spread(data::BMP_NFKC_INERT, NFKC_INERT);
        spread(data::BMP_HAS_MARK, HAS_MARK);
        spread(data::BMP_CASE_STABLE, CASE_STABLE);
        for &(lo, hi) in data::INVISIBLE.iter().filter(|r| (r.0 as u32) < 0x10000) {
            spread(&[(lo as u32, (hi as u32).min(0xFFFF))], INVISIBLE);
        }
        for &(c, _) in data::CONFUSABLE.iter().filter(|r| (r.0 as u32) < 0x10000) {
            props[c as usize] |= CONFUSABLE;
        }
        props
    })
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
        let props = bmp();
        let mut bits = vec![0u64; 0x10000 / 64];
        for cp in 0x80u32..0x10000 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let p = props[cp as usize];
            let has = |bit: u8| p & bit != 0;
            let unchanged = !(opts.strip_invisible && has(INVISIBLE))
                && (!opts.nfkc || (has(BOUNDARY) && has(NFKC_INERT)))
                && (!opts.confusables || !has(CONFUSABLE))
                && (!opts.strip_marks || !has(HAS_MARK))
                && (!opts.separators || !is_separator(c))
                && !(opts.separators && opts.symbols && is_symbol(c))
                && (!opts.casefold || has(CASE_STABLE));
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
    let cp = c as usize;
    if cp < 0x10000 {
        return bmp()[cp] & INVISIBLE != 0;
    }
    let t = data::INVISIBLE;
    let idx = t.partition_point(|&(_, hi)| hi < c);
    t.get(idx).is_some_and(|&(lo, _)| lo <= c)
}

/// Folds a look-alike of a Latin letter (Cyrillic `а`, Greek `ο`, …) to that letter.
pub fn fold_confusable(c: char) -> char {
    let cp = c as usize;
    if cp < 0x10000 && bmp()[cp] & CONFUSABLE == 0 {
        return c;
    }
    let t = data::CONFUSABLE;
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
    let cp = c as usize;
    if cp < 0x10000 {
        return bmp()[cp] & HAS_MARK != 0;
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

#[cfg(test)]
#[path = "tables_tests.rs"]
mod tests;
