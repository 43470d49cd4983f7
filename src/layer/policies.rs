//! The policies a [`PolicyLayer`](super::PolicyLayer) enforces, swappable while it runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::engine::CompiledPolicy;

/// One or more compiled policies enforced together, in order.
///
/// Every policy scans every text; on input and output the text one policy redacted is what the
/// next one scans (as if two gateways were chained), the most severe action wins, and the
/// first block (in policy order) decides the refusal. Each policy injects its own spec block.
#[derive(Debug, Clone)]
pub struct PolicySet {
    policies: Vec<Arc<CompiledPolicy>>,
    label: String,
    /// `name@hash` of each policy (audit findings name their policy so).
    labels: Vec<String>,
    /// `label` as the `x-deliberate-policy` header value.
    header: http::HeaderValue,
    /// Unique in the process: what the input scan cache keys decisions by.
    id: u64,
    /// Rendered injections by the sections chosen (see [`PolicySet::injection`]).
    injections: Arc<Mutex<Vec<Rendered>>>,
}

/// A rendered injection and the key of the sections it renders.
type Rendered = (Vec<u32>, Arc<str>);

/// How many different choices of sections a set keeps rendered.
const INJECTIONS_KEPT: usize = 64;

/// Ids of policy sets, never reused.
static NEXT_SET_ID: AtomicU64 = AtomicU64::new(1);

impl PolicySet {
    /// A set of `policies`, enforced in this order.
    pub fn new(policies: Vec<Arc<CompiledPolicy>>) -> Self {
        let labels: Vec<String> = policies.iter().map(|p| p.label()).collect();
        let label = labels.join(",");
        PolicySet {
            policies,
            header: header_value(&label),
            label,
            labels,
            id: NEXT_SET_ID.fetch_add(1, Ordering::Relaxed),
            injections: Arc::default(),
        }
    }

    /// The injected text for the sections `key` names (each chosen policy's index, its
    /// sections' indices, then `u32::MAX`), rendered by `render` the first time. Rendering
    /// depends on nothing but the policies and the sections, and most requests choose the
    /// same ones (the policy's `always` sections): the text is rendered once, not per request.
    pub(crate) fn injection(&self, key: &[u32], render: impl FnOnce() -> String) -> Arc<str> {
        if let Ok(kept) = self.injections.lock()
            && let Some((_, text)) = kept.iter().find(|(k, _)| k == key)
        {
            return text.clone();
        }
        let text: Arc<str> = render().into();
        if let Ok(mut kept) = self.injections.lock()
            && kept.len() < INJECTIONS_KEPT
            && !kept.iter().any(|(k, _)| k == key)
        {
            kept.push((key.to_vec(), text.clone()));
        }
        text
    }

    /// A set of one policy.
    pub fn single(policy: Arc<CompiledPolicy>) -> Self {
        Self::new(vec![policy])
    }

    /// The policies, in enforcement order.
    pub fn policies(&self) -> &[Arc<CompiledPolicy>] {
        &self.policies
    }

    /// `name@hash` of each policy, comma-separated: the `x-deliberate-policy` header.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `name@hash` of the policy at `index` (empty when there is none).
    pub(crate) fn policy_label(&self, index: usize) -> &str {
        self.labels.get(index).map_or("", String::as_str)
    }

    /// [`PolicySet::label`] as a header value (characters a header cannot carry as `?`).
    pub(crate) fn label_header(&self) -> &http::HeaderValue {
        &self.header
    }

    /// This set's id, unique in the process (a clone keeps it: same policies, same id).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Whether the set holds no policy (nothing is enforced).
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}

/// A cheap, clonable handle on the current [`PolicySet`].
///
/// A request takes a snapshot when it starts and keeps it to its end, so a reload
/// ([`SharedPolicies::replace`]) never changes the rules under a stream already running.
#[derive(Debug, Clone)]
pub struct SharedPolicies {
    current: Arc<ArcSwap<PolicySet>>,
}

impl SharedPolicies {
    /// A handle starting with `set`.
    pub fn new(set: PolicySet) -> Self {
        SharedPolicies {
            current: Arc::new(ArcSwap::from_pointee(set)),
        }
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// Puts `set` in force for requests that start from now on.
    pub fn replace(&self, set: PolicySet) {
        self.current.store(Arc::new(set));
    }
}

impl From<Arc<CompiledPolicy>> for SharedPolicies {
    fn from(policy: Arc<CompiledPolicy>) -> Self {
        SharedPolicies::new(PolicySet::single(policy))
    }
}

impl From<CompiledPolicy> for SharedPolicies {
    fn from(policy: CompiledPolicy) -> Self {
        SharedPolicies::new(PolicySet::single(Arc::new(policy)))
    }
}

/// `s` as a header value, characters a header cannot carry replaced by `?`.
pub(super) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| {
        let clean: String = s
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        HeaderValue::from_str(&clean).unwrap_or(HeaderValue::from_static("?"))
    })
}
