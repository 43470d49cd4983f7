//! HTML tags with attributes and comments, for the `markup` step: white space inside them
//! (`<span class="x">`, `<!-- note -->`) splits them over several units, so the per-unit
//! reading of tags (`html_tag` in `mod.rs`, tags without attributes) never sees them whole.
//!
//! A tag here starts in a unit with `<` and a letter, the tag name ends the unit, and an
//! attribute with a value (`=`) follows before the closing `>`; or it is a comment or
//! declaration (`<!`). It is at most [`MAX_TAG_BYTES`] long, holds no `<` outside quotes, and
//! is dropped whole: `pi<span class="x">pe</span>` reads `pipe`. Prose rarely has the shape
//! (`a <b and c> d` has no `=`: it stays). The decision looks at most [`MAX_TAG_BYTES`] past
//! the `<`, so a stream waits at most that long.

use super::Source;
use crate::text::options::MAX_UNIT_BYTES;

/// Longest tag read as one, from its `<` to its `>`.
pub(super) const MAX_TAG_BYTES: usize = MAX_UNIT_BYTES;

/// Whether an HTML tag spanning units starts in the unit `[i, end)`.
pub(super) enum Tag {
    /// None starts there.
    No,
    /// The text ends before the tag is decided.
    Wait,
    /// The unit's text up to `lt` is its own; the tag runs from `lt` to just before `next`.
    At { lt: usize, next: usize },
}

pub(super) fn spanning_tag(src: &Source<'_>, i: usize, end: usize, finish: bool) -> Tag {
    let b = src.text.as_bytes();
    let Some(lt) = (i..end).rev().find(|&k| b[k] == b'<') else {
        return Tag::No;
    };
    if b[lt + 1..end].contains(&b'>') {
        return Tag::No;
    }
    let comment = b.get(lt + 1) == Some(&b'!');
    if !comment {
        // `<name` ends the unit: its attributes follow after white space.
        let name = b[lt + 1..end]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric())
            .count();
        if name == 0 || !b[lt + 1].is_ascii_alphabetic() || lt + 1 + name != end {
            return Tag::No;
        }
    }
    let mut quote: Option<u8> = None;
    let mut value = comment;
    let mut k = end;
    while k - lt < MAX_TAG_BYTES {
        let Some(&c) = b.get(k) else {
            return if finish { Tag::No } else { Tag::Wait };
        };
        match quote {
            Some(_) if c == b'<' => return Tag::No,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'>' if value => return Tag::At { lt, next: k + 1 },
                b'>' | b'<' => return Tag::No,
                b'"' | b'\'' if !comment => quote = Some(c),
                b'=' => value = true,
                _ => {}
            },
        }
        k += 1;
    }
    Tag::No
}
