//! The `mnistc` command (see `mnistc --help` and the README).

use std::process::ExitCode;

fn main() -> ExitCode {
    mnistc::train::malloc::keep_freed_memory();
    let code = mnistc::cli::run(std::env::args_os(), &mut std::io::stdout(), &mut std::io::stderr());
    ExitCode::from(code)
}
