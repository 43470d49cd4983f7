//! The live-match frontier: where a match still in progress could start. One concern in one
//! file (over 600 lines with its tests): the keyword depths and the regexes' live DFAs that say it.
//!
//! The stream scanner releases text only up to the earliest start of a match that more text
//! could still complete. For the keyword automaton that is the depth of its current state
//! ([`KeywordDepths`]): the longest keyword prefix that is a suffix of the text so far. For a
//! regex it is the earliest start whose text so far is still a prefix of some match
//! ([`LiveDfa`], an anchored forward DFA run from that start and carried across pieces).
//!
//! Both are computed once at compile time and only *move the release frontier*: hits still
//! come from the matcher (`matcher.rs`), so what a rule means cannot change.

use aho_corasick::automaton::{Automaton as _, StateID as KwState};
use regex_automata::dfa::{Automaton as _, StartKind, dense};
use regex_automata::nfa::thompson;
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};
use regex_syntax::hir::{Class, ClassBytes, ClassBytesRange, Hir, HirKind, Repetition};

// === keywords ===

/// Per state of a keyword automaton, its depth: the length of the longest keyword prefix that
/// is a suffix of the text fed so far. Sorted state ids with their depths (8 bytes a state;
/// looked up once per piece, not per byte).
#[derive(Debug, Clone, Default)]
pub(crate) struct KeywordDepths {
    ids: Vec<u32>,
    depths: Vec<u32>,
}

impl KeywordDepths {
    /// Breadth-first search from the unanchored start state: the distance of a state is its
    /// trie depth (the shortest text that reaches an Aho-Corasick state is the prefix it
    /// stands for, and every text reaching it ends with that prefix). Only bytes of the
    /// `keywords` the automaton was built from are followed: any other byte leads back to the
    /// start state, which the search has already seen. `None` when the automaton has no
    /// unanchored start or more states than a `u32` counts.
    pub(crate) fn build(
        dfa: &aho_corasick::dfa::DFA,
        keywords: &[String],
    ) -> Option<KeywordDepths> {
        let mut alphabet = [false; 256];
        for k in keywords {
            for &b in k.as_bytes() {
                alphabet[usize::from(b)] = true;
            }
        }
        let start = dfa.start_state(aho_corasick::Anchored::No).ok()?;
        let mut seen: std::collections::HashMap<KwState, u32> = std::collections::HashMap::new();
        let mut queue = std::collections::VecDeque::new();
        seen.insert(start, 0);
        queue.push_back(start);
        while let Some(sid) = queue.pop_front() {
            let d = *seen.get(&sid)?;
            for b in (0..=255u8).filter(|&b| alphabet[usize::from(b)]) {
                let next = dfa.next_state(aho_corasick::Anchored::No, sid, b);
                if let std::collections::hash_map::Entry::Vacant(e) = seen.entry(next) {
                    e.insert(d.checked_add(1)?);
                    queue.push_back(next);
                }
            }
        }
        let mut pairs: Vec<(u32, u32)> = seen
            .into_iter()
            .map(|(s, d)| u32::try_from(s.as_usize()).map(|s| (s, d)))
            .collect::<Result<_, _>>()
            .ok()?;
        pairs.sort_unstable();
        Some(KeywordDepths {
            ids: pairs.iter().map(|p| p.0).collect(),
            depths: pairs.iter().map(|p| p.1).collect(),
        })
    }

    /// The depth of `sid`; `None` for a state the search did not reach.
    pub(crate) fn depth(&self, sid: KwState) -> Option<usize> {
        let id = u32::try_from(sid.as_usize()).ok()?;
        let i = self.ids.binary_search(&id).ok()?;
        self.depths.get(i).map(|&d| d as usize)
    }

    /// Heap bytes of the table.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn memory_usage(&self) -> usize {
        (self.ids.capacity() + self.depths.capacity()) * 4
    }
}

// === regexes ===

/// Determinization and size limit of one live DFA: larger regexes fall back to the worst-case
/// back-off.
pub(crate) const LIVE_DFA_SIZE_LIMIT: usize = 1 << 20;

