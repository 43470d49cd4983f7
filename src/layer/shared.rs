//! What every request of one [`PolicyLayer`](super::PolicyLayer) shares: options, policies,
//! the observer and the input scan cache.

use std::sync::Arc;

use super::audit::Observer;
use super::cache::ScanCache;
use super::judge::Judge;
use super::options::EnforceOptions;
use super::policies::SharedPolicies;
use super::shadow::ShadowConfig;

#[derive(Clone)]
pub(crate) struct Shared {
    /// The operator's options.
    pub opts: EnforceOptions,
    /// The policies in force.
    pub policies: SharedPolicies,
    /// Receives audit records.
    pub observer: Option<Arc<dyn Observer>>,
    /// Decisions of input scans, `None` when `opts.scan_cache_bytes` is 0.
    pub scan_cache: Option<Arc<ScanCache>>,
    /// The judge model, when one is configured: escalations and judged stages go to it.
    pub judge: Option<Arc<dyn Judge>>,
    /// The candidate run in shadow, if any.
    pub shadow: Option<ShadowConfig>,
    /// Keep the scanned texts in audit records.
    pub record_texts: bool,
    /// Where big input scans run (inline when `None`).
    pub offload: Option<Arc<dyn super::budget::Offload>>,
}
