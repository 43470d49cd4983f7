//! The `deliberate` binary: parses the command line and hands over to [`deliberate::cli`].

use std::process::ExitCode;

/// mimalloc instead of the system allocator: a gateway request allocates and frees many small
/// buffers (parsed JSON, findings, SSE frames), and glibc's malloc/free were about a fifth of a
/// proxied request's instructions (benches/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    deliberate::cli::main()
}