/// An anchored forward DFA that says whether a text is still a prefix of some match of one
/// regex — or of a slightly wider language: the DFA is built from a *widened* copy of the
/// regex ([`widen`]) so that it determinizes in microseconds instead of the seconds Unicode
/// classes and word boundaries cost. Wider is safe: the DFA only moves the release frontier,
/// and saying "still alive" too often holds a few bytes longer, never releases a byte a match
/// could cover. Built with [`MatchKind::All`], so it goes dead only when no continuation of
/// the text can match (leftmost-first would stop early after a preferred match).
#[derive(Debug, Clone)]
pub(crate) struct LiveDfa {
    dfa: dense::DFA<Vec<u32>>,
    /// When the anchored start state does not depend on the byte before it (the widened
    /// regex has no look-around): the bytes after which a run from the start is not dead, as
    /// a bit set. A stream skips every other start position with one lookup instead of a run.
    first: Option<[u64; 4]>,
}

/// Why a regex has no [`LiveDfa`] and falls back to the worst-case back-off.
pub(crate) type FallbackReason = String;

impl LiveDfa {
    /// Builds the live DFA of a parsed regex (the same parse the regex leaf compiles).
    pub(crate) fn build(hir: &Hir) -> Result<LiveDfa, FallbackReason> {
        let wide = widen(hir);
        let nfa = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .utf8(false)
                    .shrink(false)
                    .nfa_size_limit(Some(LIVE_DFA_SIZE_LIMIT)),
            )
            .build_from_hir(&wide)
            .map_err(|e| e.to_string())?;
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .start_kind(StartKind::Anchored)
                    .match_kind(MatchKind::All)
                    .minimize(false)
                    .dfa_size_limit(Some(LIVE_DFA_SIZE_LIMIT))
                    .determinize_size_limit(Some(LIVE_DFA_SIZE_LIMIT)),
            )
            .build_from_nfa(&nfa)
            .map_err(|e| e.to_string())?;
        let first = first_bytes(&dfa);
        Ok(LiveDfa { dfa, first })
    }

    /// Heap bytes of the DFA.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn memory_usage(&self) -> usize {
        self.dfa.memory_usage()
    }
}

/// Per stream and regex: the earliest start that may still begin a match, and the DFA state
/// after reading the text from there to `at`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LiveState {
    /// Absolute normalized offset of the candidate start.
    pub start: usize,
    /// DFA state after `norm[start..at]`; `None` before the first run from `start`.
    sid: Option<StateID>,
    /// Absolute normalized offset read up to.
    at: usize,
}

impl LiveState {
    /// Advances over `hay` (normalized text whose first byte is at absolute offset `nb`, ending
    /// at the end of what was received) and returns the new candidate start: no match of the
    /// regex can start before it, whatever text comes next. `floor` is a start before which no
    /// match can begin anyway (the worst-case back-off); runs never begin before it, so each
    /// byte is read at most the regex's longest match times (in practice once or twice: runs
    /// die within a word).
    pub(crate) fn advance(&mut self, live: &LiveDfa, hay: &str, nb: usize, floor: usize) -> usize {
        self.advance_bytes(live, hay.as_bytes(), nb, floor, false)
    }

    /// The earliest start at which a match may still begin, or has ended, if the text goes on
    /// with `spec` (bytes known to follow, not yet part of `hay`): an offset up to the end of
    /// `spec` (`nb + hay.len() + spec.len()`). A run that reaches a match state holds its
    /// start, as one that is not dead at the end does: no search runs over `spec`, so a match
    /// inside it has to hold the text here. The state itself does not move; the arguments are
    /// as for [`start_after_any`](Self::start_after_any).
    pub(crate) fn start_after_bytes(
        &self,
        live: &LiveDfa,
        hay: &str,
        nb: usize,
        floor: usize,
        spec: &[u8],
        scratch: &mut Vec<u8>,
    ) -> usize {
        let end = nb + hay.len();
        let from = self.start.min(end).saturating_sub(1).max(nb);
        scratch.clear();
        scratch.extend_from_slice(&hay.as_bytes()[from - nb..]);
        scratch.extend_from_slice(spec);
        let mut probe = *self;
        probe.advance_bytes(live, scratch, from, floor, true)
    }

