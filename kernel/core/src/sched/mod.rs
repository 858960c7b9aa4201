//! Scheduling policy for per-CPU run queues, as plain code over thread ids: which thread a CPU
//! runs next, where a woken thread goes, whom to interrupt, when to write CR3, and whom a TLB
//! shootdown must wait for. `docs/scheduler.md` is the design; this is its executable part.
//!
//! How the locking maps onto it:
//! - The kernel keeps one [`RunQueue`] per CPU, each under its own spin lock, and implements
//!   [`RunQueues`]: `with_queue(cpu, action)` runs `action` under that CPU's lock and then
//!   publishes the queue's [`QueueHint`] (idle bit, stealable count) in lock-free atomics.
//! - Decisions about one CPU are methods of its queue, called under its lock: `enqueue` (with
//!   the IPI decision), `on_tick`, `on_reschedule`, `on_block`, `on_exit`, `finish_switch`.
//! - Decisions across CPUs ([`pick_next`], [`make_runnable`]) read the hints, then lock one
//!   queue at a time: nothing ever holds two run-queue locks, so queues need no lock order.
//! - Each thread has a [`ThreadState`] under the thread's own lock, taken before any queue
//!   lock (lock order: thread, then queue).
//! - `now` is a time in ticks from a clock all CPUs share (for example nanoseconds since boot
//!   divided by the tick period); it only orders arrivals and measures waits for aging.
//!
//! Invariants (each checked after every step of the randomized model in `model_tests`):
//! - A live thread is in exactly one place: one queue entry (ready), one CPU's current slot
//!   (running, blocking), the switch-out in progress on one CPU, or nowhere (blocked, dead).
//! - Only a ready thread is dispatched: a blocked thread never runs.
//! - Every queued thread runs within [`AGING_TICKS`] plus one tick per older entry of its
//!   queue, as long as CPUs keep ticking.
//! - A CPU that halts has found no stealable entry in any queue; a halting CPU has an empty
//!   queue, so enqueueing onto it always sends the IPI that ends its halt.
//! - A reschedule IPI goes to one CPU only, never the sender's, and only when the target is
//!   halting or runs a strictly less urgent thread.
//! - Nothing here allocates, panics or uses `unsafe`; capacities are fixed, a full queue is
//!   [`ScheduleError::QueueFull`].

mod address_space;
mod cpu;
mod placement;
mod queue;
mod thread;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod shootdown_tests;
#[cfg(test)]
mod tests;

use core::fmt;

pub use address_space::{
    address_space_switch, flush_method, needs_address_space_switch, respond_to_shootdown,
    shootdown_targets, AddressSpaceSwitch, FlushMethod, Shootdown, ShootdownResponse, TargetView,
    FLUSH_PAGE_LIMIT,
};
pub use cpu::{CpuIndex, CpuSet, MAX_CPUS};
pub use placement::{
    choose_steal_victim, exclude_idle_from_stealing, make_runnable, pick_next, place_wake, Pick,
    Placement, PlacementRule, RunQueues, Waker, Wakeup,
};
pub use queue::{
    Activity, Handoff, QueueHint, QueuedThread, RunQueue, Stolen, TickDecision, AGING_TICKS,
};
pub use thread::{
    AfterSwitch, BlockDecision, KillAction, Phase, SwitchReason, ThreadEvent, ThreadState,
    TransitionError, WakeAction,
};

/// How urgent a thread is; higher runs first. The kernel starts every thread at
/// [`Priority::NORMAL`], which makes every queue plain round robin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub u8);

impl Priority {
    /// The least urgent.
    pub const LOWEST: Self = Self(0);
    /// Every thread's priority unless the kernel decides otherwise.
    pub const NORMAL: Self = Self(128);
    /// The most urgent.
    pub const HIGHEST: Self = Self(u8::MAX);
}

/// Whom to notify after a thread was queued.
#[must_use = "an ignored Interrupt can leave a halted CPU asleep on its work"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    /// Nobody: the target is looking for work, or runs something at least as urgent.
    Nothing,
    /// Send one reschedule IPI to this CPU (never the sender's own).
    Interrupt(CpuIndex),
    /// The target is the sender's own CPU and runs something less urgent: call
    /// [`RunQueue::on_reschedule`] before returning to user mode.
    RescheduleLocal,
}

/// Why a scheduling operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleError {
    /// The run queue (or, for `make_runnable`, every run queue) is full.
    QueueFull,
    /// The thread is already queued on, or current on, this CPU.
    AlreadyQueued,
    /// The CPU already runs a thread.
    CpuBusy,
    /// The CPU runs no thread.
    NothingRunning,
    /// The CPU count is 0 or above [`MAX_CPUS`], or the CPU is not below it.
    NoSuchCpu,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::QueueFull => "run queue is full",
            Self::AlreadyQueued => "thread is already queued or running on this CPU",
            Self::CpuBusy => "CPU already runs a thread",
            Self::NothingRunning => "CPU runs no thread",
            Self::NoSuchCpu => "no such CPU",
        })
    }
}
