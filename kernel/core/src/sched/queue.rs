//! One CPU's run queue: its queued threads, what the CPU is doing, and every decision that
//! needs only this queue (enqueue with its IPI decision, tick, reschedule, block, exit).
//!
//! Invariants:
//! - At most `CAPACITY` entries; a full queue is [`ScheduleError::QueueFull`], never a panic.
//! - A thread id is at most once in a queue, and never both queued and current
//!   ([`ScheduleError::AlreadyQueued`]).
//! - *Pinned* entries (threads preempted by [`RunQueue::on_tick`] or
//!   [`RunQueue::on_reschedule`] whose registers are not saved yet) are never taken, neither
//!   by this CPU nor by a thief, until [`RunQueue::finish_switch`].
//! - The CPU is *halting* only while it runs no thread and its queue is empty: taking an entry
//!   or enqueueing one ends halting.
//! - The next entry is the longest-waiting one among those queued for at least
//!   [`AGING_TICKS`]; otherwise the most urgent, first come first served within a priority.
//! - `reschedule_pending` is set when an IPI or local reschedule has been requested for the
//!   current thread and cleared when the CPU next decides (tick, reschedule, block, exit,
//!   dispatch), so one decision costs at most one IPI.

use super::{CpuIndex, Notify, Priority, ScheduleError};

/// Ticks a queued thread may wait before it goes ahead of more urgent ones; this bounds the
/// wait of every runnable thread, whatever the priorities.
pub const AGING_TICKS: u64 = 20;

/// What a CPU is doing, as far as wakers need to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    /// Runs a thread of this priority.
    Running {
        /// Priority of the current thread.
        priority: Priority,
    },
    /// Runs no thread and is in [`super::pick_next`]: it looks at its queue before it halts,
    /// so a waker needs no IPI.
    Looking,
    /// Runs no thread and has committed to `sti; hlt`: only an interrupt wakes it.
    Halting,
}

/// The lock-free summary the kernel publishes after every critical section on a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueHint {
    /// The CPU runs no thread (looking or halting).
    pub idle: bool,
    /// Entries a thief could take (queued and not pinned).
    pub stealable: usize,
}

/// A queued thread, as listed by [`RunQueue::entries`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuedThread<T> {
    /// The thread.
    pub thread: T,
    /// Its priority.
    pub priority: Priority,
    /// Tick at which it became runnable (kept across steals).
    pub ready_since: u64,
    /// Preempted and not yet switched out: nobody may take it before
    /// [`RunQueue::finish_switch`].
    pub pinned: bool,
}

/// A thread taken from another CPU's queue by [`RunQueue::steal`], on its way to
/// [`RunQueue::adopt`]; it keeps its priority and the tick it became runnable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stolen<T> {
    /// The stolen thread.
    pub thread: T,
    priority: Priority,
    ready_since: u64,
}

/// The thread a CPU runs.
#[derive(Clone, Copy, Debug)]
struct Current<T> {
    thread: T,
    priority: Priority,
}

/// One queue slot's content.
#[derive(Clone, Copy, Debug)]
struct Entry<T> {
    thread: T,
    priority: Priority,
    ready_since: u64,
    /// Arrival order within the queue, for first come first served.
    sequence: u64,
    pinned: bool,
}

/// What a tick or a reschedule IPI decided for the current thread.
#[must_use = "a Switch must be carried out: the next thread is already current"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TickDecision<T> {
    /// The current thread goes on: no switch, no requeue, no CR3 write.
    Continue,
    /// Switch from `previous` (now pinned in this queue) to `next` (now current).
    Switch {
        /// The preempted thread; call [`RunQueue::finish_switch`] once its registers are saved.
        previous: T,
        /// The thread to run now.
        next: T,
    },
    /// The CPU runs no thread: its idle loop calls [`super::pick_next`].
    Idle,
}

