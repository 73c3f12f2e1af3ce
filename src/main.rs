//! The `controlcenter` binary: arguments in, exit code out.

use clap::Parser;
use controlcenter::cli::{self, Cli, EXIT_USAGE};

/// Evaluation allocates and frees millions of small objects per render;
/// mimalloc does that several times faster than the system allocator and
/// returns freed pages to the system sooner.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    cli::unset_empty_option_vars();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    // An interrupted --out-dir write leaves no temporary directory behind.
    let _ = ctrlc::set_handler(|| {
        controlcenter::emit::out_dir::interrupt_and_wait();
        std::process::exit(130);
    });
    std::panic::set_hook(Box::new(|info| {
        eprintln!("controlcenter: internal error: {info}. This is a bug; please report it with the command that triggered it.");
    }));
    let code = std::panic::catch_unwind(|| cli::run(cli)).unwrap_or(EXIT_USAGE);
    exit_now(code);
}

/// Ends the process once its output is out, skipping exit handlers: they
/// only free what the exit frees anyway, and the allocator's hands every
/// page back to the system one range at a time (4% of a warm render's
/// CPU).
fn exit_now(code: i32) -> ! {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` only ends the process; every write this process
    // makes is flushed above or already made (files are written through
    // and renamed before `run` returns).
    unsafe { libc::_exit(code) }
}
