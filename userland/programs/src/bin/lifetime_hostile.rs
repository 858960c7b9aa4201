//! `lifetime-hostile`: a thread's or a process's end must take back every
//! registration it made, and an exited process must accept no grant
//! (issue 19, findings 1-4, and the lifetime cases of its attack surface).
//!
//! One binary, several manifest processes told apart by their argument
//! (`docs/security.md` lists what each case asserts):
//!
//! - main (slots: 0 console, 1 process-spawner, 2 diagnostics, 3 timer,
//!   4 thread-spawner, 5 park-space, 6 `life` endpoint-server,
//!   7 boot-manifest), one case after another:
//!   1. *spawn-exit-race*: `rounds` times (option, default
//!      [`DEFAULT_ROUNDS`]) spawn a `life-racer`, whose threads spawn
//!      threads, spawn children and queue receives while one of them calls
//!      `exit`; every racer must end with status 0, and after the loop every
//!      kernel counter is back at its value after the warm-up and exactly
//!      `LIVE_CHILDREN_PER_PROCESS` children can be spawned again (finding
//!      1: a ThreadSpawn racing `exit` granted its handle into the emptied
//!      table and the process never came back; finding 4: a receive queued
//!      after the kill stayed on its endpoint);
//!   2. *dead-receive*: a thread queues a receive and ends; a call must
//!      then reach the next receiver, not the dead thread's buffer
//!      (finding 2);
//!   3. *dead-receiver*: a thread receives a call and ends without a
//!      reply: the caller gets `peer-gone`, and the token replayed by
//!      another thread is `not-found` (finding 2, and "a reply token
//!      replayed after the receiving thread exited");
//!   4. *join-pinned*: [`JOIN_ROUNDS`] threads each leave a `ThreadJoin`
//!      on a sleeping sibling in flight and end; every spawn must succeed,
//!      so their slots came back (finding 3);
//!   5. *server-exit*: a server process receives a call and exits in the
//!      middle of it: the caller gets `peer-gone`;
//!   6. the counters once more, after every case.
//!
//!   With the option `suite=ring` it runs the ring, console and CPU-state
//!   cases of the attack surface instead ([`run_ring`]): *ring-corrupt*
//!   (a sibling scribbles on a thread's SQ/CQ indices while it submits
//!   and enters), *cq-overflow* (more completions owed than the CQ holds),
//!   *cq-rejected* (completions rejected by a corrupted CQ give their
//!   pending-quota slots back),
//!   *console-flood* (`life-flooder` floods the console while this
//!   process's probe lines must each get out within a bound),
//!   *mxcsr-blocking* (every SSE exception unmasked across sleeps, timed
//!   waits and ticks) and *syscall-trap-flag* (`life-trap` makes a system
//!   call with TF set), then the counters.
//! - `racer` (0 console, 1 thread-spawner, 2 process-spawner, 3 `void`
//!   endpoint-server, 4 boot-manifest): see [`racer`].
//! - `server` (0 console, 1 `life` endpoint-server, 2 boot-manifest).
//! - `flooder`, `trap` (0 console, 1 boot-manifest): see [`flooder`],
//!   [`trap`].
//!
//! The ring cases live in this program (not one of their own) because
//! the boot-module count is at its ceiling (docs/security.md).
//!
//! Lines: `[lifetime-hostile] case=<name> <detail> ok` per case (or
//! `... FAILED <problem>`), then `[lifetime-hostile] done passed=<n>
//! failed=<k>`; exits 0 iff k = 0.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use capos_abi::arguments;
use capos_abi::limits::LIVE_CHILDREN_PER_PROCESS;
use capos_abi::KernelCounters;
use capos_runtime::cases::{failure, Tally};
use capos_runtime::diagnostics::{describe, Allowance};
use capos_runtime::thread;
use capos_runtime::{
    options, println, CapabilityHandle, Completion, Context, Error, Opcode, Ring, Submission,
};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

capos_runtime::entry!(main);

const TAG: &str = "lifetime-hostile";

const SPAWNER_SLOT: u16 = 1;
const DIAGNOSTICS_SLOT: u16 = 2;
const TIMER_SLOT: u16 = 3;
const THREAD_SPAWNER_SLOT: u16 = 4;
const PARK_SLOT: u16 = 5;
const LIFE_SLOT: u16 = 6;
/// Slots of the main process (the others have fewer).
const MAIN_SLOTS: u16 = 8;

const RACER_THREAD_SPAWNER_SLOT: u16 = 1;
const RACER_SPAWNER_SLOT: u16 = 2;
const RACER_VOID_SLOT: u16 = 3;
const SERVER_LIFE_SLOT: u16 = 1;

/// Spawn-vs-exit rounds when the `rounds` option is absent.
const DEFAULT_ROUNDS: u64 = 1000;
/// Racer rounds run before the counters' baseline is read.
const WARM_UP: u64 = 8;
/// Threads that leave a join in flight and end (more than a process's
/// thread slots, so pinned slots run out).
const JOIN_ROUNDS: u64 = 100;
/// Receives a racer's batch thread queues in one `cap_enter`.
const BATCH: usize = 32;
/// How long an answer that must come may take.
const ANSWER_NS: u64 = 2_000_000_000;
/// How long teardown may take to show in the counters.
const SETTLE_NS: u64 = 3_000_000_000;
/// Extra cached kernel stacks tolerated after the race loop: no more than
/// the kernel's bound on its stack cache (it kept every ended thread's
/// stack before the bound: 27 -> 69 over 1,000 rounds at -smp 2). Live
/// threads, processes and waiters are checked exactly.
const STACK_CACHE_SLACK: u64 = capos_abi::limits::KERNEL_STACKS_CACHED as u64;

