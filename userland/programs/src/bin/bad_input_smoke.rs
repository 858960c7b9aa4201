//! `bad-input-smoke`: the kernel must answer bad requests with the right
//! error and keep serving. Slots: 0 console, 1 timer, 2 boot-manifest,
//! 3 memory.
//!
//! One line per case: `[bad-input] case=<name> error=<error> ok` when the
//! completion (or, for the queue flood, `cap_enter`) carries the expected
//! [`Error`], else `[bad-input] case=<name> FAILED got=<what>`. Then
//! `[bad-input] done passed=<n> failed=<k>`; exit 0 iff none failed.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use capos_abi::limits::{CONSOLE_WRITE_MAX, PENDING_PER_THREAD};
use capos_abi::NO_TIMEOUT;
use capos_runtime::{println, CapabilityHandle, Context, Error, Opcode, Ring, Submission};

capos_runtime::entry!(main);

const CONSOLE_SLOT: u16 = 0;
const TIMER_SLOT: u16 = 1;
const MANIFEST_SLOT: u16 = 2;
const MEMORY_SLOT: u16 = 3;
/// A page of the map region, mapped and unmapped by the `unmapped-after-*`
/// cases.
const MAPPED_PAGE: u64 = capos_abi::layout::MAP_BASE;
/// A slot every process has room for but this one was never granted.
const EMPTY_SLOT: u16 = 40;
/// No opcode has this number.
const UNKNOWN_OPCODE: u16 = 999;
/// The first kernel-half address.
const KERNEL_ADDRESS: u64 = 0xffff_8000_0000_0000;
/// Above the program image, rings and stacks, below the map region: never mapped.
const UNMAPPED_ADDRESS: u64 = 0x5000_0000;
/// How far the flood moves `sq_tail` past `sq_head`.
const FLOOD: u32 = 1000;

/// What a case observed: the raw result of the operation under test.
type Observed = Result<i64, String>;

/// A case: its name, the error it must produce, and how to provoke it.
type Case<'a> = (&'static str, Error, &'a dyn Fn(&mut Ring) -> Observed);

fn main(context: &mut Context) -> i32 {
    let console = context.capability(CONSOLE_SLOT);
    let timer = context.capability(TIMER_SLOT);
    let manifest = context.capability(MANIFEST_SLOT);
    let memory = context.capability(MEMORY_SLOT);
    let mut passed = 0u32;
    let mut failed = 0u32;
    let cases: [Case<'_>; 13] = [
        ("invalid-opcode", Error::InvalidOpcode, &|ring| {
            Ok(raw(ring, UNKNOWN_OPCODE, console, [0; 6]))
        }),
        ("reserved-flags", Error::InvalidArgument, &|ring| {
            let mut submission = request(ring, Opcode::Nop as u16, console, [0; 6]);
            submission.flags = 1;
            // SAFETY: a Nop names no memory.
            Ok(unsafe { ring.call(submission) }.result)
        }),
        ("invalid-capability", Error::InvalidCapability, &|ring| {
            let empty = CapabilityHandle::new(EMPTY_SLOT, 0);
            Ok(raw(ring, Opcode::TimerNow as u16, empty, [0; 6]))
        }),
        ("wrong-object-type", Error::WrongObjectType, &|ring| {
            Ok(raw(ring, Opcode::TimerNow as u16, console, [0; 6]))
        }),
        ("kernel-pointer", Error::BadAddress, &|ring| {
            let arguments = [KERNEL_ADDRESS, 16, 0, 0, 0, 0];
            Ok(raw(ring, Opcode::ConsoleWrite as u16, console, arguments))
        }),
        ("unmapped-pointer", Error::BadAddress, &|ring| {
            let arguments = [UNMAPPED_ADDRESS, 16, 0, 0, 0, 0];
            Ok(raw(ring, Opcode::ConsoleWrite as u16, console, arguments))
        }),
        // The kernel remembers the last page it copied from and to (its
        // per-space translation memo): a page read from, or written to, and
        // then unmapped must be refused, not copied through the freed frame.
        ("unmapped-after-read", Error::BadAddress, &|ring| {
            after_unmap(ring, memory, |ring| {
                let arguments = [MAPPED_PAGE + 8, 16, 0, 0, 0, 0];
                raw(ring, Opcode::ConsoleWrite as u16, console, arguments)
            })
        }),
        ("unmapped-after-write", Error::BadAddress, &|ring| {
            after_unmap(ring, memory, |ring| {
                let arguments = [MAPPED_PAGE + 8, 16, 0, 0, 0, 0];
                raw(ring, Opcode::ManifestRead as u16, manifest, arguments)
            })
        }),
        ("manifest-kernel-pointer", Error::BadAddress, &|ring| {
            let arguments = [KERNEL_ADDRESS, 16, 0, 0, 0, 0];
            Ok(raw(ring, Opcode::ManifestRead as u16, manifest, arguments))
        }),
        ("oversized-length", Error::TooLarge, &|ring| {
            // A real, mapped buffer: only the length is wrong.
            let text = vec![b'x'; CONSOLE_WRITE_MAX as usize + 1];
            let mut submission = request(ring, Opcode::ConsoleWrite as u16, console, [0; 6]);
            submission.arguments[0] = text.as_ptr() as u64;
            submission.arguments[1] = text.len() as u64;
            // SAFETY: `text` is readable and outlives the call.
            Ok(unsafe { ring.call(submission) }.result)
        }),
        ("pending-quota", Error::QuotaExhausted, &|ring| {
            pending_quota(ring, timer)
        }),
        ("stale-handle", Error::InvalidCapability, &|ring| {
            ring.drop_capability(timer)
                .map_err(|error| format!("drop:{}", error.name()))?;
            Ok(raw(ring, Opcode::TimerNow as u16, timer, [0; 6]))
        }),
        ("sq-flood", Error::RingOverrun, &sq_flood),
    ];
    for (name, expected, case) in cases {
        match case(context.ring()) {
            Ok(result) if result == expected.as_result() => {
                passed += 1;
                println!(
                    context,
                    "[bad-input] case={name} error={} ok",
                    expected.name()
                );
            }
            Ok(result) => {
                failed += 1;
                println!(
                    context,
                    "[bad-input] case={name} FAILED got={}",
                    describe(result)
                );
            }
            Err(problem) => {
                failed += 1;
                println!(context, "[bad-input] case={name} FAILED got={problem}");
            }
        }
    }
    println!(context, "[bad-input] done passed={passed} failed={failed}");
    i32::from(failed != 0)
}

