//! The raw system calls: `cap_enter`, `exit` and `thread_exit`.
//!
//! Convention (docs/abi.md): `syscall` with the number in `rax`, arguments in
//! `rdi` and `rsi`, the result in `rax`. A system call is a call under the
//! System V ABI: it preserves `rbx`, `rbp`, `rsp`, `r12`-`r15`, MXCSR and the
//! x87 state, and clobbers the caller-saved registers (`rcx`, `r11` and
//! XMM0-15 among them).
//!
//! Under `cfg(test)`, `cap_enter` is served by [`fake`], an in-process
//! kernel that completes `Nop`s, so the ring client is tested on the host.

#[cfg(not(test))]
use capos_abi::Syscall;

/// `cap_enter(min_complete, timeout_ns)`: let the kernel consume the
/// submission queue, then wait until at least `min_complete` completions are
/// available or `timeout_ns` passes ([`capos_abi::NO_TIMEOUT`]: never).
///
/// Returns the raw result: the number of available completions, or a
/// negative [`capos_abi::Error`] code.
#[cfg(not(test))]
pub fn cap_enter(min_complete: u32, timeout_ns: u64) -> i64 {
    let result: i64;
    // SAFETY: the syscall clobbers only what a C call may (declared with
    // `clobber_abi`) and does not touch the user stack. The kernel reads and
    // writes only this thread's ring and the memory that submissions name; whoever
    // submitted those promised it stays valid (`Ring::submit`'s contract).
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") Syscall::CapEnter as u64 => result,
            in("rdi") u64::from(min_complete),
            in("rsi") timeout_ns,
            clobber_abi("sysv64"),
            options(nostack),
        );
    }
    result
}

/// Test build: the fake kernel answers.
#[cfg(test)]
pub fn cap_enter(min_complete: u32, timeout_ns: u64) -> i64 {
    fake::enter(min_complete, timeout_ns)
}

/// End the process with `code` (sign-extended into `rdi`), which
/// `ProcessWait` reports as the status. Codes -1 to -11 read as errors
/// there, and -(128 + vector) means "killed by a fault": avoid them.
pub fn exit(code: i32) -> ! {
    #[cfg(not(test))]
    // SAFETY: `exit` does not return to this thread; if a broken kernel did
    // return, the registers it may change are declared clobbered.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") Syscall::Exit as u64 => _,
            in("rdi") i64::from(code) as u64,
            clobber_abi("sysv64"),
            options(nostack),
        );
    }
    #[cfg(test)]
    panic!("exit({code}) in a host test");
    #[allow(unreachable_code)]
    loop {
        core::hint::spin_loop();
    }
}

/// End the calling thread only, with `value` for `ThreadJoin`; the last
/// thread's `thread_exit` ends the process with `value` as its exit code.
/// Other threads and the process's capabilities are untouched. Called
/// from inside a body run by [`crate::thread::spawn`] instead of returning,
/// it skips the runtime's cleanup: the thread's block and its ring's local
/// buffer stay allocated.
pub fn thread_exit(value: i64) -> ! {
    #[cfg(not(test))]
    // SAFETY: `thread_exit` does not return to this thread; if a broken
    // kernel did return, the registers it may change are declared clobbered.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") Syscall::ThreadExit as u64 => _,
            in("rdi") value as u64,
            clobber_abi("sysv64"),
            options(nostack),
        );
    }
    #[cfg(test)]
    panic!("thread_exit({value}) in a host test");
    #[allow(unreachable_code)]
    loop {
        core::hint::spin_loop();
    }
}

/// An in-process stand-in for the kernel's side of the ring, for host tests.
///
/// It follows the kernel's rules: it consumes a submission only while the
/// completion queue has room, rejects a producer that ran ahead with
/// `RingOverrun`, completes `Nop` with 0 and everything else with
/// `InvalidOpcode`. Instead of blocking it answers `TimedOut`.
#[cfg(test)]
pub(crate) mod fake {
    use capos_abi::ring::{self, header};
    use capos_abi::{Completion, Error, Opcode, Submission};
    use core::sync::atomic::{AtomicU32, Ordering};
    use std::cell::Cell;

    std::thread_local! {
        static RING_BASE: Cell<usize> = const { Cell::new(0) };
    }

    /// Two pages, aligned like the real mapping.
    #[repr(C, align(4096))]
    pub struct RingMemory(pub [u8; 8192]);

    /// Fresh ring memory with the entry counts set, as the kernel does, and
    /// served by this thread's fake kernel.
    pub fn ring_memory() -> Box<RingMemory> {
        let mut memory = Box::new(RingMemory([0; 8192]));
        memory.0[header::SQ_ENTRIES..header::SQ_ENTRIES + 4]
            .copy_from_slice(&ring::SQ_ENTRIES.to_le_bytes());
        memory.0[header::CQ_ENTRIES..header::CQ_ENTRIES + 4]
            .copy_from_slice(&ring::CQ_ENTRIES.to_le_bytes());
        RING_BASE.with(|base| base.set(memory.0.as_ptr() as usize));
        memory
    }

    fn index(base: usize, offset: usize) -> &'static AtomicU32 {
        // SAFETY: `base` is a live `RingMemory` (tests keep it alive while
        // they enter), the offset is a 4-aligned header field, and all
        // accesses to header fields are atomic.
        unsafe { &*((base + offset) as *const AtomicU32) }
    }

    pub fn enter(min_complete: u32, _timeout_ns: u64) -> i64 {
        let base = RING_BASE.with(Cell::get);
        assert_ne!(base, 0, "no fake ring registered on this thread");
        let sq_tail = index(base, header::SQ_TAIL).load(Ordering::Acquire);
        let mut sq_head = index(base, header::SQ_HEAD).load(Ordering::Relaxed);
        if sq_tail.wrapping_sub(sq_head) > ring::SQ_ENTRIES {
            return Error::RingOverrun.as_result();
        }
        let mut cq_tail = index(base, header::CQ_TAIL).load(Ordering::Relaxed);
        while sq_head != sq_tail {
            let cq_head = index(base, header::CQ_HEAD).load(Ordering::Acquire);
            if cq_tail.wrapping_sub(cq_head) >= ring::CQ_ENTRIES {
                break;
            }
            let slot = (base + ring::submission_offset(sq_head)) as *const Submission;
            // SAFETY: an in-bounds, aligned SQ slot between head and tail,
            // published by the user's release store of `sq_tail`.
            let submission = unsafe { slot.read_volatile() };
            let result = if submission.opcode == Opcode::Nop as u16 {
                0
            } else {
                Error::InvalidOpcode.as_result()
            };
            let completion = Completion {
                user_data: submission.user_data,
                result,
                ..Completion::default()
            };
            let slot = (base + ring::completion_offset(cq_tail)) as *mut Completion;
            // SAFETY: an in-bounds, aligned CQ slot the user does not read
            // until `cq_tail` is released below.
            unsafe { slot.write_volatile(completion) };
            cq_tail = cq_tail.wrapping_add(1);
            index(base, header::CQ_TAIL).store(cq_tail, Ordering::Release);
            sq_head = sq_head.wrapping_add(1);
            index(base, header::SQ_HEAD).store(sq_head, Ordering::Release);
        }
        let cq_head = index(base, header::CQ_HEAD).load(Ordering::Acquire);
        let available = cq_tail.wrapping_sub(cq_head);
        if available < min_complete {
            return Error::TimedOut.as_result();
        }
        i64::from(available)
    }
}
