//! How much memory this process may still take: what sizes from flags and files are
//! checked against before anything that large is allocated, so a bad size is a clear
//! refusal instead of an abort on a failed allocation.

/// Bytes this process can still allocate: the smaller of the system's available memory
/// (`MemAvailable`) and what its cgroup's `memory.max` leaves; `None` where neither can
/// be read (then only the explicit budgets apply).
pub fn available_bytes() -> Option<u64> {
    let system = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| meminfo_field(&t, "MemAvailable:"));
    let cgroup = cgroup_left();
    match (system, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A `/proc/meminfo` field, in bytes.
fn meminfo_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// What a cgroup v2 memory limit leaves (`memory.max` − `memory.current`).
fn cgroup_left() -> Option<u64> {
    let read = |f: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{f}")).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?; // "max" = no limit
    let current: u64 = read("memory.current")?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

/// Refuse `need` bytes when the machine cannot give them; `what` says what they are for
/// and which flags set the size (the message names them).
pub fn check_fits(need: u64, what: &str) -> std::result::Result<(), String> {
    match available_bytes() {
        Some(have) if need > have => Err(format!(
            "{what} needs {:.1} GiB, but this machine has {:.1} GiB available",
            need as f64 / GIB,
            have as f64 / GIB
        )),
        _ => Ok(()),
    }
}

const GIB: f64 = (1u64 << 30) as f64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminfo_and_refuses_what_cannot_fit() {
        let text = "MemTotal:       24000000 kB\nMemAvailable:   2000 kB\n";
        assert_eq!(meminfo_field(text, "MemAvailable:"), Some(2000 * 1024));
        assert_eq!(meminfo_field(text, "Nope:"), None);
        if available_bytes().is_some() {
            let e = check_fits(u64::MAX, "the KV cache for --batch 9").unwrap_err();
            assert!(e.contains("--batch 9") && e.contains("available"), "{e}");
            assert!(check_fits(1, "one byte").is_ok());
        }
    }
}
