//! The front door: per-connection limits, so idle or slow clients cannot starve normal ones.
//!
//! - **Connection cap** ([`FrontDoor::admit`]): at most `limits.max_connections` open client
//!   connections (lowered at start to what the open-files limit leaves room for). At the cap,
//!   the connection that has been idle the longest (no request in progress: a keep-alive between
//!   requests, a socket that never sent a byte, a head still arriving) is closed and the new
//!   one takes its place — so a crowd of idle sockets cannot lock normal clients out. When
//!   every connection has a request in progress, the new one is answered `503`
//!   (`too_many_connections`, `Connection: close`) within a short grace — the admin routes
//!   still answer there — and at most [`MAX_REFUSING`] such refusals run at once; past that
//!   the socket is closed at once. All of it is counted.
//! - **Idle connections** ([`ConnActivity`]): a connection with no request in progress for
//!   `timeouts.client_idle` is closed — a socket that never sends a byte included (hyper's
//!   `header_read_timeout` only starts once the protocol has been detected).
//! - **Request bodies** ([`ClientBody`]): the whole body must arrive within
//!   `timeouts.request_body` of the request head; a body still trickling then fails with
//!   [`RequestBodyTimeout`], which the gateway answers `408` and closes the connection.
//! - **Accept errors** ([`accept_pause`]): out of file descriptors, the listener backs off
//!   briefly and keeps serving.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};

use super::metrics::Metrics;
use crate::layer::BoxError;

/// Over-cap connections being answered `503` at once; more are closed without an answer.
pub const MAX_REFUSING: usize = 64;

/// How long an over-cap connection may take to send its request before it is closed.
pub const REFUSAL_GRACE: Duration = Duration::from_secs(2);

/// File descriptors kept free for upstream connections, the audit log, policy files.
const RESERVED_FDS: u64 = 64;

// === impl FrontDoor ===

/// The connection cap and the refusal budget of one listener.
#[derive(Debug, Clone)]
pub struct FrontDoor {
    inner: Arc<DoorInner>,
    refusing: Arc<Semaphore>,
    max: usize,
}

#[derive(Debug)]
struct DoorInner {
    open: AtomicUsize,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Entry>>,
    metrics: Arc<Metrics>,
}

#[derive(Debug)]
struct Entry {
    activity: ConnActivity,
    evict: Arc<Notify>,
    /// Its place went to a newer connection: closing it must not free a place.
    handed_over: Arc<AtomicBool>,
}

/// An open client connection: holds its place under the cap and the open-connections gauge.
#[derive(Debug)]
pub struct Admitted {
    id: u64,
    door: Arc<DoorInner>,
    evict: Arc<Notify>,
    handed_over: Arc<AtomicBool>,
}

impl Admitted {
    /// Completes when the connection is chosen to make room for a newer one.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Ok(mut conns) = self.door.conns.lock() {
            conns.remove(&self.id);
        }
        if !self.handed_over.load(Ordering::Acquire) {
            self.door.open.fetch_sub(1, Ordering::AcqRel);
            self.door.metrics.connections_open(-1);
        }
    }
}

/// An over-cap connection being refused.
#[derive(Debug)]
pub struct Refusing {
    _permit: OwnedSemaphorePermit,
}

impl FrontDoor {
    /// A front door for at most `max_connections` open connections, lowered to what the
    /// process's open-files limit allows (each connection may need a client and an upstream
    /// socket).
    pub fn new(max_connections: usize, metrics: Arc<Metrics>) -> FrontDoor {
        let max = clamp_to_fd_limit(max_connections.max(1), open_files_limit());
        FrontDoor {
            inner: Arc::new(DoorInner {
                open: AtomicUsize::new(0),
                next_id: AtomicU64::new(0),
                conns: Mutex::new(HashMap::new()),
                metrics,
            }),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
            max,
        }
    }

    /// The cap in force.
    pub fn max_connections(&self) -> usize {
        self.max
    }

