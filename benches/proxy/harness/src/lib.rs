//! Load harness for `deliberate`'s proxy benchmarks (bench-only, never published).
//!
//! `benches/proxy/run.sh` starts a fast mock OpenAI-compatible upstream, puts each proxy under
//! test in front of it (a bare hyper hop, nginx, `deliberate serve`, optionally LiteLLM), drives
//! them with wrk and [`sse-client`](../sse_client/index.html), and prints the results as ratios
//! against the bare hop from the same run. See `benches/README.md`, section "Proxy".
//!
//! # Layout
//!
//! - [`server`]: the HTTP/1.1 accept loop shared by the two servers.
//! - [`client`]: single-connection HTTP/1.1 clients and request targets for the load client.
//! - [`sse`]: an incremental server-sent-events decoder.
//! - [`stats`]: percentiles and medians over recorded samples.
//! - [`rss`]: resident set size of processes, from `/proc`.
//!
//! Binaries (`src/bin/`):
//!
//! - `mock-upstream`: canned `chat.completion` and `chat.completion.chunk` SSE streams with a
//!   configurable number of chunks, chunk size and gap between chunks.
//! - `bare-hop`: the floor for a Rust proxy — a pooled pass-through that streams bodies
//!   untouched.
//! - `sse-client`: the load client — time to first content token and inter-chunk gaps over
//!   concurrent streams, a fixed-rate mode for latency at a given offered load, and a mode that
//!   holds many streams open while it reads a proxy's RSS.
//! - `front-door`: holds many idle and slow-body sockets open against a gateway while it
//!   measures a normal request's latency (`benches/proxy/front-door.sh`).
//! - `bench-report`: turns the run's results file into the markdown tables of medians and
//!   ratios.

pub mod client;
pub mod rss;
pub mod server;
pub mod sse;
pub mod stats;
