//! The HTTP/1.1 accept loop shared by `mock-upstream` and `bare-hop`.
//!
//! Both serve plain HTTP/1.1 with keep-alive on loopback: that is what wrk, nginx's upstream
//! module and the OpenAI SDKs speak, so it is the path worth measuring. Every accepted socket
//! gets `TCP_NODELAY`, otherwise Nagle's algorithm would hold back small SSE events.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};

/// Listen backlog: large enough for the 1,000 streams that `sse-client hold` opens at once.
const BACKLOG: u32 = 4096;

/// Binds `addr` with `SO_REUSEADDR` and a deep backlog.
///
/// Port 0 picks a free port; read it back with [`TcpListener::local_addr`].
pub fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .context("creating the listening socket")?;
    socket.set_reuseaddr(true).context("setting SO_REUSEADDR")?;
    socket
        .bind(addr)
        .with_context(|| format!("binding {addr}"))?;
    socket
        .listen(BACKLOG)
        .with_context(|| format!("listening on {addr}"))
}

/// Serves HTTP/1.1 connections from `listener` forever, answering each request with `handler`.
///
/// Connection errors (a client that hangs up mid-request, which every load generator does when
/// its run ends) are routine here and not reported. Accept errors such as running out of file
/// descriptors are reported on stderr and retried after a short pause.
pub async fn serve<H, F, B>(listener: TcpListener, handler: H) -> anyhow::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                eprintln!("accept failed: {err}; retrying");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            eprintln!("setting TCP_NODELAY failed: {err}");
        }
        let handler = handler.clone();
        tokio::spawn(async move {
            // Errors here are client hang-ups and resets; see the function docs.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(handler))
                .await;
        });
    }
}

/// Builds the tokio runtime for a server binary: `threads` workers, or one per core when `None`.
pub fn runtime(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = threads {
        builder.worker_threads(threads);
    }
    builder.build().context("building the tokio runtime")
}
