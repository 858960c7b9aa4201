//! The two syscalls and the ring operations `cap_enter` executes.
//!
//! Every operation reserves its completion slot when taken from the ring
//! (`KernelRing::next_submission` + `defer`) and posts exactly one
//! completion, now or later. Bad input of any kind becomes an error
//! completion; nothing here panics on user data.

use crate::objects::{KernelObject, Message, UserBuffer};
use crate::platform::interrupts::InterruptFrame;
use crate::ring::Answer;
use crate::sched;
use crate::thread::Thread;
use crate::{console, process, timer, userspace};
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_abi::arguments as args;
use capos_abi::limits::{CONSOLE_WRITE_MAX, GRANTS_MAX, MESSAGE_MAX, NAME_MAX, PENDING_PER_THREAD};
use capos_abi::ring::{Submission, CQ_ENTRIES};
use capos_abi::{CapabilityHandle, Error, Opcode, Syscall, NO_TIMEOUT};
use capos_kcore::ring::RingFault;

/// Entry from `syscall_entry`, on the thread's kernel stack. Returns to
/// user mode unless the thread exits or was killed meanwhile.
#[no_mangle]
#[link_section = ".text.syscall_path"]
extern "C" fn syscall_dispatch(frame: &mut InterruptFrame) {
    let Some(thread) = sched::current() else {
        frame.rax = Error::InvalidOpcode.as_result() as u64;
        return;
    };
    thread.count_syscall();
    frame.rax = match Syscall::from_number(frame.rax) {
        Some(Syscall::CapEnter) => cap_enter(&thread, frame.rdi, frame.rsi) as u64,
        Some(Syscall::Exit) => {
            thread
                .process
                .exit(process::ExitStatus::exited(frame.rdi as i64));
            crate::thread::exit_current(Arc::clone(&thread), frame.rdi as i64)
        }
        Some(Syscall::ThreadExit) => {
            crate::thread::exit_current(Arc::clone(&thread), frame.rdi as i64)
        }
        None => Error::InvalidOpcode.as_result() as u64,
    };
    frame.sanitize_user_flags();
    crate::thread::exit_if_killed(&thread);
}

/// Consume the caller's submissions, then wait for `min_complete` completions.
/// The path of a ring round trip that needs no operation (Nops, or
/// completions already there) is this function and `take_submission`
/// only; operations and waits are calls out of it, so it stays small and
/// sits with `syscall_entry` at the start of the kernel text (linker.ld).
#[link_section = ".text.syscall_path"]
fn cap_enter(thread: &Arc<Thread>, min_complete: u64, timeout_ns: u64) -> i64 {
    let available = loop {
        // A killed thread takes no more submissions (issue 19, finding 4):
        // it ends on its way out, and what it took after its process's exit
        // had withdrawn its entries would otherwise be queued for nobody.
        if thread.killed() {
            return Error::ProcessExited.as_result();
        }
        match thread.ring.with(take_submission) {
            Ok(Taken::Operation(submission, in_flight)) => execute(thread, &submission, in_flight),
            Ok(Taken::Drained(available)) => break available,
            Err(RingFault::Overrun { .. }) => return Error::RingOverrun.as_result(),
            Err(_) => return Error::BadAddress.as_result(),
        }
    };
    let wanted = min_complete.min(u64::from(CQ_ENTRIES)) as u32;
    // One look (taken with the last submission) suffices unless the
    // caller must wait.
    if timeout_ns == 0 || available.as_ref().map_or(true, |&count| count >= wanted) {
        return finish_enter(available, wanted);
    }
    wait_for_completions(thread, wanted, timeout_ns)
}

/// A timed `cap_enter` wait's deadline: wake the thread, which re-checks.
const TIMED_WAIT_EXPIRY: timer::Expiry = timer::Expiry {
    action: |thread, _| thread.wake(),
    words: [0, 0],
};

/// `cap_enter`'s wait: block until `wanted` completions are available or
/// `timeout_ns` passes.
#[inline(never)]
fn wait_for_completions(thread: &Arc<Thread>, wanted: u32, timeout_ns: u64) -> i64 {
    let ready = || {
        thread
            .ring
            .available()
            .map_or(true, |count| count >= wanted)
    };
    let deadline = (timeout_ns != NO_TIMEOUT).then(|| timer::now_ns().saturating_add(timeout_ns));
    // The registration lives exactly as long as this wait.
    let registration = match deadline {
        Some(deadline) => match timer::add(deadline, thread, TIMED_WAIT_EXPIRY) {
            Ok(token) => Some(token),
            Err(error) => return error.as_result(),
        },
        None => None,
    };
    sched::block_until(thread, || {
        ready() || deadline.is_some_and(|d| timer::now_ns() >= d)
    });
    if let Some(token) = registration {
        timer::cancel(thread, token);
    }
    finish_enter(thread.ring.available(), wanted)
}

