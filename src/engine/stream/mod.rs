//! Streaming scans: text that arrives in pieces. One concern in one file (just over 600
//! lines): the scanner's state and its advance over a piece; the per-view passes are in
//! `view.rs`.
//!
//! [`StreamScanner`] keeps, per normalization view, the keyword automaton's state between
//! pieces and a small tail of normalized text for the regexes, and releases original text only
//! up to the *safe point*: the first offset that a match still open, a hit whose rule is not yet
//! decided, or a pending normalization segment could cover. Nothing past the safe point leaves
//! the scanner, so no byte of a span that a blocking or redacting rule matches is ever released,
//! whatever the chunking.
//!
//! How far behind the received text the safe point stays depends on the text, not on the
//! policy's worst case ([`CompiledPolicy::holdback`], which stays the bound): the *live-match
//! frontier* ([`StreamScanner::frontier`]) is the earliest start of a match still in progress —
//! the keyword automaton state's depth (the longest keyword prefix the text ends with), and per
//! regex the earliest start whose text is still a prefix of a match, from an anchored DFA whose
//! state is carried across pieces (`live.rs`). Hit spans still come from the matcher; keyword
//! hits wait one character for their look-ahead. `near` rules hold a hit while a partner may
//! still come within their reach, and rules that can only be decided on the whole text (`all` of
//! parts that may be far apart, `not`, `min_count`) hold text from their first hit until they
//! fire or the stream ends.

use std::sync::Arc;

mod view;

use view::{CharPass, ViewState, floor_char};

use aho_corasick::Anchored;
use aho_corasick::automaton::Automaton;

use super::live::LiveState;
use super::matcher::{Hits, Span};
use super::program::CompiledPolicy;
use super::scan::rule_findings;
use super::{Finding, apply_redactions};
use crate::policy::{Action, Stage};
use crate::text::OffsetMap;

/// What one call to [`StreamScanner::push`] or [`StreamScanner::finish`] produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOutput {
    /// Text safe to send on, with redactions applied.
    pub text: String,
    /// Findings decided by this call.
    pub findings: Vec<Finding>,
    /// A blocking rule fired: send nothing more.
    pub blocked: bool,
}

/// The policy a [`StreamScanner`] reads: borrowed, or shared so the scanner can outlive the
/// caller's borrow (a proxy keeps one per streamed response).
#[derive(Clone)]
enum PolicyRef<'p> {
    Borrowed(&'p CompiledPolicy),
    Shared(Arc<CompiledPolicy>),
}

impl std::ops::Deref for PolicyRef<'_> {
    type Target = CompiledPolicy;
    fn deref(&self) -> &CompiledPolicy {
        match self {
            PolicyRef::Borrowed(p) => p,
            PolicyRef::Shared(p) => p,
        }
    }
}

/// Scans a text that arrives in pieces: it releases only what no blocking or redacting rule
/// can still cover (see [`CompiledPolicy::stream`]).
pub struct StreamScanner<'p> {
    policy: PolicyRef<'p>,
    stage: Stage,
    /// Original text from `base` on.
    orig: String,
    base: usize,
    /// Bytes of an incomplete UTF-8 character from [`push_bytes`](Self::push_bytes).
    utf8_tail: Vec<u8>,
    released: usize,
    /// Findings with a start before this were reported.
    reported: usize,
    views: Vec<ViewState>,
    /// The per-character passes the views read (one per distinct set of per-character steps).
    passes: Vec<CharPass>,
    /// A scratch offset map (no allocation per piece).
    scratch_map: OffsetMap,
    /// Scratch bytes for trying the next byte on a live match (no allocation per piece).
    live_scratch: Vec<u8>,
    /// Known leaf hits, `(leaf, span)`: few at a time, so a flat list (a per-leaf table
    /// would cost every stream memory in proportion to the policy's size).
    hits: Vec<(usize, Span)>,
    /// Leaves used by rules that can only be decided on the whole text, or once they fire.
    held_leaves: Vec<bool>,
    /// Leaves used by allow rules: their hits can exempt hits of other rules.
    allow_leaves: Vec<bool>,
    /// Allow hits not yet decided themselves (recomputed on every advance; usually none).
    open_allow: Vec<Span>,
    /// Unbounded monotone rules that fired.
    fired: Vec<bool>,
    /// Largest reach of the stage's bounded rules.
    reach: usize,
    /// Where the last advance found the earliest start of a match still in progress.
    frontier: usize,
    blocked: bool,
    done: bool,
    /// Every finding reported so far.
    all_findings: Vec<Finding>,
    /// Findings of `escalate` rules are reported as flags (the caller judges them).
    escalating: bool,
}

