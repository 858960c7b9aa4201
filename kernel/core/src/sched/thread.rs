//! A thread's scheduling state machine: ready, running, blocking, blocked, exiting, dead, plus
//! its last CPU and kill flag. The kernel keeps one per thread under the thread's lock.
//!
//! Invariants:
//! - Only a [`Phase::Ready`] thread can be dispatched, so a blocked, exiting or dead thread
//!   never runs, and a thread on a CPU is never dispatched on a second one.
//! - A thread is off every CPU (its registers saved) in `Ready`, `Blocked` and `Dead` only, and
//!   it reaches `Ready` or `Blocked` from a CPU only through [`ThreadState::switched_out`]; so
//!   whoever queues it gets a thread whose context is complete.
//! - A wake-up is never lost: waking a thread that is still on its CPU while blocking turns it
//!   back to running, and the switch-out then asks for it to be placed
//!   ([`AfterSwitch::Place`]).
//! - A kill is never lost: a killed thread refuses to block ([`BlockDecision::Killed`]), a
//!   blocking one is turned back to running, a blocked one is woken, and a running one gets
//!   an IPI ([`KillAction::Interrupt`]); the kill flag is never cleared.
//! - Bad transitions are [`TransitionError`]s and change nothing.

use core::fmt;

use super::CpuIndex;

/// Where a thread is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Runnable and off every CPU: queued (or being queued) on one run queue.
    Ready,
    /// Current on this CPU.
    Running(CpuIndex),
    /// Current on this CPU and about to block (re-checking its wait condition or switching
    /// out).
    Blocking(CpuIndex),
    /// Off every CPU, waiting for a wake-up.
    Blocked,
    /// Exited, but still on this CPU until the switch away completes.
    Exiting(CpuIndex),
    /// Exited and off every CPU: its kernel stack may be freed.
    Dead,
}

/// A transition, named for errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadEvent {
    /// [`ThreadState::dispatch`].
    Dispatch,
    /// [`ThreadState::begin_block`].
    BeginBlock,
    /// [`ThreadState::cancel_block`].
    CancelBlock,
    /// [`ThreadState::exit`].
    Exit,
    /// [`ThreadState::switched_out`].
    SwitchedOut,
}

/// A transition not allowed from the thread's phase; nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransitionError {
    /// The phase the thread was in.
    pub phase: Phase,
    /// The refused transition.
    pub event: ThreadEvent,
}

impl fmt::Display for TransitionError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{:?} is not allowed in phase {:?}",
            self.event, self.phase
        )
    }
}

/// Why the CPU switched away from a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchReason {
    /// A tick or reschedule preempted it; its run queue holds it (pinned).
    Preempted,
    /// It gave up the CPU by blocking or exiting; no queue holds it.
    Stopped,
}

/// What the kernel does after switching away from a thread.
#[must_use = "Place must be followed by make_runnable, Reap by freeing the thread's stack"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterSwitch {
    /// Nothing: it is queued (preempted) or blocked.
    Nothing,
    /// It was woken (or killed) while switching out: queue it with `make_runnable`.
    Place {
        /// Where it last ran.
        last_cpu: Option<CpuIndex>,
    },
    /// It exited: free its kernel stack and drop it.
    Reap,
}

/// What a waker does.
#[must_use = "Place must be followed by make_runnable"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeAction {
    /// The thread was not blocked (or is exiting or dead): nothing to do.
    Nothing,
    /// It was still on its CPU: it stays there, and its switch-out requeues it.
    AlreadyOnCpu,
    /// It is ready now: queue it with `make_runnable`.
    Place {
        /// Where it last ran.
        last_cpu: Option<CpuIndex>,
    },
}

/// Whether a thread may block.
#[must_use = "Killed means return to the kill check instead of blocking"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockDecision {
    /// Now blocking: re-check the wait condition, then switch out or cancel.
    Proceed,
    /// The thread has been killed: it does not block and should head for its exit.
    Killed,
}

/// What a killer does for one thread.
#[must_use = "Interrupt needs an IPI to that CPU, Place a make_runnable"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillAction {
    /// Nothing more: the flag is seen when the thread next runs or returns to user mode.
    Nothing,
    /// The thread runs on this CPU: send it a reschedule IPI (unless it is the killer's own
    /// CPU) so it reaches its kill check.
    Interrupt(CpuIndex),
    /// It was blocked and is ready now: queue it so it leaves its wait and exits.
    Place {
        /// Where it last ran.
        last_cpu: Option<CpuIndex>,
    },
}

/// One thread's scheduling state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadState {
    phase: Phase,
    last_cpu: Option<CpuIndex>,
    kill_requested: bool,
}

