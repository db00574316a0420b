//! The memory the machine lets the engine have, and fallible allocation of its large buffers.
//!
//! Rust aborts the process when an ordinary allocation fails, which inside a host's editor would
//! take the editor down. So the engine allocates what it can fail on before it fails: weights
//! read from files go through [`read_exact_at`] (`try_reserve`), and a job's activations or a
//! component's weights are reserved with [`ensure_free`] before the first tensor is made. Both
//! fail with [`Error::OutOfMemory`], and the job fails with the engine intact.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Result};

/// Free memory on `device`: the process's available memory ([`available`]) on the CPU, the
/// device's free memory on CUDA; unlimited where it cannot be measured.
pub fn available_on(device: &candle_core::Device) -> u64 {
    match device {
        candle_core::Device::Cpu => available(),
        #[cfg(feature = "cuda")]
        candle_core::Device::Cuda(d) => crate::interop::cuda::free_memory(d).unwrap_or(u64::MAX),
        _ => u64::MAX,
    }
}

/// The memory the process can still get, in bytes: the smallest of the kernel's `MemAvailable`,
/// the headroom of the process's cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`, less what
/// it uses but could reclaim), and the address-space and data limits (`ulimit -v`, `ulimit -d`)
/// less what the process has mapped. Unlimited where none can be read (not Linux).
pub fn available() -> u64 {
    let proc = |name: &str| std::fs::read_to_string(Path::new("/proc").join(name)).ok();
    let meminfo = proc("meminfo").and_then(|m| kib_field(&m, "MemAvailable:"));
    let cgroup = proc("self/cgroup").and_then(|c| cgroup_headroom(&c));
    let limits = proc("self/limits").zip(proc("self/status"));
    let rlimits = limits.map(|(limits, status)| {
        let vm = kib_field(&status, "VmSize:").unwrap_or(0);
        let data = kib_field(&status, "VmData:").unwrap_or(0);
        let free =
            |limit: Option<u64>, used: u64| limit.map_or(u64::MAX, |l| l.saturating_sub(used));
        free(rlimit(&limits, "Max address space"), vm)
            .min(free(rlimit(&limits, "Max data size"), data))
    });
    [meminfo, cgroup, rlimits]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(u64::MAX)
}

/// Fails with [`Error::OutOfMemory`] unless the process can map `bytes` more now (its address
/// space limit and the kernel's overcommit rules allow it): the memory is reserved and given
/// back at once, without being touched.
pub fn ensure_free(bytes: u64, what: impl FnOnce() -> String) -> Result<()> {
    empty_buffer(bytes, what).map(drop)
}

/// An empty buffer with room for `bytes`, allocated fallibly.
fn empty_buffer(bytes: u64, what: impl FnOnce() -> String) -> Result<Vec<u8>> {
    let mut buffer = Vec::new();
    usize::try_from(bytes)
        .ok()
        .and_then(|n| buffer.try_reserve_exact(n).ok())
        .map(|_| buffer)
        .ok_or_else(|| Error::OutOfMemory {
            what: what(),
            bytes,
        })
}

/// Reads `len` bytes at `offset` of `path` into a buffer allocated fallibly: a buffer the
/// machine cannot give is [`Error::OutOfMemory`] naming `what`, not an abort.
pub fn read_exact_at(
    path: &Path,
    offset: u64,
    len: u64,
    what: impl FnOnce() -> String,
) -> Result<Vec<u8>> {
    let mut bytes = empty_buffer(len, what)?;
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.take(len).read_to_end(&mut bytes))
        .map_err(|e| Error::io(path, e))?;
    match bytes.len() as u64 == len {
        true => Ok(bytes),
        false => Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file ends early"),
        )),
    }
}

/// A `Name:   N kB` field of a `/proc` file, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// The soft limit of `/proc/self/limits`' row `name`, in bytes; `None` when unlimited.
fn rlimit(limits: &str, name: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// What the process's memory cgroup still allows: its limit less its usage, counting the
/// inactive file cache (which the kernel reclaims before failing) as free. `None` without a
/// limit. v2 reads `0::<path>`; v1 the `memory` controller's path, or the mount's root inside a
/// container whose cgroup namespace hides the path.
fn cgroup_headroom(cgroups: &str) -> Option<u64> {
    let read = |path: &Path| std::fs::read_to_string(path).ok();
    let number = |path: &Path| read(path)?.trim().parse::<u64>().ok();
    let v2 = cgroups.lines().find_map(|l| l.strip_prefix("0::"));
    let v1 = cgroups
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p));
    let (dir, limit, usage, inactive) = match (v2, v1) {
        (_, Some(p)) => {
            let root = Path::new("/sys/fs/cgroup/memory");
            let dir = [root.join(p.trim_start_matches('/')), root.to_path_buf()]
                .into_iter()
                .find(|d| d.join("memory.limit_in_bytes").exists())?;
            (
                dir,
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                "total_inactive_file",
            )
        }
        (Some(p), None) => {
            let dir = Path::new("/sys/fs/cgroup").join(p.trim_start_matches('/'));
            (dir, "memory.max", "memory.current", "inactive_file")
        }
        (None, None) => return None,
    };
    // v1 writes "no limit" as a page-rounded i64::MAX, v2 as "max" (which does not parse).
    let limit = number(&dir.join(limit)).filter(|&l| l < 1 << 60)?;
    let usage = number(&dir.join(usage)).unwrap_or(0);
    let reclaimable = read(&dir.join("memory.stat"))
        .and_then(|s| {
            let line = s
                .lines()
                .find(|l| l.split_whitespace().next() == Some(inactive))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0);
    Some(limit.saturating_sub(usage.saturating_sub(reclaimable)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_are_read_in_bytes() {
        let status = "Name:\tx\nVmSize:\t  3896 kB\nVmData:\t     428 kB\n";
        assert_eq!(kib_field(status, "VmSize:"), Some(3896 * 1024));
        assert_eq!(kib_field(status, "VmData:"), Some(428 * 1024));
        assert_eq!(kib_field(status, "VmRSS:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max data size             unlimited            unlimited            bytes     \n\
                      Max address space         4294967296           unlimited            bytes     \n";
        assert_eq!(rlimit(limits, "Max address space"), Some(4 << 30));
        assert_eq!(rlimit(limits, "Max data size"), None);
    }

    #[test]
    fn available_memory_is_measured_here() {
        let free = available();
        assert!(free > 0 && free < u64::MAX, "{free}");
    }

    #[test]
    fn impossible_reservations_are_errors() {
        let e = ensure_free(u64::MAX / 2, || "the test's activations".into()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("the test's activations"), "{msg}");
        assert!(msg.contains(&(u64::MAX / 2).to_string()), "{msg}");
        ensure_free(1 << 20, || unreachable!()).unwrap();
    }
}