impl std::fmt::Debug for StreamScanner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamScanner")
            .field("stage", &self.stage)
            .field("received", &self.received())
            .field("released", &self.released)
            .field("blocked", &self.blocked)
            .finish()
    }
}

impl CompiledPolicy {
    /// Starts a stream scan at `stage` (every rule of the stage applies).
    pub fn stream(&self, stage: Stage) -> StreamScanner<'_> {
        StreamScanner::new(self, stage)
    }
}

// === impl StreamScanner ===

impl<'p> StreamScanner<'p> {
    /// A scanner for `stage` of `policy`.
    pub fn new(policy: &'p CompiledPolicy, stage: Stage) -> Self {
        Self::with_policy(PolicyRef::Borrowed(policy), stage)
    }

    fn with_policy(policy: PolicyRef<'p>, stage: Stage) -> Self {
        let policy_ref = policy.clone();
        let policy: &CompiledPolicy = &policy_ref;
        let st = &policy.stages[stage.index()];
        let mut passes: Vec<CharPass> = Vec::new();
        let views = st
            .views
            .iter()
            .map(|v| ViewState {
                pass: {
                    let key = v.opts.char_steps();
                    match passes.iter().position(|p| p.opts == key) {
                        Some(k) => k,
                        None => {
                            passes.push(CharPass::new(key));
                            passes.len() - 1
                        }
                    }
                },
                read: 0,
                norm: String::new(),
                norm_base: 0,
                map: OffsetMap::default(),
                consumed: 0,
                kw_state: v
                    .keywords
                    .as_ref()
                    .and_then(|k| k.dfa.start_state(Anchored::No).ok()),
                kw_pos: 0,
                kw_pending: Vec::new(),
                regex_pos: vec![0; v.regexes.len()],
                regex_scanned: 0,
                live: vec![LiveState::default(); v.regexes.len()],
                regex_hold: usize::MAX,
            })
            .collect();
        let mut held_leaves = vec![false; policy.leaves.len()];
        let mut allow_leaves = vec![false; policy.leaves.len()];
        let mut reach = 0;
        for &ri in &st.rules {
            let rule = &policy.rules[ri];
            match rule.reach {
                Some(r) => reach = reach.max(r),
                None => rule.leaves.iter().for_each(|&l| held_leaves[l] = true),
            }
            if rule.action == Action::Allow {
                rule.leaves.iter().for_each(|&l| allow_leaves[l] = true);
            }
        }
        StreamScanner {
            policy: policy_ref.clone(),
            stage,
            orig: String::new(),
            base: 0,
            utf8_tail: Vec::new(),
            released: 0,
            reported: 0,
            views,
            passes,
            scratch_map: OffsetMap::default(),
            live_scratch: Vec::new(),
            hits: Vec::new(),
            held_leaves,
            allow_leaves,
            open_allow: Vec::new(),
            fired: vec![false; policy.rules.len()],
            reach,
            frontier: 0,
            blocked: false,
            done: false,
            all_findings: Vec::new(),
            escalating: false,
        }
    }

    /// Reports the findings of `escalate` rules as flags instead of their fallback, so their
    /// text is released to the caller, which must hold it until a judge has decided (a
    /// gateway with a judge; see the README's "The judge"). The caller tells them apart by
    /// the rule's [`escalate`](crate::engine::Rule::escalate).
    pub fn escalating(mut self) -> Self {
        self.escalating = true;
        self
    }
}

impl StreamScanner<'static> {
    /// A scanner for `stage` that holds its own reference to `policy`, so it can live as long
    /// as the stream it scans (for example inside an HTTP response body) while the policy is
    /// swapped for a new version elsewhere.
    pub fn new_shared(policy: Arc<CompiledPolicy>, stage: Stage) -> Self {
        Self::with_policy(PolicyRef::Shared(policy), stage)
    }
}

