//! The `deliberate` binary: parses the command line and hands over to [`deliberate::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    deliberate::cli::main()
}
