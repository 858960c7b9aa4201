//! Decisions that span CPUs: where a woken thread goes and whom an idle CPU steals from.
//! [`super::make_runnable`] and [`super::pick_next`] are built on them.
//!
//! Invariants:
//! - Every function here is pure: it reads hints (queue lengths and the idle mask, which may
//!   be stale) and always returns a CPU below the CPU count, or `None`. A stale hint costs
//!   placement quality, never a lost wake-up: the IPI decision reads the halting mask after
//!   the thread is queued (see `run_queues`).

use super::{CpuIndex, CpuSet, MAX_CPUS};

/// Which placement rule chose the CPU (first match wins, in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlacementRule {
    /// The thread's last CPU is idle: cache affinity.
    LastCpuIdle,
    /// Another CPU is idle: run now rather than wait behind a busy CPU.
    OtherIdleCpu,
    /// Every CPU is busy: the last CPU, where the thread waits its turn.
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

/// Choose the CPU for a thread that becomes runnable. `last_cpu` is where it last ran
/// (`None` for a new thread), `waker` the CPU the waking code runs on, `idle` the CPUs in
/// their idle loop, `loads` the queue length of every CPU (its length is the CPU count). Hints may be stale; out-of-range CPUs are
/// ignored (with no CPU at all the answer is CPU 0). The rules, first match wins:
///
/// 1. the last CPU when idle;
/// 2. the first idle CPU after the last (or, for a new thread, the waker's) CPU;
/// 3. the last CPU;
/// 4. the least loaded CPU, the waker's first on a tie.
pub fn place_wake(
    last_cpu: Option<CpuIndex>,
    waker: CpuIndex,
    idle: CpuSet,
    loads: &[usize],
) -> Placement {
    place_wake_with(last_cpu, waker, idle, loads.len(), |cpu| {
        loads.get(cpu.get()).copied().unwrap_or(usize::MAX)
    })
}

/// [`place_wake`] with the queue lengths read on demand: `count` CPUs,
/// `load(cpu)` the length of one CPU's queue. Only rule 4 reads lengths,
/// so a wake-up that rules 1 to 3 place reads none (and builds no array
/// of them).
pub fn place_wake_with(
    last_cpu: Option<CpuIndex>,
    waker: CpuIndex,
    idle: CpuSet,
    count: usize,
    load: impl Fn(CpuIndex) -> usize,
) -> Placement {
    let count = count.min(MAX_CPUS);
    let online = CpuSet::first(count);
    let idle = idle.intersection(online);
    let last = last_cpu.filter(|cpu| online.contains(*cpu));
    let waker_cpu = Some(waker).filter(|cpu| online.contains(*cpu));
    let placement = |cpu, rule| Placement { cpu, rule };

    if let Some(cpu) = last.filter(|cpu| idle.contains(*cpu)) {
        return placement(cpu, PlacementRule::LastCpuIdle);
    }
    let start = last.or(waker_cpu).unwrap_or(waker);
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
        .min_by_key(|cpu| load(*cpu))
        .unwrap_or(start);
    placement(least_loaded, PlacementRule::LeastLoaded)
}

/// The CPU an idle `thief` should steal from: the one with the most stealable entries, the
/// first after the thief on a tie; `None` when no other CPU has any. `loads` holds the
/// stealable count of every CPU (see [`exclude_idle_from_stealing`]).
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