fn main(context: &mut Context) -> i32 {
    let manifest = CapabilityHandle::new(context.slot_count().saturating_sub(1), 0);
    let arguments = context
        .ring()
        .manifest_arguments(manifest)
        .unwrap_or_default();
    match options::role(&arguments, &["racer", "server", "flooder", "trap"]) {
        Some("racer") => racer(context),
        Some("server") => server(context),
        Some("flooder") => flooder(context, &arguments),
        Some("trap") => trap(),
        _ if context.slot_count() == MAIN_SLOTS => match options::find(&arguments, "suite") {
            Some("ring") => run_ring(context),
            None | Some("lifetime") => run(context, &arguments),
            Some(other) => {
                println!(context, "[{TAG}] FAILED unknown suite={other}");
                1
            }
        },
        _ => {
            println!(context, "[{TAG}] FAILED unknown role in {arguments:?}");
            1
        }
    }
}

fn run(context: &mut Context, arguments: &str) -> i32 {
    let mut tally = Tally::default();
    let rounds = match options::find_u64(arguments, "rounds", DEFAULT_ROUNDS) {
        Ok(rounds) => rounds,
        Err(text) => {
            println!(context, "[{TAG}] FAILED rounds={text} is not a number");
            return 1;
        }
    };
    let initial = initial_counters(context);
    let race = spawn_exit_race(context, rounds);
    tally.report(context, TAG, "case=spawn-exit-race", race);
    let cases: [(&str, Case); 5] = [
        ("dead-receive", dead_receive),
        ("dead-receiver", dead_receiver),
        ("join-pinned", join_pinned),
        ("server-exit", server_exit),
        ("stack-cache-bound", stack_cache_bound),
    ];
    for (name, case) in cases {
        let outcome = case(context);
        tally.report(context, TAG, &format!("case={name}"), outcome);
    }
    let restored = match initial {
        Ok(initial) => all_restored(context, &initial),
        Err(problem) => Err(problem),
    };
    tally.report(context, TAG, "case=all-counters", restored);
    println!(
        context,
        "[{TAG}] done passed={} failed={}", tally.passed, tally.failed
    );
    tally.exit_code()
}

/// One case of the main process: the detail of a pass, or the problem.
type Case = fn(&mut Context) -> Result<String, String>;

fn diagnostics_error(error: Error) -> String {
    failure("diagnostics", error)
}

/// The counters before the first case, once init's wait for this process
/// is registered (an exit waiter that stays throughout; at the very start
/// init may not have made it yet).
fn initial_counters(context: &mut Context) -> Result<KernelCounters, String> {
    let diagnostics = context.capability(DIAGNOSTICS_SLOT);
    let timer = context.capability(TIMER_SLOT);
    context
        .ring()
        .poll_counters(diagnostics, timer, SETTLE_NS, |now| now.exit_waiters >= 1)
        .map_err(diagnostics_error)
}

fn counters(context: &mut Context) -> Result<KernelCounters, String> {
    let diagnostics = context.capability(DIAGNOSTICS_SLOT);
    context
        .ring()
        .diagnostics_read(diagnostics)
        .map_err(diagnostics_error)
}

/// After the race and join-pinned's 100 threads have ended, the kernel
/// keeps at most `KERNEL_STACKS_CACHED` of their stacks mapped: memory a
/// process's threads used comes back when they end, however many there were.
fn stack_cache_bound(context: &mut Context) -> Result<String, String> {
    let now = counters(context)?;
    let bound = capos_abi::limits::KERNEL_STACKS_CACHED as u64;
    if now.cached_stacks > bound {
        return Err(format!(
            "the kernel keeps {} stacks of ended threads (bound {bound})",
            now.cached_stacks
        ));
    }
    Ok(format!("cached_stacks={} bound={bound}", now.cached_stacks))
}

/// After every case, the live counts (threads, processes, every kind of
/// waiter) are back at their values before the first.
fn all_restored(context: &mut Context, initial: &KernelCounters) -> Result<String, String> {
    let diagnostics = context.capability(DIAGNOSTICS_SLOT);
    let timer = context.capability(TIMER_SLOT);
    let live = |now: &KernelCounters| {
        (
            now.live_threads,
            now.live_processes,
            now.timer_waiters,
            now.endpoint_waiters,
            now.exit_waiters,
            now.parked_threads,
        )
    };
    let now = context
        .ring()
        .poll_counters(diagnostics, timer, SETTLE_NS, |now| {
            live(now) == live(initial)
        })
        .map_err(diagnostics_error)?;
    if live(&now) != live(initial) {
        return Err(format!(
            "not restored: {}",
            describe(initial, &now).join(" ")
        ));
    }
    Ok(format!(
        "live_threads={} live_processes={} endpoint_waiters={}",
        now.live_threads, now.live_processes, now.endpoint_waiters
    ))
}

/// Case 1: `rounds` racers, then every counter back and the child quota
/// whole.
fn spawn_exit_race(context: &mut Context, rounds: u64) -> Result<String, String> {
    let diagnostics = context.capability(DIAGNOSTICS_SLOT);
    let timer = context.capability(TIMER_SLOT);
    let initial = counters(context)?;
    for round in 0..WARM_UP {
        run_racer(context, round)?;
    }
    let torn_down = |now: &KernelCounters| {
        now.live_processes == initial.live_processes && now.live_threads == initial.live_threads
    };
    let before = context
        .ring()
        .baseline_counters(diagnostics, timer, SETTLE_NS, torn_down)
        .map_err(diagnostics_error)?;
    let step = (rounds / 10).max(1);
    for round in 0..rounds {
        run_racer(context, round)?;
        if (round + 1).is_multiple_of(step) {
            println!(context, "[{TAG}] race progress={}/{rounds}", round + 1);
        }
    }
    let allowance = Allowance {
        cached_stacks: STACK_CACHE_SLACK,
    };
    let (after, missing) = context
        .ring()
        .settle_counters(diagnostics, timer, &before, allowance, SETTLE_NS)
        .map_err(diagnostics_error)?;
    for line in describe(&before, &after) {
        println!(context, "[{TAG}] race counters {line}");
    }
    if let Some((name, was, now)) = missing.first() {
        return Err(format!("counter {name} before={was} after={now}"));
    }
    let children = children_quota(context)?;
    Ok(format!(
        "rounds={rounds} children={children} counters-restored"
    ))
}

