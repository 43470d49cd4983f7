//! Leaf matching on a normalized view, and rule evaluation over leaf hits.
//!
//! Both the buffered and the streaming scanner find leaf hits with these functions and
//! evaluate rules with [`eval`], so the two can only differ in *when* they decide, never in
//! *what* a rule means.

use aho_corasick::automaton::Automaton;
use regex_automata::{Anchored, Input};

use crate::policy::{Node, RegexLeaf, Validator};

/// A span in original-text byte offsets.
pub(crate) type Span = (usize, usize);

/// Hits per leaf, indexed by leaf id; each list sorted by start.
pub(crate) type Hits = Vec<Vec<Span>>;

// === word boundaries ===

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_spaced_word(c: char) -> bool {
    is_word_char(c) && !is_unspaced(c)
}

/// Scripts written without spaces between words: no word boundary is required next to them.
fn is_unspaced(c: char) -> bool {
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
pub(crate) fn whole_word(hay: &str, start: usize, end: usize) -> bool {
    let inner_first = hay[start..end].chars().next();
    let inner_last = hay[start..end].chars().next_back();
    // Two characters glue into one word when both are word characters of spaced scripts.
    let glued = |x: char, y: char| is_spaced_word(x) && is_spaced_word(y);
    let before = hay[..start].chars().next_back().zip(inner_first);
    let after = hay[end..].chars().next().zip(inner_last);
    !before.is_some_and(|(b, f)| glued(b, f)) && !after.is_some_and(|(a, l)| glued(a, l))
}

// === keyword hits ===

/// Overlapping keyword hits in `hay`: calls `f(pattern, start, end)` for every occurrence.
pub(crate) fn keyword_hits(
    dfa: &aho_corasick::dfa::DFA,
    hay: &str,
    mut f: impl FnMut(usize, usize, usize),
) {
    let input = aho_corasick::Input::new(hay);
    let mut state = aho_corasick::automaton::OverlappingState::start();
    loop {
        if dfa.try_find_overlapping(&input, &mut state).is_err() {
            // Only possible with unsupported anchored/earliest modes, which we never set.
            return;
        }
        match state.get_match() {
            Some(m) => f(m.pattern().as_usize(), m.start(), m.end()),
            None => return,
        }
    }
}

// === regex hits ===

/// Finds the next regex hit at or after `pos` in `hay`: the leftmost position where the regex
/// matches within `max_len` bytes. Returns the span and whether it passed its validator.
///
/// Positions past `limit` are not examined; `Err(p)` says the search stopped at `p` because
/// a hit there could not be confirmed before `limit` (the caller needs more text).
pub(crate) fn next_regex_hit(
    leaf: &RegexLeaf,
    hay: &str,
    mut pos: usize,
    limit: Option<usize>,
) -> Result<Option<(Span, bool)>, usize> {
    let re = &leaf.regex;
    loop {
        if pos >= hay.len() {
            return Ok(None);
        }
        let Some(m) = re.search(&Input::new(hay).range(pos..)) else {
            return Ok(None);
        };
        let s = m.start();
        if let Some(limit) = limit
            && s + leaf.max_len > limit
        {
            return Err(s);
        }
        let end = (s + leaf.max_len).min(hay.len());
        let m2 = if m.end() <= end {
            Some(m)
        } else {
            re.search(&Input::new(hay).range(s..end).anchored(Anchored::Yes))
        };
        match m2 {
            Some(m2) => {
                let ok = match leaf.validate {
                    None => true,
                    Some(Validator::Luhn) => luhn(&hay[s..m2.end()]),
                    Some(Validator::Iban) => iban(&hay[s..m2.end()]),
                };
                return Ok(Some(((s, m2.end()), ok)));
            }
            None => {
                pos = s + hay[s..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
}

/// Luhn checksum over the ASCII digits of `s` (other characters ignored); at least 12 digits.
pub fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 12 || digits.len() > 19 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// IBAN check (ISO 13616): country letters, check digits, mod 97 == 1. Spaces ignored; case
/// ignored.
pub fn iban(s: &str) -> bool {
    let compact: Vec<char> = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if compact.len() < 15 || compact.len() > 34 {
        return false;
    }
    if !compact[..2].iter().all(char::is_ascii_alphabetic)
        || !compact[2..4].iter().all(char::is_ascii_digit)
    {
        return false;
    }
    let rearranged = compact[4..].iter().chain(compact[..4].iter());
    let mut rem: u32 = 0;
    for c in rearranged {
        let v = match c.to_ascii_uppercase() {
            d @ '0'..='9' => d as u32 - '0' as u32,
            l @ 'A'..='Z' => l as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

// === rule evaluation ===

/// Evaluation context: hits per leaf, a predicate for exempted spans, and a way to count the
/// characters between two offsets of the original text (for `near`).
pub(crate) struct EvalCtx<'a> {
    pub hits: &'a Hits,
    pub exempt: &'a dyn Fn(Span) -> bool,
    pub gap_chars: &'a dyn Fn(usize, usize) -> usize,
}

/// Evaluates a match tree. `None`: the node does not fire. `Some(spans)`: it fires, and these
/// positive spans (sorted, deduplicated) are what it matched.
pub(crate) fn eval(node: &Node, cx: &EvalCtx<'_>) -> Option<Vec<Span>> {
    match node {
        Node::Leaf(i) => {
            let spans: Vec<Span> = cx
                .hits
                .get(*i)
                .into_iter()
                .flatten()
                .copied()
                .filter(|s| !(cx.exempt)(*s))
                .collect();
            if spans.is_empty() { None } else { Some(spans) }
        }
        Node::Any(children) => {
            let mut out: Option<Vec<Span>> = None;
            for c in children {
                if let Some(s) = eval(c, cx) {
                    out.get_or_insert_with(Vec::new).extend(s);
                }
            }
            out.map(sorted)
        }
        Node::All(children) => {
            let mut out = Vec::new();
            for c in children {
                out.extend(eval(c, cx)?);
            }
            Some(sorted(out))
        }
        Node::Not(child) => match eval(child, cx) {
            Some(_) => None,
            None => Some(Vec::new()),
        },
        Node::Near { a, b, within } => {
            let sa = eval(a, cx)?;
            let sb = eval(b, cx)?;
            let close = |x: Span, y: Span| {
                let (first, second) = if x.0 <= y.0 { (x, y) } else { (y, x) };
                if first.1 >= second.0 {
                    return true;
                }
                // A character is 1 to 4 bytes: most gaps are decided without counting (counting
                // every pair's gap made `near` quadratic in the text length).
                let bytes = second.0 - first.1;
                if bytes <= *within {
                    return true;
                }
                if bytes > within.saturating_mul(4) {
                    return false;
                }
                (cx.gap_chars)(first.1, second.0) <= *within
            };
            let mut out = Vec::new();
            for &x in &sa {
                if sb.iter().any(|&y| close(x, y)) {
                    out.push(x);
                }
            }
            for &y in &sb {
                if sa.iter().any(|&x| close(x, y)) {
                    out.push(y);
                }
            }
            if out.is_empty() {
                None
            } else {
                Some(sorted(out))
            }
        }
        Node::Count { node, min } => {
            let s = eval(node, cx)?;
            if s.len() >= *min { Some(s) } else { None }
        }
    }
}

/// Whether `node` can fire when only the leaves `may` marks have hits. An over-approximation
/// (`not` is always possible): when it says no, [`eval`] gives `None` for any hits confined to
/// those leaves.
pub(crate) fn possible(node: &Node, may: &[bool]) -> bool {
    match node {
        Node::Leaf(i) => may.get(*i).copied().unwrap_or(false),
        Node::Any(v) => v.iter().any(|n| possible(n, may)),
        Node::All(v) => v.iter().all(|n| possible(n, may)),
        Node::Not(_) => true,
        Node::Near { a, b, .. } => possible(a, may) && possible(b, may),
        Node::Count { node, .. } => possible(node, may),
    }
}

fn sorted(mut v: Vec<Span>) -> Vec<Span> {
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_table() {
        assert!(luhn("4111 1111 1111 1111"));
        assert!(luhn("5500-0000-0000-0004"));
        assert!(!luhn("4111 1111 1111 1112"));
        assert!(!luhn("1234"));
    }

    #[test]
    fn iban_table() {
        assert!(iban("GB82 WEST 1234 5698 7654 32"));
        assert!(iban("DE89370400440532013000"));
        assert!(!iban("GB82 WEST 1234 5698 7654 33"));
        assert!(!iban("XX00"));
    }

    #[test]
    fn whole_words() {
        let t = "a bomb, bombastic; 爆弾です";
        assert!(whole_word(t, 2, 6));
        assert!(!whole_word(t, 8, 12));
        let s = t.find("爆弾").expect("present");
        assert!(whole_word(t, s, s + "爆弾".len()));
    }
}
