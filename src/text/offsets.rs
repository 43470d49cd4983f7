//! The offset map: normalized text offsets back to original text offsets.

// === OffsetMap ===

/// One piece of the offset map: either a run where normalized and original bytes correspond
/// one to one, or a segment whose normalized bytes all stem from one original range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Piece {
    pub(super) norm: usize,
    pub(super) orig: usize,
    pub(super) norm_len: usize,
    pub(super) orig_len: usize,
    pub(super) identity: bool,
}

/// Maps offsets in normalized text to offsets in the original text.
///
/// Offsets are absolute (from the start of the whole text or stream), so a streaming scanner
/// can drop old pieces with [`OffsetMap::forget_before`] and keep using the same offsets.
#[derive(Debug, Clone, Default)]
pub struct OffsetMap {
    pieces: Vec<Piece>,
}

impl OffsetMap {
    pub(super) fn push(&mut self, p: Piece) {
        if let Some(last) = self.pieces.last_mut()
            && last.identity
            && p.identity
            && last.norm + last.norm_len == p.norm
            && last.orig + last.orig_len == p.orig
        {
            last.norm_len += p.norm_len;
            last.orig_len += p.orig_len;
            return;
        }
        self.pieces.push(p);
    }

    fn find(&self, norm: usize) -> Option<&Piece> {
        let idx = self.pieces.partition_point(|p| p.norm + p.norm_len <= norm);
        self.pieces.get(idx).filter(|p| p.norm <= norm)
    }

    /// The original byte where the normalized byte `norm` comes from (the start of its
    /// segment), or `None` past the end of the map.
    pub fn orig_start(&self, norm: usize) -> Option<usize> {
        self.find(norm).map(|p| {
            if p.identity {
                p.orig + (norm - p.norm)
            } else {
                p.orig
            }
        })
    }

    /// The original end (exclusive) of the normalized byte `norm`'s segment.
    pub fn orig_end_of(&self, norm: usize) -> Option<usize> {
        self.find(norm).map(|p| {
            if p.identity {
                p.orig + (norm - p.norm) + 1
            } else {
                p.orig + p.orig_len
            }
        })
    }

    /// Maps the normalized span `[start, end)` (`start < end`) to the smallest original span
    /// that produced it.
    ///
    /// # Panics
    /// Never for spans inside the map; out-of-range offsets clamp to the mapped ends.
    pub fn orig_span(&self, start: usize, end: usize) -> (usize, usize) {
        let s = self.orig_start(start).unwrap_or_else(|| self.orig_end());
        let e = if end > start {
            self.orig_end_of(end - 1).unwrap_or_else(|| self.orig_end())
        } else {
            s
        };
        (s, e.max(s))
    }

    /// The original offset just past the last mapped piece.
    pub fn orig_end(&self) -> usize {
        self.pieces.last().map_or(0, |p| p.orig + p.orig_len)
    }

    /// Drops pieces that end at or before normalized offset `norm`.
    pub fn forget_before(&mut self, norm: usize) {
        let idx = self.pieces.partition_point(|p| p.norm + p.norm_len <= norm);
        if idx > 0 {
            self.pieces.drain(..idx);
            self.give_back();
        }
    }

    /// Returns most of the spare room a burst made the map hold (twice its length stays): a
    /// stream's maps are pruned as its text is, and would otherwise keep their peak.
    pub fn give_back(&mut self) {
        let keep = self.pieces.len().max(4) * 2;
        if self.pieces.capacity() > keep * 2 {
            self.pieces.shrink_to(keep);
        }
    }

    /// Drops every piece (keeping the allocation, for a scratch map).
    pub fn clear(&mut self) {
        self.pieces.clear();
    }

    /// Number of pieces held (for memory accounting in tests).
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }
}

// === composition (used by the rewrite steps) ===

impl OffsetMap {
    /// Whether the text can be cut before normalized byte `norm` without splitting a piece
    /// whose bytes all stem from one original range: `norm` starts a piece, lies inside a
    /// byte-for-byte piece, or is the end of the map.
    pub(super) fn clean_cut(&self, norm: usize) -> bool {
        match self.find(norm) {
            None => true,
            Some(p) => p.identity || p.norm == norm,
        }
    }

    /// The normalized offset where original byte `orig` starts to be read: exact inside
    /// byte-for-byte pieces, the end of a piece that starts before `orig` otherwise. `None`
    /// past the end of the map.
    pub(super) fn norm_for_orig(&self, orig: usize) -> Option<usize> {
        let idx = self.pieces.partition_point(|p| p.orig + p.orig_len <= orig);
        let p = self.pieces.get(idx)?;
        Some(if orig <= p.orig {
            p.norm
        } else if p.identity {
            p.norm + (orig - p.orig)
        } else {
            p.norm + p.norm_len
        })
    }

    /// Appends the pieces of `src` that cover its normalized range `[start, end)`, moved so
    /// that `start` lands on `at`: this map then maps text copied from `src`'s text to the
    /// original that `src` maps to. A piece cut by the range keeps its whole original range
    /// unless it is byte-for-byte.
    pub fn append_mapped(&mut self, src: &OffsetMap, start: usize, end: usize, at: usize) {
        let idx = src.pieces.partition_point(|p| p.norm + p.norm_len <= start);
        for p in &src.pieces[idx..] {
            if p.norm >= end {
                break;
            }
            let s = p.norm.max(start);
            let e = (p.norm + p.norm_len).min(end);
            let (orig, orig_len) = if p.identity {
                (p.orig + (s - p.norm), e - s)
            } else {
                (p.orig, p.orig_len)
            };
            self.push(Piece {
                norm: at + (s - start),
                orig,
                norm_len: e - s,
                orig_len,
                identity: p.identity,
            });
        }
    }

    /// Appends one piece: normalized `[norm, norm + norm_len)` stems from original
    /// `[orig, orig + orig_len)` as a whole.
    pub(super) fn push_whole(
        &mut self,
        norm: usize,
        norm_len: usize,
        orig: usize,
        orig_len: usize,
    ) {
        self.push(Piece {
            norm,
            orig,
            norm_len,
            orig_len,
            identity: false,
        });
    }
}
