//! Word boundaries: whether a match stands as a whole word.
//!
//! A keyword `bomb` must not fire inside `bombastic`, but a keyword in a script written
//! without spaces (Chinese, Japanese, Thai …) has no spaces around it to look for.
//!
//! ```
//! use deliberate::text::whole_word;
//!
//! let t = "a bomb, bombastic";
//! assert!(whole_word(t, 2, 6)); // "bomb"
//! assert!(!whole_word(t, 8, 12)); // the "bomb" of "bombastic"
//! ```

/// Whether `c` is a word character: alphanumeric or `_`.
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_spaced_word(c: char) -> bool {
    is_word_char(c) && !is_unspaced(c)
}

/// Whether `c` belongs to a script written without spaces between words: no word boundary is
/// required next to it.
pub fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF      // Thai, Lao
        | 0x1000..=0x109F    // Myanmar
        | 0x1780..=0x17FF    // Khmer
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Ext A
        | 0x4E00..=0x9FFF    // CJK
        | 0xF900..=0xFAFF    // CJK compatibility
        | 0xAC00..=0xD7AF    // Hangul syllables (spaced, but compounds are common)
        | 0x20000..=0x3FFFF) // CJK Ext B+
}

/// Whether `hay[start..end]` stands as a whole word: the characters on each side are not word
/// characters, unless the keyword's own edge character is not a word character or belongs to
/// a script written without spaces.
///
/// `start` and `end` must be character boundaries of `hay` (it panics otherwise, as slicing
/// does).
pub fn whole_word(hay: &str, start: usize, end: usize) -> bool {
    let inner_first = hay[start..end].chars().next();
    let inner_last = hay[start..end].chars().next_back();
    // Two characters glue into one word when both are word characters of spaced scripts.
    let glued = |x: char, y: char| is_spaced_word(x) && is_spaced_word(y);
    let before = hay[..start].chars().next_back().zip(inner_first);
    let after = hay[end..].chars().next().zip(inner_last);
    !before.is_some_and(|(b, f)| glued(b, f)) && !after.is_some_and(|(a, l)| glued(a, l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words() {
        let t = "a bomb, bombastic; 爆弾です";
        assert!(whole_word(t, 2, 6));
        assert!(!whole_word(t, 8, 12));
        let s = t.find("爆弾").expect("present");
        assert!(whole_word(t, s, s + "爆弾".len()));
    }
}
