//! The memory bound of a command: a thread that watches the process's
//! resident memory and ends the command with a clear error when it passes
//! `--max-memory`. Specific limits (YAML sizes, output size) stop the
//! known cases earlier and at their place; this bounds everything else
//! (a Jsonnet comprehension of millions of objects, a string bomb) whatever
//! part of the command allocates it.

use std::io::Write as _;
use std::time::Duration;

/// Default `--max-memory`, in MiB, before the allowance for input.
pub const DEFAULT_MAX_MEMORY_MIB: u64 = 640;

/// Without `--max-memory`, the bound grows by this many MiB per MiB of
/// input YAML read: a repository of 20,000 services (27 MB of YAML) holds
/// its parsed inputs, its state and its objects at once; a template that
/// multiplies objects still stops near the default.
pub const MIB_PER_INPUT_MIB: u64 = 16;

/// The bound in MiB: `asked`, else the default and the input's allowance.
pub fn limit_mib(asked: Option<u64>) -> u64 {
    asked.unwrap_or_else(|| {
        DEFAULT_MAX_MEMORY_MIB + MIB_PER_INPUT_MIB * crate::load::input_bytes_read() / (1 << 20)
    })
}

/// How often resident memory is read.
const POLL: Duration = Duration::from_millis(5);

/// Starts watching; when resident memory passes the bound (`asked`, else
/// the default grown by the input read so far), removes any `--out-dir`
/// staging directory, prints `report` of the bound passed (to stdout when
/// `to_stdout`) and exits 1. Does nothing where /proc is not available.
pub fn start(asked: Option<u64>, report: impl Fn(u64) -> String + Send + 'static, to_stdout: bool) {
    if resident_kib().is_none() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("memory-watchdog".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            std::thread::sleep(POLL);
            let limit = limit_mib(asked);
            if resident_kib().is_some_and(|kib| kib > limit.saturating_mul(1024)) {
                let report = report(limit);
                crate::emit::out_dir::interrupt_and_wait();
                if to_stdout {
                    let _ = std::io::stdout().write_all(report.as_bytes());
                    let _ = std::io::stdout().flush();
                } else {
                    let _ = std::io::stderr().write_all(report.as_bytes());
                }
                std::process::exit(super::EXIT_INVALID);
            }
        });
}

/// The process's resident memory, in KiB: from `/proc/self/statm`, a
/// line of page counts, which the kernel makes for a fraction of the cost
/// of `/proc/self/status` (read every few milliseconds while both cores
/// evaluate).
fn resident_kib() -> Option<u64> {
    let mut statm = [0u8; 128];
    let read = std::fs::File::open("/proc/self/statm")
        .and_then(|mut f| std::io::Read::read(&mut f, &mut statm))
        .ok()?;
    let pages: u64 = std::str::from_utf8(&statm[..read])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(pages * page_kib())
}

/// The size of a memory page, in KiB.
fn page_kib() -> u64 {
    // SAFETY: sysconf reads a constant of the system.
    let bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(bytes).map_or(4, |b| (b / 1024).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_readable_here() {
        if cfg!(target_os = "linux") {
            assert!(resident_kib().is_some_and(|k| k > 0));
        }
    }

    #[test]
    fn resident_memory_is_what_the_status_file_says() {
        let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
            return;
        };
        let status_kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        let kib = resident_kib().unwrap();
        // Read a moment apart, by threads that may allocate meanwhile.
        assert!(
            kib.abs_diff(status_kib) < 16 * 1024,
            "{kib} vs {status_kib}"
        );
    }
}