    /// The earliest start [`advance`](Self::advance) would give after one more byte, for the
    /// worst byte of `next` (a bit set of ASCII bytes): where a match may still start if the
    /// text goes on with any of them. The state itself does not move. `hay`, `nb` and `floor`
    /// are as for `advance`, which must have run over the same `hay`; `scratch` is reused.
    pub(crate) fn start_after_any(
        &self,
        live: &LiveDfa,
        hay: &str,
        nb: usize,
        floor: usize,
        next: u128,
        scratch: &mut Vec<u8>,
    ) -> usize {
        let end = nb + hay.len();
        if self.start >= end || next == 0 {
            return self.start.min(end);
        }
        // The text from the live start (and the byte behind it, for look-behind) on, and
        // the byte to try: runs from later starts read only that.
        let from = self.start.saturating_sub(1).max(nb);
        scratch.clear();
        scratch.extend_from_slice(&hay.as_bytes()[from - nb..]);
        scratch.push(0);
        let mut earliest = end + 1;
        for b in (0..128u8).filter(|&b| next >> b & 1 == 1) {
            *scratch.last_mut().expect("pushed above") = b;
            let mut probe = *self;
            earliest = earliest.min(probe.advance_bytes(live, scratch, from, floor, false));
            if earliest <= self.start {
                break;
            }
        }
        earliest.min(end)
    }

    /// `hold_on_match`: a run that reaches a match state counts as alive (for text no
    /// search reads).
    fn advance_bytes(
        &mut self,
        live: &LiveDfa,
        bytes: &[u8],
        nb: usize,
        floor: usize,
        hold_on_match: bool,
    ) -> usize {
        let end = nb + bytes.len();
        if floor > self.start {
            self.start = floor;
            self.sid = None;
        }
        // The text from `start` on must still be there; `prune` keeps it, and should it be
        // gone the start counts as alive.
        if self.start < nb || (self.sid.is_some() && self.at < nb) {
            return self.start;
        }
        let dfa = &live.dfa;
        loop {
            if self.start >= end {
                self.start = end;
                self.sid = None;
                self.at = end;
                return end;
            }
            let mut sid = match self.sid {
                Some(s) => s,
                None => {
                    // Start positions whose first byte kills the run at once are skipped
                    // with a lookup: the run below would find the same.
                    // (Not at `nb` past the stream's start: the byte behind is gone, and the
                    // run below says alive.)
                    if let Some(first) = &live.first
                        && (self.start == 0 || self.start > nb)
                    {
                        match bytes[self.start - nb..]
                            .iter()
                            .position(|&b| in_set(first, b))
                        {
                            Some(k) => self.start += k,
                            None => {
                                self.start = end;
                                continue;
                            }
                        }
                    }
                    // The byte before the start decides look-behind assertions (`\b`); the
                    // scanner keeps it (`prune` keeps bytes before every live start). Should
                    // it be gone, the start counts as alive.
                    let behind = if self.start == 0 {
                        None
                    } else if self.start > nb {
                        Some(bytes[self.start - 1 - nb])
                    } else {
                        return self.start;
                    };
                    // An error means the DFA cannot say (a look-behind it quits on): alive.
                    let cfg = start::Config::new()
                        .anchored(Anchored::Yes)
                        .look_behind(behind);
                    match dfa.start_state(&cfg) {
                        Ok(s) => {
                            self.at = self.start;
                            s
                        }
                        Err(_) => return self.start,
                    }
                }
            };
            if dfa.is_quit_state(sid) {
                self.sid = Some(sid);
                return self.start;
            }
            let mut dead = dfa.is_dead_state(sid);
            while !dead && self.at < end {
                sid = dfa.next_state(sid, bytes[self.at - nb]);
                self.at += 1;
                if dfa.is_quit_state(sid) || (hold_on_match && dfa.is_match_state(sid)) {
                    self.sid = Some(sid);
                    return self.start;
                }
                dead = dfa.is_dead_state(sid);
            }
            if !dead {
                self.sid = Some(sid);
                return self.start;
            }
            // No match can start here: try the next position.
            self.start += 1;
            self.sid = None;
        }
    }
}

