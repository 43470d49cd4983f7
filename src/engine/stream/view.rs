//! One normalization view of a stream: its text, its automata's states carried across pieces,
//! and the live-match frontier they give (`scan_view`).

use aho_corasick::Anchored;
use aho_corasick::automaton::{Automaton, StateID};

use super::StreamScanner;
use crate::engine::live::{LiveDfa, LiveState};
use crate::engine::matcher;
use crate::engine::program::{CompiledPolicy, LOOKAHEAD, LeafKind};
use crate::text::{
    NormalizeOptions, OffsetMap, normalize_into, rewrite_first_bytes, rewrite_pass_into,
    rewrite_stable_prefix, whole_word,
};

/// A per-character normalization pass shared by the views whose per-character steps agree
/// (`NormalizeOptions::char_steps`), as the buffered scan shares it: each view copies from it
/// (no rewrite steps) or runs its rewrite steps over it, so the pass runs once per piece, not
/// once per view.
pub(super) struct CharPass {
    pub opts: NormalizeOptions,
    pub text: String,
    /// Absolute offset of `text[0]` in the pass's normalized text.
    pub base: usize,
    /// The pass's absolute normalized offsets → absolute original offsets.
    pub map: OffsetMap,
    /// Absolute original offset up to which text was normalized.
    pub consumed: usize,
}

impl CharPass {
    pub(super) fn new(opts: NormalizeOptions) -> Self {
        CharPass {
            opts,
            text: String::new(),
            base: 0,
            map: OffsetMap::default(),
            consumed: 0,
        }
    }

    /// Absolute offset of the end of the pass's text.
    pub(super) fn end(&self) -> usize {
        self.base + self.text.len()
    }
}

/// Returns most of a pruned buffer's spare room to the allocator. A stream's buffers grow to
/// its largest piece (a 1 KiB delta, a burst the client read late) and are pruned to a few
/// hundred bytes; without this each view kept its peak for the rest of the stream, ~26 KB per
/// default-policy output scanner after two 1 KiB pieces. Twice the length stays, so pieces of
/// the usual size do not reallocate.
pub(super) fn give_back(buf: &mut String) {
    let keep = buf.len().max(128) * 2;
    if buf.capacity() > keep * 2 {
        buf.shrink_to(keep);
    }
}

/// Per normalization view: the normalized text kept and the automata's states.
pub(super) struct ViewState {
    /// Index of the view's per-character pass in `StreamScanner::passes`.
    pub pass: usize,
    /// Absolute offset in the pass's text read so far.
    pub read: usize,
    pub norm: String,
    /// Absolute normalized offset of `norm[0]`.
    pub norm_base: usize,
    pub map: OffsetMap,
    /// Absolute original offset up to which text was normalized.
    pub consumed: usize,
    pub kw_state: Option<StateID>,
    /// Absolute normalized offset fed to the keyword automaton.
    pub kw_pos: usize,
    /// Keyword hits waiting for the character after them: (pattern, start, end), normalized.
    pub kw_pending: Vec<(usize, usize, usize)>,
    /// Per regex of the view: absolute normalized offset where its next search starts.
    pub regex_pos: Vec<usize>,
    /// Absolute normalized offset the regexes last searched up to.
    pub regex_scanned: usize,
    /// Per regex of the view: its live partial matches (the earliest start still alive).
    pub live: Vec<LiveState>,
    /// Absolute normalized start of the earliest regex hit found but not yet final (more text
    /// may still extend it), or `usize::MAX`.
    pub regex_hold: usize,
}

// === impl StreamScanner: views ===