/// Spawn one racer and require exit status 0.
fn run_racer(context: &mut Context, round: u64) -> Result<(), String> {
    let spawner = context.capability(SPAWNER_SLOT);
    let racer = context
        .ring()
        .spawn(spawner, "life-racer", &[])
        .map_err(|error| format!("round={round} {}", failure("spawn life-racer", error)))?;
    context
        .ring()
        .reap(racer)
        .map_err(|problem| format!("round={round} life-racer {problem}"))
}

/// Spawn `empty` until refused: the child quota must be whole
/// (`LIVE_CHILDREN_PER_PROCESS`, then `quota-exhausted`), so no racer is
/// still counted against this process.
fn children_quota(context: &mut Context) -> Result<usize, String> {
    let spawner = context.capability(SPAWNER_SLOT);
    let mut children = Vec::new();
    let refusal = loop {
        match context.ring().spawn(spawner, "empty", &[]) {
            Ok(child) => children.push(child),
            Err(error) => break error,
        }
        if children.len() > LIVE_CHILDREN_PER_PROCESS {
            break Error::InvalidOpcode;
        }
    };
    let count = children.len();
    for child in children {
        context
            .ring()
            .reap(child)
            .map_err(|problem| format!("empty {problem}"))?;
    }
    if count != LIVE_CHILDREN_PER_PROCESS || refusal != Error::QuotaExhausted {
        return Err(format!("children={count} then error={}", refusal.name()));
    }
    Ok(count)
}

/// A racer process: one thread calls `exit` after a pseudo-random spin
/// while the first thread spawns (and detaches) threads, a second spawns
/// `empty` children and a third queues [`BATCH`] receives on `void`
/// (which nobody calls) in one `cap_enter`. Whatever the kernel was doing
/// for them when the exit came, the process must end and come back whole.
fn racer(context: &mut Context) -> i32 {
    let spawner = context.capability(RACER_THREAD_SPAWNER_SLOT);
    let spin = timestamp() % 60_000;
    let batcher = |context: &mut Context, _: u64| -> i64 {
        let void = context.capability(RACER_VOID_SLOT);
        queue_receives(context, void, BATCH);
        sleep_forever(context)
    };
    let children = |context: &mut Context, _: u64| -> i64 {
        let spawner = context.capability(RACER_SPAWNER_SLOT);
        loop {
            if let Ok(child) = context.ring().spawn(spawner, "empty", &[]) {
                let _ = context.ring().reap(child);
            }
        }
    };
    // Handles are kept (not joined): the process's end takes them back.
    let _ = thread::spawn(context, spawner, batcher, 0);
    let _ = thread::spawn(context, spawner, children, 0);
    let _ = thread::spawn(
        context,
        spawner,
        move |_, _| {
            for _ in 0..spin {
                core::hint::spin_loop();
            }
            capos_runtime::exit(0)
        },
        0,
    );
    loop {
        if let Ok(handle) = thread::spawn(context, spawner, |_, _| 0, 0) {
            let _ = handle.detach(context);
        }
    }
}

/// Block this thread for good (it ends with its process).
fn sleep_forever(context: &mut Context) -> ! {
    loop {
        let _ = context.ring().enter(u32::MAX, capos_abi::NO_TIMEOUT);
    }
}

fn timestamp() -> u64 {
    // SAFETY: RDTSC reads the time-stamp counter; it has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// A receive buffer the kernel may write until the end of the process
/// (leaked on purpose: the receive may never complete).
fn leaked_buffer() -> &'static mut [u8; 64] {
    Box::leak(Box::new([0u8; 64]))
}

/// Submit `count` receives on `endpoint` and let the kernel take them in
/// one `cap_enter` without waiting; returns their `user_data`.
fn queue_receives(context: &mut Context, endpoint: CapabilityHandle, count: usize) -> Vec<u64> {
    let ring = context.ring();
    let mut user_data = Vec::new();
    for _ in 0..count {
        let buffer = leaked_buffer();
        let arguments = arguments::EndpointReceive {
            buffer_address: buffer.as_mut_ptr() as u64,
            buffer_capacity: buffer.len() as u64,
        };
        let data = ring.fresh_user_data();
        // SAFETY: the buffer is leaked, so it stays valid (and untouched
        // by this program) for as long as the kernel may write it.
        if unsafe {
            ring.submit(submission(
                Opcode::EndpointReceive,
                endpoint,
                data,
                arguments.encode(),
            ))
        }
        .is_err()
        {
            break;
        }
        user_data.push(data);
    }
    let _ = ring.enter(0, 0);
    user_data
}

fn submission(
    opcode: Opcode,
    capability: CapabilityHandle,
    user_data: u64,
    arguments: [u64; 6],
) -> Submission {
    Submission {
        opcode: opcode as u16,
        flags: 0,
        capability: capability.0,
        user_data,
        arguments,
    }
}

/// Submit a call on `endpoint` with `message` (leaked, with a leaked reply
/// buffer) without waiting; returns its `user_data`.
fn submit_call(
    context: &mut Context,
    endpoint: CapabilityHandle,
    message: &[u8],
) -> Result<u64, String> {
    let ring = context.ring();
    let message: &'static [u8] = Box::leak(Box::from(message));
    let reply = leaked_buffer();
    let arguments = arguments::EndpointCall {
        message_address: message.as_ptr() as u64,
        message_length: message.len() as u64,
        transfer: u64::from(CapabilityHandle::NONE.0),
        reply_address: reply.as_mut_ptr() as u64,
        reply_capacity: reply.len() as u64,
    };
    let data = ring.fresh_user_data();
    // SAFETY: both buffers are leaked: valid for as long as the kernel may
    // read or write them.
    unsafe {
        ring.submit(submission(
            Opcode::EndpointCall,
            endpoint,
            data,
            arguments.encode(),
        ))
    }
    .map_err(|_| String::from("ring full"))?;
    ring.enter(0, 0).map_err(|error| failure("enter", error))?;
    Ok(data)
}

