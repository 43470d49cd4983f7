//! A bounded cache of input scans.
//!
//! A chat client sends the whole conversation on every turn, and most deployments put the same
//! system prompt in front of every request: without a cache the gateway scans the same texts
//! again and again, and a conversation of `n` turns costs `n²/2` message scans. The cache keeps
//! the decision of each input text scanned, keyed by the exact policy set (a set gets a fresh
//! id on every load, so a reload never serves a decision of the old rules), the message role
//! (rules read roles) and the whole text (compared byte for byte, not by hash: a lookup can
//! never return another text's decision). Weighted by bytes, evicted by `quick_cache`'s
//! S3-FIFO policy; texts over [`MAX_TEXT`] (or with a role name over [`MAX_ROLE`]) are never
//! cached.
//!
//! One cache serves every client of the gateway. A hit is faster than a scan, so a client
//! that can time its requests finely could tell whether someone sent the exact same message
//! (same role, same text) recently; deployments where tenants must not learn that can set
//! `limits.scan_cache_bytes: 0`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use quick_cache::{Equivalent, Weighter, sync::Cache};

use super::chain::ChainDecision;

/// Longest text whose scan is kept.
const MAX_TEXT: usize = 64 << 10;
/// Longest role name whose scans are kept (roles come from the client).
const MAX_ROLE: usize = 64;
/// Weight of an entry beyond its texts: key, decision and the cache's own bookkeeping.
const ENTRY_OVERHEAD: u64 = 256;

#[derive(Debug, PartialEq, Eq)]
struct Key {
    set: u64,
    role: Box<str>,
    text: Box<str>,
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        KeyRef {
            set: self.set,
            role: &self.role,
            text: &self.text,
        }
        .hash(h);
    }
}

/// A key borrowed from the request, so a lookup allocates nothing.
struct KeyRef<'a> {
    set: u64,
    role: &'a str,
    text: &'a str,
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.set.hash(h);
        self.role.hash(h);
        self.text.hash(h);
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.set == key.set && *self.role == *key.role && *self.text == *key.text
    }
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<Key, Arc<ChainDecision>> for ByBytes {
    fn weight(&self, key: &Key, val: &Arc<ChainDecision>) -> u64 {
        let finding = |f: &crate::engine::Finding| {
            f.text.len() + f.rule.len() + f.section.as_ref().map_or(0, String::len) + 128
        };
        let findings: usize = val.findings.iter().map(|(_, f)| finding(f)).sum::<usize>()
            + val.block.as_ref().map_or(0, |(_, f)| finding(f));
        let triggered: usize = val.triggered.iter().map(|(_, s)| s.len() + 32).sum();
        (key.text.len()
            + key.role.len()
            + val.output.as_ref().map_or(0, String::len)
            + findings
            + triggered) as u64
            + ENTRY_OVERHEAD
    }
}

/// Input scan decisions, shared by every request of a layer.
pub(crate) struct ScanCache {
    cache: Cache<Key, Arc<ChainDecision>, ByBytes>,
}

impl std::fmt::Debug for ScanCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanCache")
            .field("entries", &self.cache.len())
            .field("weight", &self.cache.weight())
            .finish()
    }
}

impl ScanCache {
    /// A cache holding up to `bytes` of texts and decisions; `None` when `bytes` is 0.
    pub fn new(bytes: usize) -> Option<Self> {
        if bytes == 0 {
            return None;
        }
        // Entries are mostly messages of a few hundred bytes to a few KiB.
        let items = (bytes / 1024).max(16);
        Some(ScanCache {
            cache: Cache::with_weighter(items, bytes as u64, ByBytes),
        })
    }

    /// The decision for `text`, scanned by `scan` unless it is cached.
    pub fn get_or_scan(
        &self,
        set: u64,
        role: &str,
        text: &str,
        scan: impl FnOnce() -> ChainDecision,
    ) -> Arc<ChainDecision> {
        if text.len() > MAX_TEXT || role.len() > MAX_ROLE {
            return Arc::new(scan());
        }
        let key = KeyRef { set, role, text };
        if let Some(d) = self.cache.get(&key) {
            return d;
        }
        let d = Arc::new(scan());
        self.cache.insert(
            Key {
                set,
                role: role.into(),
                text: text.into(),
            },
            d.clone(),
        );
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Action;

    fn decision(text: &str) -> ChainDecision {
        ChainDecision {
            action: Action::Allow,
            findings: Vec::new(),
            output: Some(text.to_owned()),
            block: None,
            triggered: Vec::new(),
            escalations: Vec::new(),
            escalated: Vec::new(),
        }
    }

    #[test]
    fn hits_only_for_the_same_set_role_and_text() {
        let c = ScanCache::new(1 << 20).expect("enabled");
        let mut scans = 0;
        let mut get = |set, role, text: &str| {
            c.get_or_scan(set, role, text, || {
                scans += 1;
                decision(text)
            })
        };
        get(1, "user", "hello");
        get(1, "user", "hello");
        get(1, "system", "hello");
        get(2, "user", "hello");
        get(1, "user", "hello!");
        assert_eq!(scans, 4);
    }

    #[test]
    fn zero_bytes_disables_and_long_texts_are_not_kept() {
        assert!(ScanCache::new(0).is_none());
        let c = ScanCache::new(1 << 20).expect("enabled");
        let long = "x".repeat(MAX_TEXT + 1);
        let mut scans = 0;
        for _ in 0..2 {
            c.get_or_scan(1, "user", &long, || {
                scans += 1;
                decision(&long)
            });
        }
        assert_eq!(scans, 2);
    }
}
