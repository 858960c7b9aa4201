//! Randomized model of 1 to 8 CPUs that drives the policy exactly as the kernel will (queue
//! locks through [`RunQueues::with_queue`], thread states under their own "locks", the
//! switch-out finished as a separate step) and checks the module's invariants after every
//! step. Each step is one kernel critical section; steps of different CPUs interleave freely.
//!
//! Invariants checked (the failure message names the one broken):
//! - `location`: every thread is in exactly the place its phase says (one unpinned queue entry
//!   when ready; current, or switching out, on the CPU its phase names; nowhere when blocked or
//!   dead), so no thread is lost, queued twice, or running on two CPUs.
//! - `dispatch`: only a ready thread is dispatched (a blocked thread never runs).
//! - `starvation`: a queued thread runs within [`STARVATION_BOUND_ROUNDS`] rounds of ticks.
//! - `halt`: a CPU halts only when no queue holds a stealable entry, and a halting CPU's queue
//!   is empty.
//! - `lost wake-up`: an enqueue onto a halting CPU (other than the waker's) sends the IPI.
//! - `placement`: a wake-up never queues behind a busy CPU while another CPU is idle (unless
//!   the waker's CPU goes idle, which then is the target).
//! - `ipi`: a reschedule IPI goes only to a halting CPU or one running a strictly less urgent
//!   thread, never to the sender's CPU.
//! - `address space`: each address space's CPU mask is exactly the CPUs that have it loaded,
//!   and a running thread's address space is the loaded one.

use super::tests::TestQueues;
use super::*;
use proptest::prelude::*;

/// Queue capacity, and so most live threads, in the model.
const CAPACITY: usize = 12;

/// Address spaces (processes) in the model.
const SPACES: usize = 3;

/// Rounds (one tick on every CPU) a queued thread may wait before the model calls it starved:
/// aging, then one tick per older entry of its queue, plus one round of slack for the tick
/// that queued it.
const STARVATION_BOUND_ROUNDS: u64 = AGING_TICKS + CAPACITY as u64 + 1;

/// Thread ids ever created in one run (ids are not reused).
const MOST_THREADS: usize = 400;

type ThreadId = u16;

/// One step of the model; indices are reduced modulo what exists.
#[derive(Clone, Debug)]
enum Event {
    /// A thread on `waker`'s CPU creates a thread.
    Spawn { priority: u8, space: u8, waker: u8 },
    /// Code on `waker` wakes a blocked thread; `sync`: the waking thread is blocking.
    Wake { thread: u8, waker: u8, sync: bool },
    /// The current thread starts blocking (and re-checks its condition).
    BeginBlock { cpu: u8 },
    /// Its condition holds after all.
    CancelBlock { cpu: u8 },
    /// It switches out (`on_block`).
    SwitchOut { cpu: u8 },
    /// The current thread exits.
    Exit { cpu: u8 },
    /// Code on `killer` kills a live thread.
    Kill { thread: u8, killer: u8 },
    /// The timer interrupt.
    Tick { cpu: u8 },
    /// A pending IPI arrives.
    DeliverInterrupt { cpu: u8 },
    /// The switch in progress completes (first thing on the new stack).
    FinishSwitch { cpu: u8 },
    /// A looking CPU runs `pick_next`.
    IdleStep { cpu: u8 },
    /// Time advances one tick and every CPU takes its tick, in an order from `order`.
    Round { order: u64 },
}

#[derive(Debug)]
struct SimThread {
    state: ThreadState,
    priority: Priority,
    space: usize,
    /// Round at which it was last queued, while it is queued.
    queued_since: Option<u64>,
}

#[derive(Debug, Default)]
struct SimCpu {
    /// The thread being switched away from, until `finish_switch`.
    switching_out: Option<(ThreadId, SwitchReason)>,
    /// An IPI is pending (reschedule or kill).
    interrupt_pending: bool,
    /// The current thread is in its block path (interrupts off until it switches out).
    in_block_path: bool,
    loaded_space: Option<usize>,
}

/// Counts reported by the long seeded run.
#[derive(Debug, Default, Clone, Copy)]
struct Statistics {
    steps: u64,
    rounds: u64,
    reschedule_interrupts: u64,
    steals: u64,
    halts: u64,
    switches: u64,
    cr3_writes: u64,
    longest_wait: u64,
}