/// Wait up to `timeout_ns` for the completions of `wanted` (in any order);
/// completions of other requests are dropped. None for each one that did
/// not come.
fn await_completions(
    context: &mut Context,
    wanted: &[u64],
    timeout_ns: u64,
) -> Result<Vec<Option<Completion>>, String> {
    let timer = context.capability(TIMER_SLOT);
    let ring = context.ring();
    let start = ring
        .timer_now(timer)
        .map_err(|error| failure("timer", error))?;
    let mut found: Vec<Option<Completion>> = wanted.iter().map(|_| None).collect();
    loop {
        while let Some(completion) = ring.next_completion() {
            if let Some(index) = wanted.iter().position(|&data| data == completion.user_data) {
                found[index] = Some(completion);
            }
        }
        if found.iter().all(Option::is_some) {
            return Ok(found);
        }
        let elapsed = ring
            .timer_now(timer)
            .map_err(|error| failure("timer", error))?
            .saturating_sub(start);
        if elapsed >= timeout_ns {
            return Ok(found);
        }
        match wait_some(ring, timeout_ns - elapsed) {
            Ok(()) | Err(Error::TimedOut) => {}
            Err(error) => return Err(failure("enter", error)),
        }
    }
}

/// `cap_enter(1, timeout)`.
fn wait_some(ring: &Ring, timeout_ns: u64) -> Result<(), Error> {
    ring.enter(1, timeout_ns).map(drop)
}

/// The result of a completion that must have come.
fn result_of(completion: Option<Completion>, what: &str) -> Result<Completion, String> {
    completion.ok_or_else(|| format!("{what} never completed"))
}

/// Case 2: a receive left behind by an ended thread must not take the
/// next call.
fn dead_receive(context: &mut Context) -> Result<String, String> {
    let life = context.capability(LIFE_SLOT);
    let spawner = context.capability(THREAD_SPAWNER_SLOT);
    let receiver = thread::spawn(
        context,
        spawner,
        |context, _| {
            let life = context.capability(LIFE_SLOT);
            queue_receives(context, life, 1);
            0
        },
        0,
    )
    .map_err(|error| failure("spawn", error))?;
    receiver
        .join(context)
        .map_err(|error| failure("join", error))?;
    let call = submit_call(context, life, b"for the living")?;
    let mut buffer = [0u8; 64];
    let receive = thread::spawn(
        context,
        spawner,
        |context, _| {
            let mut buffer = [0u8; 64];
            let life = context.capability(LIFE_SLOT);
            match context.ring().endpoint_receive(life, &mut buffer) {
                Ok(received) => {
                    let reply = context
                        .ring()
                        .endpoint_reply(life, received.token, b"ok", None);
                    if reply.is_ok() {
                        received.length as i64
                    } else {
                        -2
                    }
                }
                Err(error) => error.as_result(),
            }
        },
        0,
    )
    .map_err(|error| failure("spawn", error))?;
    let answers = await_completions(context, &[call], ANSWER_NS)?;
    let answered = answers[0];
    if answered.is_none() {
        // Unblock the second receiver so the case can end: answer it.
        let _ = context
            .ring()
            .endpoint_call(life, b"unblock", None, &mut buffer);
    }
    let received = receive
        .join(context)
        .map_err(|error| failure("join receiver", error))?;
    let completion = result_of(
        answered,
        "the call (swallowed by the dead thread's receive)",
    )?;
    if completion.result != 2 || received != b"for the living".len() as i64 {
        return Err(format!(
            "call result={} receiver got={received}",
            completion.result
        ));
    }
    Ok(String::from("call reached the live receiver"))
}

/// The token a receiving thread leaves behind, for the replay.
static LEFT_TOKEN: AtomicU64 = AtomicU64::new(0);

/// Case 3: a call received by a thread that ends without replying: the
/// caller gets `peer-gone`; the token replayed from another thread is
/// `not-found`.
fn dead_receiver(context: &mut Context) -> Result<String, String> {
    let life = context.capability(LIFE_SLOT);
    let spawner = context.capability(THREAD_SPAWNER_SLOT);
    let call = submit_call(context, life, b"never answered")?;
    let receiver = thread::spawn(
        context,
        spawner,
        |context, _| {
            let mut buffer = [0u8; 64];
            let life = context.capability(LIFE_SLOT);
            match context.ring().endpoint_receive(life, &mut buffer) {
                Ok(received) => {
                    LEFT_TOKEN.store(received.token, Ordering::SeqCst);
                    0
                }
                Err(error) => error.as_result(),
            }
        },
        0,
    )
    .map_err(|error| failure("spawn", error))?;
    let status = receiver
        .join(context)
        .map_err(|error| failure("join", error))?;
    if status != 0 {
        return Err(format!("receive result={status}"));
    }
    let answers = await_completions(context, &[call], ANSWER_NS)?;
    let completion = result_of(answers[0], "the call (its receiver ended)")?;
    let token = LEFT_TOKEN.load(Ordering::SeqCst);
    let replay = context.ring().endpoint_reply(life, token, b"late", None);
    if Error::from_result(completion.result) != Some(Error::PeerGone) {
        return Err(format!(
            "call result={} expected=peer-gone",
            completion.result
        ));
    }
    match replay {
        Err(Error::NotFound) => Ok(String::from("error=peer-gone replay error=not-found")),
        Err(error) => Err(format!("replay error={} expected=not-found", error.name())),
        Ok(()) => Err(String::from("replay accepted")),
    }
}

/// The word the join target sleeps on.
static WAKE: AtomicU32 = AtomicU32::new(0);