/// The CPU given up by a blocking or exiting thread.
#[must_use = "the next thread, if any, is already current and must be switched to"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handoff<T> {
    /// The thread that stopped (not queued; its state machine says what happens to it).
    pub previous: T,
    /// The thread to run now, taken from this queue; `None`: go to the idle loop.
    pub next: Option<T>,
}

/// A CPU's run queue. The kernel keeps one per CPU, each under its own spin lock.
#[derive(Debug)]
pub struct RunQueue<T, const CAPACITY: usize> {
    cpu: CpuIndex,
    slots: [Option<Entry<T>>; CAPACITY],
    queued: usize,
    next_sequence: u64,
    current: Option<Current<T>>,
    halting: bool,
    reschedule_pending: bool,
}

impl<T: Copy + Eq, const CAPACITY: usize> RunQueue<T, CAPACITY> {
    /// An empty queue for `cpu`, which runs no thread and is looking for work.
    pub const fn new(cpu: CpuIndex) -> Self {
        Self {
            cpu,
            slots: [const { None }; CAPACITY],
            queued: 0,
            next_sequence: 0,
            current: None,
            halting: false,
            reschedule_pending: false,
        }
    }

    /// The CPU this queue belongs to.
    pub const fn cpu(&self) -> CpuIndex {
        self.cpu
    }

    /// Number of queued threads (pinned ones included, the current one not).
    pub const fn len(&self) -> usize {
        self.queued
    }

    /// Whether no thread is queued.
    pub const fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Most threads the queue holds.
    pub const fn capacity(&self) -> usize {
        CAPACITY
    }

    /// The thread this CPU runs, if any.
    pub fn current(&self) -> Option<T> {
        self.current.map(|current| current.thread)
    }

    /// What the CPU is doing.
    pub fn activity(&self) -> Activity {
        match self.current {
            Some(current) => Activity::Running {
                priority: current.priority,
            },
            None if self.halting => Activity::Halting,
            None => Activity::Looking,
        }
    }

    /// The summary to publish in the lock-free hints when the lock is released.
    pub fn hint(&self) -> QueueHint {
        QueueHint {
            idle: self.current.is_none(),
            stealable: self.occupied().filter(|entry| !entry.pinned).count(),
        }
    }

