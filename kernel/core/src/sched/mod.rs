//! The scheduler the kernel runs, as plain code: a thread's run state ([`RunState`]), where a
//! woken or new thread goes ([`place_wake`], [`make_runnable`]), what an idle CPU takes or
//! steals ([`pick_next`], [`work_waiting`]), when a tick preempts ([`should_preempt`]) and when
//! to write CR3 ([`needs_address_space_switch`]). `docs/scheduler.md` is the design; the kernel
//! (`kernel/src/sched.rs`) adds only locks, the context switch, IPIs and CR3 writes.
//!
//! How the locking maps onto it:
//! - Each thread's [`RunState`] lives under the thread's run lock; each CPU's FIFO run queue
//!   under its own spin lock, reached through [`RunQueues`]. The lock order is thread, then
//!   queue; no code holds two queue locks.
//! - A CPU runs threads from its scheduler loop, on its own stack: it takes a thread
//!   ([`pick_next`]), marks it on the CPU ([`RunState::dispatch`]), switches to it, and when the
//!   thread switches back (blocked, preempted or ended) records the switch-out
//!   ([`RunState::switched_out`]) and requeues it if still runnable. Requeueing only after the
//!   switch means no CPU can take a thread whose registers are not saved yet.
//!
//! Invariants (each checked after every step of the interleaving model in `model_tests`,
//! which drives these functions in the kernel's order):
//! - A live thread is in exactly one place: one queue entry (runnable), one CPU (running, or
//!   switching back to the loop), or nowhere (blocked, ended).
//! - Only a runnable thread is dispatched: a blocked or ended thread never runs.
//! - A wake-up and a kill are never lost, and a halted CPU whose queue holds a thread has an
//!   IPI on its way.
//! - A reschedule IPI goes to one halting CPU only, never the sender's; a wake-up never queues
//!   behind a busy CPU while another CPU is idle.
//! - Every queued thread runs within one tick of its CPU per thread queued before it.
//! - Each address space's CPU mask is exactly the CPUs that have it loaded, and a running
//!   thread's address space is the loaded one.
//! - Nothing here allocates, panics or uses `unsafe`.

mod address_space;
mod cpu;
mod placement;
mod run_queues;
mod thread;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

pub use address_space::needs_address_space_switch;
pub use cpu::{CpuIndex, CpuSet, MAX_CPUS};
pub use placement::{
    choose_steal_victim, exclude_idle_from_stealing, place_wake, place_wake_with, Placement,
    PlacementRule,
};
pub use run_queues::{
    make_runnable, pick_next, should_preempt, steal_victim, work_waiting, Picked, RunQueues, Wakeup,
};
pub use thread::{AfterSwitch, Dispatch, RunState, Wake};