/// Case 4: threads that end with a join in flight must not keep their
/// slots.
fn join_pinned(context: &mut Context) -> Result<String, String> {
    let spawner = context.capability(THREAD_SPAWNER_SLOT);
    WAKE.store(0, Ordering::SeqCst);
    let target = thread::spawn(
        context,
        spawner,
        |context, _| {
            let space = context.capability(PARK_SLOT);
            let address = WAKE.as_ptr() as u64;
            while WAKE.load(Ordering::SeqCst) == 0 {
                let _ = context
                    .ring()
                    .park(space, address, 0, capos_abi::NO_TIMEOUT);
            }
            7
        },
        0,
    )
    .map_err(|error| failure("spawn target", error))?;
    let target_handle = u64::from(target.handle().0);
    let mut outcome = Ok(());
    for round in 0..JOIN_ROUNDS {
        let joiner = thread::spawn(
            context,
            spawner,
            |context, target| {
                let ring = context.ring();
                let data = ring.fresh_user_data();
                let join = submission(
                    Opcode::ThreadJoin,
                    CapabilityHandle(target as u32),
                    data,
                    [0; 6],
                );
                // SAFETY: ThreadJoin names no memory.
                if unsafe { ring.submit(join) }.is_err() {
                    return -1;
                }
                let _ = ring.enter(0, 0);
                0
            },
            target_handle,
        );
        match joiner {
            Ok(joiner) => {
                if let Err(error) = joiner.join(context) {
                    outcome = Err(format!("round={round} {}", failure("join", error)));
                    break;
                }
            }
            Err(error) => {
                outcome = Err(format!("round={round} {}", failure("spawn", error)));
                break;
            }
        }
    }
    WAKE.store(1, Ordering::SeqCst);
    let space = context.capability(PARK_SLOT);
    let _ = context.ring().unpark(space, WAKE.as_ptr() as u64, 1);
    let value = target
        .join(context)
        .map_err(|error| failure("join target", error))?;
    outcome?;
    if value != 7 {
        return Err(format!("target value={value}"));
    }
    Ok(format!("joiners={JOIN_ROUNDS} all-spawned"))
}

/// Case 5: a server process that exits in the middle of a call.
fn server_exit(context: &mut Context) -> Result<String, String> {
    let life = context.capability(LIFE_SLOT);
    let process_spawner = context.capability(SPAWNER_SLOT);
    let call = submit_call(context, life, b"mid-call")?;
    let server = context
        .ring()
        .spawn(process_spawner, "life-server", &[])
        .map_err(|error| failure("spawn life-server", error))?;
    let answers = await_completions(context, &[call], ANSWER_NS)?;
    context
        .ring()
        .reap(server)
        .map_err(|problem| format!("life-server {problem}"))?;
    let completion = result_of(answers[0], "the call (its server exited)")?;
    match Error::from_result(completion.result) {
        Some(Error::PeerGone) => Ok(String::from("error=peer-gone")),
        _ => Err(format!(
            "call result={} expected=peer-gone",
            completion.result
        )),
    }
}

/// The server process of case 5: receive one call, exit without a reply.
fn server(context: &mut Context) -> i32 {
    let life = context.capability(SERVER_LIFE_SLOT);
    let mut buffer = [0u8; 64];
    match context.ring().endpoint_receive(life, &mut buffer) {
        Ok(_) => 0,
        Err(error) => {
            println!(
                context,
                "[{TAG}] server FAILED {}",
                failure("receive", error)
            );
            1
        }
    }
}

/// The `ring` suite (option `suite=ring`): the ring, console and CPU-state
/// cases of the attack surface, then the counters.
fn run_ring(context: &mut Context) -> i32 {
    let mut tally = Tally::default();
    let initial = initial_counters(context);
    let cases: [(&str, Case); 6] = [
        ("ring-corrupt", ring_corrupt),
        ("cq-overflow", cq_overflow),
        ("cq-rejected", cq_rejected),
        ("console-flood", console_flood),
        ("mxcsr-blocking", mxcsr_blocking),
        ("syscall-trap-flag", syscall_trap_flag),
    ];
    for (name, case) in cases {
        let outcome = case(context);
        tally.report(context, TAG, &format!("case={name}"), outcome);
    }
    let restored = match initial {
        Ok(initial) => all_restored(context, &initial),
        Err(problem) => Err(problem),
    };
    tally.report(context, TAG, "case=all-counters", restored);
    println!(
        context,
        "[{TAG}] done passed={} failed={}", tally.passed, tally.failed
    );
    tally.exit_code()
}

/// Rounds the ring victim runs at least while its sibling scribbles on its
/// ring, and at most (it stops once it has also seen
/// [`CORRUPT_OVERRUNS`] refusals: on a loaded host the sibling may not run
/// beside it for a while).
const CORRUPT_ROUNDS: u64 = 3000;
const CORRUPT_ROUNDS_MAX: u64 = 300_000;
const CORRUPT_OVERRUNS: u64 = 100;
/// Rounds the victim ran.
static VICTIM_ROUNDS: AtomicU64 = AtomicU64::new(0);
/// The victim's ring base, published for its attacker (0: not yet).
static VICTIM_RING: AtomicU64 = AtomicU64::new(0);
/// Set by the victim when its rounds are done.
static VICTIM_DONE: AtomicU32 = AtomicU32::new(0);
/// What the victim's `cap_enter`s returned: counts, and the last result
/// that was none of the expected ones (0: none).
static ENTERED_OK: AtomicU64 = AtomicU64::new(0);
static ENTERED_OVERRUN: AtomicU64 = AtomicU64::new(0);
static ENTERED_OTHER: AtomicU64 = AtomicU64::new(0);
static UNEXPECTED_RESULT: AtomicU64 = AtomicU64::new(0);

