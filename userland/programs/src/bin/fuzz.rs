//! `fuzz`: a seeded random submission fuzzer. The kernel must answer every
//! submission with exactly one completion and keep running, while
//! `fuzz-echo-server`/`fuzz-echo-client` exchange valid calls beside it.
//!
//! Slots: 0 console, 1 timer, 2 boot-manifest, 3 process-spawner,
//! 4 diagnostics, 5 `echo` endpoint (call), 6 `fuzzbox` endpoint-server,
//! 7 `fuzzbox` endpoint (call). Options: `seed` (default 1), `ops` (random
//! submissions, default 5000).
//!
//! Each submission is random: opcode (valid or not), flags, capability
//! (live, stale, `NONE`, random), pointers (null, kernel half,
//! non-canonical, unmapped, misaligned, read-only data, the
//! scratch [`Arena`]), lengths (0, small, huge, page-crossing) and other
//! arguments; batches of 1-16 go in per `cap_enter`, whose arguments are
//! random too; now and then `sq_tail` is corrupted (`ring-overrun`
//! expected). Valid traffic is mixed in: calls on `fuzzbox` are received
//! and answered by the fuzzer itself, transferred capabilities and finished
//! children are dropped. At the end all outstanding requests are drained
//! (fuzzbox calls and receives paired up), children waited for, and the
//! echo server stopped.
//!
//! What the fuzzer must not do to itself, by design (everything else is
//! allowed): drop the capabilities it needs to finish (console, timer,
//! manifest, spawner, echo, fuzzbox server); let the kernel write anywhere
//! but the arena (every writable pointer it passes is in the arena, at least
//! [`MESSAGE_MAX`] bytes before its end, or not writable at all); sleep more
//! than [`SLEEP_MAX_NS`]; spawn anything but [`SPAWNABLE`] (not init or
//! itself); keep more requests in flight than leave room for the valid
//! traffic that completes them.
//!
//! Lines: `[fuzz] start seed=<s> ops=<n>`, progress every n/10,
//! `[fuzz] traffic submitted=<k> answered=<k>`, `[fuzz] results <name>=<n>
//! ...` (random requests by outcome), then
//! `[fuzz] seed=<s> ops=<n> answered=<n> ok`, or `[fuzz] FAILED ...`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use capos_abi::layout;
use capos_abi::limits::{CONSOLE_WRITE_MAX, MESSAGE_MAX, PENDING_PER_THREAD};
use capos_runtime::random::XorShift;
use capos_runtime::{
    options, println, CapabilityHandle, Completion, Context, Error, Opcode, Submission,
};

capos_runtime::entry!(main);

const CONSOLE: CapabilityHandle = CapabilityHandle::new(0, 0);
const TIMER: CapabilityHandle = CapabilityHandle::new(1, 0);
const MANIFEST: CapabilityHandle = CapabilityHandle::new(2, 0);
const SPAWNER: CapabilityHandle = CapabilityHandle::new(3, 0);
const DIAGNOSTICS: CapabilityHandle = CapabilityHandle::new(4, 0);
const ECHO: CapabilityHandle = CapabilityHandle::new(5, 0);
const FUZZBOX_SERVER: CapabilityHandle = CapabilityHandle::new(6, 0);
const FUZZBOX_CALL: CapabilityHandle = CapabilityHandle::new(7, 0);
/// Never dropped: the fuzzer needs them to finish.
const PROTECTED: [CapabilityHandle; 6] = [CONSOLE, TIMER, MANIFEST, SPAWNER, ECHO, FUZZBOX_SERVER];

