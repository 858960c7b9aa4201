//! A thread's run state, the one the kernel keeps under each thread's run lock: whether a CPU
//! is on the thread's stack, which CPU it last ran on, whether it waits for a wake-up, and
//! whether it has ended.
//!
//! Invariants:
//! - A thread is *on a CPU* from [`RunState::dispatch`] until [`RunState::switched_out`], which
//!   the CPU calls after its switch away from the thread has saved the thread's registers. Only
//!   a thread off every CPU is queued, so whoever takes it from a queue gets a complete
//!   context, and no thread runs on two CPUs.
//! - A wake-up is never lost: a thread sets `blocked` before it re-checks its wait condition
//!   ([`RunState::begin_block`]); a waker that finds it still on its CPU only clears `blocked`
//!   ([`Wake::StillOnCpu`]), and the switch-out then requeues it ([`AfterSwitch::Requeue`]).
//! - A thread that ended is never dispatched again and never requeued; the ending is final.

use super::CpuIndex;

/// One thread's run state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunState {
    on_cpu: bool,
    last_cpu: Option<CpuIndex>,
    blocked: bool,
    dead: bool,
}

/// What a waker does next.
#[must_use = "Place must be followed by make_runnable"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The thread was not waiting (or has ended): nothing to do.
    Nothing,
    /// It was still on its CPU: that CPU's switch-out requeues it.
    StillOnCpu,
    /// It is runnable and off every CPU: queue it with `make_runnable`.
    Place {
        /// Where it last ran (`None`: it never ran).
        last_cpu: Option<CpuIndex>,
    },
}

/// Whether a CPU may run a thread it took from a queue.
#[must_use = "Run means switch to the thread; Skip means drop it"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// The thread is now on this CPU: switch to it.
    Run,
    /// The thread ended while queued: drop it, do not switch.
    Skip,
}

/// What the CPU does with a thread it has just switched away from.
#[must_use = "Requeue means push the thread onto this CPU's queue"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterSwitch {
    /// It is still runnable (preempted, or woken while switching out): queue it on this CPU.
    Requeue,
    /// It waits for a wake-up, or has ended: no queue holds it.
    Leave,
}

impl RunState {
    /// A new thread: off every CPU, never run, runnable.
    pub const fn new() -> Self {
        Self {
            on_cpu: false,
            last_cpu: None,
            blocked: false,
            dead: false,
        }
    }

    /// Whether a CPU is on the thread's stack.
    pub const fn on_cpu(&self) -> bool {
        self.on_cpu
    }

    /// The CPU it runs or last ran on.
    pub const fn last_cpu(&self) -> Option<CpuIndex> {
        self.last_cpu
    }

    /// Whether it waits for a wake-up.
    pub const fn blocked(&self) -> bool {
        self.blocked
    }

    /// Whether it has ended.
    pub const fn dead(&self) -> bool {
        self.dead
    }

    /// Whether a queue may hold it: runnable and off every CPU.
    pub const fn queueable(&self) -> bool {
        !self.on_cpu && !self.blocked && !self.dead
    }

    /// A CPU took the thread from a queue and is about to switch to it.
    pub fn dispatch(&mut self, cpu: CpuIndex) -> Dispatch {
        if self.dead {
            return Dispatch::Skip;
        }
        self.on_cpu = true;
        self.last_cpu = Some(cpu);
        Dispatch::Run
    }

    /// The running thread is about to wait: from now on a wake-up is recorded. The caller
    /// re-checks its wait condition next and calls [`Self::cancel_block`] if it holds.
    pub fn begin_block(&mut self) {
        self.blocked = true;
    }

    /// The wait condition held after all: the thread goes on.
    pub fn cancel_block(&mut self) {
        self.blocked = false;
    }

    /// Wake the thread if it waits.
    pub fn wake(&mut self) -> Wake {
        if !self.blocked || self.dead {
            return Wake::Nothing;
        }
        self.blocked = false;
        if self.on_cpu {
            Wake::StillOnCpu
        } else {
            Wake::Place {
                last_cpu: self.last_cpu,
            }
        }
    }

    /// The running thread ends: it is never dispatched or requeued again.
    pub fn exit(&mut self) {
        self.dead = true;
    }

    /// The CPU a killer must interrupt so that the thread leaves user mode now: its CPU when
    /// it runs on another CPU than the killer's, else none.
    pub fn interrupt_for_kill(&self, killer: CpuIndex) -> Option<CpuIndex> {
        self.last_cpu
            .filter(|cpu| self.on_cpu && !self.dead && *cpu != killer)
    }

    /// The CPU has switched away from the thread (its registers are saved).
    pub fn switched_out(&mut self) -> AfterSwitch {
        self.on_cpu = false;
        if self.blocked || self.dead {
            AfterSwitch::Leave
        } else {
            AfterSwitch::Requeue
        }
    }
}
