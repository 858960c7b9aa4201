//! The few Linux system calls the baselines need, behind safe wrappers.
//!
//! Invariants: all `unsafe` of the program lives here, one block per call,
//! each with the reason it is sound; errors come back as `io::Error` from
//! `errno`, never as panics.

use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// Which side of a `fork` this process is on.
pub enum Forked {
    /// The new process.
    Child,
    /// The parent, with the child's pid.
    Parent(libc::pid_t),
}

/// `-1` means failure with `errno` set.
fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// `fork(2)`. The caller's child side must only compute, write to
/// descriptors it owns and call [`exit_now`]: it must not return into code
/// that assumes other threads exist (this program has none).
pub fn fork() -> io::Result<Forked> {
    // SAFETY: fork has no memory-safety preconditions; this program is
    // single-threaded, so the child's copy of the heap and locks is consistent.
    let pid = check(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid)
    })
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub fn pipe() -> io::Result<(File, File)> {
    let mut descriptors = [0 as libc::c_int; 2];
    // SAFETY: `descriptors` is a writable array of two ints, as pipe2 needs.
    check(unsafe { libc::pipe2(descriptors.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by
    // nobody else; each is wrapped exactly once.
    let (read, write) = unsafe {
        (
            OwnedFd::from_raw_fd(descriptors[0]),
            OwnedFd::from_raw_fd(descriptors[1]),
        )
    };
    Ok((File::from(read), File::from(write)))
}

/// How a waited-for child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by a signal.
    Signalled(i32),
}

/// `waitpid(pid, 0)`.
pub fn wait(pid: libc::pid_t) -> io::Result<Ended> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a valid int to write the status into.
        match check(unsafe { libc::waitpid(pid, &mut status, 0) }) {
            Ok(_) => break,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(if libc::WIFEXITED(status) {
        Ended::Exited(libc::WEXITSTATUS(status))
    } else {
        Ended::Signalled(libc::WTERMSIG(status))
    })
}

/// `_exit(code)`: end a forked child without running the parent's exit
/// handlers or flushing its copy of the parent's buffers.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// The CPUs this process may run on, in order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain bits; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a writable cpu_set_t of the size passed.
    check(unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) })?;
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the bit count of `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Restrict this process (and the children it forks later) to `cpus`.
pub fn pin_to(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain bits; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "CPU index too large",
            ));
        }
        // SAFETY: `cpu` is below CPU_SETSIZE, checked above.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is an initialised cpu_set_t of the size passed.
    check(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) })?;
    Ok(())
}

/// `getppid(2)`, the null system call of the micro-baselines.
pub fn parent_pid() -> libc::pid_t {
    // SAFETY: getppid has no preconditions and cannot fail.
    unsafe { libc::getppid() }
}

/// This process's pid.
pub fn pid() -> libc::pid_t {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

/// Start `program` with `[program]` and an empty environment
/// through `posix_spawn` (glibc: `clone(CLONE_VM|CLONE_VFORK)` + `execve`,
/// the vfork path), then `waitpid` it: the Linux counterpart of capOS
/// spawn-to-exit. Returns how the child ended.
pub fn spawn_and_wait(program: &std::ffi::CStr) -> io::Result<Ended> {
    let argv = [program.as_ptr().cast_mut(), std::ptr::null_mut()];
    let envp = [std::ptr::null_mut()];
    let mut pid: libc::pid_t = 0;
    // SAFETY: `pid` is writable; no file actions or attributes (null);
    // `argv` and `envp` are null-terminated arrays of valid C strings that
    // outlive the call (posix_spawn does not keep them).
    let error = unsafe {
        libc::posix_spawn(
            &mut pid,
            program.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            argv.as_ptr(),
            envp.as_ptr(),
        )
    };
    if error != 0 {
        return Err(io::Error::from_raw_os_error(error));
    }
    wait(pid)
}

/// Flush file systems and power the machine off (the Linux guest's end).
pub fn power_off() -> ! {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    // SAFETY: reboot(RB_POWER_OFF) has no memory preconditions; as PID 1 in
    // the guest it turns the virtual machine off and does not return.
    unsafe { libc::reboot(libc::RB_POWER_OFF) };
    // Only reached if reboot failed (not PID 1, or no permission).
    exit_now(1)
}