/// A sibling thread corrupts a thread's SQ and CQ indices while that
/// thread submits and enters: every `cap_enter` must return a count or a
/// ring refusal (`ring-overrun`, or `timed-out` for a wait), the kernel
/// must detect the corruption, and the victim must still end normally.
fn ring_corrupt(context: &mut Context) -> Result<String, String> {
    let spawner = context.capability(THREAD_SPAWNER_SLOT);
    VICTIM_RING.store(0, Ordering::SeqCst);
    VICTIM_ROUNDS.store(0, Ordering::SeqCst);
    VICTIM_DONE.store(0, Ordering::SeqCst);
    for counter in [
        &ENTERED_OK,
        &ENTERED_OVERRUN,
        &ENTERED_OTHER,
        &UNEXPECTED_RESULT,
    ] {
        counter.store(0, Ordering::SeqCst);
    }
    let victim = thread::spawn(
        context,
        spawner,
        |context, _| {
            let ring = context.ring();
            VICTIM_RING.store(ring.base() as u64, Ordering::SeqCst);
            let mut round = 0;
            while round < CORRUPT_ROUNDS
                || (ENTERED_OVERRUN.load(Ordering::SeqCst) < CORRUPT_OVERRUNS
                    && round < CORRUPT_ROUNDS_MAX)
            {
                round += 1;
                for _ in 0..4 {
                    let nop = submission(
                        Opcode::Nop,
                        CapabilityHandle::NONE,
                        ring.fresh_user_data(),
                        [0; 6],
                    );
                    // SAFETY: a Nop names no memory.
                    let _ = unsafe { ring.submit(nop) };
                }
                let entered = if round % 2 == 0 {
                    ring.enter(0, 0)
                } else {
                    ring.enter(1, 100_000)
                };
                let counter = match entered {
                    Ok(_) => &ENTERED_OK,
                    Err(Error::RingOverrun) => &ENTERED_OVERRUN,
                    Err(Error::TimedOut) => &ENTERED_OTHER,
                    Err(error) => {
                        UNEXPECTED_RESULT.store(error.as_result() as u64, Ordering::SeqCst);
                        &ENTERED_OTHER
                    }
                };
                counter.fetch_add(1, Ordering::SeqCst);
                // At most a queue's worth: a corrupted tail may claim billions.
                for _ in 0..capos_abi::ring::CQ_ENTRIES {
                    if ring.next_completion().is_none() {
                        break;
                    }
                }
            }
            VICTIM_ROUNDS.store(round, Ordering::SeqCst);
            VICTIM_DONE.store(1, Ordering::SeqCst);
            0
        },
        0,
    )
    .map_err(|error| failure("spawn victim", error))?;
    let mut random = capos_runtime::random::XorShift::new(timestamp());
    let mut writes = 0u64;
    while VICTIM_DONE.load(Ordering::SeqCst) == 0 {
        let base = VICTIM_RING.load(Ordering::SeqCst);
        if base == 0 {
            core::hint::spin_loop();
            continue;
        }
        let word = [
            capos_abi::ring::header::SQ_HEAD,
            capos_abi::ring::header::SQ_TAIL,
            capos_abi::ring::header::CQ_HEAD,
            capos_abi::ring::header::CQ_TAIL,
        ][random.below(4) as usize];
        // SAFETY: the word is a 4-byte-aligned header index of the
        // victim's ring, mapped for the life of this process; ring
        // indices are only ever accessed atomically.
        let cell = unsafe { &*((base as usize + word) as *const AtomicU32) };
        let value = match random.below(4) {
            0 => random.next_u64() as u32,
            1 => cell.load(Ordering::Relaxed).wrapping_add(65),
            2 => cell.load(Ordering::Relaxed).wrapping_sub(1),
            _ => cell
                .load(Ordering::Relaxed)
                .wrapping_add(random.below(130) as u32),
        };
        cell.store(value, Ordering::SeqCst);
        writes += 1;
    }
    let value = victim
        .join(context)
        .map_err(|error| failure("join victim", error))?;
    let (ok, overrun, other) = (
        ENTERED_OK.load(Ordering::SeqCst),
        ENTERED_OVERRUN.load(Ordering::SeqCst),
        ENTERED_OTHER.load(Ordering::SeqCst),
    );
    let unexpected = UNEXPECTED_RESULT.load(Ordering::SeqCst) as i64;
    if unexpected != 0 {
        let name = Error::from_result(unexpected).map_or("unknown", Error::name);
        return Err(format!("cap_enter gave error={name} ({unexpected})"));
    }
    let rounds = VICTIM_ROUNDS.load(Ordering::SeqCst);
    if value != 0 || ok + overrun + other != rounds || overrun == 0 {
        return Err(format!(
            "victim value={value} rounds={rounds} ok={ok} overrun={overrun} other={other}"
        ));
    }
    Ok(format!(
        "rounds={rounds} writes={writes} error=ring-overrun seen={overrun}"
    ))
}

/// Sleeps whose completion slots are reserved before a burst of Nops
/// (fewer than `PENDING_PER_THREAD`: at the quota even a Nop is refused).
const OVERFLOW_SLEEPS: usize = 24;
const OVERFLOW_NOPS: usize = 40;
/// Nops submitted while the CQ has no room left.
const OVERFLOW_EXTRA: usize = 16;

/// More completions owed than the CQ holds: the kernel takes no
/// submission it has no completion room for (the extra ones wait in the
/// SQ), no completion is lost or duplicated, and each lands once room is
/// made.
fn cq_overflow(context: &mut Context) -> Result<String, String> {
    let timer = context.capability(TIMER_SLOT);
    let ring = context.ring();
    while ring.next_completion().is_some() {}
    let mut expected = Vec::new();
    let mut submit = |opcode: Opcode, capability: CapabilityHandle, arguments: [u64; 6]| {
        let data = ring.fresh_user_data();
        expected.push(data);
        // SAFETY: Nop and TimerSleep name no memory.
        unsafe { ring.submit(submission(opcode, capability, data, arguments)) }
            .map_err(|_| String::from("submission queue full"))
    };
    let sleep = arguments::TimerSleep {
        nanoseconds: 200_000_000,
    }
    .encode();
    for _ in 0..OVERFLOW_SLEEPS {
        submit(Opcode::TimerSleep, timer, sleep)?;
    }
    for _ in 0..OVERFLOW_NOPS {
        submit(Opcode::Nop, CapabilityHandle::NONE, [0; 6])?;
    }
    let first = ring.enter(0, 0).map_err(|error| failure("enter", error))?;
    for _ in 0..OVERFLOW_EXTRA {
        submit(Opcode::Nop, CapabilityHandle::NONE, [0; 6])?;
    }
    let held = ring.enter(0, 0).map_err(|error| failure("enter", error))?;
    let (head, tail) = ring.submission_indices();
    let waiting = tail.wrapping_sub(head) as usize;
    let full = ring
        .enter(capos_abi::ring::CQ_ENTRIES, ANSWER_NS)
        .map_err(|error| failure("enter full", error))?;
    let mut seen = Vec::new();
    while let Some(completion) = ring.next_completion() {
        seen.push((completion.user_data, completion.result));
    }
    let rest = ring
        .enter(OVERFLOW_EXTRA as u32, ANSWER_NS)
        .map_err(|error| failure("enter rest", error))?;
    while let Some(completion) = ring.next_completion() {
        seen.push((completion.user_data, completion.result));
    }
    let not_once = expected
        .iter()
        .filter(|data| seen.iter().filter(|(seen, _)| seen == *data).count() != 1)
        .count();
    let failed = seen.iter().filter(|(_, result)| *result != 0).count();
    let all_once = seen.len() == expected.len() && not_once == 0 && failed == 0;
    // `first` and `held`: the Nops, plus any sleeps that have fired by
    // then (a slow host may let some fire); either way the CQ has no room
    // for the extra Nops, which must still be waiting in the SQ.
    let room = OVERFLOW_NOPS as u32..=capos_abi::ring::CQ_ENTRIES;
    if !room.contains(&first)
        || !room.contains(&held)
        || held < first
        || waiting != OVERFLOW_EXTRA
        || full != capos_abi::ring::CQ_ENTRIES
        || rest as usize != OVERFLOW_EXTRA
        || !all_once
    {
        return Err(format!(
            "first={first} held={held} waiting={waiting} full={full} rest={rest} completions={} not-once={not_once} failed={failed}",
            seen.len()
        ));
    }
    Ok(format!(
        "owed={} cq={} held-back={OVERFLOW_EXTRA} completed={} once",
        expected.len(),
        capos_abi::ring::CQ_ENTRIES,
        seen.len()
    ))
}