impl StreamScanner<'_> {
    /// Bytes received so far.
    pub fn received(&self) -> usize {
        self.base + self.orig.len()
    }

    /// Bytes released so far (original offsets; redactions count by what they replaced).
    pub fn released(&self) -> usize {
        self.released
    }

    /// Whether a blocking rule fired.
    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// Every finding reported so far.
    pub fn findings(&self) -> &[Finding] {
        &self.all_findings
    }

    /// Bytes of text the scanner keeps in memory (original and normalized), for memory
    /// accounting: stays near the holdback while no whole-text rule is open.
    pub fn buffered_bytes(&self) -> usize {
        self.orig.len()
            + self.views.iter().map(|v| v.norm.len()).sum::<usize>()
            + self.passes.iter().map(|p| p.text.len()).sum::<usize>()
    }

    /// The live-match frontier after the last piece (original offset): no match still in
    /// progress — a keyword prefix, a regex's partial match — starts before it. Released text
    /// stops here or earlier (at an undecided hit, a `near` window, a whole-text rule).
    pub fn frontier(&self) -> usize {
        self.frontier
    }

    /// Bytes of text currently held (received, not yet released).
    pub fn held(&self) -> usize {
        self.received() - self.released
    }

    /// The text currently held (received, not yet released), as received.
    pub fn held_text(&self) -> &str {
        let from = self.released.saturating_sub(self.base);
        self.orig.get(from..).unwrap_or("")
    }

    /// Feeds a piece of text.
    pub fn push(&mut self, delta: &str) -> StreamOutput {
        if self.blocked || self.done {
            return StreamOutput {
                blocked: self.blocked,
                ..Default::default()
            };
        }
        self.orig.push_str(delta);
        self.advance(false)
    }

    /// Feeds raw bytes; a UTF-8 character split across calls is joined. Invalid UTF-8 becomes
    /// U+FFFD.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> StreamOutput {
        self.utf8_tail.extend_from_slice(bytes);
        // Decode like `String::from_utf8_lossy` would decode the whole text: each invalid
        // sequence becomes one U+FFFD, and only an incomplete character at the end waits.
        let mut text = String::new();
        let mut tail = std::mem::take(&mut self.utf8_tail);
        loop {
            match std::str::from_utf8(&tail) {
                Ok(valid) => {
                    text.push_str(valid);
                    tail.clear();
                    break;
                }
                Err(e) => {
                    let (good, rest) = tail.split_at(e.valid_up_to());
                    text.push_str(&String::from_utf8_lossy(good));
                    match e.error_len() {
                        None => {
                            tail = rest.to_vec();
                            break;
                        }
                        Some(n) => {
                            text.push('\u{FFFD}');
                            tail = rest[n..].to_vec();
                        }
                    }
                }
            }
        }
        self.utf8_tail = tail;
        self.push(&text)
    }

    /// Ends the stream: decides everything still open and releases the rest.
    pub fn finish(&mut self) -> StreamOutput {
        if self.blocked || self.done {
            return StreamOutput {
                blocked: self.blocked,
                ..Default::default()
            };
        }
        if !self.utf8_tail.is_empty() {
            let tail = std::mem::take(&mut self.utf8_tail);
            self.orig.push_str(&String::from_utf8_lossy(&tail));
        }
        let out = self.advance(true);
        self.done = true;
        out
    }

    fn advance(&mut self, fin: bool) -> StreamOutput {
        let received = self.received();
        // 1. Normalize and find leaf hits; the frontier is where unknown hits may start.
        let mut frontier = received;
        self.advance_passes(fin);
        for vi in 0..self.views.len() {
            let f = self.scan_view(vi, fin);
            frontier = frontier.min(f);
        }
        if fin {
            frontier = received;
        }
        self.frontier = frontier;
        // 2. The safe point: before any hit that is not decided yet.
        let mut safe = frontier;
        let any_hits = !self.hits.is_empty();
        let reach = self.reach;
        let allow_leaves = &self.allow_leaves;
        self.open_allow = self
            .hits
            .iter()
            .filter(|&&(leaf, a)| allow_leaves[leaf] && a.1 + reach >= frontier)
            .map(|&(_, a)| a)
            .collect();
        if !fin {
            for &(_, h) in &self.hits {
                if h.0 < safe && self.undecided(h, frontier) {
                    safe = h.0;
                }
            }
        }
        // 3. Findings.
        let mut findings = Vec::new();
        // Spans of escalations (reported as flags): like redactions, they must not straddle
        // the safe point — the caller judges the text released with the finding, so all of
        // the match must be in it.
        let mut escalated: Vec<Span> = Vec::new();
        if any_hits {
            findings = self.decide(frontier, fin, &mut safe);
            if self.escalating {
                let policy = &self.policy;
                for f in &mut findings {
                    if policy.rule(&f.rule).is_some_and(|r| r.escalate) {
                        f.action = Action::Flag;
                        escalated.push((f.start, f.end));
                    }
                }
            }
        }
        if fin {
            safe = received;
        }
        // 4. Redactions (and escalations) must not straddle the safe point.
        let mut redactions: Vec<Span> = findings
            .iter()
            .filter(|f| f.action == Action::Redact)
            .map(|f| (f.start, f.end))
            .chain(escalated)
            .filter(|&(s, _)| s < safe)
            .collect();
        redactions.sort_unstable();
        let mut group: Option<Span> = None;
        for &(s, e) in &redactions {
            group = match group {
                Some((gs, ge)) if s < ge => Some((gs, ge.max(e))),
                _ => {
                    if let Some((gs, ge)) = group
                        && ge > safe
                    {
                        safe = safe.min(gs);
                    }
                    Some((s, e))
                }
            };
        }
        if let Some((gs, ge)) = group
            && ge > safe
        {
            safe = gs;
        }
        let safe = safe.max(self.released);
        // Keep only the findings that start before the safe point; the rest are decided again
        // next time.
        let mut now = findings;
        now.retain(|f| f.start < safe || fin);
        let mut out = StreamOutput::default();
        if let Some(block) = now.iter().find(|f| f.action == Action::Block) {
            // Release nothing from the block on; what came before it was decided and safe.
            let mut cut = block.start.min(safe);
            // A redaction that straddles the cut must not leak its first half.
            loop {
                let straddler = now
                    .iter()
                    .filter(|f| f.action == Action::Redact && f.start < cut && f.end > cut)
                    .map(|f| f.start)
                    .min();
                match straddler {
                    Some(s) => cut = s,
                    None => break,
                }
            }
            let before: Vec<Finding> = now.iter().filter(|f| f.end <= cut).cloned().collect();
            out.text = self.release_to(cut, &before);
            self.blocked = true;
            out.blocked = true;
        } else {
            out.text = self.release_to(safe, &now);
        }
        self.reported = self.reported.max(safe);
        self.all_findings.extend(now.iter().cloned());
        out.findings = now;
        self.prune(safe);
        out
    }

    /// Evaluates rules over the known hits. Returns the new findings (start at or after the
    /// last reported point); may pull `safe` back for rules not decided yet.
    fn decide(&mut self, frontier: usize, fin: bool, safe: &mut usize) -> Vec<Finding> {
        let policy_ref = self.policy.clone();
        let policy: &CompiledPolicy = &policy_ref;
        let st = &policy.stages[self.stage.index()];
        let base = self.base;
        let orig = &self.orig;
        let gap = |a: usize, b: usize| {
            if a < base || b < a {
                return usize::MAX;
            }
            orig.get(a - base..b - base)
                .map_or(usize::MAX, crate::engine::matcher::visible_chars)
        };
        let span_text = |s: Span| {
            orig.get(s.0.saturating_sub(base)..s.1.saturating_sub(base))
                .unwrap_or("")
                .to_owned()
        };
        // Unbounded monotone rules fire on decided hits only. Rules are evaluated independently
        // (only allow rules affect others), so one evaluation decides every candidate.
        let candidates: Vec<usize> = st
            .rules
            .iter()
            .copied()
            .filter(|&r| {
                let rule = &policy.rules[r];
                !rule.is_bounded() && !rule.has_not && !self.fired[r]
            })
            .collect();
        if !fin && !candidates.is_empty() {
            // Every known allow hit counts, decided or not: leaving one out could let a rule
            // fire on a hit that allow rule exempts (then stop holding text it must redact).
            let decided =
                self.per_leaf(|leaf, h| self.allow_leaves[leaf] || !self.undecided(h, frontier));
            let include =
                |r: usize| candidates.contains(&r) || policy.rules[r].action == Action::Allow;
            let f = rule_findings(
                policy, self.stage, None, &decided, &gap, &span_text, &include,
            );
            for ri in candidates {
                if f.iter().any(|x| x.rule == policy.rules[ri].id) {
                    self.fired[ri] = true;
                }
            }
        }
        let fired = &self.fired;
        let include = |r: usize| {
            let rule = &policy.rules[r];
            fin || rule.is_bounded() || (!rule.has_not && fired[r])
        };
        let all = self.per_leaf(|_, _| true);
        let findings = rule_findings(policy, self.stage, None, &all, &gap, &span_text, &include);
        // Hits of rules that fired no longer need to be held whole.
        if !fin {
            for &(leaf, (s, e)) in &self.hits {
                if !self.held_leaves[leaf] {
                    continue;
                }
                let still_held = st.rules.iter().any(|&ri| {
                    let rule = &policy.rules[ri];
                    !rule.is_bounded() && !fired[ri] && rule.leaves.contains(&leaf)
                });
                if (still_held || self.undecided((s, e), frontier)) && s < *safe {
                    *safe = s;
                }
            }
        }
        findings
            .into_iter()
            .filter(|f| f.start >= self.reported)
            .collect()
    }

    /// Whether the rules a hit `h` takes part in may still change their minds about it: a
    /// `near` partner may still come, or an allow hit overlapping it is itself undecided.
    fn undecided(&self, h: Span, frontier: usize) -> bool {
        h.1 + self.reach >= frontier || self.open_allow.iter().any(|&a| a.0 < h.1 && h.0 < a.1)
    }

    /// The known hits that `keep` accepts, grouped per leaf and sorted, as rule evaluation
    /// reads them.
    fn per_leaf(&self, keep: impl Fn(usize, Span) -> bool) -> Hits {
        let mut out: Hits = vec![Vec::new(); self.policy.leaves.len()];
        for (leaf, span) in &self.hits {
            if keep(*leaf, *span) {
                out[*leaf].push(*span);
            }
        }
        for h in &mut out {
            if h.len() > 1 {
                h.sort_unstable();
                h.dedup();
            }
        }
        out
    }

    /// Releases original text up to `to`, applying the redactions among `findings`.
    fn release_to(&mut self, to: usize, findings: &[Finding]) -> String {
        if to <= self.released {
            return String::new();
        }
        let from = self.released;
        let local = &self.orig[from - self.base..to - self.base];
        let shifted: Vec<Finding> = findings
            .iter()
            .filter(|f| f.action == Action::Redact && f.start >= from && f.end <= to)
            .map(|f| Finding {
                start: f.start - from,
                end: f.end - from,
                ..f.clone()
            })
            .collect();
        let text = if shifted.is_empty() {
            local.to_owned()
        } else {
            apply_redactions(local, &shifted, |id| self.policy.replacement(id))
        };
        self.released = to;
        text
    }

    /// Drops text, normalized text and hits nothing can need any more.
    fn prune(&mut self, safe: usize) {
        let reach = self.reach;
        let mut keep_from = self.released;
        let held = &self.held_leaves;
        self.hits
            .retain(|&(leaf, (_, e))| held[leaf] || e + reach >= safe);
        // Old hits of whole-text rules are kept for counting, but their text is not needed once
        // reported: only recent or unreported hits pin the original text.
        let reported = self.reported;
        for &(_, (s, e)) in &self.hits {
            if e + reach >= safe || s >= reported {
                keep_from = keep_from.min(s);
            }
        }
        // The rewrite steps read a view's unfinished word again from its start, which may
        // have been released already (its leading letters).
        for vs in &self.views {
            keep_from = keep_from.min(vs.consumed);
        }
        for pass in &self.passes {
            keep_from = keep_from.min(pass.consumed);
        }
        let cut = floor_char(&self.orig, keep_from.saturating_sub(self.base));
        if cut > 4096 || cut > self.orig.len() / 2 {
            self.orig.drain(..cut);
            self.base += cut;
            view::give_back(&mut self.orig);
        }
        let policy_ref = self.policy.clone();
        let policy: &CompiledPolicy = &policy_ref;
        let st = &policy.stages[self.stage.index()];
        for (vs, view) in self.views.iter_mut().zip(&st.views) {
            let norm_end = vs.norm_base + vs.norm.len();
            let mut t = norm_end.saturating_sub(view.keywords.as_ref().map_or(0, |k| k.max_len));
            for &(_, s, _) in &vs.kw_pending {
                t = t.min(s);
            }
            for &p in &vs.regex_pos {
                t = t.min(p);
            }
            for l in &vs.live {
                t = t.min(l.start);
            }
            let t = t.saturating_sub(8).max(vs.norm_base);
            let local = floor_char(&vs.norm, t - vs.norm_base);
            if local > 1024 || (local > 0 && local > vs.norm.len() / 2) {
                vs.norm.drain(..local);
                vs.norm_base += local;
                vs.map.forget_before(vs.norm_base);
                view::give_back(&mut vs.norm);
            }
        }
        self.prune_passes();
    }
}
