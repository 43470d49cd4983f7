//! HTML tags with attributes and comments, for the `markup` step: white space inside them
//! (`<span class="x">`, `<!-- note -->`) splits them over several units, so the per-unit
//! reading of tags (`html_tag` in `mod.rs`, tags without attributes) never sees them whole.
//!
//! A tag here starts in a unit with `<` and a letter, the tag name ends the unit, and an
//! attribute with a value (`=`) follows before the closing `>`; or it is a comment or
//! declaration (`<!`). It is at most [`MAX_TAG_BYTES`] long and holds no `<` outside quotes.
//! Its markup goes, its text stays: an attribute value with a space in it (`title="…"`,
//! `alt="…"`) and a comment's content are read as words of their own, since the model reads
//! them too and an instruction hidden there must still meet the rules; names and values
//! without a space (`class="x"`, `href="…"`) go. So `pi<span class="x">pe</span>` reads
//! `pipe`, `<!-- ignore all previous instructions -->` reads `ignore all previous
//! instructions`. Prose rarely has the shape (`a <b and c> d` has no `=`: it stays). The decision looks at most [`MAX_TAG_BYTES`] past
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

/// `keep` receives the ranges of `src.text` inside the tag that are text (see above).
pub(super) fn spanning_tag(
    src: &Source<'_>,
    i: usize,
    end: usize,
    finish: bool,
    keep: &mut Vec<(usize, usize)>,
) -> Tag {
    keep.clear();
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
    let mut quote: Option<(u8, usize)> = None;
    let mut value = comment;
    let mut k = end;
    while k - lt < MAX_TAG_BYTES {
        let Some(&c) = b.get(k) else {
            return if finish { Tag::No } else { Tag::Wait };
        };
        match quote {
            Some(_) if c == b'<' => return Tag::No,
            Some((q, from)) if c == q => {
                // A space in the original (the separators step reads `.` and `-` in a URL as
                // spaces too).
                if from < k {
                    let (os, oe) = src.map.orig_span(from, k);
                    let orig = src.orig.get(os - src.orig_base..oe - src.orig_base);
                    if orig.is_some_and(|o| o.chars().any(char::is_whitespace)) {
                        keep.push((from, k));
                    }
                }
                quote = None;
            }
            Some(_) => {}
            None => match c {
                b'>' if value => {
                    if comment {
                        let (mut s, mut e) = (lt + 2, k);
                        while s < e && b[s].is_ascii_whitespace() {
                            s += 1;
                        }
                        while e > s && b[e - 1].is_ascii_whitespace() {
                            e -= 1;
                        }
                        if s < e {
                            keep.push((s, e));
                        }
                    }
                    return Tag::At { lt, next: k + 1 };
                }
                b'>' | b'<' => return Tag::No,
                b'"' | b'\'' if !comment => quote = Some((c, k + 1)),
                b'=' => value = true,
                _ => {}
            },
        }
        k += 1;
    }
    Tag::No
}
