//! The operations on the per-CPU run queues that the kernel's scheduler runs: queue a runnable
//! thread and decide the IPI ([`make_runnable`]), take the next thread for a CPU
//! ([`pick_next`]), whether an idle CPU has work ([`work_waiting`]) and whether a tick
//! preempts ([`should_preempt`]).
//!
//! The kernel implements [`RunQueues`] with one FIFO per CPU under its own spin lock, an
//! atomic length per queue, and the idle and halting masks of its idle loop; the host model
//! (`model_tests`) implements it with plain cells and drives these functions in the kernel's
//! order.
//!
//! Invariants:
//! - Each function locks at most one queue at a time (one [`RunQueues::push`] or
//!   [`RunQueues::pop`]): no code path holds two run-queue locks, so queues need no lock order.
//! - A queue holds only threads whose [`super::RunState::queueable`] is true; the caller holds
//!   the thread's run lock when it decides to queue (wake) or queues after a switch-out.
//! - A wake-up is never lost: [`make_runnable`] reads the halting mask only after the push
//!   (with a full fence in the kernel), and the idle loop sets its halting bit and fences before
//!   its last [`work_waiting`] check. Either that check sees the thread, or the waker sees the
//!   bit and interrupts the CPU.
//! - An IPI goes to one CPU only, never the waker's own, and only when it is halting: a CPU
//!   that runs a thread or polls its queue sees the work without one.

use super::{
    choose_steal_victim, exclude_idle_from_stealing, place_wake_with, CpuIndex, CpuSet,
    PlacementRule, MAX_CPUS,
};

/// The kernel's per-CPU run queues, as the scheduling operations reach them.
pub trait RunQueues<T> {
    /// Number of CPUs (1 to [`MAX_CPUS`]).
    fn cpu_count(&self) -> usize;

    /// Append `thread` to `cpu`'s queue under that queue's lock, and publish its length.
    fn push(&self, cpu: CpuIndex, thread: T);

    /// Take the oldest thread of `cpu`'s queue under that queue's lock, and publish its length.
    fn pop(&self, cpu: CpuIndex) -> Option<T>;

    /// The last published length of `cpu`'s queue, read without its lock.
    fn length(&self, cpu: CpuIndex) -> usize;

    /// The CPUs in their idle loop (polling or halting).
    fn idle(&self) -> CpuSet;

    /// The CPUs that have committed to halting, read after a full fence (so after every
    /// preceding push is visible to them).
    fn halting(&self) -> CpuSet;
}

/// Where [`make_runnable`] queued a thread, and whom to interrupt.
#[must_use = "an ignored interrupt can leave a halted CPU asleep on its work"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wakeup {
    /// The CPU whose queue now holds the thread.
    pub cpu: CpuIndex,
    /// Why that CPU was chosen.
    pub rule: PlacementRule,
    /// Send a reschedule IPI to this CPU (the target, halting, not the waker's).
    pub interrupt: Option<CpuIndex>,
}

/// A thread [`pick_next`] took for a CPU.
#[must_use = "the thread is off every queue: run it or it is lost"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Picked<T> {
    /// The thread.
    pub thread: T,
    /// The CPU it was stolen from, or `None` when it came from the own queue.
    pub stolen_from: Option<CpuIndex>,
}

/// The queue lengths of the first `count` CPUs.
fn lengths<T, Q: RunQueues<T>>(queues: &Q, out: &mut [usize; MAX_CPUS]) -> usize {
    let count = queues.cpu_count().clamp(1, MAX_CPUS);
    for (cpu, length) in CpuIndex::all(count).zip(out.iter_mut()) {
        *length = queues.length(cpu);
    }
    count
}

/// Queue `thread`, runnable and off every CPU, where [`place_wake`] says (`last_cpu`: where it
/// last ran, `None` for a new thread; `waker`: the CPU the waking code runs on), then say whom
/// to interrupt: the target, if it is another CPU and halting.
pub fn make_runnable<T, Q: RunQueues<T>>(
    queues: &Q,
    thread: T,
    last_cpu: Option<CpuIndex>,
    waker: CpuIndex,
) -> Wakeup {
    let count = queues.cpu_count().clamp(1, MAX_CPUS);
    let placement = place_wake_with(last_cpu, waker, queues.idle(), count, |cpu| {
        queues.length(cpu)
    });
    queues.push(placement.cpu, thread);
    let interrupt = (placement.cpu != waker && queues.halting().contains(placement.cpu))
        .then_some(placement.cpu);
    Wakeup {
        cpu: placement.cpu,
        rule: placement.rule,
        interrupt,
    }
}

/// The CPU `thief` would steal from: the busiest other queue, counting an idle CPU's queue
/// as empty (that CPU runs it itself: it polls, or its IPI is on the way).
pub fn steal_victim<T, Q: RunQueues<T>>(queues: &Q, thief: CpuIndex) -> Option<CpuIndex> {
    let mut buffer = [0; MAX_CPUS];
    let count = lengths(queues, &mut buffer);
    let loads = &mut buffer[..count];
    exclude_idle_from_stealing(loads, queues.idle());
    choose_steal_victim(thief, loads)
}

/// The next thread for `cpu`, which runs none (its scheduler loop): the oldest of its own
/// queue, else the oldest of the [`steal_victim`]'s queue; `None` when both are empty (the
/// victim may have been emptied meanwhile: the loop then goes idle and looks again).
pub fn pick_next<T, Q: RunQueues<T>>(queues: &Q, cpu: CpuIndex) -> Option<Picked<T>> {
    if let Some(thread) = queues.pop(cpu) {
        return Some(Picked {
            thread,
            stolen_from: None,
        });
    }
    let victim = steal_victim(queues, cpu)?;
    queues.pop(victim).map(|thread| Picked {
        thread,
        stolen_from: Some(victim),
    })
}

/// Whether `cpu`, idle, has a thread queued or could steal one.
pub fn work_waiting<T, Q: RunQueues<T>>(queues: &Q, cpu: CpuIndex) -> bool {
    queues.length(cpu) > 0 || steal_victim(queues, cpu).is_some()
}

/// Whether a tick on `cpu` preempts its running thread: only when its own queue holds
/// another. The only runnable thread just continues: no switch and no CR3 write.
pub fn should_preempt<T, Q: RunQueues<T>>(queues: &Q, cpu: CpuIndex) -> bool {
    queues.length(cpu) > 0
}