    /// A place for a new connection whose requests `activity` tracks: a free one, or the place
    /// of the connection idle the longest (told to close through [`Admitted::evicted`]);
    /// `None` when every connection has a request in progress.
    pub fn admit(&self, activity: &ConnActivity) -> Option<Admitted> {
        let inner = &self.inner;
        let mut conns = inner.conns.lock().ok()?;
        let free = inner
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if free {
            inner.metrics.connections_open(1);
        } else {
            let victim = conns
                .iter()
                .filter_map(|(id, e)| e.activity.idle_since().map(|t| (t, *id)))
                .min()
                .map(|(_, id)| id)?;
            let e = conns.remove(&victim)?;
            e.handed_over.store(true, Ordering::Release);
            e.evict.notify_one();
            inner.metrics.connection_closed("evicted");
        }
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (evict, handed_over) = (Arc::new(Notify::new()), Arc::new(AtomicBool::new(false)));
        conns.insert(
            id,
            Entry {
                activity: activity.clone(),
                evict: evict.clone(),
                handed_over: handed_over.clone(),
            },
        );
        Some(Admitted {
            id,
            door: inner.clone(),
            evict,
            handed_over,
        })
    }

    /// Counts a refused connection; `Some` while there is budget to answer it `503`, `None`
    /// when it should be closed at once.
    pub fn refuse(&self) -> Option<Refusing> {
        let permit = self.refusing.clone().try_acquire_owned().ok();
        self.inner
            .metrics
            .connection_refused(if permit.is_some() { "503" } else { "closed" });
        permit.map(|p| Refusing { _permit: p })
    }
}

/// `wanted`, or what `fd_limit` leaves room for: two descriptors per connection after
/// the descriptors the process keeps for itself. `None` (unknown limit): `wanted`.
pub fn clamp_to_fd_limit(wanted: usize, fd_limit: Option<u64>) -> usize {
    let Some(limit) = fd_limit else {
        return wanted;
    };
    let room = usize::try_from(limit.saturating_sub(RESERVED_FDS) / 2).unwrap_or(usize::MAX);
    if room < wanted {
        tracing::warn!(
            wanted,
            open_files_limit = limit,
            using = room.max(1),
            "limits.max_connections is above what the open-files limit leaves room for; \
             lowering it (raise `ulimit -n` to allow more)"
        );
    }
    wanted.min(room).max(1)
}

/// The soft open-files limit, from `/proc/self/limits` (Linux); `None` elsewhere.
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// How long to pause the accept loop after `err`: out of descriptors (ours or the system's) or
/// memory, back off so the connections that hold them can finish; a connection that failed
/// before it was accepted, go on at once.
pub fn accept_pause(err: &io::Error) -> Duration {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    match err.raw_os_error() {
        Some(EMFILE | ENFILE | ENOBUFS | ENOMEM) => Duration::from_millis(100),
        _ if matches!(
            err.kind(),
            io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
        ) =>
        {
            Duration::ZERO
        }
        _ => Duration::from_millis(10),
    }
}

// === impl ConnActivity ===

#[derive(Debug, Clone, Copy)]
struct Activity {
    in_flight: usize,
    since: Instant,
}

/// Requests in progress on one connection, and since when it has had none.
#[derive(Debug, Clone)]
pub struct ConnActivity {
    tx: Arc<watch::Sender<Activity>>,
}

/// One request in progress; dropped when its response body is done or dropped.
#[derive(Debug)]
pub struct InFlight {
    tx: Arc<watch::Sender<Activity>>,
}

impl Default for ConnActivity {
    fn default() -> Self {
        ConnActivity::new()
    }
}

impl ConnActivity {
    /// A connection just accepted: idle since now.
    pub fn new() -> ConnActivity {
        let (tx, _) = watch::channel(Activity {
            in_flight: 0,
            since: Instant::now(),
        });
        ConnActivity { tx: Arc::new(tx) }
    }

    /// Since when the connection has had no request in progress; `None` while it has one.
    pub fn idle_since(&self) -> Option<Instant> {
        let a = *self.tx.borrow();
        (a.in_flight == 0).then_some(a.since)
    }

    /// Marks a request in progress until the guard is dropped.
    pub fn start(&self) -> InFlight {
        self.tx.send_modify(|a| a.in_flight += 1);
        InFlight {
            tx: self.tx.clone(),
        }
    }