/// `cap_enter`'s result once the wait is over: the completions available,
/// or why there are fewer than `wanted`.
fn finish_enter(available: Result<u32, RingFault>, wanted: u32) -> i64 {
    match available {
        Ok(count) if count >= wanted => i64::from(count),
        Ok(_) => Error::TimedOut.as_result(),
        Err(RingFault::Overrun { .. }) => Error::RingOverrun.as_result(),
        Err(_) => Error::BadAddress.as_result(),
    }
}

/// What [`take_submission`] found in the submission queue.
enum Taken {
    /// The next submission that needs [`execute`], and the thread's
    /// operations in flight with it counted.
    Operation(Submission, u32),
    /// None left; the completions available at that moment.
    Drained(Result<u32, RingFault>),
}

/// Take the next submission that needs [`execute`], under one hold of the
/// ring lock. Well-formed `Nop`s before it complete right here, in place
/// (`KernelRing::complete_nops`) and without a wake-up (their thread is the
/// one running), unless the pending quota would refuse them (then they
/// take the normal path and get that refusal, as every other operation
/// does). When the queue is empty, the same hold counts the completions
/// available.
fn take_submission(
    memory: &mut crate::ring::RingFrames,
    ring: &mut capos_kcore::ring::KernelRing,
) -> Result<Taken, RingFault> {
    if (ring.deferred() as usize) < PENDING_PER_THREAD {
        ring.complete_nops(memory)?;
    }
    match ring.next_submission(memory)? {
        Some(submission) => {
            ring.defer()?;
            Ok(Taken::Operation(submission, ring.deferred()))
        }
        None => Ok(Taken::Drained(ring.available(memory))),
    }
}

/// What an operation produced.
enum Outcome {
    /// Complete now with this answer.
    Done(Answer),
    /// The operation registered itself and completes later.
    Later,
}

fn done(result: Result<i64, Error>) -> Outcome {
    Outcome::Done(Answer::from_result(result))
}

#[inline(never)]
fn execute(thread: &Arc<Thread>, submission: &Submission, in_flight: u32) {
    // `in_flight` (taken under the ring lock with the submission) already
    // counts this submission: with PENDING_PER_THREAD operations waiting,
    // the next one is refused.
    let outcome = if in_flight as usize > PENDING_PER_THREAD {
        done(Err(Error::QuotaExhausted))
    } else {
        operate(thread, submission).unwrap_or_else(|error| done(Err(error)))
    };
    if let Outcome::Done(answer) = outcome {
        crate::ring::post(thread, submission.user_data, answer);
    }
}

/// Kernel heap an operation may use at most (messages, queue entries, a
/// spawned process's bookkeeping); admitted before the operation starts.
const OPERATION_HEAP_BYTES: usize = 16 * 1024;

fn capability(thread: &Thread, handle: u32) -> Result<KernelObject, Error> {
    thread.process.capability(CapabilityHandle(handle))
}

fn read_user(thread: &Thread, address: u64, length: u64, limit: u64) -> Result<Vec<u8>, Error> {
    if length > limit {
        return Err(Error::TooLarge);
    }
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(length as usize)
        .map_err(|_| Error::OutOfMemory)?;
    bytes.resize(length as usize, 0);
    thread
        .process
        .address_space()
        .read_argument(address, &mut bytes)?;
    Ok(bytes)
}

fn optional_capability(thread: &Thread, handle: u64) -> Result<Option<KernelObject>, Error> {
    if handle == u64::from(CapabilityHandle::NONE.0) {
        return Ok(None);
    }
    let handle = u32::try_from(handle).map_err(|_| Error::InvalidCapability)?;
    capability(thread, handle).map(Some)
}

