//! `hostile-flags`: user-chosen RFLAGS must never reach kernel mode or
//! another thread. Slots: 0 console, 1 timer.
//!
//! As `hostile-flags` it sets NT, AC and DF with `popfq` (and asks for
//! IOPL=3, which `popfq` ignores at CPL 3), then, with those flags still
//! set, blocks in `cap_enter` on a 5 ms timer sleep, [`ROUNDS`] times, while
//! `hostile-flags-peer` (this binary with the argument `peer`) keeps the
//! CPUs switching between threads; then it spins with the same flags set
//! until a timer interrupt has returned to it (a spin that ends on time
//! rather than on that return fails). Before the fix, NT made the next
//! `iretq` on that CPU fault in ring 0.
//!
//! What it checks, from the flags read with `pushfq` right after each
//! return to user mode: DF and AC are as it set them (the kernel keeps the
//! user's flags), NT and IOPL are 0 (the kernel clears NT on every return,
//! docs/security.md; IOPL cannot be raised from user mode) and IF is 1.
//! DF is cleared again before any Rust code runs (the ABI requires it).
//!
//! Lines: `[hostile-flags] set=<hex> seen=<hex>` once,
//! `[hostile-flags] rounds=<n> spins=<n> flags-kept ok`, or
//! `[hostile-flags] FAILED ...` (exit 1). The peer prints
//! `[hostile-flags] peer sleeps=<n> ok`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use capos_abi::{Syscall, NO_TIMEOUT};
use capos_runtime::{println, CapabilityHandle, Context, Opcode, Submission};

capos_runtime::entry!(main);

const TIMER_SLOT: u16 = 1;
/// Blocking `cap_enter`s with the flags set.
const ROUNDS: u32 = 50;
/// Spins with the flags set, each until a timer interrupt has returned to
/// it.
const SPINS: u32 = 5;
/// Longest spin in TSC cycles (seconds at any plausible TSC rate): a spin
/// ends as soon as NT is gone, which only an interrupt return does, so a
/// slow host only makes it longer; NT still set after this long fails.
const SPIN_CYCLES: u64 = 20_000_000_000;
/// Times `popfq` is retried when an interrupt cleared NT before the flags
/// were read back (each retry needs another interrupt in a 2-instruction
/// window, so a second one is already rare).
const SET_TRIES: u64 = 1000;
const SLEEP_NS: u64 = 5_000_000;
/// Sleeps the peer does while the other process plays with its flags.
const PEER_SLEEPS: u32 = 200;

const DIRECTION: u64 = 1 << 10;
const IO_PRIVILEGE: u64 = 3 << 12;
const NESTED_TASK: u64 = 1 << 14;
const ALIGNMENT_CHECK: u64 = 1 << 18;
const INTERRUPTS: u64 = 1 << 9;
/// What the program asks `popfq` for.
const REQUESTED: u64 = DIRECTION | IO_PRIVILEGE | NESTED_TASK | ALIGNMENT_CHECK;

fn main(context: &mut Context) -> i32 {
    let peer = context.slot_count() > 1
        && context
            .ring()
            .manifest_arguments(CapabilityHandle::new(2, 0))
            .is_ok_and(|arguments| capos_runtime::options::has_word(&arguments, "peer"));
    let result = if peer {
        run_peer(context)
    } else {
        run(context)
    };
    match result {
        Ok(()) => 0,
        Err(problem) => {
            println!(context, "[hostile-flags] FAILED {problem}");
            1
        }
    }
}

/// The other process: keep sleeping and waking so threads switch often.
fn run_peer(context: &mut Context) -> Result<(), String> {
    let timer = context.capability(TIMER_SLOT);
    for _ in 0..PEER_SLEEPS {
        context
            .ring()
            .timer_sleep(timer, 1_000_000)
            .map_err(|error| format!("peer sleep {}", error.name()))?;
    }
    println!(context, "[hostile-flags] peer sleeps={PEER_SLEEPS} ok");
    Ok(())
}