impl StreamScanner<'_> {
    /// Runs the per-character passes over the new text.
    pub(super) fn advance_passes(&mut self, fin: bool) {
        for pass in &mut self.passes {
            let end = pass.end();
            let n = normalize_into(
                pass.opts,
                &self.orig[pass.consumed - self.base..],
                pass.consumed,
                end,
                fin,
                &mut pass.text,
                &mut pass.map,
            );
            pass.consumed += n;
        }
    }

    /// Drops pass text that every view of the pass has read.
    pub(super) fn prune_passes(&mut self) {
        for (pi, pass) in self.passes.iter_mut().enumerate() {
            let keep = self
                .views
                .iter()
                .filter(|v| v.pass == pi)
                .map(|v| v.read)
                .min()
                .unwrap_or(pass.end());
            let local = floor_char(&pass.text, keep - pass.base);
            if local > 1024 || (local > 0 && local > pass.text.len() / 2) {
                pass.text.drain(..local);
                pass.base += local;
                pass.map.forget_before(pass.base);
                give_back(&mut pass.text);
            }
        }
    }

    /// Normalizes new text of view `vi` and finds its leaf hits. Returns the original offset
    /// before which every hit of this view is known.
    pub(super) fn scan_view(&mut self, vi: usize, fin: bool) -> usize {
        let policy_ref = self.policy.clone();
        let policy: &CompiledPolicy = &policy_ref;
        let view = &policy.stages[self.stage.index()].views[vi];
        let vs = &mut self.views[vi];
        let pass = &self.passes[vs.pass];
        let pass_end = pass.end();
        let norm_end = vs.norm_base + vs.norm.len();
        if !view.opts.rewrites() {
            // The view is its per-character pass: copy what is new.
            vs.norm.push_str(&pass.text[vs.read - pass.base..]);
            vs.map.append_mapped(&pass.map, vs.read, pass_end, norm_end);
            vs.read = pass_end;
            vs.consumed = pass.consumed;
        } else {
            // The rewrite steps over the pass's text from where they stopped; what they leave
            // unread is read again with the next piece.
            let tail = &mut self.scratch_map;
            tail.clear();
            tail.append_mapped(&pass.map, vs.read, pass_end, 0);
            let used = rewrite_pass_into(
                view.opts,
                policy.lexicon.as_ref(),
                &pass.text[vs.read - pass.base..],
                tail,
                &self.orig[vs.consumed - self.base..],
                vs.consumed,
                fin,
                norm_end,
                &mut vs.norm,
                &mut vs.map,
            );
            if vs.read + used >= pass_end {
                vs.read = pass_end;
                vs.consumed = pass.consumed;
            } else {
                vs.read += used;
                vs.consumed = tail.orig_start(used).unwrap_or(pass.consumed);
            }
            tail.clear();
            tail.give_back();
        }
        // Where the rewrite steps stopped before a unit they cannot decide yet: the bytes
        // their output from there can start with. A match in progress that none of them
        // continues is over, and the text before the unit may go (`1. Tom…` releases `1. `
        // although `1 ` could begin `1 years old`).
        // Better, when it can be told: the bytes that output will begin with (the leading
        // letters of an unfinished word, `spec`), fed to copies of the automata so that the
        // frontier can move into the word.
        let (next, stable) = if view.opts.rewrites() && !fin && vs.read < pass_end {
            let unread = &pass.text[vs.read - pass.base..];
            let orig = &self.orig[vs.consumed - self.base..];
            match rewrite_stable_prefix(view.opts, unread, orig) {
                0 => (rewrite_first_bytes(view.opts, unread, orig), 0),
                k => (None, k),
            }
        } else {
            (None, 0)
        };
        let spec = &pass.text.as_bytes()[vs.read - pass.base..][..stable];
        let norm_end = vs.norm_base + vs.norm.len();
        let nb = vs.norm_base;
        // Offsets past `norm_end` stand for `spec`'s bytes.
        let mut front = norm_end + spec.len();

        // Keywords: feed new bytes to the automaton.
        if let (Some(kw), Some(mut sid)) = (&view.keywords, vs.kw_state) {
            let bytes = vs.norm.as_bytes();
            for pos in vs.kw_pos..norm_end {
                sid = kw.dfa.next_state(Anchored::No, sid, bytes[pos - nb]);
                if kw.dfa.is_match(sid) {
                    for i in 0..kw.dfa.match_len(sid) {
                        let pid = kw.dfa.match_pattern(sid, i).as_usize();
                        let len = kw.patterns[pid].0;
                        vs.kw_pending.push((pid, pos + 1 - len, pos + 1));
                    }
                }
            }
            vs.kw_state = Some(sid);
            vs.kw_pos = norm_end;
            let hay = vs.norm.as_str();
            let hits = &mut self.hits;
            let map = &vs.map;
            vs.kw_pending.retain(|&(pid, s, e)| {
                if e >= norm_end && !fin {
                    return true;
                }
                for &(leaf, word) in &kw.patterns[pid].1 {
                    if !word || whole_word(hay, s - nb, e - nb) {
                        hits.push((leaf, map.orig_span(s, e)));
                    }
                }
                false
            });
            // A keyword match still in progress started `depth` bytes back (the longest keyword
            // prefix the text ends with); never earlier than the longest keyword allows.
            let bound = (norm_end + 1).saturating_sub(kw.max_len.max(1));
            let live = kw
                .depths
                .as_ref()
                .and_then(|d| d.depth(sid))
                .map_or(bound, |d| norm_end.saturating_sub(d));
            let mut kw_front = live.max(bound);
            if !spec.is_empty() {
                kw_front = kw_front.max(keyword_start_after(kw, sid, norm_end, spec));
            } else if let Some(next) = next.filter(|_| kw_front < norm_end) {
                // After any byte the unit can start with: the earliest keyword prefix alive, or
                // keyword completed, then.
                let mut earliest = norm_end + 1;
                for b in (0..128u8).filter(|&b| next >> b & 1 == 1) {
                    let s2 = kw.dfa.next_state(Anchored::No, sid, b);
                    earliest = earliest.min(
                        kw.depths
                            .as_ref()
                            .and_then(|d| d.depth(s2))
                            .map_or(bound, |d| (norm_end + 1).saturating_sub(d)),
                    );
                    if kw.dfa.is_match(s2) {
                        for i in 0..kw.dfa.match_len(s2) {
                            let len = kw.patterns[kw.dfa.match_pattern(s2, i).as_usize()].0;
                            earliest = earliest.min((norm_end + 1).saturating_sub(len));
                        }
                    }
                }
                kw_front = kw_front.max(earliest.min(norm_end));
            }
            front = front.min(kw_front);
            for &(_, s, _) in &vs.kw_pending {
                front = front.min(s);
            }
        }

        // Regexes: search from each regex's position; accept hits that more text cannot change.
        // A search runs on every piece that brings new text, so text is released piece by
        // piece (a stream's rhythm reaches the client unchanged); each search re-reads up to a
        // regex's longest match behind the end, the price of not carrying DFA state across
        // pieces.
        let regex_due = fin || norm_end > vs.regex_scanned;
        if view.regex_set.is_some() && !regex_due {
            let hay = vs.norm.as_str();
            for (ri, &leaf) in view.regexes.iter().enumerate() {
                let mut p = vs.regex_pos[ri];
                if let LeafKind::Regex(r) = &policy.leaves[leaf].kind
                    && let Ok(dfa) = &r.live
                    && !spec.is_empty()
                {
                    let worst = back_off(hay, r.max_len);
                    let live = &vs.live[ri];
                    p = p.max(
                        nb + live_after_spec(
                            live,
                            dfa,
                            hay,
                            nb,
                            worst,
                            spec,
                            &mut self.live_scratch,
                        ),
                    );
                } else if let (Some(next), LeafKind::Regex(r)) = (next, &policy.leaves[leaf].kind)
                    && let Ok(dfa) = &r.live
                    && p < norm_end
                {
                    let worst = back_off(hay, r.max_len);
                    let live = &vs.live[ri];
                    p = p.max(
                        nb + live_after(live, dfa, hay, nb, worst, next, &mut self.live_scratch),
                    );
                }
                front = front.min(p);
            }
            front = front.min(vs.regex_hold);
        }
        if let Some(set) = view.regex_set.as_ref().filter(|_| regex_due) {
            vs.regex_scanned = norm_end;
            let mut hold = usize::MAX;
            let min_pos = vs.regex_pos.iter().copied().min().unwrap_or(norm_end);
            let hay = vs.norm.as_str();
            let matching = if min_pos < norm_end {
                set.matches_at(hay, min_pos - nb)
            } else {
                set.matches_at(hay, hay.len())
            };
            let limit = if fin {
                None
            } else {
                Some(hay.len().saturating_sub(LOOKAHEAD))
            };
            for (ri, &leaf) in view.regexes.iter().enumerate() {
                let LeafKind::Regex(r) = &policy.leaves[leaf].kind else {
                    continue;
                };
                // The earliest start a match still in progress may have: from the regex's live
                // DFA, never before the worst-case back-off (or that, for regexes without one).
                let worst = back_off(hay, r.max_len);
                let mut after = None;
                let live = match &r.live {
                    Ok(dfa) if !fin => {
                        let s = vs.live[ri].advance(dfa, hay, nb, worst + nb);
                        if !spec.is_empty() {
                            after = Some(live_after_spec(
                                &vs.live[ri],
                                dfa,
                                hay,
                                nb,
                                worst,
                                spec,
                                &mut self.live_scratch,
                            ));
                        } else if let Some(next) = next.filter(|_| s < norm_end) {
                            let live = &vs.live[ri];
                            after = Some(live_after(
                                live,
                                dfa,
                                hay,
                                nb,
                                worst,
                                next,
                                &mut self.live_scratch,
                            ));
                        }
                        floor_char(hay, s.saturating_sub(nb)).max(worst)
                    }
                    _ => worst,
                };
                let mut pos = vs.regex_pos[ri] - nb;
                if !matching.matched(ri) {
                    pos = if fin { hay.len() } else { pos.max(live) };
                } else {
                    loop {
                        match matcher::next_regex_hit(r, hay, pos, limit) {
                            Ok(Some(((s, e), ok))) => {
                                if ok {
                                    self.hits.push((leaf, vs.map.orig_span(s + nb, e + nb)));
                                }
                                pos = e;
                            }
                            Ok(None) => {
                                pos = if fin { hay.len() } else { pos.max(live) };
                                break;
                            }
                            Err(s) => {
                                hold = hold.min(s + nb);
                                pos = pos.max(floor_char(hay, s.min(live)));
                                break;
                            }
                        }
                    }
                }
                vs.regex_pos[ri] = pos + nb;
                // The search goes on from `pos`; the frontier may be later when every byte the
                // next unit can start with ends the match in progress (a hit not final yet
                // still holds it: `hold`).
                front = front.min(nb + after.map_or(pos, |l| pos.max(l)));
            }
            vs.regex_hold = hold;
            front = front.min(hold);
        }
        if front > norm_end {
            // In the unfinished word: its leading bytes are the pass's own (ASCII), each
            // mapped to its character.
            let at = vs.read + (front - norm_end).min(spec.len());
            return if at >= pass_end {
                pass.consumed
            } else {
                pass.map.orig_start(at).unwrap_or(vs.consumed)
            };
        }
        // The frontier must fall on a character of the normalized text, or it would map
        // into the middle of an original character.
        let front = nb + floor_char(&vs.norm, front.min(norm_end).saturating_sub(nb));
        if front >= norm_end {
            vs.consumed
        } else {
            vs.map.orig_start(front).unwrap_or(vs.consumed)
        }
    }
}

