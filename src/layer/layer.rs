//! The [`PolicyLayer`].

use std::sync::Arc;

use tower::Layer;

use super::audit::Observer;
use super::cache::ScanCache;
use super::judge::Judge;
use super::options::EnforceOptions;
use super::policies::SharedPolicies;
use super::service::PolicyService;
use super::shared::Shared;

/// Wraps a service that speaks the OpenAI chat-completions API (an upstream client, a local
/// model server, an axum handler) with policy enforcement. Cheap to clone.
///
/// ```
/// use deliberate::CompiledPolicy;
/// use deliberate::layer::{EnforceOptions, PolicyLayer};
/// use deliberate::wire::Placement;
///
/// let policy = CompiledPolicy::from_yaml_str("policy: empty\n", "empty.yaml").unwrap();
/// let layer = PolicyLayer::new(policy)
///     .options(EnforceOptions { placement: Placement::Merge, ..Default::default() });
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct PolicyLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PolicyLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyLayer")
            .field("policy", &self.shared.policies.current().label())
            .field("opts", &self.shared.opts)
            .finish()
    }
}

impl PolicyLayer {
    /// A layer enforcing `policies` (a [`SharedPolicies`] handle, or one compiled policy) with
    /// default options and no observer.
    pub fn new(policies: impl Into<SharedPolicies>) -> Self {
        PolicyLayer {
            shared: Arc::new(Shared {
                opts: EnforceOptions::default(),
                policies: policies.into(),
                observer: None,
                scan_cache: ScanCache::new(EnforceOptions::default().scan_cache_bytes)
                    .map(Arc::new),
                judge: None,
                shadow: None,
                record_texts: false,
                offload: None,
            }),
        }
    }

    /// Sets the enforcement options.
    pub fn options(mut self, opts: EnforceOptions) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        if opts.scan_cache_bytes != shared.opts.scan_cache_bytes {
            shared.scan_cache = ScanCache::new(opts.scan_cache_bytes).map(Arc::new);
        }
        shared.opts = opts;
        self
    }

    /// Sets the observer that receives audit records.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        Arc::make_mut(&mut self.shared).observer = Some(observer);
        self
    }

    /// Sets the judge model: `escalate` rules send their texts to it instead of applying their
    /// fallback, and the stages the policy judges `always` / `sampled` are classified by it.
    pub fn judge(mut self, judge: Arc<dyn Judge>) -> Self {
        Arc::make_mut(&mut self.shared).judge = Some(judge);
        self
    }

    /// Runs `shadow.policies` beside the live ones on a `shadow.sample` share of requests:
    /// decisions go to the audit record only (see [`super::shadow`]).
    pub fn shadow(mut self, shadow: super::shadow::ShadowConfig) -> Self {
        Arc::make_mut(&mut self.shared).shadow = (shadow.sample > 0.0).then_some(shadow);
        self
    }

    /// Keeps the scanned texts in audit records (`texts`), for replays. Off by default: the
    /// texts are personal data (see [`super::shadow`]).
    pub fn record_texts(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.shared).record_texts = on;
        self
    }

    /// Runs the input scans of big requests (see
    /// [`EnforceOptions::offload_scan_bytes`]) on `offload`, e.g. a blocking thread pool, so
    /// that one big scan does not hold a thread that serves other requests.
    pub fn offload(mut self, offload: Arc<dyn super::budget::Offload>) -> Self {
        Arc::make_mut(&mut self.shared).offload = Some(offload);
        self
    }

    /// The policies handle (for reloads).
    pub fn policies(&self) -> &SharedPolicies {
        &self.shared.policies
    }
}

impl<S> Layer<S> for PolicyLayer {
    type Service = PolicyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PolicyService::new(inner, self.shared.clone())
    }
}