/// The echo server's stop message (as in `fuzz_peer.rs`).
const STOP: &[u8] = b"fuzz-peer:stop:9f2c1a7e";
/// Children the fuzzer may spawn, and names that must be refused.
const SPAWNABLE: [&str; 2] = ["empty", "fuzz-napper"];
const BAD_NAMES: [&[u8]; 5] = [
    b"",
    b"no-such-process",
    b"\xff\xfe",
    b"a-name-longer-than-the-sixty-four-bytes-a-spawn-name-may-have-at-most",
    b"empty\0",
];
/// Longest sleep the fuzzer asks for (every request must complete).
const SLEEP_MAX_NS: u64 = 2_000_000;
/// Highest opcode the ABI defines (ParkSpace `Unpark`).
const OPCODE_MAX: u16 = 15;
/// In flight at most: leaves room for replies, drops and waits, which are
/// refused like everything else once `PENDING_PER_THREAD` are in flight.
const IN_FLIGHT_MAX: usize = PENDING_PER_THREAD - 6;
const FUZZBOX_CALLS_MAX: usize = 8;
const FUZZBOX_RECEIVES_MAX: usize = 4;
const CHILDREN_MAX: usize = 12;
/// How long the final drain may take.
const DRAIN_NS: u64 = 20_000_000_000;
/// `user_data` bit of the fuzzer's own valid traffic.
const TRAFFIC: u64 = 1 << 62;

const ARENA_SIZE: usize = 4 * 4096;

/// Scratch memory: the only memory the kernel may write on the fuzzer's
/// behalf. Nothing in the fuzzer reads it except to pass it on.
#[repr(C, align(4096))]
struct Arena([u8; ARENA_SIZE]);
static mut ARENA: Arena = Arena([0; ARENA_SIZE]);

fn arena_base() -> u64 {
    core::ptr::addr_of_mut!(ARENA) as u64
}

/// Read-only data for pointers the kernel must refuse to write. Pointers
/// into it start in its first half and no request reads more than
/// `CONSOLE_WRITE_MAX` bytes, so reads never run into other read-only data
/// (whose strings, such as the panic handler's, would then be printed).
#[repr(C, align(4096))]
struct ReadOnly([u8; 2 * CONSOLE_WRITE_MAX as usize]);
static READ_ONLY: ReadOnly = ReadOnly([0x5a; 2 * CONSOLE_WRITE_MAX as usize]);

fn read_only() -> u64 {
    READ_ONLY.0.as_ptr() as u64
}

/// What an in-flight request is, for pairing and for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    FuzzboxCall,
    FuzzboxReceive,
    Spawn,
    Wait(CapabilityHandle),
    Other(u16),
}

/// Requests submitted and not yet completed, and the tallies.
struct Tracker {
    outstanding: BTreeMap<u64, Class>,
    random_answered: u64,
    traffic_submitted: u64,
    traffic_answered: u64,
    /// Valid traffic to submit next: replies, drops, waits.
    queue: Vec<(Submission, Class)>,
    children: Vec<CapabilityHandle>,
    waiting: Vec<CapabilityHandle>,
    dropped: Vec<CapabilityHandle>,
    /// Handles other requests gave us (transfers): the random requests
    /// never use them, so a copy of a fuzzbox or timer capability cannot
    /// make a request block where the bookkeeping does not expect it.
    received: alloc::collections::BTreeSet<u32>,
    next_traffic: u64,
    /// Completions of random requests by result: 0 for success, else the
    /// error code.
    results: BTreeMap<i64, u64>,
}

impl Tracker {
    fn count(&self, class: Class) -> usize {
        self.outstanding.values().filter(|c| **c == class).count()
    }

    fn traffic(
        &mut self,
        opcode: Opcode,
        capability: CapabilityHandle,
        arguments: [u64; 6],
        class: Class,
    ) {
        self.next_traffic += 1;
        let submission = Submission {
            opcode: opcode as u16,
            flags: 0,
            capability: capability.0,
            user_data: TRAFFIC | self.next_traffic,
            arguments,
        };
        self.queue.push((submission, class));
    }

    /// A handle a completion gave us: remember it, then drop it.
    fn received(&mut self, handle: CapabilityHandle) {
        self.received.insert(handle.0);
        self.drop_later(handle);
    }

    fn drop_later(&mut self, handle: CapabilityHandle) {
        if !PROTECTED.contains(&handle) {
            self.traffic(
                Opcode::CapabilityDrop,
                handle,
                [0; 6],
                Class::Other(Opcode::CapabilityDrop as u16),
            );
            self.dropped.push(handle);
        }
    }