fn run(context: &mut Context) -> Result<(), String> {
    let timer = context.capability(TIMER_SLOT);
    let mut first = true;
    for round in 0..ROUNDS {
        let sleep = Submission {
            opcode: Opcode::TimerSleep as u16,
            flags: 0,
            capability: timer.0,
            user_data: u64::from(round),
            arguments: [SLEEP_NS, 0, 0, 0, 0, 0],
        };
        // SAFETY: a TimerSleep names no memory.
        unsafe { context.ring().submit(sleep) }.map_err(|_| String::from("ring full"))?;
        let (set, seen, result) = with_flags(Hold::Block);
        if first {
            println!(context, "[hostile-flags] set={set:#x} seen={seen:#x}");
            first = false;
        }
        if result != 1 {
            return Err(format!("round={round} cap_enter={result}"));
        }
        check(set, seen).map_err(|problem| format!("round={round} {problem}"))?;
        match context.ring().next_completion() {
            Some(completion)
                if completion.user_data == u64::from(round) && completion.result == 0 => {}
            other => return Err(format!("round={round} completion={other:?}")),
        }
    }
    for spin in 0..SPINS {
        let (set, seen, _) = with_flags(Hold::Spin);
        check(set, seen).map_err(|problem| format!("spin={spin} {problem}"))?;
    }
    println!(
        context,
        "[hostile-flags] rounds={ROUNDS} spins={SPINS} flags-kept ok"
    );
    Ok(())
}

/// Whether `seen` (after a return to user mode) keeps what `set` held.
fn check(set: u64, seen: u64) -> Result<(), String> {
    let kept = DIRECTION | ALIGNMENT_CHECK;
    if set & kept != kept || set & NESTED_TASK == 0 {
        return Err(format!("popfq did not set the flags: set={set:#x}"));
    }
    if set & IO_PRIVILEGE != 0 {
        return Err(format!("user mode raised IOPL: set={set:#x}"));
    }
    if seen & kept != kept {
        return Err(format!("DF/AC lost: seen={seen:#x}"));
    }
    if seen & (NESTED_TASK | IO_PRIVILEGE) != 0 || seen & INTERRUPTS == 0 {
        return Err(format!("NT/IOPL/IF wrong after return: seen={seen:#x}"));
    }
    Ok(())
}

/// How [`with_flags`] spends the time the flags are set.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// `cap_enter(1, NO_TIMEOUT)`: block until the queued sleep completes.
    Block,
    /// Spin until an interrupt has returned to user mode (NT cleared) or
    /// [`SPIN_CYCLES`] TSC cycles passed; timer interrupts may switch threads
    /// meanwhile.
    Spin,
}

/// Set [`REQUESTED`] with `popfq`, hold them as `hold` says, read the flags
/// again; returns (flags after `popfq`, flags after the hold, `cap_enter`'s
/// result or 0 when spinning). The original flags (DF clear) are back
/// before any compiled code runs.
fn with_flags(hold: Hold) -> (u64, u64, i64) {
    let set: u64;
    let seen: u64;
    let result: i64;
    // SAFETY: the block moves RSP below the red zone before pushing and
    // restores it, restores the original RFLAGS (kept on the stack) before
    // it ends, and touches no memory but its own stack slots. `cap_enter`
    // clobbers what a C call may (declared: the caller-saved general and
    // XMM registers), RDTSC only rax and rdx; the sleep the kernel waits for
    // names no memory. RDTSC is allowed in user mode.
    unsafe {
        core::arch::asm!(
            "sub rsp, 128",
            "pushfq",
            "mov r9, [rsp]",
            "or r9, {requested}",
            // An interrupt between `popfq` and `pushfq` returns with NT
            // cleared (as it must); set the flags again then, a bounded
            // number of times.
            "mov r10, {tries}",
            "6:",
            "push r9",
            "popfq",
            "pushfq",
            "pop {set}",
            "test {set}, {nested}",
            "jnz 7f",
            "dec r10",
            "jnz 6b",
            "7:",
            "test {spin}, {spin}",
            "jnz 3f",
            "syscall",
            "jmp 4f",
            "3:",
            "rdtsc",
            "shl rdx, 32",
            "or rax, rdx",
            "mov r10, rax",
            "2:",
            "pushfq",
            "pop r11",
            "test r11, {nested}",
            "jz 5f",
            "rdtsc",
            "shl rdx, 32",
            "or rax, rdx",
            "sub rax, r10",
            "cmp rax, {cycles}",
            "jb 2b",
            "5:",
            "xor eax, eax",
            "4:",
            "pushfq",
            "pop {seen}",
            "popfq",
            "add rsp, 128",
            requested = in(reg) REQUESTED,
            spin = in(reg) u64::from(hold == Hold::Spin),
            cycles = in(reg) SPIN_CYCLES,
            nested = const NESTED_TASK,
            tries = const SET_TRIES,
            set = out(reg) set,
            seen = out(reg) seen,
            inlateout("rax") Syscall::CapEnter as u64 => result,
            inout("rdi") 1u64 => _,
            inout("rsi") NO_TIMEOUT => _,
            out("rdx") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("rcx") _,
            out("r11") _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
        );
    }
    (set, seen, result)
}
