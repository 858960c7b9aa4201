//! user-bench on Linux: the counterparts of the capOS paths, timed the same
//! way (cycles, warm-up, same iteration counts, same percentiles):
//! `getppid` for the null ring operation, an 8-byte ping-pong between two
//! processes over two pipes for the endpoint call, `posix_spawn` (the
//! vfork path) + `waitpid` of the static `capos-empty` (no libc; exits at
//! once) for spawn-to-exit, `std::thread::spawn` + `join` (pthreads) of a
//! thread that returns at once, a word handed back and forth between two
//! threads that wait on it with `FUTEX_WAIT_PRIVATE` and wake each other
//! with `FUTEX_WAKE_PRIVATE`, and 32 `getppid`s per batch (Linux has no
//! batched null system call), reported per call.

use crate::system::{self, Ended, Forked};
use capos_workloads::bench::{self, Spread, UserBenchLine};
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Time `iterations` runs of `operation` (see [`bench::measure`]).
fn measure(
    iterations: usize,
    operation: impl FnMut() -> Result<(), String>,
) -> Result<Spread, String> {
    let mut samples = vec![0u64; iterations];
    bench::measure(&mut samples, operation)?.ok_or_else(|| "no samples".to_string())
}

/// The echo side of the ping-pong: reverse every 8-byte message until EOF.
fn echo(mut from_parent: File, mut to_parent: File) -> i32 {
    let mut message = [0u8; 8];
    loop {
        match from_parent.read_exact(&mut message) {
            Ok(()) => {}
            Err(_) => return 0,
        }
        message.reverse();
        if to_parent.write_all(&message).is_err() {
            return 1;
        }
    }
}

fn ping_pong() -> Result<Spread, String> {
    let (from_parent, mut to_child) = system::pipe().map_err(|error| format!("pipe: {error}"))?;
    let (mut from_child, to_parent) = system::pipe().map_err(|error| format!("pipe: {error}"))?;
    let pid = match system::fork().map_err(|error| format!("fork: {error}"))? {
        Forked::Child => {
            drop(to_child);
            drop(from_child);
            system::exit_now(echo(from_parent, to_parent));
        }
        Forked::Parent(pid) => pid,
    };
    drop(from_parent);
    drop(to_parent);
    let mut reply = [0u8; 8];
    let spread = measure(bench::CALL_ITERATIONS, || {
        to_child
            .write_all(b"ping1234")
            .map_err(|error| format!("write: {error}"))?;
        from_child
            .read_exact(&mut reply)
            .map_err(|error| format!("read: {error}"))?;
        if &reply == b"4321gnip" {
            Ok(())
        } else {
            Err("wrong echo".into())
        }
    });
    drop(to_child);
    let ended = system::wait(pid).map_err(|error| format!("waitpid: {error}"))?;
    if ended != Ended::Exited(0) {
        return Err(format!("echo process ended {ended:?}"));
    }
    spread
}

/// `futex(word, FUTEX_WAIT_PRIVATE, expected)`: sleep while the word holds
/// `expected` (returns at once when it does not, or on a signal).
fn futex_wait(word: &AtomicU32, expected: u32) -> Result<(), String> {
    // SAFETY: FUTEX_WAIT reads the aligned word, which outlives the call;
    // no timeout (null).
    let result = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        )
    };
    let error = std::io::Error::last_os_error().raw_os_error();
    if result == 0 || matches!(error, Some(libc::EAGAIN) | Some(libc::EINTR)) {
        Ok(())
    } else {
        Err(format!("futex wait: {}", std::io::Error::last_os_error()))
    }
}

/// `futex(word, FUTEX_WAKE_PRIVATE, 1)`.
fn futex_wake(word: &AtomicU32) -> Result<(), String> {
    // SAFETY: FUTEX_WAKE only uses the word's address.
    let result = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        )
    };
    if result >= 0 {
        Ok(())
    } else {
        Err(format!("futex wake: {}", std::io::Error::last_os_error()))
    }
}

/// Wait until the word is even (`side` 0) or odd (`side` 1).
fn wait_for_turn(turn: &AtomicU32, side: u32) -> Result<(), String> {
    loop {
        let now = turn.load(Ordering::Acquire);
        if now % 2 == side {
            return Ok(());
        }
        futex_wait(turn, now)?;
    }
}

/// Round trips of a word between this thread and a partner thread (the
/// counterpart of capOS park/unpark).
fn futex_round_trips() -> Result<Spread, String> {
    let turn = Arc::new(AtomicU32::new(0));
    let rounds = (bench::WARM_UP + bench::PARK_ITERATIONS) as u32;
    let partner_turn = turn.clone();
    let partner = std::thread::spawn(move || -> Result<(), String> {
        for _ in 0..rounds {
            wait_for_turn(&partner_turn, 1)?;
            partner_turn.fetch_add(1, Ordering::AcqRel);
            futex_wake(&partner_turn)?;
        }
        Ok(())
    });
    let spread = measure(bench::PARK_ITERATIONS, || {
        wait_for_turn(&turn, 0)?;
        turn.fetch_add(1, Ordering::AcqRel);
        futex_wake(&turn)?;
        wait_for_turn(&turn, 0)
    })?;
    partner
        .join()
        .map_err(|_| "futex partner panicked".to_string())??;
    if turn.load(Ordering::Acquire) != 2 * rounds {
        return Err("futex partner lost a turn".into());
    }
    Ok(spread)
}

/// The empty program: `/empty` in the Linux guest (PID 1 has no /proc to
/// find itself), else `capos-empty` beside this program.
fn empty_program() -> Result<std::path::PathBuf, String> {
    if system::pid() == 1 {
        return Ok("/empty".into());
    }
    let this = std::env::current_exe().map_err(|error| format!("current_exe: {error}"))?;
    Ok(this.with_file_name("capos-empty"))
}

/// Run the six measurements and print the line.
pub fn run(os: &'static str) -> Result<bool, String> {
    let nop = measure(bench::NOP_ITERATIONS, || {
        std::hint::black_box(system::parent_pid());
        Ok(())
    })?;
    let call = ping_pong()?;
    let program = CString::new(empty_program()?.into_os_string().into_encoded_bytes())
        .map_err(|error| error.to_string())?;
    let spawn = measure(bench::SPAWN_ITERATIONS, || {
        match system::spawn_and_wait(&program) {
            Ok(Ended::Exited(0)) => Ok(()),
            Ok(ended) => Err(format!("empty program ended {ended:?}")),
            Err(error) => Err(format!("posix_spawn: {error}")),
        }
    })?;
    let thread = measure(bench::THREAD_ITERATIONS, || {
        match std::thread::spawn(|| std::hint::black_box(7)).join() {
            Ok(7) => Ok(()),
            _ => Err("thread did not return 7".to_string()),
        }
    })?;
    let park = futex_round_trips()?;
    let batch = measure(bench::BATCH_ITERATIONS, || {
        for _ in 0..bench::BATCH_NOPS {
            std::hint::black_box(system::parent_pid());
        }
        Ok(())
    })?
    .per_operation(bench::BATCH_NOPS as u64);
    let line = UserBenchLine {
        os: Some(os),
        nop,
        call,
        spawn,
        thread,
        park,
        batch,
    };
    println!("{line}");
    Ok(true)
}
