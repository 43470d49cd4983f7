//! The matcher: leaf matching on a normalized view, and match-tree evaluation over leaf hits.
//!
//! Both the buffered and the streaming scanner find leaf hits with these functions and
//! evaluate rules with [`match_node`], so the two can only differ in *when* they decide, never
//! in *what* a rule means.

use aho_corasick::automaton::Automaton;
use regex_automata::{Anchored, Input};

use super::program::{Node, RegexLeaf};

/// Bytes of markup a `near` gap may hold beyond `within` characters (4 bytes each): the
/// matcher never counts a longer gap, and a stream's reach for `near` adds it.
pub(crate) const MARKUP_SLACK: usize = 64;

/// The characters of a `near` gap a reader sees: HTML tags (`<b>`, `</span>`,
/// `<a href="…">`, `<!-- … -->`, up to [`MARKUP_SLACK`] bytes each), markdown marks (`*`, `_`,
/// `` ` ``, `~`) and invisible characters do not count, so `how do I <span>stab` is as near as
/// `how do I stab`.
pub(crate) fn visible_chars(gap: &str) -> usize {
    let b = gap.as_bytes();
    let (mut n, mut i) = (0, 0);
    while i < b.len() {
        let c = b[i];
        if c == b'<'
            && let Some(len) = tag_len(&b[i..])
        {
            i += len;
            continue;
        }
        if matches!(c, b'*' | b'_' | b'`' | b'~') {
            i += 1;
            continue;
        }
        let ch = gap[i..].chars().next().expect("i is a char boundary");
        if !crate::text::is_invisible(ch) {
            n += 1;
        }
        i += ch.len_utf8();
    }
    n
}

/// The length of the HTML tag or comment at the start of `b` (`<` and a letter, `</` and a
/// letter, or `<!`, up to the first `>` within [`MARKUP_SLACK`] bytes, no `<` inside).
fn tag_len(b: &[u8]) -> Option<usize> {
    let opens = match b.get(1) {
        Some(c) if c.is_ascii_alphabetic() || *c == b'!' => true,
        Some(b'/') => b.get(2).is_some_and(u8::is_ascii_alphabetic),
        _ => false,
    };
    if !opens {
        return None;
    }
    let end = b.iter().take(MARKUP_SLACK).position(|&c| c == b'>')?;
    (!b[1..end].contains(&b'<')).then_some(end + 1)
}

/// A span in original-text byte offsets.
pub(crate) type Span = (usize, usize);

/// Hits per leaf, indexed by leaf id; each list sorted by start.
pub(crate) type Hits = Vec<Vec<Span>>;

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
    let re = match leaf.regex.get() {
        Ok(re) => re,
        // Fail closed: a regex that cannot be compiled matches the rest of the text.
        Err(_) if pos < hay.len() => return Ok(Some(((pos, hay.len()), true))),
        Err(_) => return Ok(None),
    };
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
                let ok = leaf.validate.is_none_or(|v| v.check(&hay[s..m2.end()]));
                return Ok(Some(((s, m2.end()), ok)));
            }
            None => {
                pos = s + hay[s..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
}

// === match trees ===

/// Match context: hits per leaf, a predicate for exempted spans, and a way to count the
/// characters between two offsets of the original text (for `near`).
pub(crate) struct MatchCtx<'a> {
    pub hits: &'a Hits,
    pub exempt: &'a dyn Fn(Span) -> bool,
    pub gap_chars: &'a dyn Fn(usize, usize) -> usize,
}

/// Evaluates a match tree. `None`: the node does not fire. `Some(spans)`: it fires, and these
/// positive spans (sorted, deduplicated) are what it matched.
pub(crate) fn match_node(node: &Node, cx: &MatchCtx<'_>) -> Option<Vec<Span>> {
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
                if let Some(s) = match_node(c, cx) {
                    out.get_or_insert_with(Vec::new).extend(s);
                }
            }
            out.map(sorted)
        }
        Node::All(children) => {
            let mut out = Vec::new();
            for c in children {
                out.extend(match_node(c, cx)?);
            }
            Some(sorted(out))
        }
        Node::Not(child) => match match_node(child, cx) {
            Some(_) => None,
            None => Some(Vec::new()),
        },
        Node::Near { a, b, within } => {
            let sa = match_node(a, cx)?;
            let sb = match_node(b, cx)?;
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
                if bytes > within.saturating_mul(4).saturating_add(MARKUP_SLACK) {
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
            let s = match_node(node, cx)?;
            if s.len() >= *min { Some(s) } else { None }
        }
    }
}

/// Whether `node` can fire when only the leaves `may` marks have hits. An over-approximation
/// (`not` is always possible): when it says no, [`match_node`] gives `None` for any hits confined to
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
mod gap_tests {
    use super::{MARKUP_SLACK, visible_chars};

    #[test]
    fn markup_in_a_gap_does_not_count() {
        for (gap, want) in [
            ("", 0),
            (" ", 1),
            ("<span>", 0),
            ("</span> <i>", 1),
            ("<a href=\"https://example.com\">", 0),
            ("<!-- note -->", 0),
            ("<br/>", 0),
            ("**", 0),
            ("` _x_ `", 3),
            ("\u{200B}\u{00AD}", 0),
            // Not tags: a comparison, a tag that never closes, a `<` inside.
            ("a < b", 5),
            ("<b", 2),
            ("<a <b>", 3),
            ("< b>", 4),
            ("日本", 2),
        ] {
            assert_eq!(visible_chars(gap), want, "{gap:?}");
        }
        // A tag longer than the slack counts as text.
        let long = format!("<a title=\"{}\">", "x".repeat(MARKUP_SLACK));
        assert_eq!(
            visible_chars(&long),
            long.chars().count() - long.matches('_').count()
        );
    }
}