/// Map [`MAPPED_PAGE`], run `copy` (which must succeed: the kernel copies
/// through the page), unmap the page and run `copy` again: its result is
/// the case's.
fn after_unmap(
    ring: &mut Ring,
    memory: CapabilityHandle,
    copy: impl Fn(&mut Ring) -> i64,
) -> Observed {
    ring.memory_map(memory, MAPPED_PAGE, 4096, true)
        .map_err(|error| format!("map:{}", error.name()))?;
    let mapped = copy(ring);
    if mapped < 0 {
        return Err(format!("while mapped:{}", describe(mapped)));
    }
    ring.memory_unmap(memory, MAPPED_PAGE, 4096)
        .map_err(|error| format!("unmap:{}", error.name()))?;
    Ok(copy(ring))
}

/// An error's name, or the number for a success or an unknown code.
fn describe(result: i64) -> String {
    match Error::from_result(result) {
        Some(error) => error.name().into(),
        None => format!("result:{result}"),
    }
}

fn request(
    ring: &mut Ring,
    opcode: u16,
    capability: CapabilityHandle,
    arguments: [u64; 6],
) -> Submission {
    Submission {
        opcode,
        flags: 0,
        capability: capability.0,
        user_data: ring.fresh_user_data(),
        arguments,
    }
}

/// Call a request whose only memory arguments point outside this program
/// (or that has none), returning the raw result.
fn raw(ring: &mut Ring, opcode: u16, capability: CapabilityHandle, arguments: [u64; 6]) -> i64 {
    let submission = request(ring, opcode, capability, arguments);
    // SAFETY: the arguments name no memory of this program (none, the
    // kernel half, or unmapped addresses), so nothing of ours can change.
    unsafe { ring.call(submission) }.result
}

/// Submit more sleeps in one batch than a thread may have in flight
/// ([`PENDING_PER_THREAD`]): the excess must be refused with
/// `QuotaExhausted` at once, every other sleep must complete normally, and
/// no completion may be lost.
fn pending_quota(ring: &mut Ring, timer: CapabilityHandle) -> Observed {
    const EXCESS: usize = 8;
    const SLEEP_NS: u64 = 20_000_000;
    let total = PENDING_PER_THREAD + EXCESS;
    for _ in 0..total {
        let submission = request(
            ring,
            Opcode::TimerSleep as u16,
            timer,
            [SLEEP_NS, 0, 0, 0, 0, 0],
        );
        // SAFETY: a TimerSleep names no memory.
        unsafe { ring.submit(submission) }.map_err(|_| String::from("ring-full"))?;
    }
    let (mut refused, mut slept, mut other, mut seen) = (0, 0, 0, 0);
    while seen < total {
        ring.enter(1, NO_TIMEOUT)
            .map_err(|error| format!("enter:{}", error.name()))?;
        while let Some(completion) = ring.next_completion() {
            seen += 1;
            match completion.result {
                0 => slept += 1,
                result if result == Error::QuotaExhausted.as_result() => refused += 1,
                _ => other += 1,
            }
        }
    }
    if refused == EXCESS && slept == PENDING_PER_THREAD && other == 0 {
        Ok(Error::QuotaExhausted.as_result())
    } else {
        Err(format!("refused={refused} slept={slept} other={other}"))
    }
}

/// Move `sq_tail` [`FLOOD`] entries past `sq_head`: `cap_enter` must refuse
/// with `RingOverrun` before consuming anything. Then restore the tail and
/// check the ring still works.
fn sq_flood(ring: &mut Ring) -> Observed {
    let (head, tail) = ring.submission_indices();
    if head != tail {
        return Err(format!("queue-not-empty:{}", tail.wrapping_sub(head)));
    }
    // SAFETY: the kernel must reject a tail this far ahead before reading
    // any slot; the slots hold earlier Nops and memory-free requests anyway.
    unsafe { ring.set_submission_tail(head.wrapping_add(FLOOD)) };
    let entered = ring.enter(0, NO_TIMEOUT);
    // SAFETY: restores the consistent value (nothing was queued).
    unsafe { ring.set_submission_tail(tail) };
    let result = match entered {
        Ok(count) => return Err(format!("accepted:{count}")),
        Err(error) => error.as_result(),
    };
    let submission = request(ring, Opcode::Nop as u16, CapabilityHandle::NONE, [0; 6]);
    // SAFETY: a Nop names no memory.
    let after = unsafe { ring.call(submission) }.result;
    if after != 0 {
        return Err(format!("nop-after-flood:{}", describe(after)));
    }
    Ok(result)
}