/// The bytes after which an anchored run of `dfa` from its start is not dead (a quit state
/// counts as alive), or `None` when the start state depends on the byte before the start.
fn first_bytes(dfa: &dense::DFA<Vec<u32>>) -> Option<[u64; 4]> {
    let cfg = start::Config::new().anchored(Anchored::Yes);
    let s0 = dfa.start_state(&cfg).ok()?;
    for b in 0..=255u8 {
        if dfa.start_state(&cfg.clone().look_behind(Some(b))).ok()? != s0 {
            return None;
        }
    }
    if dfa.is_quit_state(s0) || dfa.is_dead_state(s0) {
        return None;
    }
    let mut set = [0u64; 4];
    for b in 0..=255u8 {
        if !dfa.is_dead_state(dfa.next_state(s0, b)) {
            set[usize::from(b / 64)] |= 1 << (b % 64);
        }
    }
    Some(set)
}

fn in_set(set: &[u64; 4], b: u8) -> bool {
    set[usize::from(b / 64)] & (1 << (b % 64)) != 0
}

/// A byte-level regex whose language contains every match of `hir` (and of each prefix):
/// look-around assertions (`\b`, `^`, `$`) are dropped — a dropped assertion only allows
/// more —, a class keeps its ASCII members exactly while any non-ASCII member becomes
/// "any multi-byte UTF-8 character" (a lead byte and one to three continuation bytes), and
/// repetitions counted past four are unbounded.
/// Literals, repetitions, concatenations and alternations are kept as they are, so the
/// widened language stays as narrow as the regex on ASCII text.
pub(crate) fn widen(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Hir::empty(),
        HirKind::Literal(l) => Hir::literal(l.0.clone()),
        HirKind::Class(Class::Bytes(c)) => Hir::class(Class::Bytes(c.clone())),
        HirKind::Class(Class::Unicode(c)) => {
            let ascii: Vec<ClassBytesRange> = c
                .ranges()
                .iter()
                .filter(|r| r.start() <= '\x7f')
                .map(|r| ClassBytesRange::new(r.start() as u8, r.end().min('\x7f') as u8))
                .collect();
            let wide = c.ranges().iter().any(|r| r.end() > '\x7f');
            let mut alts = Vec::new();
            if !ascii.is_empty() {
                alts.push(Hir::class(Class::Bytes(ClassBytes::new(ascii))));
            }
            if wide {
                alts.push(any_multibyte());
            }
            match alts.len() {
                0 => Hir::fail(),
                1 => alts.remove(0),
                _ => Hir::alternation(alts),
            }
        }
        // A counted repetition makes the DFA count (`[a-z0-9.-]{1,190}` then `\.[a-z]{2,24}`
        // multiplies into thousands of states, past the size limit); past a few it becomes
        // unbounded. Only a run longer than the count could tell the two apart, and the
        // worst-case back-off (the regex's longest match) still bounds the frontier.
        HirKind::Repetition(r) if r.max.is_none_or(|m| m > 4) => Hir::repetition(Repetition {
            min: r.min.min(1),
            max: None,
            greedy: r.greedy,
            sub: Box::new(widen(&r.sub)),
        }),
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            min: r.min,
            max: r.max,
            greedy: r.greedy,
            sub: Box::new(widen(&r.sub)),
        }),
        HirKind::Capture(c) => widen(&c.sub),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(widen).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.iter().map(widen).collect()),
    }
}

/// Any multi-byte UTF-8 character, loosely: a lead byte, then one to three continuation
/// bytes.
fn any_multibyte() -> Hir {
    let lead = Hir::class(Class::Bytes(ClassBytes::new([ClassBytesRange::new(
        0xC2, 0xF4,
    )])));
    let cont = Hir::class(Class::Bytes(ClassBytes::new([ClassBytesRange::new(
        0x80, 0xBF,
    )])));
    Hir::concat(vec![
        lead,
        Hir::repetition(Repetition {
            min: 1,
            max: Some(3),
            greedy: true,
            sub: Box::new(cont),
        }),
    ])
}