struct Model {
    queues: TestQueues<CAPACITY>,
    cpus: Vec<SimCpu>,
    threads: Vec<SimThread>,
    space_masks: [CpuSet; SPACES],
    mixed_priorities: bool,
    round: u64,
    statistics: Statistics,
}

type Checked = Result<(), String>;

fn cpu_index(index: usize) -> CpuIndex {
    CpuIndex::new(index).expect("model CPUs are below MAX_CPUS")
}

impl Model {
    fn new(cpus: usize, mixed_priorities: bool) -> Self {
        Self {
            queues: TestQueues::new(cpus),
            cpus: (0..cpus).map(|_| SimCpu::default()).collect(),
            threads: Vec::new(),
            space_masks: [CpuSet::EMPTY; SPACES],
            mixed_priorities,
            round: 0,
            statistics: Statistics::default(),
        }
    }

    fn cpu(&self, index: u8) -> CpuIndex {
        cpu_index(usize::from(index) % self.cpus.len())
    }

    fn current(&self, cpu: CpuIndex) -> Option<ThreadId> {
        self.queues.queue(cpu).current()
    }

    fn thread(&mut self, id: ThreadId) -> &mut SimThread {
        &mut self.threads[usize::from(id)]
    }

    fn live_threads(&self) -> usize {
        self.threads
            .iter()
            .filter(|thread| thread.state.phase() != Phase::Dead)
            .count()
    }

    /// Threads whose phase satisfies `wanted`.
    fn threads_where(&self, wanted: impl Fn(Phase) -> bool) -> Vec<ThreadId> {
        (0..self.threads.len())
            .filter(|index| wanted(self.threads[*index].state.phase()))
            .map(|index| index as ThreadId)
            .collect()
    }

    fn apply(&mut self, event: &Event) -> Checked {
        self.statistics.steps += 1;
        match *event {
            Event::Spawn {
                priority,
                space,
                waker,
            } => self.spawn(priority, space, self.cpu(waker)),
            Event::Wake {
                thread,
                waker,
                sync,
            } => {
                let blocked = self.threads_where(|phase| phase == Phase::Blocked);
                match blocked.get(usize::from(thread) % blocked.len().max(1)) {
                    Some(&id) => self.wake(id, self.cpu(waker), sync),
                    None => Ok(()),
                }
            }
            Event::BeginBlock { cpu } => self.begin_block(self.cpu(cpu)),
            Event::CancelBlock { cpu } => self.cancel_block(self.cpu(cpu)),
            Event::SwitchOut { cpu } => self.switch_out(self.cpu(cpu)),
            Event::Exit { cpu } => self.exit_current(self.cpu(cpu), false),
            Event::Kill { thread, killer } => {
                let live = self.threads_where(|phase| phase != Phase::Dead);
                match live.get(usize::from(thread) % live.len().max(1)) {
                    Some(&id) => self.kill(id, self.cpu(killer)),
                    None => Ok(()),
                }
            }
            Event::Tick { cpu } => self.tick(self.cpu(cpu)),
            Event::DeliverInterrupt { cpu } => self.deliver_interrupt(self.cpu(cpu)),
            Event::FinishSwitch { cpu } => {
                let cpu = self.cpu(cpu);
                self.finish_switch(cpu)?;
                self.idle_step_if_idle(cpu)
            }
            Event::IdleStep { cpu } => {
                let cpu = self.cpu(cpu);
                self.finish_switch(cpu)?;
                if self.queues.queue(cpu).activity() == Activity::Looking {
                    self.idle_step(cpu)?;
                }
                Ok(())
            }
            Event::Round { order } => self.round(order),
        }?;
        self.check_all()
    }

    // --- steps ------------------------------------------------------------------------------

    fn spawn(&mut self, priority: u8, space: u8, waker: CpuIndex) -> Checked {
        if self.live_threads() >= CAPACITY || self.threads.len() >= MOST_THREADS {
            return Ok(());
        }
        self.finish_switch(waker)?;
        let priority = if self.mixed_priorities {
            [Priority(10), Priority::NORMAL, Priority(200)][usize::from(priority) % 3]
        } else {
            Priority::NORMAL
        };
        let id = self.threads.len() as ThreadId;
        self.threads.push(SimThread {
            state: ThreadState::new(),
            priority,
            space: usize::from(space) % SPACES,
            queued_since: None,
        });
        self.make_runnable(id, None, waker, false)
    }