    /// Completes once the connection has had no request in progress for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        let mut rx = self.tx.subscribe();
        loop {
            let a = *rx.borrow_and_update();
            if a.in_flight == 0 {
                tokio::select! {
                    () = tokio::time::sleep_until(a.since + idle) => return,
                    _ = rx.changed() => {}
                }
            } else {
                // The sender lives as long as `self`: `changed` cannot fail here.
                let _ = rx.changed().await;
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.tx.send_modify(|a| {
            a.in_flight = a.in_flight.saturating_sub(1);
            if a.in_flight == 0 {
                a.since = Instant::now();
            }
        });
    }
}

pin_project! {
    /// A response body that keeps its request [`InFlight`] until it ends or is dropped.
    pub struct Tracked<B> {
        #[pin]
        inner: B,
        guard: Option<InFlight>,
    }
}

impl<B> Tracked<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, guard: Option<InFlight>) -> Self {
        Tracked { inner, guard }
    }
}

impl<B: Body> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let r = this.inner.poll_frame(cx);
        if matches!(r, Poll::Ready(None)) {
            this.guard.take();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// === impl ClientBody ===

/// The request body did not arrive whole in time (the layer's error, so that the layer's
/// answer and audit record say `408` too).
pub use crate::layer::RequestBodyTimeout;

pin_project! {
    /// A client's request body that must arrive whole before a deadline; past it, the body
    /// fails with [`RequestBodyTimeout`] and sets the flag from [`ClientBody::expired`].
    pub struct ClientBody {
        #[pin]
        inner: Incoming,
        #[pin]
        deadline: Sleep,
        after: Duration,
        expired: Arc<AtomicBool>,
        done: bool,
    }
}

impl std::fmt::Debug for ClientBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBody")
            .field("after", &self.after)
            .finish()
    }
}

impl ClientBody {
    /// `inner`, due within `after` from now.
    pub fn new(inner: Incoming, after: Duration) -> Self {
        let done = inner.is_end_stream();
        ClientBody {
            inner,
            deadline: tokio::time::sleep(after),
            after,
            expired: Arc::new(AtomicBool::new(false)),
            done,
        }
    }

    /// A flag set when the deadline fired.
    pub fn expired(&self) -> Arc<AtomicBool> {
        self.expired.clone()
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(None) => {
                *this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => {
                *this.done = true;
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Pending => {
                if this.deadline.poll(cx).is_ready() {
                    *this.done = true;
                    this.expired.store(true, Ordering::Relaxed);
                    let e = RequestBodyTimeout { after: *this.after };
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_upstream_sockets() {
        assert_eq!(clamp_to_fd_limit(1024, None), 1024);
        assert_eq!(clamp_to_fd_limit(1024, Some(1 << 20)), 1024);
        assert_eq!(clamp_to_fd_limit(1024, Some(512)), 224);
        assert_eq!(clamp_to_fd_limit(1024, Some(10)), 1);
    }

    #[test]
    fn accept_backs_off_only_for_exhaustion() {
        let emfile = io::Error::from_raw_os_error(24);
        assert_eq!(accept_pause(&emfile), Duration::from_millis(100));
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(accept_pause(&aborted), Duration::ZERO);
    }

    #[tokio::test]
    async fn idle_counts_from_the_last_request() {
        let idle = Duration::from_millis(100);
        let conn = ConnActivity::new();
        let guard = conn.start();
        let waiter = tokio::spawn({
            let conn = conn.clone();
            async move { conn.idle_for(idle).await }
        });
        tokio::time::sleep(idle * 4).await;
        assert!(!waiter.is_finished(), "closed with a request in progress");
        let released = Instant::now();
        drop(guard);
        waiter.await.unwrap();
        assert!(released.elapsed() >= idle);
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_makes_room() {
        let door = FrontDoor::new(2, Arc::new(Metrics::default()));
        let (ca, cb) = (ConnActivity::new(), ConnActivity::new());
        let a = door.admit(&ca).unwrap();
        let b = door.admit(&cb).unwrap();
        // Both idle: the older one (a) goes.
        let c = door.admit(&ConnActivity::new()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), a.evicted())
            .await
            .unwrap();
        drop(a);
        // b and c busy: no room.
        let _busy_b = cb.start();
        let cc = ConnActivity::new();
        let _busy_c = cc.start();
        drop(c);
        let c = door.admit(&cc).unwrap();
        assert!(door.admit(&ConnActivity::new()).is_none());
        drop(b);
        assert!(door.admit(&ConnActivity::new()).is_some());
        drop(c);
    }
}
