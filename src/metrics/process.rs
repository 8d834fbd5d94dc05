//! Process memory and file descriptors, read from Linux's `/proc` at scrape time; elsewhere
//! (or when `/proc` is not mounted) they are left out rather than reported as zero.

/// What could be read.
#[derive(Debug, Default, Clone, Copy)]
pub struct Process {
    /// Resident set size, in bytes (`VmRSS`).
    pub rss_bytes: Option<u64>,
    /// Entries of `/proc/self/fd`.
    pub open_fds: Option<u64>,
    /// The soft limit of open files.
    pub max_fds: Option<u64>,
}

/// Reads the process's figures now.
pub fn read() -> Process {
    Process {
        rss_bytes: rss_bytes(),
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|entries| entries.count() as u64),
        max_fds: max_fds(),
    }
}

fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_kib(&status, "VmRSS:").map(|kib| kib * 1024)
}

/// `VmRSS:     1234 kB` → 1234.
fn parse_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.trim_start_matches(field)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(unix)]
fn max_fds() -> Option<u64> {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

#[cfg(not(unix))]
fn max_fds() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_resident_size_in_kib() {
        let status = "Name:\tticketd\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\n";
        assert_eq!(parse_kib(status, "VmRSS:"), Some(1234));
        assert_eq!(parse_kib("Name:\tx\n", "VmRSS:"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_memory_and_descriptors() {
        let now = read();
        assert!(now.rss_bytes.is_some_and(|b| b > 1024 * 1024), "{now:?}");
        assert!(now.open_fds.is_some_and(|n| n >= 3), "{now:?}");
    }
}
