// SPDX-License-Identifier: MIT OR Apache-2.0
//! The process metrics every Prometheus exporter has (the client libraries' names), read
//! from /proc at each scrape: a restart shows as a new start time, a leak as memory or
//! descriptors that grow.

use super::text::{Family, Kind, Value};

/// What /proc/self/stat says of this process (proc(5)), and the system's boot time.
#[derive(Debug, PartialEq)]
struct Stat {
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
    /// Since boot, in clock ticks.
    start_ticks: u64,
    virtual_bytes: u64,
    resident_pages: u64,
}

/// Parses /proc/self/stat: the fields after the command's closing parenthesis (the command
/// itself may hold spaces and parentheses).
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is the first after the parenthesis.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: field(14)? + field(15)?,
        start_ticks: field(22)?,
        virtual_bytes: field(23)?,
        resident_pages: field(24)?,
    })
}

/// The boot time in seconds since the epoch (`btime` of /proc/stat).
fn boot_time(text: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

/// The process families; those /proc does not give (it always does on Linux) are left out.
pub fn families() -> Vec<Family> {
    let mut out = Vec::new();
    // SAFETY: sysconf only reads a system constant.
    let (ticks, page) =
        unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    let stat = std::fs::read_to_string("/proc/self/stat").ok().and_then(|t| parse_stat(&t));
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|t| boot_time(&t));
    if let Some(s) = &stat {
        out.push(
            Family::new("process_cpu_seconds", Kind::Counter, "User and system CPU time spent")
                .unit("seconds")
                .one(Value::Float(s.cpu_ticks as f64 / ticks)),
        );
        if let Some(boot) = boot {
            let start = boot as f64 + s.start_ticks as f64 / ticks;
            out.push(
                Family::new(
                    "process_start_time_seconds",
                    Kind::Gauge,
                    "Start time of the process since the epoch",
                )
                .unit("seconds")
                .one(Value::Float(start)),
            );
        }
        out.push(
            Family::new("process_virtual_memory_bytes", Kind::Gauge, "Virtual memory size")
                .unit("bytes")
                .one(Value::Int(s.virtual_bytes)),
        );
        out.push(
            Family::new("process_resident_memory_bytes", Kind::Gauge, "Resident memory size")
                .unit("bytes")
                .one(Value::Int(s.resident_pages * page.max(0) as u64)),
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        out.push(
            Family::new("process_open_fds", Kind::Gauge, "Open file descriptors")
                .one(Value::Int(fds.count() as u64)),
        );
    }
    if let Ok((soft, _)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        out.push(
            Family::new("process_max_fds", Kind::Gauge, "Limit of open file descriptors")
                .one(Value::Int(soft)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_read_past_a_command_with_spaces_and_parentheses() {
        let line = "4242 (a b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 \
                    12345 1000000 300 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            Stat {
                cpu_ticks: 300,
                start_ticks: 12345,
                virtual_bytes: 1_000_000,
                resident_pages: 300
            }
        );
        assert_eq!(boot_time("cpu 1 2\nbtime 1700000000\nprocesses 9\n"), Some(1_700_000_000));
    }

    #[test]
    fn this_process_has_its_families() {
        let names: Vec<String> = families().into_iter().map(|f| f.name).collect();
        for n in [
            "process_cpu_seconds",
            "process_start_time_seconds",
            "process_virtual_memory_bytes",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
        }
    }
}