#[cfg(test)]
mod tests {
    use super::{LiveDfa, LiveState};
    use crate::engine::CompiledPolicy;
    use crate::engine::program::LeafKind;
    use crate::policy::Stage;

    /// Prints which regexes of the shipped default policy fall back (run with --nocapture).
    #[test]
    fn default_policy_fallbacks() {
        let t = std::time::Instant::now();
        let p = CompiledPolicy::load("policies/default.yaml").unwrap();
        eprintln!("load {:?}", t.elapsed());
        let mut mem = 0;
        for (i, l) in p.leaves.iter().enumerate() {
            if let LeafKind::Regex(r) = &l.kind {
                match &r.live {
                    Ok(d) => mem += d.memory_usage(),
                    Err(e) => eprintln!("leaf {i} falls back: {}", e.lines().next().unwrap_or("")),
                }
            }
        }
        eprintln!("live dfa memory {mem}");
        let kw: usize = p.stages[Stage::Output.index()]
            .views
            .iter()
            .filter_map(|v| v.keywords.as_ref()?.depths.as_ref())
            .map(|d| d.memory_usage())
            .sum();
        eprintln!("keyword depth tables {kw}");
        let mut s = p.stream(Stage::Output);
        let text = "The nightjar is a bird. ";
        let o = s.push(text);
        eprintln!(
            "released {:?} frontier {} held {}",
            o.text,
            s.frontier(),
            s.held()
        );
    }

    /// The widened live DFA never goes dead on a prefix of a real match: for each pattern and
    /// text, every match found by the regex keeps its start alive after every one of its
    /// bytes, whatever the Unicode classes, case folding and word boundaries.
    #[test]
    fn widened_dfa_keeps_every_match_prefix_alive() {
        let cases: &[(&str, &str)] = &[
            (r"\bkill\s+(?:him|her)\b", "I will kill   her now"),
            (r"(?i)straße\w{1,8}", "eine STRASSE? nein: straßenbahn"),
            (r"\w{2,10}@\w{2,10}\.[a-z]{2,5}", "mail: jürgen@exämple.de"),
            (r"[^\s]{3,12}\s{1,3}bomb", "ДЕТОНАТОР  bomb"),
            (r"(?i)\bsk-[a-z0-9]{8}", "key SK-ab12cd34 here"),
            (r"\p{Greek}{2,6}", "text αβγδ end"),
            (
                r"[a-z0-9._%+-]{1,64}@[a-z0-9.-]{1,190}\.[a-z]{2,24}",
                "mail bob@example.com now",
            ),
        ];
        for &(pat, text) in cases {
            let hir = regex_syntax::ParserBuilder::new()
                .build()
                .parse(pat)
                .unwrap();
            let dfa = LiveDfa::build(&hir).unwrap();
            let re = regex::Regex::new(pat).unwrap();
            let found: Vec<_> = re.find_iter(text).collect();
            assert!(!found.is_empty(), "{pat} should match {text:?}");
            for m in found {
                for end in m.start() + 1..=m.end() {
                    if !text.is_char_boundary(end) {
                        continue;
                    }
                    let mut st = LiveState::default();
                    let start = st.advance(&dfa, &text[..end], 0, m.start());
                    assert!(
                        start <= m.start(),
                        "{pat}: match at {} declared dead after {:?} (frontier {start})",
                        m.start(),
                        &text[m.start()..end]
                    );
                }
            }
        }
    }

