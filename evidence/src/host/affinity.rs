//! CPU affinity through the Linux system calls, and read back from `/proc`.
//!
//! Invariants:
//! - Every `unsafe` block is a plain libc call on a `cpu_set_t` this module
//!   owns; CPU numbers at or above `CPU_SETSIZE` are refused, never truncated.
//! - What counts as evidence is the read-back (`Cpus_allowed_list` in
//!   `/proc/<pid>/task/<tid>/status`), not the call's success.

use std::io;
use std::path::PathBuf;

use super::cpulist;

fn cpu_set(cpus: &[u32]) -> io::Result<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain bits; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        let cpu = cpu as usize;
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "CPU {cpu} is beyond the {} a cpu_set_t holds",
                    libc::CPU_SETSIZE
                ),
            ));
        }
        // SAFETY: `cpu` is below CPU_SETSIZE, checked above.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    Ok(set)
}

/// The CPUs the calling thread may run on, ascending.
pub fn allowed_cpus() -> io::Result<Vec<u32>> {
    // SAFETY: cpu_set_t is plain bits; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a writable cpu_set_t of exactly the size passed.
    let status =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as u32)
        // SAFETY: `cpu` is below CPU_SETSIZE, the bit count of `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu as usize, &set) })
        .collect())
}

/// Restrict thread `tid` (0: the calling thread) to `cpus`.
pub fn set_thread_affinity(tid: i32, cpus: &[u32]) -> io::Result<()> {
    let set = cpu_set(cpus)?;
    // SAFETY: `set` is an initialised cpu_set_t of exactly the size passed.
    let status =
        unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Run `body` with the calling thread restricted to `cpus`, then restore
/// its affinity: a process spawned inside inherits `cpus` from its first
/// instruction. The restore error, if any, is returned after `body`'s value.
pub fn with_thread_affinity<T>(
    cpus: &[u32],
    body: impl FnOnce() -> T,
) -> io::Result<(T, io::Result<()>)> {
    let saved = allowed_cpus()?;
    set_thread_affinity(0, cpus)?;
    let value = body();
    let restored = set_thread_affinity(0, &saved);
    Ok((value, restored))
}

fn task_file(pid: u32, tid: u32, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/task/{tid}/{name}"))
}

/// The thread ids of process `pid`, ascending.
pub fn thread_ids(pid: u32) -> io::Result<Vec<u32>> {
    let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

/// The thread's name (`comm`), e.g. `CPU 0/TCG` or `qemu-system-x86`.
pub fn thread_name(pid: u32, tid: u32) -> io::Result<String> {
    Ok(std::fs::read_to_string(task_file(pid, tid, "comm"))?
        .trim_end_matches('\n')
        .to_string())
}

/// `Cpus_allowed_list` of thread `tid` of `pid`, as the kernel prints it.
pub fn read_back(pid: u32, tid: u32) -> io::Result<String> {
    let status = std::fs::read_to_string(task_file(pid, tid, "status"))?;
    allowed_list_of_status(&status).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "no Cpus_allowed_list line in the status file",
        )
    })
}

/// The `Cpus_allowed_list:` value of a `/proc/.../status` text.
pub fn allowed_list_of_status(status: &str) -> Option<String> {
    status.lines().find_map(|line| {
        line.strip_prefix("Cpus_allowed_list:")
            .map(|value| value.trim().to_string())
    })
}

/// Whether a read-back list names exactly `cpus`.
pub fn read_back_matches(read_back: &str, cpus: &[u32]) -> bool {
    let mut wanted = cpus.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    cpulist::parse(read_back)
        .map(|got| got == wanted)
        .unwrap_or(false)
}

/// Whether `pid` has exited, without reaping it: its `/proc` entries stay
/// readable (a zombie keeps its CPU times) until the caller waits for it.
pub fn exited_unreaped(pid: u32) -> io::Result<bool> {
    // SAFETY: siginfo_t is plain data; all-zero is a valid "nothing" value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let id = libc::id_t::from(pid);
    // SAFETY: `info` is a writable siginfo_t; WNOWAIT leaves the child waitable.
    let status = unsafe {
        libc::waitid(
            libc::P_PID,
            id,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: waitid filled `info` (or left it zeroed when nothing exited).
    Ok(unsafe { info.si_pid() } != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parsing_finds_the_list() {
        let status = "Name:\tqemu\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed:\t1\n";
        assert_eq!(allowed_list_of_status(status).as_deref(), Some("0-1"));
        assert_eq!(allowed_list_of_status("Name: x\n"), None);
        assert!(read_back_matches("0-1", &[1, 0]));
        assert!(!read_back_matches("0", &[0, 1]));
        assert!(!read_back_matches("garbage", &[0]));
    }

    #[test]
    fn thread_affinity_round_trips_and_restores() {
        let allowed = allowed_cpus().unwrap();
        let first = allowed[0];
        let (seen, restored) = with_thread_affinity(&[first], allowed_cpus).unwrap();
        restored.unwrap();
        assert_eq!(seen.unwrap(), vec![first]);
        assert_eq!(allowed_cpus().unwrap(), allowed);
    }

    #[test]
    fn out_of_range_cpus_are_refused() {
        let error = set_thread_affinity(0, &[u32::MAX]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_child_is_seen_exited_before_it_is_reaped() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !exited_unreaped(pid).unwrap() {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        // Still a zombie: its stat is readable.
        assert!(std::path::Path::new(&format!("/proc/{pid}/stat")).exists());
        assert!(child.wait().unwrap().success());
    }
}