/// Sleeps a thread leaves in flight while its CQ head is corrupted, and
/// how long each takes.
const REJECTED_SLEEPS: usize = 8;
const REJECTED_SLEEP_NS: u64 = 10_000_000;
/// TSC cycles the thread spins (its ring unusable) while they fire: about
/// 0.4 s at the 2.5 GHz this host's guests see, far more than the sleeps.
const REJECTED_SPIN_CYCLES: u64 = 1_000_000_000;

/// A thread moves its own CQ head back while operations are in flight, so
/// the kernel must reject their completions (the CQ looks overrun). Each
/// rejected completion must still give back its slot of the pending quota:
/// afterwards, with the head put back, the thread must be able to have a
/// full quota of operations in flight again. (Before, each rejection kept
/// its slot for good, so a thread could be left unable to submit
/// anything, and the kernel printed a warning per rejected completion.)
fn cq_rejected(context: &mut Context) -> Result<String, String> {
    let spawner = context.capability(THREAD_SPAWNER_SLOT);
    let victim = thread::spawn(
        context,
        spawner,
        |context, _| {
            let timer = context.capability(TIMER_SLOT);
            let ring = context.ring();
            while ring.next_completion().is_some() {}
            let sleep = |nanoseconds: u64| {
                let data = ring.fresh_user_data();
                let arguments = arguments::TimerSleep { nanoseconds }.encode();
                // SAFETY: TimerSleep names no memory.
                unsafe { ring.submit(submission(Opcode::TimerSleep, timer, data, arguments)) }
                    .is_ok()
            };
            for _ in 0..REJECTED_SLEEPS {
                if !sleep(REJECTED_SLEEP_NS) {
                    return -1;
                }
            }
            if ring.enter(0, 0).is_err() {
                return -2;
            }
            // SAFETY: CQ_HEAD is a 4-byte-aligned header index of this
            // thread's own ring, mapped for the life of the process; ring
            // indices are only ever accessed atomically.
            let head =
                unsafe { &*((ring.base() + capos_abi::ring::header::CQ_HEAD) as *const AtomicU32) };
            let saved = head.load(Ordering::SeqCst);
            head.store(
                saved.wrapping_sub(capos_abi::ring::CQ_ENTRIES + 1),
                Ordering::SeqCst,
            );
            let start = timestamp();
            while timestamp().wrapping_sub(start) < REJECTED_SPIN_CYCLES {
                core::hint::spin_loop();
            }
            head.store(saved, Ordering::SeqCst);
            while ring.next_completion().is_some() {}
            let quota = capos_abi::limits::PENDING_PER_THREAD;
            for _ in 0..quota {
                if !sleep(1_000_000) {
                    return -3;
                }
            }
            if ring.enter(quota as u32, ANSWER_NS).is_err() {
                return -4;
            }
            let mut refused = 0i64;
            let mut seen = 0;
            while let Some(completion) = ring.next_completion() {
                seen += 1;
                if completion.result != 0 {
                    refused += 1;
                }
            }
            if seen != quota {
                return -5;
            }
            refused
        },
        0,
    )
    .map_err(|error| failure("spawn victim", error))?;
    let refused = victim
        .join(context)
        .map_err(|error| failure("join victim", error))?;
    if refused < 0 {
        return Err(format!("the victim thread failed at its step {}", -refused));
    }
    if refused != 0 {
        return Err(format!(
            "after {REJECTED_SLEEPS} rejected completions, {refused} of {} new operations were refused",
            capos_abi::limits::PENDING_PER_THREAD
        ));
    }
    Ok(format!(
        "rejected={REJECTED_SLEEPS} then in-flight={} refused=0",
        capos_abi::limits::PENDING_PER_THREAD
    ))
}

/// Lines the flooder writes, and their length.
const FLOOD_LINES: u64 = 3000;
const FLOOD_LINE_BYTES: usize = 120;
/// Probe lines written during the flood, the sleep after each, and the
/// bound on one probe's write.
const PROBES: u64 = 20;
const PROBE_SLEEP_NS: u64 = 5_000_000;
const WRITE_BOUND_NS: u64 = 250_000_000;

