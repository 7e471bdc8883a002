//! What a run costs the machine: CPU time and peak resident memory, read
//! from `/proc/self` (Linux). Both are process-wide: a run that shares its
//! process with other work counts that work too.
//!
//! Elsewhere these read as `None`, and reports leave the figures out.

use std::fs;

/// Clock ticks per second of `/proc/self/stat` (`USER_HZ`, 100 on every
/// Linux architecture sluice builds for).
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system) the process has used so far, with every
/// thread, exited ones included. Resolution: 10 ms.
pub fn cpu_seconds() -> Option<f64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu(&stat)
}

fn parse_cpu(stat: &str) -> Option<f64> {
    // The command name may hold spaces and parentheses: fields are counted
    // from the last `)`. The first field after it is field 3 (state);
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// Starts a new peak: afterwards [`peak_rss_bytes`] reports the most memory
/// resident from now on, rather than since the process started. False where
/// the kernel does not allow it.
pub fn reset_peak_rss() -> bool {
    // "5" resets the resident-set high-water mark (Linux 4.0 and later).
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The most memory the process has held resident, in bytes, since it
/// started or since the last [`reset_peak_rss`].
pub fn peak_rss_bytes() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    parse_hwm(&status)
}

fn parse_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line["VmHWM:".len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// CPU time and peak memory over a stretch of work.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// CPU seconds at the start.
    cpu_start: Option<f64>,
    /// Whether the peak was reset at the start, so that it is this run's.
    peak_reset: bool,
}

impl Usage {
    /// Starts measuring: notes the CPU time so far and resets the peak.
    pub fn start() -> Self {
        let peak_reset = reset_peak_rss();
        Usage { cpu_start: cpu_seconds(), peak_reset }
    }

    /// The peak resident memory since [`Usage::start`]; `None` where it
    /// could not be reset then (it would be the process's lifetime peak).
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        if self.peak_reset {
            peak_rss_bytes()
        } else {
            None
        }
    }

    /// CPU seconds since [`Usage::start`].
    pub fn cpu_s(&self) -> Option<f64> {
        Some((cpu_seconds()? - self.cpu_start?).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_and_status_parse() {
        let stat = "1234 (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 9 0 100 200 300";
        assert_eq!(parse_cpu(stat), Some(3.0));
        assert_eq!(parse_cpu("garbage"), None);
        let status = "Name:\tsluice\nVmPeak:\t  9000 kB\nVmHWM:\t    2128 kB\nVmRSS:\t 2000 kB\n";
        assert_eq!(parse_hwm(status), Some(2128 * 1024));
    }

    #[test]
    fn live_process_has_figures() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        let u = Usage::start();
        // Burn a little CPU and touch 64 MiB, so the peak must rise.
        let v = vec![1u8; 64 << 20];
        let sum: u64 = v.iter().step_by(4096).map(|&b| b as u64).sum();
        assert_eq!(sum, (64 << 20) / 4096);
        assert!(peak_rss_bytes().unwrap() >= 64 << 20);
        assert!(u.cpu_s().unwrap() >= 0.0);
    }
}