    fn wake(&mut self, id: ThreadId, waker: CpuIndex, sync: bool) -> Checked {
        self.finish_switch(waker)?;
        match self.thread(id).state.wake() {
            WakeAction::Place { last_cpu } => self.make_runnable(id, last_cpu, waker, sync),
            WakeAction::AlreadyOnCpu | WakeAction::Nothing => Ok(()),
        }
    }

    fn kill(&mut self, id: ThreadId, killer: CpuIndex) -> Checked {
        self.finish_switch(killer)?;
        match self.thread(id).state.request_kill() {
            KillAction::Interrupt(cpu) => {
                self.cpus[cpu.get()].interrupt_pending = true;
                Ok(())
            }
            KillAction::Place { last_cpu } => self.make_runnable(id, last_cpu, killer, false),
            KillAction::Nothing => Ok(()),
        }
    }

    fn begin_block(&mut self, cpu: CpuIndex) -> Checked {
        self.finish_switch(cpu)?;
        let Some(id) = self.current(cpu) else {
            return Ok(());
        };
        if self.cpus[cpu.get()].in_block_path {
            return Ok(());
        }
        let decision = self
            .thread(id)
            .state
            .begin_block()
            .map_err(|error| format!("begin_block: {error}"))?;
        if decision == BlockDecision::Proceed {
            self.cpus[cpu.get()].in_block_path = true;
        }
        Ok(())
    }

    fn cancel_block(&mut self, cpu: CpuIndex) -> Checked {
        let Some(id) = self.current(cpu) else {
            return Ok(());
        };
        if !self.cpus[cpu.get()].in_block_path {
            return Ok(());
        }
        self.cpus[cpu.get()].in_block_path = false;
        self.thread(id)
            .state
            .cancel_block()
            .map_err(|error| format!("cancel_block: {error}"))
    }

    /// The block path ends: `on_block` and the switch (finished by a later step).
    fn switch_out(&mut self, cpu: CpuIndex) -> Checked {
        if !self.cpus[cpu.get()].in_block_path {
            return Ok(());
        }
        self.cpus[cpu.get()].in_block_path = false;
        let now = self.round;
        let handoff = self
            .queues
            .with_queue(cpu, |queue| queue.on_block(now))
            .map_err(|error| format!("on_block: {error}"))?;
        self.hand_off(cpu, handoff)
    }

    /// The current thread exits (on its own, or at its kill check when `killed`).
    fn exit_current(&mut self, cpu: CpuIndex, killed: bool) -> Checked {
        self.finish_switch(cpu)?;
        let Some(id) = self.current(cpu) else {
            return Ok(());
        };
        if self.cpus[cpu.get()].in_block_path {
            return Ok(());
        }
        if killed && !self.thread(id).state.kill_requested() {
            return Ok(());
        }
        self.thread(id)
            .state
            .exit()
            .map_err(|error| format!("exit: {error}"))?;
        let now = self.round;
        let handoff = self
            .queues
            .with_queue(cpu, |queue| queue.on_exit(now))
            .map_err(|error| format!("on_exit: {error}"))?;
        self.hand_off(cpu, handoff)
    }

    fn hand_off(&mut self, cpu: CpuIndex, handoff: Handoff<ThreadId>) -> Checked {
        self.cpus[cpu.get()].switching_out = Some((handoff.previous, SwitchReason::Stopped));
        if let Some(next) = handoff.next {
            self.dispatch(cpu, next)?;
        }
        Ok(())
    }

    /// The timer interrupt on `cpu`.
    fn tick(&mut self, cpu: CpuIndex) -> Checked {
        self.finish_switch(cpu)?;
        if self.cpus[cpu.get()].in_block_path {
            // Interrupts are off in the block path; the tick waits.
            return Ok(());
        }
        match self.current(cpu) {
            Some(id) if self.thread(id).state.kill_requested() => self.exit_current(cpu, true),
            Some(_) => {
                let now = self.round;
                let decision = self.queues.with_queue(cpu, |queue| queue.on_tick(now));
                self.preemption(cpu, decision)
            }
            None => self.idle_step(cpu),
        }
    }

