//! user-bench on Linux: the counterparts of the capOS paths, timed the same
//! way (cycles, warm-up, same iteration counts, same percentiles):
//! `getppid` for the null ring operation, an 8-byte ping-pong between two
//! processes over two pipes for the endpoint call, and `posix_spawn` (the
//! vfork path) + `waitpid` of the static `capos-empty` (no libc; exits at
//! once) for spawn-to-exit.

use crate::system::{self, Ended, Forked};
use capos_workloads::bench::{self, Spread, UserBenchLine};
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};

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

/// The empty program: `/empty` in the Linux guest (PID 1 has no /proc to
/// find itself), else `capos-empty` beside this program.
fn empty_program() -> Result<std::path::PathBuf, String> {
    if system::pid() == 1 {
        return Ok("/empty".into());
    }
    let this = std::env::current_exe().map_err(|error| format!("current_exe: {error}"))?;
    Ok(this.with_file_name("capos-empty"))
}

/// Run the three measurements and print the line.
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
    let line = UserBenchLine {
        os: Some(os),
        nop,
        call,
        spawn,
    };
    println!("{line}");
    Ok(true)
}