    /// Account for one completion and queue the traffic it calls for.
    fn complete(&mut self, completion: &Completion, random: &mut XorShift) -> Result<(), String> {
        let Some(class) = self.outstanding.remove(&completion.user_data) else {
            return Err(format!("completion for nothing in flight: {completion:?}"));
        };
        if completion.user_data & TRAFFIC != 0 {
            self.traffic_answered += 1;
        } else {
            self.random_answered += 1;
            *self.results.entry(completion.result.min(0)).or_default() += 1;
        }
        let ok = completion.result >= 0;
        match class {
            Class::FuzzboxReceive if ok => {
                let handle = CapabilityHandle(completion.extra);
                if handle != CapabilityHandle::NONE {
                    self.received(handle);
                }
                self.reply(completion.value, random);
            }
            Class::FuzzboxCall if ok => {
                let handle = CapabilityHandle(completion.value as u32);
                if completion.value != u64::from(CapabilityHandle::NONE.0)
                    && completion.value != u64::MAX
                {
                    self.received(handle);
                }
            }
            Class::Spawn if ok => self
                .children
                .push(CapabilityHandle(completion.result as u32)),
            Class::Wait(child) => {
                // Waited for (or the handle was already dropped by a random
                // request): either way it is done with.
                self.waiting.retain(|waited| *waited != child);
                self.children.retain(|known| *known != child);
                if ok {
                    self.drop_later(child);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Answer a fuzzbox call: a random text, sometimes with our console.
    fn reply(&mut self, token: u64, random: &mut XorShift) {
        let length = random.below(MESSAGE_MAX + 1);
        let transfer = if random.chance(1, 8) {
            CONSOLE.0
        } else {
            CapabilityHandle::NONE.0
        };
        let arguments = [token, read_only(), length, u64::from(transfer), 0, 0];
        self.traffic(
            Opcode::EndpointReply,
            FUZZBOX_SERVER,
            arguments,
            Class::Other(Opcode::EndpointReply as u16),
        );
    }
}

fn main(context: &mut Context) -> i32 {
    match run(context) {
        Ok(()) => 0,
        Err(problem) => {
            println!(context, "[fuzz] FAILED {problem}");
            1
        }
    }
}

fn run(context: &mut Context) -> Result<(), String> {
    let arguments = context
        .ring()
        .manifest_arguments(MANIFEST)
        .map_err(|error| format!("arguments {}", error.name()))?;
    let seed = options::find_u64(&arguments, "seed", 1).map_err(|text| format!("seed={text}"))?;
    let ops = options::find_u64(&arguments, "ops", 5000).map_err(|text| format!("ops={text}"))?;
    println!(context, "[fuzz] start seed={seed} ops={ops}");
    let mut random = XorShift::new(seed);
    // SAFETY: nothing else references the arena while it is filled; the
    // kernel writes it only for requests submitted later.
    let arena = unsafe { &mut *core::ptr::addr_of_mut!(ARENA) };
    for byte in arena.0.iter_mut() {
        *byte = random.next_u64() as u8;
    }
    let mut tracker = Tracker {
        outstanding: BTreeMap::new(),
        random_answered: 0,
        traffic_submitted: 0,
        traffic_answered: 0,
        queue: Vec::new(),
        children: Vec::new(),
        waiting: Vec::new(),
        dropped: Vec::new(),
        received: alloc::collections::BTreeSet::new(),
        next_traffic: 0,
        results: BTreeMap::new(),
    };
    let step = (ops / 10).max(1);
    let mut submitted = 0u64;
    while submitted < ops {
        submit_traffic(context, &mut tracker)?;
        let batch = (random.below(16) + 1).min(ops - submitted);
        for _ in 0..batch {
            if tracker.outstanding.len() >= IN_FLIGHT_MAX {
                break;
            }
            let (submission, class) = random_submission(&mut random, &tracker, submitted + 1);
            // SAFETY: every range this submission names is either memory
            // the kernel must refuse, read-only data, or the arena, which
            // nothing but the kernel writes (see `random_pointer`).
            if unsafe { context.ring().submit(submission) }.is_err() {
                break;
            }
            tracker.outstanding.insert(submission.user_data, class);
            submitted += 1;
            if submitted.is_multiple_of(step) {
                println!(context, "[fuzz] progress={submitted}/{ops}");
            }
        }
        if random.chance(1, 2000) {
            ring_overrun(context)?;
        }
        let min_complete = random.below(4) as u32;
        let timeout = *random.pick(&[0, 50_000, 1_000_000]);
        match context.ring().enter(min_complete, timeout) {
            Ok(_) | Err(Error::TimedOut) => {}
            Err(error) => return Err(format!("cap_enter {}", error.name())),
        }
        collect(context, &mut tracker, &mut random)?;
        reap_children(&mut tracker);
    }
    drain(context, &mut tracker, &mut random)?;
    println!(
        context,
        "[fuzz] traffic submitted={} answered={}",
        tracker.traffic_submitted,
        tracker.traffic_answered
    );
    let results: Vec<String> = tracker
        .results
        .iter()
        .map(|(result, count)| match Error::from_result(*result) {
            Some(error) => format!("{}={count}", error.name()),
            None => format!("ok={count}"),
        })
        .collect();
    for chunk in results.chunks(5) {
        println!(context, "[fuzz] results {}", chunk.join(" "));
    }
    let mut reply = [0u8; 8];
    context
        .ring()
        .endpoint_call(ECHO, STOP, None, &mut reply)
        .map_err(|error| format!("stop echo {}", error.name()))?;
    if tracker.random_answered != ops || tracker.traffic_answered != tracker.traffic_submitted {
        return Err(format!(
            "answered={} of ops={ops}, traffic {} of {}",
            tracker.random_answered, tracker.traffic_answered, tracker.traffic_submitted
        ));
    }
    println!(
        context,
        "[fuzz] seed={seed} ops={ops} answered={} ok", tracker.random_answered
    );
    Ok(())
}

/// Submit the queued valid traffic.
fn submit_traffic(context: &mut Context, tracker: &mut Tracker) -> Result<(), String> {
    while let Some((submission, class)) = tracker.queue.first().copied() {
        if tracker.outstanding.len() >= PENDING_PER_THREAD - 2 {
            break;
        }
        // SAFETY: traffic names only read-only data or the arena.
        if unsafe { context.ring().submit(submission) }.is_err() {
            break;
        }
        tracker.queue.remove(0);
        tracker.outstanding.insert(submission.user_data, class);
        tracker.traffic_submitted += 1;
    }
    Ok(())
}

/// Take every completion on the ring.
fn collect(
    context: &mut Context,
    tracker: &mut Tracker,
    random: &mut XorShift,
) -> Result<(), String> {
    while let Some(completion) = context.ring().next_completion() {
        tracker.complete(&completion, random)?;
    }
    Ok(())
}

/// Wait for children beyond [`CHILDREN_MAX`] (they exit at once).
fn reap_children(tracker: &mut Tracker) {
    let over = tracker.children.len().saturating_sub(CHILDREN_MAX / 2);
    let candidates: Vec<CapabilityHandle> = tracker
        .children
        .iter()
        .copied()
        .filter(|child| !tracker.waiting.contains(child))
        .take(over)
        .collect();
    for child in candidates {
        tracker.waiting.push(child);
        tracker.traffic(Opcode::ProcessWait, child, [0; 6], Class::Wait(child));
    }
}

/// Corrupt `sq_tail`: `cap_enter` must refuse with `RingOverrun` and
/// consume nothing; then restore it.
fn ring_overrun(context: &mut Context) -> Result<(), String> {
    let ring = context.ring();
    let (head, tail) = ring.submission_indices();
    // SAFETY: the kernel must reject a tail this far ahead before reading
    // any slot; the real tail is restored right after.
    unsafe { ring.set_submission_tail(head.wrapping_add(1000)) };
    let entered = ring.enter(0, 0);
    // SAFETY: restores the consistent value.
    unsafe { ring.set_submission_tail(tail) };
    match entered {
        Err(Error::RingOverrun) => Ok(()),
        other => Err(format!("corrupted sq_tail gave {other:?}")),
    }
}

/// Complete everything in flight: pair fuzzbox calls and receives with
/// valid ones, wait for children, collect until nothing is left.
fn drain(
    context: &mut Context,
    tracker: &mut Tracker,
    random: &mut XorShift,
) -> Result<(), String> {
    let start = context
        .ring()
        .timer_now(TIMER)
        .map_err(|error| format!("timer {}", error.name()))?;
    let mut last_pairing = 0;
    loop {
        collect(context, tracker, random)?;
        let children: Vec<CapabilityHandle> = tracker
            .children
            .iter()
            .copied()
            .filter(|child| !tracker.waiting.contains(child))
            .collect();
        for child in children {
            tracker.waiting.push(child);
            tracker.traffic(Opcode::ProcessWait, child, [0; 6], Class::Wait(child));
        }
        if tracker.outstanding.is_empty() && tracker.queue.is_empty() {
            return Ok(());
        }
        let now = context
            .ring()
            .timer_now(TIMER)
            .map_err(|error| format!("timer {}", error.name()))?;
        if now.saturating_sub(start) > DRAIN_NS {
            let left: Vec<&Class> = tracker.outstanding.values().collect();
            return Err(format!("{} requests never completed: {left:?}", left.len()));
        }
        // Pair up fuzzbox calls and receives (every 5 ms at most, so a
        // pairing in progress is not doubled).
        if tracker.queue.is_empty() && now.saturating_sub(last_pairing) > 5_000_000 {
            last_pairing = now;
            let calls = tracker.count(Class::FuzzboxCall);
            let receives = tracker.count(Class::FuzzboxReceive);
            let arena = arena_base();
            for index in 0..calls.saturating_sub(receives) {
                let buffer = arena + (index as u64 % 8) * 512;
                tracker.traffic(
                    Opcode::EndpointReceive,
                    FUZZBOX_SERVER,
                    [buffer, MESSAGE_MAX, 0, 0, 0, 0],
                    Class::FuzzboxReceive,
                );
            }
            for index in 0..receives.saturating_sub(calls) {
                let reply = arena + 4096 + (index as u64 % 8) * 512;
                let arguments = [
                    read_only(),
                    5,
                    u64::from(CapabilityHandle::NONE.0),
                    reply,
                    MESSAGE_MAX,
                    0,
                ];
                tracker.traffic(
                    Opcode::EndpointCall,
                    FUZZBOX_SERVER,
                    arguments,
                    Class::FuzzboxCall,
                );
            }
        }
        submit_traffic(context, tracker)?;
        match context.ring().enter(1, 5_000_000) {
            Ok(_) | Err(Error::TimedOut) => {}
            Err(error) => return Err(format!("cap_enter {}", error.name())),
        }
    }
}

/// One random submission with `user_data`, and what it is.
fn random_submission(
    random: &mut XorShift,
    tracker: &Tracker,
    user_data: u64,
) -> (Submission, Class) {
    let opcode = if random.chance(1, 20) {
        random.next_u64() as u16
    } else {
        random.below(u64::from(OPCODE_MAX) + 1) as u16
    };
    let flags = if random.chance(1, 30) {
        random.next_u64() as u16
    } else {
        0
    };
    let mut capability = random_capability(random, tracker, opcode);
    if tracker.received.contains(&capability.0) {
        capability = CapabilityHandle::NONE;
    }
    let mut arguments = [0u64; 6];
    for argument in arguments.iter_mut() {
        *argument = random_value(random);
    }
    // Shape the arguments like the opcode's, most of the time.
    match Opcode::from_number(opcode) {
        Some(Opcode::ConsoleWrite) => {
            arguments[0] = random_pointer(random);
            arguments[1] = if capability == CONSOLE && random.chance(49, 50) {
                random.below(48)
            } else {
                random_length(random, arguments[0])
            };
        }
        Some(Opcode::Spawn) => {
            let (name, length) = random_name(random);
            arguments[0] = name;
            arguments[1] = length;
            arguments[2] = random_pointer(random);
            arguments[3] = if random.chance(3, 4) {
                random.below(17)
            } else {
                random_value(random)
            };
        }
        Some(Opcode::EndpointCall) => {
            arguments[0] = random_pointer(random);
            arguments[1] = random_length(random, arguments[0]);
            arguments[2] = if random.chance(3, 4) {
                u64::from(CapabilityHandle::NONE.0)
            } else {
                u64::from(random_capability(random, tracker, opcode).0)
            };
            arguments[3] = random_pointer(random);
            arguments[4] = random_length(random, arguments[3]);
        }
        Some(Opcode::EndpointReceive)
        | Some(Opcode::ManifestRead)
        | Some(Opcode::DiagnosticsRead) => {
            arguments[0] = random_pointer(random);
            arguments[1] = random_length(random, arguments[0]);
            arguments[2] = random.below(64);
        }
        Some(Opcode::EndpointReply) => {
            arguments[0] = random.below(64);
            arguments[1] = random_pointer(random);
            arguments[2] = random_length(random, arguments[1]);
            arguments[3] = if random.chance(3, 4) {
                u64::from(CapabilityHandle::NONE.0)
            } else {
                u64::from(random_capability(random, tracker, opcode).0)
            };
        }
        Some(Opcode::TimerSleep) => arguments[0] = random.below(SLEEP_MAX_NS),
        Some(Opcode::ThreadSpawn) | Some(Opcode::Park) | Some(Opcode::Unpark) => {
            arguments[0] = random_pointer(random);
        }
        _ => {}
    }
    let mut submission = Submission {
        opcode,
        flags,
        capability: capability.0,
        user_data,
        arguments,
    };
    // The rules that keep the fuzzer alive (see the file comment).
    let known = Opcode::from_number(opcode);
    if known == Some(Opcode::TimerSleep) {
        submission.arguments[0] %= SLEEP_MAX_NS;
    }
    if known == Some(Opcode::CapabilityDrop) && PROTECTED.contains(&capability) {
        submission.opcode = Opcode::Nop as u16;
    }
    if known == Some(Opcode::Spawn) && tracker.children.len() >= CHILDREN_MAX {
        submission.opcode = Opcode::Nop as u16;
    }
    if known == Some(Opcode::ProcessWait) && !tracker.children.contains(&capability) {
        // Waits on children only (they end); others would be refused anyway.
        submission.capability = CapabilityHandle::NONE.0;
    }
    let fuzzbox = capability == FUZZBOX_SERVER || capability == FUZZBOX_CALL;
    let class = match Opcode::from_number(submission.opcode) {
        Some(Opcode::EndpointCall) if fuzzbox && submission.flags == 0 => Class::FuzzboxCall,
        Some(Opcode::EndpointReceive) if capability == FUZZBOX_SERVER && submission.flags == 0 => {
            Class::FuzzboxReceive
        }
        Some(Opcode::Spawn) => Class::Spawn,
        _ => Class::Other(submission.opcode),
    };
    let too_many = match class {
        Class::FuzzboxCall => tracker.count(class) >= FUZZBOX_CALLS_MAX,
        Class::FuzzboxReceive => tracker.count(class) >= FUZZBOX_RECEIVES_MAX,
        _ => false,
    };
    if too_many {
        submission.opcode = Opcode::Nop as u16;
        return (submission, Class::Other(Opcode::Nop as u16));
    }
    (submission, class)
}

/// A capability handle: live, stale, none, or random.
fn random_capability(random: &mut XorShift, tracker: &Tracker, opcode: u16) -> CapabilityHandle {
    const MANIFEST_HANDLES: [CapabilityHandle; 8] = [
        CONSOLE,
        TIMER,
        MANIFEST,
        SPAWNER,
        DIAGNOSTICS,
        ECHO,
        FUZZBOX_SERVER,
        FUZZBOX_CALL,
    ];
    match random.below(10) {
        0..=5 => {
            // Usually the object the opcode wants, so deeper checks run.
            let wanted = match Opcode::from_number(opcode) {
                Some(Opcode::ConsoleWrite) => Some(CONSOLE),
                Some(Opcode::TimerNow | Opcode::TimerSleep) => Some(TIMER),
                Some(Opcode::ManifestRead) => Some(MANIFEST),
                Some(Opcode::Spawn) => Some(SPAWNER),
                Some(Opcode::DiagnosticsRead) => Some(DIAGNOSTICS),
                Some(Opcode::EndpointCall) => {
                    Some(*random.pick(&[ECHO, FUZZBOX_CALL, FUZZBOX_SERVER]))
                }
                Some(Opcode::EndpointReceive | Opcode::EndpointReply) => {
                    Some(*random.pick(&[FUZZBOX_SERVER, FUZZBOX_CALL, ECHO]))
                }
                Some(Opcode::ProcessWait) if !tracker.children.is_empty() => {
                    Some(*random.pick(&tracker.children))
                }
                _ => None,
            };
            wanted.unwrap_or_else(|| *random.pick(&MANIFEST_HANDLES))
        }
        6 => *random.pick(&MANIFEST_HANDLES),
        7 if !tracker.dropped.is_empty() => *random.pick(&tracker.dropped),
        7 => CapabilityHandle::NONE,
        8 => CapabilityHandle::new(random.below(70) as u16, random.below(3) as u16),
        _ => CapabilityHandle(random.next_u64() as u32),
    }
}

/// A spawn name (pointer, length): a spawnable program, a name that must be
/// refused, or a bad range. Never arbitrary memory, which could spell
/// `init` or `fuzz`.
fn random_name(random: &mut XorShift) -> (u64, u64) {
    match random.below(4) {
        0 | 1 => {
            let name = random.pick(&SPAWNABLE);
            (name.as_ptr() as u64, name.len() as u64)
        }
        2 => {
            let name = random.pick(&BAD_NAMES);
            (name.as_ptr() as u64, name.len() as u64)
        }
        _ => (
            *random.pick(&[0, 0x10, 0xffff_8000_0000_0000, 0x5000_0000, u64::MAX]),
            random.below(80),
        ),
    }
}

/// A pointer the kernel must either refuse or may write only inside the
/// arena (at least [`MESSAGE_MAX`] bytes before its end: the most any
/// request writes is a message, a manifest string or the counters).
fn random_pointer(random: &mut XorShift) -> u64 {
    let arena = arena_base();
    let room = ARENA_SIZE as u64 - MESSAGE_MAX - 64;
    match random.below(12) {
        0 => 0,
        1 => random.below(0x1000),
        2 => 0xffff_8000_0000_0000 + random.below(1 << 40),
        3 => 0x0000_8000_0000_0000 + random.below(1 << 40),
        4 => 0x5000_0000 + random.below(1 << 20),
        5 => layout::USER_END - 1 - random.below(64),
        6 => read_only() + random.below(CONSOLE_WRITE_MAX),
        7 => read_only() + 4096 - random.below(8),
        8 => (arena + random.below(room)) | 1,
        9 => arena + 4096 - random.below(64),
        _ => arena + random.below(room),
    }
}

/// A length: 0, small, at a page boundary from `pointer`, at or past a
/// limit, or huge.
fn random_length(random: &mut XorShift, pointer: u64) -> u64 {
    match random.below(10) {
        0 => 0,
        1..=3 => random.below(64),
        4 => random.below(MESSAGE_MAX + 2),
        5 => 4096 - (pointer % 4096) + random.below(16),
        6 => CONSOLE_WRITE_MAX + random.below(2),
        7 => u64::MAX - random.below(4),
        8 => random.next_u64(),
        _ => MESSAGE_MAX,
    }
}

/// An unconstrained argument.
fn random_value(random: &mut XorShift) -> u64 {
    match random.below(6) {
        0 => 0,
        1 => u64::MAX,
        2 => random.below(256),
        3 => u64::from(CapabilityHandle::NONE.0),
        _ => random.next_u64(),
    }
}