    /// A pending IPI arrives (interrupts are on: user mode or the idle halt).
    fn deliver_interrupt(&mut self, cpu: CpuIndex) -> Checked {
        if !self.cpus[cpu.get()].interrupt_pending || self.cpus[cpu.get()].in_block_path {
            return Ok(());
        }
        self.cpus[cpu.get()].interrupt_pending = false;
        self.finish_switch(cpu)?;
        match self.current(cpu) {
            Some(id) if self.thread(id).state.kill_requested() => self.exit_current(cpu, true),
            Some(_) => {
                let now = self.round;
                let decision = self
                    .queues
                    .with_queue(cpu, |queue| queue.on_reschedule(now));
                self.preemption(cpu, decision)
            }
            None => self.idle_step(cpu),
        }
    }

    fn preemption(&mut self, cpu: CpuIndex, decision: TickDecision<ThreadId>) -> Checked {
        match decision {
            TickDecision::Continue => Ok(()),
            TickDecision::Switch { previous, next } => {
                self.thread(previous).queued_since = Some(self.round);
                self.cpus[cpu.get()].switching_out = Some((previous, SwitchReason::Preempted));
                self.dispatch(cpu, next)
            }
            TickDecision::Idle => Err(format!(
                "location: cpu {cpu:?} runs a thread but its queue says idle"
            )),
        }
    }

    /// First thing on the new stack: unpin, then the previous thread's switch-out.
    fn finish_switch(&mut self, cpu: CpuIndex) -> Checked {
        let Some((previous, reason)) = self.cpus[cpu.get()].switching_out.take() else {
            return Ok(());
        };
        self.queues.with_queue(cpu, |queue| queue.finish_switch());
        let after = self
            .thread(previous)
            .state
            .switched_out(reason)
            .map_err(|error| format!("switched_out: {error}"))?;
        match after {
            AfterSwitch::Place { last_cpu } => self.make_runnable(previous, last_cpu, cpu, false),
            AfterSwitch::Nothing | AfterSwitch::Reap => Ok(()),
        }
    }

    fn idle_step_if_idle(&mut self, cpu: CpuIndex) -> Checked {
        if self.current(cpu).is_none() {
            self.idle_step(cpu)?;
        }
        Ok(())
    }

