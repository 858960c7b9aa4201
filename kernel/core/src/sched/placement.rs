//! Decisions that span CPUs: where a woken thread goes, whom an idle CPU steals from, and the
//! two operations built on them, [`pick_next`] and [`make_runnable`].
//!
//! Invariants:
//! - [`place_wake`] and [`choose_steal_victim`] are pure: they read hints (which may be
//!   stale) and always return a CPU below the CPU count, or `None`.
//! - [`pick_next`] and [`make_runnable`] reach queues only through
//!   [`RunQueues::with_queue`], one queue at a time: no code path holds two queue locks.
//! - The IPI decision is taken under the target queue's lock ([`super::RunQueue::enqueue`]),
//!   never from the hints, so a stale hint costs placement quality, never a lost wake-up.

use super::{CpuIndex, CpuSet, Notify, Priority, QueueHint, RunQueue, ScheduleError, MAX_CPUS};

/// How the policy reaches the per-CPU run queues. The kernel implements it with one spin lock
/// per queue and lock-free hints; the host model implements it with plain cells.
pub trait RunQueues<T, const CAPACITY: usize> {
    /// Number of CPUs (1 to [`MAX_CPUS`]).
    fn cpu_count(&self) -> usize;

    /// Run `action` on `cpu`'s queue under that queue's lock, then publish
    /// [`RunQueue::hint`] for [`Self::hint`] before unlocking. The policy never calls this
    /// while it holds another queue.
    fn with_queue<R>(
        &self,
        cpu: CpuIndex,
        action: impl FnOnce(&mut RunQueue<T, CAPACITY>) -> R,
    ) -> R;

    /// The last hint published for `cpu`, read without its lock.
    fn hint(&self, cpu: CpuIndex) -> QueueHint;
}

/// Who wakes a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waker {
    /// The CPU the waking code runs on.
    pub cpu: CpuIndex,
    /// That CPU will have nothing to run right after: the waking code is the idle loop or an
    /// interrupt taken while idle, or the waking thread blocks next (an endpoint call whose
    /// caller waits for the reply).
    pub goes_idle: bool,
}

/// Which placement rule chose the CPU (first match wins, in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlacementRule {
    /// The waker's CPU is about to have nothing to run: no IPI, warm cache.
    WakerGoesIdle,
    /// The thread's last CPU is idle: cache affinity.
    LastCpuIdle,
    /// Another CPU is idle: run now rather than wait behind a busy CPU.
    OtherIdleCpu,
    /// Every CPU is busy: the last CPU, where the thread preempts only if more urgent.
    LastCpu,
    /// A new thread and every CPU busy: the CPU with the fewest queued threads.
    LeastLoaded,
}

/// Where a woken thread goes.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The target CPU.
    pub cpu: CpuIndex,
    /// Why.
    pub rule: PlacementRule,
}

/// The outcome of [`make_runnable`].
#[must_use = "the notification must be carried out or the target may sleep on its work"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wakeup {
    /// The CPU whose queue now holds the thread (the placement's choice unless that queue was
    /// full).
    pub cpu: CpuIndex,
    /// Why that CPU was chosen.
    pub rule: PlacementRule,
    /// The IPI or local reschedule to carry out.
    pub notify: Notify,
}

/// What an idle CPU does next.
#[must_use = "a picked thread is already current; Halt means execute `sti; hlt` now"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick<T> {
    /// Run this thread (already current on this CPU).
    Run {
        /// The thread.
        thread: T,
        /// The CPU it was stolen from, or `None` when it came from the own queue.
        stolen_from: Option<CpuIndex>,
    },
    /// Nothing anywhere: the CPU is marked halting; execute `sti; hlt`, then call
    /// [`pick_next`] again.
    Halt,
}

/// Choose the CPU for a thread that becomes runnable. `last_cpu` is where it last ran
/// (`None` for a new thread), `idle` the CPUs that run no thread, `loads` the stealable count
/// of every CPU (its length is the CPU count). Hints may be stale; out-of-range CPUs are
/// ignored (with no CPU at all the answer is CPU 0). The rules, first match wins:
///
/// 1. the waker's CPU when it goes idle ([`PlacementRule::WakerGoesIdle`]);
/// 2. the last CPU when idle;
/// 3. the first idle CPU after the last (or, for a new thread, the waker's) CPU;
/// 4. the last CPU;
/// 5. the least loaded CPU, the waker's first on a tie.
pub fn place_wake(
    last_cpu: Option<CpuIndex>,
    waker: Waker,
    idle: CpuSet,
    loads: &[usize],
) -> Placement {
    let count = loads.len().min(MAX_CPUS);
    let online = CpuSet::first(count);
    let idle = idle.intersection(online);
    let last = last_cpu.filter(|cpu| online.contains(*cpu));
    let waker_cpu = Some(waker.cpu).filter(|cpu| online.contains(*cpu));
    let placement = |cpu, rule| Placement { cpu, rule };

    if let Some(cpu) = waker_cpu.filter(|_| waker.goes_idle) {
        return placement(cpu, PlacementRule::WakerGoesIdle);
    }
    if let Some(cpu) = last.filter(|cpu| idle.contains(*cpu)) {
        return placement(cpu, PlacementRule::LastCpuIdle);
    }
    let start = last.or(waker_cpu).unwrap_or(waker.cpu);
    let start = if online.contains(start) {
        start
    } else {
        CpuIndex::FIRST
    };
    if let Some(cpu) = start.cyclic_from(count).find(|cpu| idle.contains(*cpu)) {
        return placement(cpu, PlacementRule::OtherIdleCpu);
    }
    if let Some(cpu) = last {
        return placement(cpu, PlacementRule::LastCpu);
    }
    let least_loaded = start
        .cyclic_from(count)
        .min_by_key(|cpu| loads.get(cpu.get()).copied().unwrap_or(usize::MAX))
        .unwrap_or(start);
    placement(least_loaded, PlacementRule::LeastLoaded)
}