impl ThreadState {
    /// A new thread, ready and never run; queue it with `make_runnable` (no last CPU).
    pub const fn new() -> Self {
        Self {
            phase: Phase::Ready,
            last_cpu: None,
            kill_requested: false,
        }
    }

    /// Where the thread is in its life.
    pub const fn phase(&self) -> Phase {
        self.phase
    }

    /// The CPU it last ran on.
    pub const fn last_cpu(&self) -> Option<CpuIndex> {
        self.last_cpu
    }

    /// Whether it has been asked to exit.
    pub const fn kill_requested(&self) -> bool {
        self.kill_requested
    }

    /// A run queue made it current on `cpu`: Ready to Running.
    pub fn dispatch(&mut self, cpu: CpuIndex) -> Result<(), TransitionError> {
        match self.phase {
            Phase::Ready => {
                self.phase = Phase::Running(cpu);
                self.last_cpu = Some(cpu);
                Ok(())
            }
            phase => Err(self.refuse(phase, ThreadEvent::Dispatch)),
        }
    }

    /// The running thread is about to block: Running to Blocking, unless it was killed.
    pub fn begin_block(&mut self) -> Result<BlockDecision, TransitionError> {
        match self.phase {
            Phase::Running(_) if self.kill_requested => Ok(BlockDecision::Killed),
            Phase::Running(cpu) => {
                self.phase = Phase::Blocking(cpu);
                Ok(BlockDecision::Proceed)
            }
            phase => Err(self.refuse(phase, ThreadEvent::BeginBlock)),
        }
    }

    /// The wait condition already holds: Blocking back to Running (a no-op when a waker got
    /// there first).
    pub fn cancel_block(&mut self) -> Result<(), TransitionError> {
        match self.phase {
            Phase::Blocking(cpu) | Phase::Running(cpu) => {
                self.phase = Phase::Running(cpu);
                Ok(())
            }
            phase => Err(self.refuse(phase, ThreadEvent::CancelBlock)),
        }
    }

    /// Wake the thread if it is blocking or blocked.
    pub fn wake(&mut self) -> WakeAction {
        match self.phase {
            Phase::Blocking(cpu) => {
                self.phase = Phase::Running(cpu);
                WakeAction::AlreadyOnCpu
            }
            Phase::Blocked => {
                self.phase = Phase::Ready;
                WakeAction::Place {
                    last_cpu: self.last_cpu,
                }
            }
            Phase::Ready | Phase::Running(_) | Phase::Exiting(_) | Phase::Dead => {
                WakeAction::Nothing
            }
        }
    }

    /// The running (or blocking) thread exits: it stays on its CPU until switched out.
    pub fn exit(&mut self) -> Result<(), TransitionError> {
        match self.phase {
            Phase::Running(cpu) | Phase::Blocking(cpu) => {
                self.phase = Phase::Exiting(cpu);
                Ok(())
            }
            phase => Err(self.refuse(phase, ThreadEvent::Exit)),
        }
    }

    /// Ask the thread to exit: set the kill flag and say how to make it notice.
    pub fn request_kill(&mut self) -> KillAction {
        if self.phase == Phase::Dead {
            return KillAction::Nothing;
        }
        self.kill_requested = true;
        match self.phase {
            Phase::Running(cpu) => KillAction::Interrupt(cpu),
            Phase::Blocking(cpu) => {
                self.phase = Phase::Running(cpu);
                KillAction::Nothing
            }
            Phase::Blocked => {
                self.phase = Phase::Ready;
                KillAction::Place {
                    last_cpu: self.last_cpu,
                }
            }
            Phase::Ready | Phase::Exiting(_) | Phase::Dead => KillAction::Nothing,
        }
    }

    /// The CPU has switched away from the thread (its registers are saved): say what follows.
    pub fn switched_out(&mut self, reason: SwitchReason) -> Result<AfterSwitch, TransitionError> {
        let (phase, after) = match (self.phase, reason) {
            (Phase::Running(_), SwitchReason::Preempted) => (Phase::Ready, AfterSwitch::Nothing),
            (Phase::Running(_), SwitchReason::Stopped) => (
                Phase::Ready,
                AfterSwitch::Place {
                    last_cpu: self.last_cpu,
                },
            ),
            (Phase::Blocking(_), SwitchReason::Stopped) => (Phase::Blocked, AfterSwitch::Nothing),
            (Phase::Exiting(_), SwitchReason::Stopped) => (Phase::Dead, AfterSwitch::Reap),
            (phase, _) => return Err(self.refuse(phase, ThreadEvent::SwitchedOut)),
        };
        self.phase = phase;
        Ok(after)
    }

    /// The error for `event` in `phase`.
    fn refuse(&self, phase: Phase, event: ThreadEvent) -> TransitionError {
        TransitionError { phase, event }
    }
}

impl Default for ThreadState {
    fn default() -> Self {
        Self::new()
    }
}