/// A process floods the console; this process's lines must still get out,
/// each write within [`WRITE_BOUND_NS`].
fn console_flood(context: &mut Context) -> Result<String, String> {
    let process_spawner = context.capability(SPAWNER_SLOT);
    let timer = context.capability(TIMER_SLOT);
    let console = context
        .console()
        .ok_or_else(|| String::from("no console"))?;
    let flooder = context
        .ring()
        .spawn(process_spawner, "life-flooder", &[])
        .map_err(|error| failure("spawn life-flooder", error))?;
    // Each probe is one line: the time its write takes is how long this
    // process waits behind the flood to get a line out (the console lock).
    // The whole probe (line and a short sleep) is reported too; it also
    // counts the wake-up, which host load can stretch under TCG.
    let mut slowest_write = 0;
    let mut slowest_probe = 0;
    for probe in 0..PROBES {
        let line = format!("[{TAG}] flood probe={probe}\n");
        let ring = context.ring();
        let now = |ring: &Ring| {
            ring.timer_now(timer)
                .map_err(|error| failure("timer", error))
        };
        let start = now(ring)?;
        ring.console_write(console, line.as_bytes())
            .map_err(|error| failure("console", error))?;
        let written = now(ring)?;
        ring.timer_sleep(timer, PROBE_SLEEP_NS)
            .map_err(|error| failure("sleep", error))?;
        let end = now(ring)?;
        slowest_write = slowest_write.max(written.saturating_sub(start));
        slowest_probe = slowest_probe.max(end.saturating_sub(start));
    }
    context
        .ring()
        .reap(flooder)
        .map_err(|problem| format!("life-flooder {problem}"))?;
    if slowest_write > WRITE_BOUND_NS {
        return Err(format!(
            "slowest probe write took {} ms (bound {} ms; slowest probe {} ms)",
            slowest_write / 1_000_000,
            WRITE_BOUND_NS / 1_000_000,
            slowest_probe / 1_000_000
        ));
    }
    Ok(format!(
        "probes={PROBES} write_bound_ms={} slowest_write_ms={} slowest_probe_ms={}",
        WRITE_BOUND_NS / 1_000_000,
        slowest_write / 1_000_000,
        slowest_probe / 1_000_000
    ))
}

/// The flooder process: [`FLOOD_LINES`] console lines as fast as it can
/// (option `flood_lines` overrides the count).
fn flooder(context: &mut Context, arguments: &str) -> i32 {
    let lines = options::find_u64(arguments, "flood_lines", FLOOD_LINES).unwrap_or(FLOOD_LINES);
    let Some(console) = context.console() else {
        return 1;
    };
    let mut line = [b'f'; FLOOD_LINE_BYTES];
    line[FLOOD_LINE_BYTES - 1] = b'\n';
    for _ in 0..lines {
        if context.ring().console_write(console, &line).is_err() {
            return 1;
        }
    }
    0
}

/// MXCSR with every exception unmasked (masks, bits 7-12, clear).
const MXCSR_UNMASKED: u32 = 0x0000;
/// The default MXCSR (all exceptions masked).
const MXCSR_DEFAULT: u32 = 0x1F80;

fn load_mxcsr(value: u32) {
    // SAFETY: LDMXCSR of a value with no reserved bit set; it changes only
    // this thread's SSE control state.
    unsafe { core::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack, readonly)) };
}

fn read_mxcsr() -> u32 {
    let mut value = 0u32;
    // SAFETY: STMXCSR writes the four bytes of `value`.
    unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack)) };
    value
}

/// A thread unmasks every SSE exception, then sleeps, waits with a
/// timeout and spins across ticks: the kernel must stay up (it never runs
/// SSE code under the user's MXCSR) and give the thread its MXCSR back.
fn mxcsr_blocking(context: &mut Context) -> Result<String, String> {
    let spawner = context.capability(THREAD_SPAWNER_SLOT);
    let worker = thread::spawn(
        context,
        spawner,
        |context, _| {
            let timer = context.capability(TIMER_SLOT);
            load_mxcsr(MXCSR_UNMASKED);
            let mut changed = 0;
            for round in 0..40u64 {
                let ring = context.ring();
                let _ = ring.timer_sleep(timer, 300_000);
                let _ = ring.enter(1, 200_000);
                if round % 8 == 0 {
                    let until = timestamp() + 20_000_000;
                    while timestamp() < until {
                        core::hint::spin_loop();
                    }
                }
                if read_mxcsr() & !0x3F != MXCSR_UNMASKED {
                    changed += 1;
                }
            }
            let seen = read_mxcsr();
            load_mxcsr(MXCSR_DEFAULT);
            (i64::from(changed) << 32) | i64::from(seen)
        },
        0,
    )
    .map_err(|error| failure("spawn", error))?;
    let value = worker
        .join(context)
        .map_err(|error| failure("join", error))?;
    let (changed, seen) = (value >> 32, (value & 0xFFFF_FFFF) as u32);
    if changed != 0 || seen & !0x3F != MXCSR_UNMASKED {
        return Err(format!("mxcsr changed={changed} last={seen:#x}"));
    }
    Ok(format!("mxcsr={MXCSR_UNMASKED:#06x} rounds=40 kept"))
}

/// Exit status of a process killed by a debug exception: -(128 + 1).
const DEBUG_TRAP_STATUS: i64 = -129;

/// A child executes `syscall` with the trap flag set: the kernel must not
/// take the single-step trap itself (its entry masks TF) and must stay up;
/// the child, single-stepping again after the return, is ended by the
/// debug exception like any user fault.
fn syscall_trap_flag(context: &mut Context) -> Result<String, String> {
    let process_spawner = context.capability(SPAWNER_SLOT);
    let child = context
        .ring()
        .spawn(process_spawner, "life-trap", &[])
        .map_err(|error| failure("spawn life-trap", error))?;
    let status = context
        .ring()
        .wait(child)
        .map_err(|error| failure("wait", error))?;
    context
        .ring()
        .drop_capability(child)
        .map_err(|error| failure("drop", error))?;
    if status != DEBUG_TRAP_STATUS {
        return Err(format!("status={status} expected={DEBUG_TRAP_STATUS}"));
    }
    Ok(format!("status={status}"))
}

/// The trap process: set TF, then `cap_enter(0, 0)`.
fn trap() -> i32 {
    // SAFETY: sets RFLAGS.TF and makes a `cap_enter(0, 0)` system call,
    // which names no memory; the registers the call clobbers are declared.
    unsafe {
        core::arch::asm!(
            "pushfq",
            "or qword ptr [rsp], 0x100",
            "popfq",
            "syscall",
            inlateout("rax") capos_abi::Syscall::CapEnter as u64 => _,
            in("rdi") 0u64,
            in("rsi") 0u64,
            clobber_abi("sysv64"),
        );
    }
    0
}
