//! Where the gateway runs big input scans: tokio's blocking pool, at most a few at a time, so
//! the runtime's worker threads keep serving every other request (see
//! [`crate::layer::Offload`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::layer::{Offload, OffloadJob};

/// An [`Offload`] on `tokio::task::spawn_blocking`, with at most `permits` scans running at
/// once; the others wait (asynchronously) for a permit.
#[derive(Debug, Clone)]
pub struct BlockingScans {
    permits: Arc<Semaphore>,
}

impl BlockingScans {
    /// At most `permits` (at least 1) scans at once.
    pub fn new(permits: usize) -> Self {
        BlockingScans {
            permits: Arc::new(Semaphore::new(permits.max(1))),
        }
    }

    /// One scan per two cores, at least one: half the machine stays free for everything else.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        BlockingScans::new(cores / 2)
    }
}

impl Offload for BlockingScans {
    fn run(&self, job: OffloadJob) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let permits = self.permits.clone();
        Box::pin(async move {
            // The semaphore is never closed; were it, the scan would run unbounded.
            let _permit = permits.acquire_owned().await.ok();
            // A scan that panics or is cancelled leaves its slot empty: the layer answers 503.
            let _ = tokio::task::spawn_blocking(job).await;
        })
    }
}
