//! The `deliberate` binary: parses the command line and hands over to [`deliberate::run_cli`].

use std::process::ExitCode;

/// With the `mimalloc` feature, mimalloc instead of the system allocator: a gateway request
/// allocates and frees many small buffers (parsed JSON, findings, SSE frames), and glibc's
/// malloc/free are about a fifth of a proxied request's instructions. Off by default: it also
/// keeps about 17 KB more resident per open stream (benches/README.md has both figures).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    deliberate::run_cli()
}
