//! The per-request scan budget, and where big input scans run.
//!
//! Normalization can make a text much longer than its bytes (NFKC turns the 3 bytes of U+FDFA
//! into 33), and every rule's view scans the normalized text, so the input scan of a request
//! costs its *normalized* size, not its size on the wire. Before each text of a request is
//! scanned, the layer adds [`normalized_len`] — an upper bound of its NFKC length, computed in
//! one pass of table look-ups — to what the request has spent; past
//! [`EnforceOptions::max_scan_bytes`](super::EnforceOptions::max_scan_bytes) the request is
//! answered `413 scan_budget_exceeded` before that text is scanned. Scan work stays linear in
//! the request's bytes, with the budget as the constant.
//!
//! A scan within the budget can still take a while on a big request. With an [`Offload`] set
//! on the layer ([`PolicyLayer::offload`](super::PolicyLayer::offload)), requests of at least
//! [`EnforceOptions::offload_scan_bytes`](super::EnforceOptions::offload_scan_bytes) are
//! scanned there (the gateway uses tokio's blocking pool behind a semaphore), so the threads
//! that serve other requests are never held by one big scan.

use std::future::Future;
use std::pin::Pin;

use unicode_normalization::char::{decompose_canonical, decompose_compatible};

/// A job the layer hands to an [`Offload`]: the input scan of one request.
pub type OffloadJob = Box<dyn FnOnce() + Send + 'static>;

/// Runs input scans of big requests away from the threads that poll futures.
///
/// `run` returns a future that completes when the job has run (or was dropped without
/// running, e.g. at shutdown: the layer then answers `503`). A gateway on tokio implements it
/// with `tokio::task::spawn_blocking`, bounded by a semaphore.
pub trait Offload: Send + Sync + 'static {
    /// Runs `job`; the future resolves once it has returned.
    fn run(&self, job: OffloadJob) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// An upper bound of the UTF-8 length of `text` after NFKC: a character with a compatibility
/// decomposition counts as that decomposition (U+FDFA: 33 bytes), every other one as itself
/// (canonical decompositions recompose under NFKC). Linear, allocation-free.
///
/// ```
/// # use deliberate::layer::normalized_len;
/// assert_eq!(normalized_len("hello"), 5);
/// assert_eq!(normalized_len("\u{FDFA}"), 33);
/// assert_eq!(normalized_len("é한"), "é한".len());
/// ```
pub fn normalized_len(text: &str) -> usize {
    let ascii = text.bytes().filter(u8::is_ascii).count();
    if ascii == text.len() {
        return ascii;
    }
    let mut n = 0;
    for c in text.chars() {
        if c.is_ascii() {
            n += 1;
            continue;
        }
        let mut compat = 0;
        decompose_compatible(c, |d| compat += d.len_utf8());
        let mut canon = 0;
        decompose_canonical(c, |d| canon += d.len_utf8());
        n += if compat == canon {
            c.len_utf8()
        } else {
            compat.max(c.len_utf8())
        };
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_compatibility_expansions_only() {
        // (text, bound): ASCII and canonical-only characters count as themselves; the
        // compatibility ones as their decomposition.
        let cases = [
            ("", 0),
            ("plain", 5),
            ("café", "café".len()),
            ("한국어", "한국어".len()),
            ("\u{FDFA}", 33),
            ("\u{FDFA}\u{FDFA}a", 67),
            ("ﬃ", 3),
            ("㍿", "株式会社".len()),
        ];
        for (text, want) in cases {
            assert_eq!(normalized_len(text), want, "{text:?}");
        }
    }

    #[test]
    fn bounds_the_real_nfkc_length() {
        use unicode_normalization::UnicodeNormalization;
        for text in ["\u{FDFA}x", "ﬁ ½ ㌀ Å é 한", "\u{1D400}\u{2460}"] {
            let nfkc: String = text.nfkc().collect();
            assert!(normalized_len(text) >= nfkc.len(), "{text:?}");
        }
    }
}
