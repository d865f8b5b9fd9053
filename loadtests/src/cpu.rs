//! CPU time used by this process, so every HTTP level can say how much of the machine the
//! load generator itself took.
//!
//! Client and server share a small machine; a throughput figure is only the server's if the
//! client had CPU to spare, and this is the number that shows whether it did. Read from
//! /proc (Linux only; elsewhere the figure is simply absent).

use std::time::{Duration, Instant};

/// Kernel clock ticks per second for /proc times. 100 on every mainstream Linux
/// architecture; fixed here rather than asking `sysconf` to avoid a libc dependency.
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU time from the text of /proc/self/stat.
pub fn parse_proc_stat(stat: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may contain spaces; fields after
    // it are space-separated, utime and stime being the 14th and 15th overall.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / TICKS_PER_SECOND,
    ))
}

fn process_cpu() -> Option<Duration> {
    parse_proc_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// A CPU-time and wall-clock starting point.
pub struct CpuMeter {
    cpu: Option<Duration>,
    wall: Instant,
}

impl CpuMeter {
    pub fn start() -> Self {
        Self {
            cpu: process_cpu(),
            wall: Instant::now(),
        }
    }

    /// Percent of one core used since `start` (100 = one core busy throughout).
    pub fn percent_of_one_core(&self) -> Option<f64> {
        let used = process_cpu()?.checked_sub(self.cpu?)?;
        let wall = self.wall.elapsed().as_secs_f64();
        (wall > 0.0).then(|| 100.0 * used.as_secs_f64() / wall)
    }
}

/// "42%" or "n/a", for the one-line summaries and the report.
pub fn format_cpu(pct: Option<f64>) -> String {
    pct.map_or_else(|| "n/a".to_string(), |p| format!("{p:.0}%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime() {
        let stat = "1234 (convoy load) R 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(parse_proc_stat(stat), Some(Duration::from_secs(3)));
    }

    #[test]
    fn rejects_truncated_stat() {
        assert_eq!(parse_proc_stat("1234 (x) R 1 2 3"), None);
        assert_eq!(parse_proc_stat("garbage"), None);
    }

    #[test]
    fn meter_reads_this_process() {
        if std::path::Path::new("/proc/self/stat").exists() {
            let m = CpuMeter::start();
            assert!(m.percent_of_one_core().is_some());
        }
    }
}