fn operate(thread: &Arc<Thread>, submission: &Submission) -> Result<Outcome, Error> {
    let opcode = Opcode::from_number(submission.opcode).ok_or(Error::InvalidOpcode)?;
    if submission.flags != 0 {
        return Err(Error::InvalidArgument);
    }
    let arguments = &submission.arguments;
    if opcode == Opcode::Nop {
        return Ok(done(Ok(0)));
    }
    // Every operation past this point may allocate kernel heap.
    crate::mem::heap::admit(OPERATION_HEAP_BYTES)?;
    let object = capability(thread, submission.capability)?;
    let wrong = Err(Error::WrongObjectType);
    Ok(match (opcode, object) {
        (Opcode::CapabilityDrop, _) => {
            thread
                .process
                .drop_capability(CapabilityHandle(submission.capability))?;
            done(Ok(0))
        }
        (Opcode::DiagnosticsRead, KernelObject::Diagnostics) => {
            let request = args::DiagnosticsRead::decode(arguments);
            let counters = crate::diagnostics::counters();
            let size = core::mem::size_of::<capos_abi::KernelCounters>() as u64;
            if request.buffer_capacity < size {
                return Err(Error::TooLarge);
            }
            thread.process.address_space().write(
                request.buffer_address,
                &crate::diagnostics::to_bytes(&counters),
            )?;
            done(Ok(size as i64))
        }
        (Opcode::ThreadInfo, KernelObject::Diagnostics) => Outcome::Done(Answer::ok_with(
            crate::platform::percpu::current().index as i64,
            thread.syscalls(),
        )),
        (Opcode::MeasureMark, KernelObject::Diagnostics) => {
            let request = args::MeasureMark::decode(arguments);
            crate::measure::mark(thread.process.id, request.mark)?;
            done(Ok(0))
        }
        (Opcode::ConsoleWrite, KernelObject::Console) => {
            let request = args::ConsoleWrite::decode(arguments);
            let bytes = read_user(thread, request.address, request.length, CONSOLE_WRITE_MAX)?;
            console::user_write(&thread.process.name, &bytes);
            done(Ok(bytes.len() as i64))
        }
        (Opcode::TimerNow, KernelObject::Timer) => done(Ok(timer::now_ns() as i64)),
        (Opcode::TimerSleep, KernelObject::Timer) => {
            let request = args::TimerSleep::decode(arguments);
            let deadline = timer::now_ns().saturating_add(request.nanoseconds);
            // The registration is released when it fires or the thread ends.
            let _registration = timer::add(
                deadline,
                thread,
                timer::Expiry {
                    action: |thread, [user_data, _]| {
                        crate::ring::post(thread, user_data, Answer::ok(0))
                    },
                    words: [submission.user_data, 0],
                },
            )?;
            Outcome::Later
        }
        (Opcode::ManifestRead, KernelObject::BootManifest) => {
            let request = args::ManifestRead::decode(arguments);
            let text = thread.process.arguments.as_bytes();
            let start = (request.offset as usize).min(text.len());
            let piece = &text[start..];
            let length = piece.len().min(request.buffer_capacity as usize);
            thread
                .process
                .address_space()
                .write(request.buffer_address, &piece[..length])?;
            Outcome::Done(Answer::ok_with(length as i64, text.len() as u64))
        }
        (Opcode::BootInfo, KernelObject::BootManifest) => Outcome::Done(Answer::ok_with(
            crate::platform::smp::online_count() as i64,
            crate::platform::apic::tsc_hz(),
        )),
        (Opcode::Spawn, KernelObject::ProcessSpawner) => spawn(thread, arguments)?,
        (Opcode::ThreadSpawn, KernelObject::ThreadSpawner) => {
            let request = args::ThreadSpawn::decode(arguments);
            let child = thread.process.create_thread(
                request.entry,
                request.stack_top,
                request.argument,
                request.thread_pointer,
            )?;
            // Dropping `child` on a refused grant retires it unstarted (a
            // process that exited meanwhile refuses it: `ProcessExited`).
            let handle = thread
                .process
                .grant(KernelObject::ThreadHandle(child.clone()))?;
            let id = child.id;
            thread.process.thread_starting();
            child.start();
            Outcome::Done(Answer::ok_with(i64::from(handle.0), id))
        }
        (Opcode::ThreadJoin, KernelObject::ThreadHandle(target)) => {
            match target.join(thread, submission.user_data)? {
                Some(status) => Outcome::Done(Answer::exit(status)),
                None => Outcome::Later,
            }
        }
        (Opcode::Park, KernelObject::ParkSpace) => {
            let request = args::Park::decode(arguments);
            let expected = u32::try_from(request.expected).map_err(|_| Error::InvalidArgument)?;
            match crate::park::park(
                thread,
                submission.user_data,
                request.address,
                expected,
                request.timeout_ns,
            )? {
                crate::park::Parked::Differed => done(Ok(1)),
                crate::park::Parked::Waiting => Outcome::Later,
            }
        }
        (Opcode::MemoryMap, KernelObject::Memory) => {
            let request = args::MemoryMap::decode(arguments);
            if request.flags & !1 != 0 {
                return Err(Error::InvalidArgument);
            }
            let writable = request.flags & 1 != 0;
            thread
                .process
                .map_anonymous(request.address, request.length, writable)?;
            done(Ok(request.length as i64))
        }
        (Opcode::MemoryUnmap, KernelObject::Memory) => {
            let request = args::MemoryUnmap::decode(arguments);
            let unmapped = thread
                .process
                .unmap_anonymous(request.address, request.length)?;
            done(Ok(unmapped as i64))
        }
        (Opcode::Unpark, KernelObject::ParkSpace) => {
            let request = args::Unpark::decode(arguments);
            let woken = crate::park::unpark(thread, request.address, request.count)?;
            done(Ok(woken as i64))
        }
        (Opcode::ProcessWait, KernelObject::ProcessHandle(process)) => {
            // result 0; value: the exit status; extra: 1 if killed by a fault.
            match process.wait(thread, submission.user_data)? {
                Some(status) => Outcome::Done(Answer::exit(status)),
                None => Outcome::Later,
            }
        }
        (Opcode::EndpointCall, KernelObject::Endpoint(endpoint, _)) => {
            let request = args::EndpointCall::decode(arguments);
            let message = Message::read(thread, request.message_address, request.message_length)?;
            let transfer = optional_capability(thread, request.transfer)?;
            if request.reply_capacity > MESSAGE_MAX {
                return Err(Error::TooLarge);
            }
            capos_kcore::usermem::check_user_range(request.reply_address, request.reply_capacity)?;
            endpoint.call(
                thread,
                submission.user_data,
                message,
                transfer,
                UserBuffer {
                    address: request.reply_address,
                    capacity: request.reply_capacity,
                },
            )?;
            Outcome::Later
        }
        (Opcode::EndpointReceive, KernelObject::Endpoint(endpoint, rights)) => {
            rights.require_receive()?;
            let request = args::EndpointReceive::decode(arguments);
            capos_kcore::usermem::check_user_range(
                request.buffer_address,
                request.buffer_capacity,
            )?;
            endpoint.receive(
                thread,
                submission.user_data,
                UserBuffer {
                    address: request.buffer_address,
                    capacity: request.buffer_capacity,
                },
            )?;
            Outcome::Later
        }
        (Opcode::EndpointReply, KernelObject::Endpoint(endpoint, rights)) => {
            rights.require_receive()?;
            let request = args::EndpointReply::decode(arguments);
            let message = Message::read(thread, request.message_address, request.message_length)?;
            let transfer = optional_capability(thread, request.transfer)?;
            endpoint.reply(thread, request.token, message.as_bytes(), transfer)?;
            done(Ok(0))
        }
        (Opcode::Nop, _) => done(Ok(0)),
        _ => return wrong,
    })
}

fn spawn(thread: &Arc<Thread>, arguments: &[u64; 6]) -> Result<Outcome, Error> {
    let request = args::Spawn::decode(arguments);
    let name = read_user(thread, request.name_address, request.name_length, NAME_MAX)?;
    let name = core::str::from_utf8(&name).map_err(|_| Error::InvalidArgument)?;
    if request.grant_count > GRANTS_MAX {
        return Err(Error::TooLarge);
    }
    let raw = read_user(
        thread,
        request.grants_address,
        request.grant_count * 4,
        GRANTS_MAX * 4,
    )?;
    let grants = raw
        .chunks_exact(4)
        .map(|chunk| {
            capability(
                thread,
                u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The child starts only once its handle is granted: a spawn whose
    // handle cannot be granted (no slot, or the parent exited meanwhile:
    // `ProcessExited`) is undone before the child ever runs.
    let child = process::spawn(name, grants, &thread.process)?;
    let handle = thread
        .process
        .grant(KernelObject::ProcessHandle(child.process.clone()))?;
    child.start();
    userspace::note_spawn();
    Ok(Outcome::Done(Answer::ok(i64::from(handle.0))))
}