    /// A long counted regex (an e-mail pattern) still gets a live DFA, so benign text before
    /// an address is released as it arrives, and the address itself is redacted whole.
    #[test]
    fn counted_regex_releases_benign_text() {
        let p = CompiledPolicy::from_yaml_str(
            "policy: em\nrules:\n  - id: email\n    stages: [output]\n    match: {regex: '[a-z0-9._%+-]{1,64}@[a-z0-9.-]{1,190}\\.[a-z]{2,24}'}\n    action: redact\n    replacement: '[email]'\n",
            "em.yaml",
        )
        .unwrap();
        for l in &p.leaves {
            if let LeafKind::Regex(r) = &l.kind {
                assert!(r.live.is_ok(), "{:?}", r.live.as_ref().err());
            }
        }
        let mut s = p.stream(Stage::Output);
        let mut out = String::new();
        for piece in [
            "The nightjar is a bird ",
            "that sings. Mail bob@exa",
            "mple.com now.",
        ] {
            let o = s.push(piece);
            out.push_str(&o.text);
            if piece.starts_with("The") {
                assert!(
                    o.text.starts_with("The nightjar is a"),
                    "released {:?}",
                    o.text
                );
            }
        }
        out.push_str(&s.finish().text);
        assert_eq!(out, "The nightjar is a bird that sings. Mail [email] now.");
    }

    /// The first-byte skip gives the same candidate start as running the DFA from every
    /// position, piece by piece (the regexes of the shipped policies' output stage, over
    /// mixed text in pieces of 1 to 17 bytes, with the floor moving as a stream moves it).
    #[test]
    fn first_byte_skip_equals_full_runs() {
        let p = CompiledPolicy::load("policies/default.yaml").unwrap();
        let text = "The report: mail bob.smith@example.com, call +1 555 0100, key sk-ab12CD34ef56 \
                    Результаты 前四半期 pipe bomb how to m4ke m3th AKIAABCDEFGHIJKLMNOP 4111 1111";
        let mut skipping = 0;
        for l in &p.leaves {
            let LeafKind::Regex(r) = &l.kind else {
                continue;
            };
            let Ok(fast) = &r.live else { continue };
            skipping += usize::from(fast.first.is_some());
            let slow = LiveDfa {
                first: None,
                ..fast.clone()
            };
            for piece in [1, 3, 16, 17] {
                let (mut a, mut b) = (LiveState::default(), LiveState::default());
                let mut end = 0;
                while end < text.len() {
                    end = (end + piece).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    let floor = end.saturating_sub(r.max_len + 4);
                    let (x, y) = (
                        a.advance(fast, &text[..end], 0, floor),
                        b.advance(&slow, &text[..end], 0, floor),
                    );
                    assert_eq!(x, y, "piece {piece} end {end}");
                }
            }
        }
        assert!(skipping > 10, "only {skipping} live DFAs skip");
    }

    /// Bytes known to follow (`start_after_bytes`) are read by no search, so a match that
    /// they complete must hold its start, as a match still open at their end does; a start
    /// whose run dies in them does not.
    #[test]
    fn bytes_known_to_follow_hold_a_match_inside_them() {
        let dfa = |pat: &str| {
            let hir = regex_syntax::ParserBuilder::new()
                .build()
                .parse(pat)
                .unwrap();
            LiveDfa::build(&hir).unwrap()
        };
        let mut scratch = Vec::new();
        for (pat, hay, spec, want) in [
            // Completed inside the bytes, then dead: held at the match's start.
            ("abc", "x ", "zabcq", 3),
            (r"(?-u:\b)bomb(?-u:\b)", "a ", "bomb.", 2),
            (r"[0-9]{2}\syears", "she was ", "12", 8),
            // Never begins: the frontier is past all of them.
            ("abc", "x ", "night", 7),
            // Begun before them and ended by them.
            ("abc", "x ab", "q", 5),
            // Begun before them and still open at their end.
            ("abcdef", "x ab", "cd", 2),
        ] {
            let live = dfa(pat);
            let mut st = LiveState::default();
            st.advance(&live, hay, 0, 0);
            let got = st.start_after_bytes(&live, hay, 0, 0, spec.as_bytes(), &mut scratch);
            assert_eq!(got, want, "{pat} over {hay:?} + {spec:?}");
            // The state itself did not move.
            let mut again = st;
            assert_eq!(again.advance(&live, hay, 0, 0), st.start);
        }
    }
}