/// Where a match of a regex may still start (local to `hay`, on a character, never before
/// `worst`) if the text goes on with any byte of `next`: [`LiveState::start_after_any`] for the
/// regex's live state, which has read `hay` (absolute offset `nb`).
fn live_after(
    live: &LiveState,
    dfa: &LiveDfa,
    hay: &str,
    nb: usize,
    worst: usize,
    next: u128,
    scratch: &mut Vec<u8>,
) -> usize {
    let s = live.start_after_any(dfa, hay, nb, worst + nb, next, scratch);
    floor_char(hay, s.saturating_sub(nb)).max(worst)
}

/// Where a match of a regex may still start if the text goes on with `spec` (local to `hay`;
/// past its end for a start in `spec`): [`LiveState::start_after_bytes`], never before
/// `worst`.
fn live_after_spec(
    live: &LiveState,
    dfa: &LiveDfa,
    hay: &str,
    nb: usize,
    worst: usize,
    spec: &[u8],
    scratch: &mut Vec<u8>,
) -> usize {
    let s = live.start_after_bytes(dfa, hay, nb, worst + nb, spec, scratch) - nb;
    if s > hay.len() {
        s
    } else {
        floor_char(hay, s).max(worst)
    }
}

/// Where a keyword match may still start (absolute, normalized) once the automaton in state
/// `sid` at `norm_end` has read `spec` too: the earliest start of a keyword `spec` completes,
/// or of the longest keyword prefix alive after it; at most the end of `spec`.
fn keyword_start_after(
    kw: &crate::engine::program::KeywordSet,
    sid: StateID,
    norm_end: usize,
    spec: &[u8],
) -> usize {
    let mut s = sid;
    let end = norm_end + spec.len();
    let mut earliest = end;
    for (j, &b) in spec.iter().enumerate() {
        s = kw.dfa.next_state(Anchored::No, s, b);
        if kw.dfa.is_match(s) {
            for i in 0..kw.dfa.match_len(s) {
                let len = kw.patterns[kw.dfa.match_pattern(s, i).as_usize()].0;
                earliest = earliest.min((norm_end + j + 1).saturating_sub(len));
            }
        }
    }
    let bound = (end + 1).saturating_sub(kw.max_len.max(1));
    let alive = kw
        .depths
        .as_ref()
        .and_then(|d| d.depth(s))
        .map_or(bound, |d| end.saturating_sub(d));
    earliest.min(alive.max(bound))
}

/// The position `max_len + LOOKAHEAD` bytes before the end of `hay`, on a character boundary:
/// no hit can start before it once the search found nothing.
fn back_off(hay: &str, max_len: usize) -> usize {
    floor_char(hay, hay.len().saturating_sub(max_len + LOOKAHEAD))
}

pub(super) fn floor_char(hay: &str, mut i: usize) -> usize {
    i = i.min(hay.len());
    while !hay.is_char_boundary(i) {
        i -= 1;
    }
    i
}