    /// The idle loop's `pick_next`.
    fn idle_step(&mut self, cpu: CpuIndex) -> Checked {
        let pick = pick_next(&self.queues, cpu, self.round)
            .map_err(|error| format!("pick_next: {error}"))?;
        match pick {
            Pick::Run {
                thread,
                stolen_from,
            } => {
                if stolen_from.is_some() {
                    self.statistics.steals += 1;
                }
                self.dispatch(cpu, thread)
            }
            Pick::Halt => {
                self.statistics.halts += 1;
                for other in CpuIndex::all(self.cpus.len()) {
                    let hint = self.queues.queue(other).hint();
                    if hint.stealable > 0 {
                        return Err(format!(
                            "halt: cpu {cpu:?} halted while cpu {other:?} had {} stealable",
                            hint.stealable
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// A run queue made `id` current on `cpu`; load its address space if needed.
    fn dispatch(&mut self, cpu: CpuIndex, id: ThreadId) -> Checked {
        self.statistics.switches += 1;
        let round = self.round;
        let thread = &mut self.threads[usize::from(id)];
        thread
            .state
            .dispatch(cpu)
            .map_err(|error| format!("dispatch: thread {id} on cpu {cpu:?}: {error}"))?;
        if let Some(since) = thread.queued_since.take() {
            let waited = round.saturating_sub(since);
            self.statistics.longest_wait = self.statistics.longest_wait.max(waited);
        }
        let space = thread.space;
        let state = &mut self.cpus[cpu.get()];
        match address_space_switch(state.loaded_space, Some(space)) {
            AddressSpaceSwitch::Keep => {}
            AddressSpaceSwitch::Load { previous, next } => {
                self.space_masks[next].insert(cpu);
                state.loaded_space = Some(next);
                self.statistics.cr3_writes += 1;
                if let Some(previous) = previous {
                    self.space_masks[previous].remove(cpu);
                }
            }
        }
        Ok(())
    }

    /// `make_runnable` from code on `waker`, with the IPI and placement checks.
    fn make_runnable(
        &mut self,
        id: ThreadId,
        last_cpu: Option<CpuIndex>,
        waker: CpuIndex,
        sync: bool,
    ) -> Checked {
        let waker_idle = self.current(waker).is_none();
        let goes_idle = waker_idle || (sync && self.cpus[waker.get()].in_block_path);
        let activities: Vec<Activity> = CpuIndex::all(self.cpus.len())
            .map(|cpu| self.queues.queue(cpu).activity())
            .collect();
        let idle: Vec<CpuIndex> = CpuIndex::all(self.cpus.len())
            .filter(|cpu| self.current(*cpu).is_none())
            .collect();
        let priority = self.thread(id).priority;
        let wakeup = make_runnable(
            &self.queues,
            id,
            priority,
            last_cpu,
            Waker {
                cpu: waker,
                goes_idle,
            },
            self.round,
        )
        .map_err(|error| format!("make_runnable: {error}"))?;
        self.thread(id).queued_since = Some(self.round);
        let target = wakeup.cpu;
        let before = activities[target.get()];

        if goes_idle && target != waker {
            return Err(format!(
                "placement: waker {waker:?} goes idle but thread went to {target:?}"
            ));
        }
        if !goes_idle && !idle.is_empty() && !idle.contains(&target) {
            return Err(format!(
                "placement: thread queued on busy {target:?} while {idle:?} were idle"
            ));
        }
        match wakeup.notify {
            Notify::Interrupt(cpu) => {
                let urgent = match before {
                    Activity::Halting => true,
                    Activity::Running { priority: running } => running < priority,
                    Activity::Looking => false,
                };
                if cpu != target || cpu == waker || !urgent {
                    return Err(format!(
                        "ipi: to {cpu:?} (target {target:?}, waker {waker:?}) running {before:?} for priority {priority:?}"
                    ));
                }
                self.statistics.reschedule_interrupts += 1;
                self.cpus[cpu.get()].interrupt_pending = true;
            }
            Notify::RescheduleLocal => {
                if target != waker {
                    return Err(format!("ipi: local reschedule for remote {target:?}"));
                }
                if !self.cpus[waker.get()].in_block_path {
                    self.cpus[waker.get()].interrupt_pending = true;
                }
            }
            Notify::Nothing => {
                if before == Activity::Halting && target != waker {
                    return Err(format!(
                        "lost wake-up: {target:?} was halting and got no IPI"
                    ));
                }
            }
        }
        // Code on an idle CPU runs in its idle loop or in an interrupt that ended its halt:
        // it goes back to `pick_next`.
        if waker_idle {
            self.idle_step(waker)?;
        }
        Ok(())
    }

    /// Time advances; every CPU completes a pending block path and takes its tick.
    fn round(&mut self, order: u64) -> Checked {
        self.round += 1;
        self.statistics.rounds += 1;
        let mut cpus: Vec<CpuIndex> = CpuIndex::all(self.cpus.len()).collect();
        let mut state = order | 1;
        for index in (1..cpus.len()).rev() {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            cpus.swap(index, (state >> 33) as usize % (index + 1));
        }
        for cpu in cpus {
            self.switch_out(cpu)?;
            self.tick(cpu)?;
        }
        Ok(())
    }

    // --- invariants ---------------------------------------------------------------------------

    fn check_all(&self) -> Checked {
        self.check_locations()?;
        self.check_halting()?;
        self.check_address_spaces()?;
        self.check_starvation()
    }

    fn check_locations(&self) -> Checked {
        let count = self.threads.len();
        let mut entries: Vec<Vec<(CpuIndex, bool)>> = vec![Vec::new(); count];
        let mut current: Vec<Vec<CpuIndex>> = vec![Vec::new(); count];
        let mut leaving: Vec<Vec<(CpuIndex, SwitchReason)>> = vec![Vec::new(); count];
        for cpu in CpuIndex::all(self.cpus.len()) {
            let queue = self.queues.queue(cpu);
            for entry in queue.entries() {
                entries[usize::from(entry.thread)].push((cpu, entry.pinned));
            }
            if let Some(id) = queue.current() {
                current[usize::from(id)].push(cpu);
            }
            if let Some((id, reason)) = self.cpus[cpu.get()].switching_out {
                leaving[usize::from(id)].push((cpu, reason));
            }
            if self.cpus[cpu.get()].in_block_path && queue.current().is_none() {
                return Err(format!(
                    "location: cpu {cpu:?} in a block path without a thread"
                ));
            }
        }
        for id in 0..count {
            let phase = self.threads[id].state.phase();
            let (entries, current, leaving) = (&entries[id], &current[id], &leaving[id]);
            let fits = match phase {
                Phase::Ready => {
                    matches!(entries[..], [(_, false)]) && current.is_empty() && leaving.is_empty()
                }
                Phase::Running(cpu) => {
                    let on_cpu = current[..] == [cpu] && entries.is_empty() && leaving.is_empty();
                    let preempted = current.is_empty()
                        && entries[..] == [(cpu, true)]
                        && leaving[..] == [(cpu, SwitchReason::Preempted)];
                    let woken_while_leaving = current.is_empty()
                        && entries.is_empty()
                        && leaving[..] == [(cpu, SwitchReason::Stopped)];
                    on_cpu || preempted || woken_while_leaving
                }
                Phase::Blocking(cpu) => {
                    entries.is_empty()
                        && ((current[..] == [cpu] && leaving.is_empty())
                            || (current.is_empty()
                                && leaving[..] == [(cpu, SwitchReason::Stopped)]))
                }
                Phase::Exiting(cpu) => {
                    entries.is_empty()
                        && current.is_empty()
                        && leaving[..] == [(cpu, SwitchReason::Stopped)]
                }
                Phase::Blocked | Phase::Dead => {
                    entries.is_empty() && current.is_empty() && leaving.is_empty()
                }
            };
            if !fits {
                return Err(format!(
                    "location: thread {id} in phase {phase:?} is queued at {entries:?}, current on {current:?}, leaving {leaving:?}"
                ));
            }
        }
        Ok(())
    }

    fn check_halting(&self) -> Checked {
        for cpu in CpuIndex::all(self.cpus.len()) {
            let queue = self.queues.queue(cpu);
            if queue.activity() == Activity::Halting && !queue.is_empty() {
                return Err(format!(
                    "halt: cpu {cpu:?} is halting with {} queued",
                    queue.len()
                ));
            }
        }
        Ok(())
    }

    fn check_address_spaces(&self) -> Checked {
        for (space, mask) in self.space_masks.iter().enumerate() {
            let loaded = CpuIndex::all(self.cpus.len())
                .filter(|cpu| self.cpus[cpu.get()].loaded_space == Some(space))
                .fold(CpuSet::EMPTY, CpuSet::with);
            if loaded != *mask {
                return Err(format!(
                    "address space: {space} mask {mask:?} but loaded on {loaded:?}"
                ));
            }
        }
        for cpu in CpuIndex::all(self.cpus.len()) {
            if let Some(id) = self.current(cpu) {
                let space = self.threads[usize::from(id)].space;
                if self.cpus[cpu.get()].loaded_space != Some(space) {
                    return Err(format!(
                        "address space: thread {id} runs on {cpu:?} without its space loaded"
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_starvation(&self) -> Checked {
        for (id, thread) in self.threads.iter().enumerate() {
            if let Some(since) = thread.queued_since {
                if self.round.saturating_sub(since) > STARVATION_BOUND_ROUNDS {
                    return Err(format!(
                        "starvation: thread {id} ({:?}) queued since round {since}, now {}",
                        thread.priority, self.round
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Run `events` on a fresh model; the error names the step and the broken invariant.
fn run(cpus: usize, mixed_priorities: bool, events: &[Event]) -> Result<Statistics, String> {
    let mut model = Model::new(cpus, mixed_priorities);
    for cpu in CpuIndex::all(cpus) {
        model.idle_step(cpu)?;
    }
    for (step, event) in events.iter().enumerate() {
        model
            .apply(event)
            .map_err(|error| format!("step {step} ({event:?}): {error}"))?;
    }
    Ok(model.statistics)
}

fn event() -> impl Strategy<Value = Event> {
    let byte = any::<u8>;
    prop_oneof![
        3 => (byte(), byte(), byte()).prop_map(|(priority, space, waker)| Event::Spawn { priority, space, waker }),
        6 => (byte(), byte(), any::<bool>()).prop_map(|(thread, waker, sync)| Event::Wake { thread, waker, sync }),
        4 => byte().prop_map(|cpu| Event::BeginBlock { cpu }),
        1 => byte().prop_map(|cpu| Event::CancelBlock { cpu }),
        4 => byte().prop_map(|cpu| Event::SwitchOut { cpu }),
        1 => byte().prop_map(|cpu| Event::Exit { cpu }),
        1 => (byte(), byte()).prop_map(|(thread, killer)| Event::Kill { thread, killer }),
        4 => byte().prop_map(|cpu| Event::Tick { cpu }),
        4 => byte().prop_map(|cpu| Event::DeliverInterrupt { cpu }),
        4 => byte().prop_map(|cpu| Event::FinishSwitch { cpu }),
        2 => byte().prop_map(|cpu| Event::IdleStep { cpu }),
        3 => any::<u64>().prop_map(|order| Event::Round { order }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn policy_keeps_every_invariant(
        cpus in 1usize..=8,
        mixed_priorities in any::<bool>(),
        events in proptest::collection::vec(event(), 1..400),
    ) {
        if let Err(failure) = run(cpus, mixed_priorities, &events) {
            prop_assert!(false, "{}", failure);
        }
    }
}

/// A small deterministic generator (SplitMix64) for the long run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut value = self.0;
        value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        value ^ (value >> 31)
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    /// An event with the same weights as the proptest strategy; `busy` runs (CPU-bound
    /// threads) block rarely, so aging and stealing are exercised under load.
    fn event(&mut self, busy: bool) -> Event {
        let weights: [u64; 12] = if busy {
            [3, 2, 1, 1, 1, 1, 1, 4, 4, 4, 2, 6]
        } else {
            [3, 6, 4, 1, 4, 1, 1, 4, 4, 4, 2, 3]
        };
        let mut pick = self.next() % weights.iter().sum::<u64>();
        let mut kind = 0;
        while pick >= weights[kind] {
            pick -= weights[kind];
            kind += 1;
        }
        let (a, b) = (self.byte(), self.byte());
        match kind {
            0 => Event::Spawn {
                priority: a,
                space: b,
                waker: self.byte(),
            },
            1 => Event::Wake {
                thread: a,
                waker: b,
                sync: self.next().is_multiple_of(2),
            },
            2 => Event::BeginBlock { cpu: a },
            3 => Event::CancelBlock { cpu: a },
            4 => Event::SwitchOut { cpu: a },
            5 => Event::Exit { cpu: a },
            6 => Event::Kill {
                thread: a,
                killer: b,
            },
            7 => Event::Tick { cpu: a },
            8 => Event::DeliverInterrupt { cpu: a },
            9 => Event::FinishSwitch { cpu: a },
            10 => Event::IdleStep { cpu: a },
            _ => Event::Round { order: self.next() },
        }
    }
}

/// Runs of the seeded model, and steps per run.
const SEEDED_RUNS: u64 = 160;
const SEEDED_STEPS: usize = 2_000;

#[test]
fn seeded_long_runs_keep_every_invariant() {
    let mut total = Statistics::default();
    for seed in 0..SEEDED_RUNS {
        let mut random = SplitMix(seed);
        let cpus = 1 + (seed % 8) as usize;
        let mixed_priorities = !seed.is_multiple_of(3);
        let busy = seed.is_multiple_of(2);
        let events: Vec<Event> = (0..SEEDED_STEPS).map(|_| random.event(busy)).collect();
        let statistics = run(cpus, mixed_priorities, &events)
            .unwrap_or_else(|failure| panic!("seed {seed}, {cpus} cpus: {failure}"));
        total.steps += statistics.steps;
        total.rounds += statistics.rounds;
        total.reschedule_interrupts += statistics.reschedule_interrupts;
        total.steals += statistics.steals;
        total.halts += statistics.halts;
        total.switches += statistics.switches;
        total.cr3_writes += statistics.cr3_writes;
        total.longest_wait = total.longest_wait.max(statistics.longest_wait);
    }
    println!(
        "scheduler model: {SEEDED_RUNS} runs, {} interleaved steps, {} rounds, {} dispatches, {} CR3 writes, {} steals, {} halts, {} reschedule IPIs, longest wait {} rounds (bound {STARVATION_BOUND_ROUNDS})",
        total.steps, total.rounds, total.switches, total.cr3_writes, total.steals, total.halts,
        total.reschedule_interrupts, total.longest_wait
    );
    assert!(total.steals > 0 && total.halts > 0 && total.reschedule_interrupts > 0);
    assert!(
        total.longest_wait > AGING_TICKS,
        "aging was never exercised"
    );
}