    /// The queued threads, in slot order (for diagnostics and tests).
    pub fn entries(&self) -> impl Iterator<Item = QueuedThread<T>> + '_ {
        self.occupied().map(|entry| QueuedThread {
            thread: entry.thread,
            priority: entry.priority,
            ready_since: entry.ready_since,
            pinned: entry.pinned,
        })
    }

    /// Whether `thread` is queued here or is this CPU's current thread.
    pub fn contains(&self, thread: T) -> bool {
        self.current() == Some(thread) || self.occupied().any(|entry| entry.thread == thread)
    }

    /// Queue a runnable thread that became ready at `now`, on behalf of code running on CPU
    /// `from`, and say whom to notify. Call with the thread's lock held (it must be off every
    /// CPU), after the thread state machine said to place it here.
    pub fn enqueue(
        &mut self,
        thread: T,
        priority: Priority,
        now: u64,
        from: CpuIndex,
    ) -> Result<Notify, ScheduleError> {
        if self.contains(thread) {
            return Err(ScheduleError::AlreadyQueued);
        }
        self.insert(thread, priority, now, false)?;
        Ok(self.notify_for(priority, from))
    }

    /// The IPI decision for a thread of `priority` just queued here by code on CPU `from`.
    fn notify_for(&mut self, priority: Priority, from: CpuIndex) -> Notify {
        let local = from == self.cpu;
        match self.current {
            None if self.halting => {
                // Code on a halting CPU is an interrupt that already ended its `hlt`.
                self.halting = false;
                if local {
                    Notify::Nothing
                } else {
                    Notify::Interrupt(self.cpu)
                }
            }
            None => Notify::Nothing,
            Some(current) if priority > current.priority && !self.reschedule_pending => {
                self.reschedule_pending = true;
                if local {
                    Notify::RescheduleLocal
                } else {
                    Notify::Interrupt(self.cpu)
                }
            }
            Some(_) => Notify::Nothing,
        }
    }

    /// The CPU entered [`super::pick_next`] (after a halt, or with nothing to run): it is
    /// looking, no longer halting.
    pub(super) fn look(&mut self) {
        self.halting = false;
    }

    /// Make the next entry current. Only for a CPU that runs no thread.
    pub(super) fn take_next(&mut self, now: u64) -> Result<Option<T>, ScheduleError> {
        if self.current.is_some() {
            return Err(ScheduleError::CpuBusy);
        }
        let Some(entry) = self.next_index(now).and_then(|index| self.remove(index)) else {
            return Ok(None);
        };
        self.make_current(entry.thread, entry.priority);
        Ok(Some(entry.thread))
    }

    /// Take the next entry if there is one, else commit to halting. Only for a CPU that runs
    /// no thread; the caller executes `sti; hlt` when this returns `Ok(None)`.
    pub(super) fn take_next_or_halt(&mut self, now: u64) -> Result<Option<T>, ScheduleError> {
        let next = self.take_next(now)?;
        if next.is_none() {
            self.halting = true;
        }
        Ok(next)
    }

    /// Take the entry this CPU would run next, for another CPU that has nothing to run.
    pub(super) fn steal(&mut self, now: u64) -> Option<Stolen<T>> {
        let entry = self.next_index(now).and_then(|index| self.remove(index))?;
        Some(Stolen {
            thread: entry.thread,
            priority: entry.priority,
            ready_since: entry.ready_since,
        })
    }

    /// Run a thread stolen from another queue. If this CPU unexpectedly runs a thread already,
    /// the stolen one is queued here instead (so it is not lost) and the answer is
    /// [`ScheduleError::CpuBusy`].
    pub(super) fn adopt(&mut self, stolen: Stolen<T>) -> Result<T, ScheduleError> {
        if self.current.is_some() {
            self.insert(stolen.thread, stolen.priority, stolen.ready_since, false)?;
            return Err(ScheduleError::CpuBusy);
        }
        self.halting = false;
        self.make_current(stolen.thread, stolen.priority);
        Ok(stolen.thread)
    }

    /// The periodic tick, taken while the current thread runs: switch when a queued thread
    /// is at least as urgent (round robin within a priority) or has aged, else go on.
    pub fn on_tick(&mut self, now: u64) -> TickDecision<T> {
        self.preempt_if(now, |candidate, current| candidate >= current)
    }

    /// A reschedule IPI (or [`Notify::RescheduleLocal`]): switch only to a strictly more
    /// urgent or aged thread; an equally urgent one waits for the tick.
    pub fn on_reschedule(&mut self, now: u64) -> TickDecision<T> {
        self.preempt_if(now, |candidate, current| candidate > current)
    }

    /// Shared body of [`Self::on_tick`] and [`Self::on_reschedule`].
    fn preempt_if(
        &mut self,
        now: u64,
        wins: impl FnOnce(Priority, Priority) -> bool,
    ) -> TickDecision<T> {
        let Some(current) = self.current else {
            return TickDecision::Idle;
        };
        self.reschedule_pending = false;
        let Some(index) = self.next_index(now) else {
            return TickDecision::Continue;
        };
        let Some(candidate) = self.slots.get(index).copied().flatten() else {
            return TickDecision::Continue;
        };
        if !(is_aged(&candidate, now) || wins(candidate.priority, current.priority)) {
            return TickDecision::Continue;
        }
        // The candidate's slot becomes the previous thread's: this cannot run out of room.
        let sequence = self.take_sequence();
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = Some(Entry {
                thread: current.thread,
                priority: current.priority,
                ready_since: now,
                sequence,
                pinned: true,
            });
        }
        self.make_current(candidate.thread, candidate.priority);
        TickDecision::Switch {
            previous: current.thread,
            next: candidate.thread,
        }
    }

    /// The current thread blocks: it leaves the CPU (not queued) and the next entry, if any,
    /// becomes current.
    pub fn on_block(&mut self, now: u64) -> Result<Handoff<T>, ScheduleError> {
        self.give_up_cpu(now)
    }

    /// The current thread exits: as [`Self::on_block`]; the next code on this CPU reaps it.
    pub fn on_exit(&mut self, now: u64) -> Result<Handoff<T>, ScheduleError> {
        self.give_up_cpu(now)
    }

    /// Shared body of [`Self::on_block`] and [`Self::on_exit`].
    fn give_up_cpu(&mut self, now: u64) -> Result<Handoff<T>, ScheduleError> {
        let previous = self.current.take().ok_or(ScheduleError::NothingRunning)?;
        self.reschedule_pending = false;
        let next = self.next_index(now).and_then(|index| self.remove(index));
        if let Some(entry) = next {
            self.make_current(entry.thread, entry.priority);
        }
        Ok(Handoff {
            previous: previous.thread,
            next: next.map(|entry| entry.thread),
        })
    }

    /// The switch away from a preempted thread is complete (its registers are saved): it may
    /// be taken again, here or by a thief. Call first thing after every switch.
    pub fn finish_switch(&mut self) {
        for entry in self.slots.iter_mut().flatten() {
            entry.pinned = false;
        }
    }

    /// Occupied slots.
    fn occupied(&self) -> impl Iterator<Item = &Entry<T>> {
        self.slots.iter().flatten()
    }

    /// The slot of the entry to take next, skipping pinned entries: the longest-waiting aged
    /// entry, else the most urgent and, within a priority, the first to arrive.
    fn next_index(&self, now: u64) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| slot.as_ref().map(|entry| (index, entry)))
            .filter(|(_, entry)| !entry.pinned)
            .min_by_key(|(_, entry)| {
                let aged = is_aged(entry, now);
                // Smallest key wins: aged first (oldest first), then higher priority, then
                // earlier arrival.
                (
                    !aged,
                    if aged { 0 } else { u8::MAX - entry.priority.0 },
                    if aged { entry.ready_since } else { 0 },
                    entry.sequence,
                )
            })
            .map(|(index, _)| index)
    }

    /// Put an entry in a free slot.
    fn insert(
        &mut self,
        thread: T,
        priority: Priority,
        ready_since: u64,
        pinned: bool,
    ) -> Result<(), ScheduleError> {
        let slot = self
            .slots
            .iter_mut()
            .find(|slot| slot.is_none())
            .ok_or(ScheduleError::QueueFull)?;
        let sequence = self.next_sequence;
        self.next_sequence = sequence.wrapping_add(1);
        *slot = Some(Entry {
            thread,
            priority,
            ready_since,
            sequence,
            pinned,
        });
        self.queued += 1;
        Ok(())
    }

    /// Empty a slot, returning its entry.
    fn remove(&mut self, index: usize) -> Option<Entry<T>> {
        let entry = self.slots.get_mut(index)?.take()?;
        self.queued = self.queued.saturating_sub(1);
        Some(entry)
    }

    /// The next arrival number.
    fn take_sequence(&mut self) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        sequence
    }

    /// Make `thread` this CPU's current thread.
    fn make_current(&mut self, thread: T, priority: Priority) {
        self.current = Some(Current { thread, priority });
        self.halting = false;
        self.reschedule_pending = false;
    }
}

/// Whether an entry has waited at least [`AGING_TICKS`] by `now` (a clock that went backwards
/// counts as no wait).
fn is_aged<T>(entry: &Entry<T>, now: u64) -> bool {
    now.saturating_sub(entry.ready_since) >= AGING_TICKS
}