/// The CPU an idle `thief` should steal from: the one with the most stealable entries, the
/// first after the thief on a tie; `None` when no other CPU has any. `loads` holds the
/// stealable count of every CPU.
pub fn choose_steal_victim(thief: CpuIndex, loads: &[usize]) -> Option<CpuIndex> {
    let count = loads.len().min(MAX_CPUS);
    let start = if thief.get() < count {
        thief
    } else {
        CpuIndex::FIRST
    };
    start
        .cyclic_from(count)
        .filter(|cpu| *cpu != thief)
        .map(|cpu| (cpu, loads.get(cpu.get()).copied().unwrap_or(0)))
        .filter(|(_, load)| *load > 0)
        // Keep the first of equal loads, so the CPU nearest after the thief wins a tie.
        .fold(
            None,
            |best: Option<(CpuIndex, usize)>, candidate| match best {
                Some((_, best_load)) if best_load >= candidate.1 => best,
                _ => Some(candidate),
            },
        )
        .map(|(cpu, _)| cpu)
}

/// Turn queue lengths into steal candidates: an idle CPU's queue counts as empty, since that
/// CPU runs it next (it polls, or its IPI is on the way) and taking it away would move the
/// thread off the CPU it was placed on for its warm address space and cache.
pub fn exclude_idle_from_stealing(loads: &mut [usize], idle: CpuSet) {
    for (index, load) in loads.iter_mut().enumerate() {
        if CpuIndex::new(index).is_some_and(|cpu| idle.contains(cpu)) {
            *load = 0;
        }
    }
}

/// The CPU count, checked.
fn checked_cpu_count<T, Q: RunQueues<T, CAPACITY>, const CAPACITY: usize>(
    queues: &Q,
) -> Result<usize, ScheduleError> {
    match queues.cpu_count() {
        count @ 1..=MAX_CPUS => Ok(count),
        _ => Err(ScheduleError::NoSuchCpu),
    }
}

/// Work for `cpu`, which runs no thread (at boot, after its thread blocked or exited, after a
/// halt). Own queue first; else steal from the busiest other queue, trying the others in
/// decreasing order of load; else mark the CPU halting, re-checking the own queue under its
/// lock so a thread enqueued meanwhile is taken instead.
pub fn pick_next<T: Copy + Eq, Q: RunQueues<T, CAPACITY>, const CAPACITY: usize>(
    queues: &Q,
    cpu: CpuIndex,
    now: u64,
) -> Result<Pick<T>, ScheduleError> {
    let count = checked_cpu_count(queues)?;
    if cpu.get() >= count {
        return Err(ScheduleError::NoSuchCpu);
    }
    let own = queues.with_queue(cpu, |queue| {
        queue.look();
        queue.take_next(now)
    })?;
    if let Some(thread) = own {
        return Ok(Pick::Run {
            thread,
            stolen_from: None,
        });
    }
    let mut loads = [0usize; MAX_CPUS];
    for other in CpuIndex::all(count) {
        if let Some(load) = loads.get_mut(other.get()) {
            *load = queues.hint(other).stealable;
        }
    }
    let loads = loads.get_mut(..count).ok_or(ScheduleError::NoSuchCpu)?;
    while let Some(victim) = choose_steal_victim(cpu, loads) {
        if let Some(load) = loads.get_mut(victim.get()) {
            *load = 0;
        }
        if let Some(stolen) = queues.with_queue(victim, |queue| queue.steal(now)) {
            let thread = queues.with_queue(cpu, |queue| queue.adopt(stolen))?;
            return Ok(Pick::Run {
                thread,
                stolen_from: Some(victim),
            });
        }
    }
    let own = queues.with_queue(cpu, |queue| queue.take_next_or_halt(now))?;
    Ok(match own {
        Some(thread) => Pick::Run {
            thread,
            stolen_from: None,
        },
        None => Pick::Halt,
    })
}

/// Queue a thread that became runnable (new, woken, or woken while switching out), chosen by
/// [`place_wake`] from the hints; if the chosen queue is full, the next CPUs in turn. Call
/// with the thread's lock held. Fails only when every queue is full (impossible while the
/// kernel keeps live threads at most `CAPACITY`) or the thread is already queued.
pub fn make_runnable<T: Copy + Eq, Q: RunQueues<T, CAPACITY>, const CAPACITY: usize>(
    queues: &Q,
    thread: T,
    priority: Priority,
    last_cpu: Option<CpuIndex>,
    waker: Waker,
    now: u64,
) -> Result<Wakeup, ScheduleError> {
    let count = checked_cpu_count(queues)?;
    let mut idle = CpuSet::EMPTY;
    let mut loads = [0usize; MAX_CPUS];
    for cpu in CpuIndex::all(count) {
        let hint = queues.hint(cpu);
        if hint.idle {
            idle.insert(cpu);
        }
        if let Some(load) = loads.get_mut(cpu.get()) {
            *load = hint.stealable;
        }
    }
    let placement = place_wake(last_cpu, waker, idle, loads.get(..count).unwrap_or(&[]));
    for cpu in placement.cpu.cyclic_from(count) {
        match queues.with_queue(cpu, |queue| queue.enqueue(thread, priority, now, waker.cpu)) {
            Ok(notify) => {
                return Ok(Wakeup {
                    cpu,
                    rule: placement.rule,
                    notify,
                })
            }
            Err(ScheduleError::QueueFull) => continue,
            Err(error) => return Err(error),
        }
    }
    Err(ScheduleError::QueueFull)
}
