//! The `controlcenter` binary: arguments in, exit code out.

use clap::Parser;
use controlcenter::cli::{self, Cli, EXIT_USAGE};

/// Evaluation allocates and frees millions of small objects per render;
/// mimalloc does that several times faster than the system allocator and
/// returns freed pages to the system sooner.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
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
    std::process::exit(code);
}
