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
//! - `racer` (0 console, 1 thread-spawner, 2 process-spawner, 3 `void`
//!   endpoint-server, 4 boot-manifest): see [`racer`].
//! - `server` (0 console, 1 `life` endpoint-server, 2 boot-manifest).
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
/// Extra cached kernel stacks tolerated after the race loop: the cache keeps
/// as many stacks as threads were ever alive at once, and a racer may hold
/// a process's whole thread quota while the previous one is still being
/// torn down. Live threads, processes and waiters are checked exactly.
const STACK_CACHE_SLACK: u64 = 2 * capos_abi::limits::THREADS_PER_PROCESS as u64;

fn main(context: &mut Context) -> i32 {
    let manifest = CapabilityHandle::new(context.slot_count().saturating_sub(1), 0);
    let arguments = context
        .ring()
        .manifest_arguments(manifest)
        .unwrap_or_default();
    match options::role(&arguments, &["racer", "server"]) {
        Some("racer") => racer(context),
        Some("server") => server(context),
        _ if context.slot_count() == MAIN_SLOTS => run(context, &arguments),
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
    let initial = counters(context);
    let race = spawn_exit_race(context, rounds);
    tally.report(context, TAG, "case=spawn-exit-race", race);
    let cases: [(&str, Case); 4] = [
        ("dead-receive", dead_receive),
        ("dead-receiver", dead_receiver),
        ("join-pinned", join_pinned),
        ("server-exit", server_exit),
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

fn counters(context: &mut Context) -> Result<KernelCounters, String> {
    let diagnostics = context.capability(DIAGNOSTICS_SLOT);
    context
        .ring()
        .diagnostics_read(diagnostics)
        .map_err(diagnostics_error)
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
