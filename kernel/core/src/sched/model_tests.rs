//! Interleaving model of the kernel's scheduler on 1 to 8 CPUs. Each CPU executes the
//! kernel's code paths (`kernel/src/sched.rs`, the idle loop in the platform layer) as a
//! sequence of steps, one step per critical section, calling the same `kcore::sched` functions
//! in the same order; steps of different CPUs interleave freely, and the module's invariants
//! are checked after every step.
//!
//! The steps of one CPU, named after the kernel code they stand for ([`Context`]):
//! - scheduler loop: `pick_next` (queue locks), then `run`'s dispatch under the thread's run
//!   lock with the CR3 decision, then the switch; after the thread switches back, `run`'s
//!   epilogue (`switched_out`, requeue) under the run lock;
//! - idle: the idle bit, polling `work_waiting`, the halting bit and fence, the last check,
//!   `sti; hlt` until a tick or an IPI;
//! - a thread: user mode (system calls, ticks and IPIs happen here), `block_until` (set
//!   `blocked`, re-check, switch out or cancel), `exit_current`, the kill check on every return
//!   towards user mode;
//! - a tick preempts when `should_preempt`; a wake-up (`Thread::wake`, `Thread::start`, timer
//!   expiry) and a kill (`Thread::kill`) each run under the woken thread's run lock, with the
//!   IPI sent before it is released.
//!
//! Invariants checked (the failure message names the one broken):
//! - `location`: each thread is in exactly the place its run state says: on one CPU when
//!   `on_cpu` (and that CPU is its last CPU), in one queue or in the hands of one scheduler
//!   loop when runnable and off every CPU, nowhere when blocked or ended.
//! - `dispatch`: only a runnable thread is dispatched.
//! - `lost wake-up`: a halted CPU whose queue holds a thread has an IPI pending.
//! - `idle mask`: the idle and halting bits are exactly those of CPUs in those idle steps.
//! - `ipi`: a wake-up interrupts only the target, only when halting, never the waker's CPU.
//! - `placement`: a wake-up never queues behind a busy CPU while another CPU is idle.
//! - `kill`: a killed thread never stays blocked, and one in user mode has an IPI pending.
//! - `starvation`: a queued thread runs within [`STARVATION_BOUND_ROUNDS`] rounds of ticks.
//! - `address space`: each address space's CPU mask is exactly the CPUs that have it loaded,
//!   a thread on a CPU has its address space loaded there, and a halted CPU holds no address
//!   space of a process that exited before the CPU last went idle.

use super::tests::TestQueues;
use super::*;
use proptest::prelude::*;

/// Most live threads in the model.
const MOST_LIVE: usize = 12;

/// Address spaces (processes) in the model.
const SPACES: usize = 3;

/// Rounds (every CPU settles and takes a tick) a queued thread may wait: one per thread that
/// can be ahead of it in a FIFO, plus one for the round that queued it and one for its own
/// dispatch.
const STARVATION_BOUND_ROUNDS: u64 = MOST_LIVE as u64 + 2;

/// Thread ids ever created in one run (ids are not reused).
const MOST_THREADS: usize = 400;

/// Steps one CPU may take to reach user mode or a halt in a round before the model calls it
/// stuck: enough for every live thread to be taken, run to its kill check and end (about six
/// steps each), and then to go idle.
const SETTLE_STEPS: usize = 8 * MOST_LIVE + 16;

type ThreadId = u16;

/// What a CPU executes, between two steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Context {
    /// The top of the scheduler loop: `pick_next` next.
    Loop,
    /// `pick_next` returned this thread (off every queue); `run`'s dispatch is next.
    Picked(ThreadId),
    /// Switched to this thread; it resumes where it switched out.
    Resumed(ThreadId),
    /// The thread is in user mode: interrupts on.
    User(ThreadId),
    /// The thread set `blocked` in `block_until` and re-checks its condition next.
    Blocking(ThreadId),
    /// The thread heads back to user mode: the kill check is next.
    Returning(ThreadId),
    /// The thread switched back to the loop; `run`'s epilogue is next.
    SwitchedBack(ThreadId),
    /// The idle loop polls `work_waiting` (idle bit set).
    Polling,
    /// The halting bit is set and fenced; the last `work_waiting` check is next.
    HaltCheck,
    /// `sti; hlt`: interrupts on.
    Halted,
}

/// Where a thread continues when a CPU switches back to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resume {
    /// First entry, or after a preemption: towards user mode (kill check first).
    Returning,
    /// Inside `block_until`: set `blocked` again and re-check.
    Blocking,
}

/// What a thread in user mode asks for.
#[derive(Clone, Copy, Debug)]
enum Call {
    /// Wait (for a completion, a park word, a join...).
    Block,
    /// Create a thread in address space `space`.
    Spawn { space: u8 },
    /// Wake a thread (an endpoint reply, an unpark...).
    Wake { thread: u8 },
    /// Kill a thread (process exit).
    Kill { thread: u8 },
    /// End the calling thread.
    Exit,
    /// End the calling thread's process: kill every thread of its address space.
    ExitProcess,
}

/// One step of the model; indices are reduced modulo what exists.
#[derive(Clone, Debug)]
enum Event {
    /// The CPU takes the next step of its context; `choice` decides where the kernel's code
    /// depends on something the model does not hold (a wait condition, the poll's end).
    Step { cpu: u8, choice: bool },
    /// A thread in user mode on `cpu` makes a system call.
    Syscall { cpu: u8, call: Call },
    /// The timer interrupt on `cpu`; `expiry` wakes that thread first (a due timer).
    Tick { cpu: u8, expiry: Option<u8> },
    /// A pending IPI reaches `cpu`.
    DeliverInterrupt { cpu: u8 },
    /// Every CPU reaches user mode or a halt, then takes its tick, in an order from `order`.
    Round { order: u64 },
}

#[derive(Debug)]
struct SimThread {
    state: RunState,
    killed: bool,
    space: usize,
    resume: Resume,
    /// Round at which it was queued, while it is queued.
    queued_since: Option<u64>,
}

#[derive(Debug)]
struct SimCpu {
    context: Context,
    /// The step at which the CPU last passed `release_exited_space`.
    released_at: u64,
    interrupt_pending: bool,
    loaded_space: Option<usize>,
}

/// Counts reported by the long seeded run.
#[derive(Debug, Default, Clone, Copy)]
struct Statistics {
    steps: u64,
    rounds: u64,
    dispatches: u64,
    cr3_writes: u64,
    steals: u64,
    halts: u64,
    wake_interrupts: u64,
    preemptions: u64,
    kills: u64,
    space_releases: u64,
    longest_wait: u64,
}

struct Model {
    queues: TestQueues,
    cpus: Vec<SimCpu>,
    threads: Vec<SimThread>,
    space_masks: [CpuSet; SPACES],
    /// Address spaces whose process has exited (no new thread starts in them).
    exited_spaces: [bool; SPACES],
    /// The step at which each address space's process last exited.
    exited_at: [u64; SPACES],
    round: u64,
    statistics: Statistics,
}

type Checked = Result<(), String>;

fn cpu_index(index: usize) -> CpuIndex {
    CpuIndex::new(index).expect("model CPUs are below MAX_CPUS")
}

impl Model {
    fn new(cpus: usize) -> Self {
        Self {
            queues: TestQueues::new(cpus),
            cpus: (0..cpus)
                .map(|_| SimCpu {
                    context: Context::Loop,
                    released_at: 0,
                    interrupt_pending: false,
                    loaded_space: None,
                })
                .collect(),
            threads: Vec::new(),
            space_masks: [CpuSet::EMPTY; SPACES],
            exited_spaces: [false; SPACES],
            exited_at: [0; SPACES],
            round: 0,
            statistics: Statistics::default(),
        }
    }

    fn cpu(&self, index: u8) -> CpuIndex {
        cpu_index(usize::from(index) % self.cpus.len())
    }

    /// The CPU chosen by `pick` among those whose context satisfies `wanted`, if any: events
    /// go where they can happen, so runs with few threads on many CPUs are not mostly no-ops.
    fn cpu_where(&self, pick: u8, wanted: impl Fn(Context) -> bool) -> Option<CpuIndex> {
        let matching: Vec<CpuIndex> = CpuIndex::all(self.cpus.len())
            .filter(|cpu| wanted(self.context(*cpu)))
            .collect();
        matching
            .get(usize::from(pick) % matching.len().max(1))
            .copied()
    }

    /// Whether [`Self::step`] does something in `context` (user mode and a halt wait for an
    /// event instead).
    fn can_step(context: Context) -> bool {
        !matches!(context, Context::User(_) | Context::Halted)
    }

    fn context(&self, cpu: CpuIndex) -> Context {
        self.cpus[cpu.get()].context
    }

    fn set_context(&mut self, cpu: CpuIndex, context: Context) {
        self.cpus[cpu.get()].context = context;
    }

    fn thread(&mut self, id: ThreadId) -> &mut SimThread {
        &mut self.threads[usize::from(id)]
    }

    fn live(&self) -> Vec<ThreadId> {
        (0..self.threads.len())
            .filter(|index| !self.threads[*index].state.dead())
            .map(|index| index as ThreadId)
            .collect()
    }

    /// A live thread chosen by `pick`, if any.
    fn live_thread(&self, pick: u8) -> Option<ThreadId> {
        let live = self.live();
        live.get(usize::from(pick) % live.len().max(1)).copied()
    }

    fn apply(&mut self, event: &Event) -> Checked {
        self.statistics.steps += 1;
        match *event {
            Event::Step { cpu, choice } => match self.cpu_where(cpu, Self::can_step) {
                Some(cpu) => self.step(cpu, choice),
                None => Ok(()),
            },
            Event::Syscall { cpu, call } => {
                match self.cpu_where(cpu, |context| matches!(context, Context::User(_))) {
                    Some(cpu) => self.syscall(cpu, call),
                    None => Ok(()),
                }
            }
            Event::Tick { cpu, expiry } => self.tick(self.cpu(cpu), expiry),
            Event::DeliverInterrupt { cpu } => self.deliver_interrupt(self.cpu(cpu)),
            Event::Round { order } => self.round(order),
        }?;
        self.check_all()
    }

    // --- one CPU's steps --------------------------------------------------------------------

    /// The next step of `cpu`'s context (user mode and a halt wait for an event instead).
    fn step(&mut self, cpu: CpuIndex, choice: bool) -> Checked {
        match self.context(cpu) {
            Context::Loop => self.loop_pick(cpu),
            Context::Picked(id) => self.dispatch(cpu, id),
            Context::Resumed(id) => {
                match self.thread(id).resume {
                    Resume::Returning => self.set_context(cpu, Context::Returning(id)),
                    Resume::Blocking => self.begin_block(cpu, id),
                }
                Ok(())
            }
            Context::Blocking(id) => {
                // `block_until`: the condition holds (`choice`) or the thread was killed.
                if choice || self.thread(id).killed {
                    self.thread(id).state.cancel_block();
                    self.set_context(cpu, Context::Returning(id));
                } else {
                    self.thread(id).resume = Resume::Blocking;
                    self.set_context(cpu, Context::SwitchedBack(id));
                }
                Ok(())
            }
            Context::Returning(id) => {
                // `exit_if_killed`.
                if self.thread(id).killed {
                    self.exit_current(cpu, id);
                } else {
                    self.set_context(cpu, Context::User(id));
                }
                Ok(())
            }
            Context::SwitchedBack(id) => {
                // `run`'s epilogue.
                match self.thread(id).state.switched_out() {
                    AfterSwitch::Requeue => self.push(cpu, id),
                    AfterSwitch::Leave => {}
                }
                self.set_context(cpu, Context::Loop);
                Ok(())
            }
            Context::Polling => {
                if work_waiting(&self.queues, cpu) {
                    self.leave_idle(cpu);
                } else if !choice {
                    // The poll ran out: set the halting bit and fence.
                    let halting = self.queues.halting.get().with(cpu);
                    self.queues.halting.set(halting);
                    self.set_context(cpu, Context::HaltCheck);
                }
                Ok(())
            }
            Context::HaltCheck => {
                if work_waiting(&self.queues, cpu) {
                    self.leave_idle(cpu);
                } else {
                    self.statistics.halts += 1;
                    self.set_context(cpu, Context::Halted);
                }
                Ok(())
            }
            Context::User(_) | Context::Halted => Ok(()),
        }
    }

    /// The scheduler loop: `pick_next`, else into the idle loop (idle bit set).
    fn loop_pick(&mut self, cpu: CpuIndex) -> Checked {
        match pick_next(&self.queues, cpu) {
            Some(picked) => {
                if picked.stolen_from.is_some() {
                    self.statistics.steals += 1;
                }
                let thread = self.thread(picked.thread);
                if let Some(since) = thread.queued_since.take() {
                    let waited = self.round.saturating_sub(since);
                    self.statistics.longest_wait = self.statistics.longest_wait.max(waited);
                }
                self.set_context(cpu, Context::Picked(picked.thread));
            }
            None => {
                self.release_exited_space(cpu);
                let idle = self.queues.idle.get().with(cpu);
                self.queues.idle.set(idle);
                self.set_context(cpu, Context::Polling);
            }
        }
        Ok(())
    }

    /// `release_exited_space`: before it idles, a CPU lets go of a loaded
    /// address space whose process has exited (loading the kernel's).
    fn release_exited_space(&mut self, cpu: CpuIndex) {
        self.cpus[cpu.get()].released_at = self.statistics.steps;
        if let Some(space) = self.cpus[cpu.get()].loaded_space {
            if self.exited_spaces[space] {
                self.space_masks[space].remove(cpu);
                self.cpus[cpu.get()].loaded_space = None;
                self.statistics.cr3_writes += 1;
                self.statistics.space_releases += 1;
            }
        }
    }

    /// `idle` returns: clear both bits, back to the loop.
    fn leave_idle(&mut self, cpu: CpuIndex) {
        self.queues
            .halting
            .set(self.queues.halting.get().without(cpu));
        self.queues.idle.set(self.queues.idle.get().without(cpu));
        self.set_context(cpu, Context::Loop);
    }

    /// `run`: dispatch under the run lock, load the address space, switch.
    fn dispatch(&mut self, cpu: CpuIndex, id: ThreadId) -> Checked {
        let state = self.thread(id).state;
        if state.on_cpu() || state.blocked() {
            return Err(format!(
                "dispatch: thread {id} dispatched on {cpu:?} in {state:?}"
            ));
        }
        match self.thread(id).state.dispatch(cpu) {
            Dispatch::Skip => {
                self.set_context(cpu, Context::Loop);
                return Ok(());
            }
            Dispatch::Run => {}
        }
        self.statistics.dispatches += 1;
        let space = self.thread(id).space;
        let loaded = self.cpus[cpu.get()].loaded_space;
        if needs_address_space_switch(loaded.as_ref(), &space) {
            self.space_masks[space].insert(cpu);
            self.statistics.cr3_writes += 1;
            if let Some(previous) = loaded {
                self.space_masks[previous].remove(cpu);
            }
            self.cpus[cpu.get()].loaded_space = Some(space);
        }
        self.set_context(cpu, Context::Resumed(id));
        Ok(())
    }

    /// `block_until`'s first half: set `blocked`; the re-check is the next step.
    fn begin_block(&mut self, cpu: CpuIndex, id: ThreadId) {
        self.thread(id).state.begin_block();
        self.set_context(cpu, Context::Blocking(id));
    }

    /// `exit_current`: mark the thread ended and switch back to the loop for good.
    fn exit_current(&mut self, cpu: CpuIndex, id: ThreadId) {
        self.thread(id).state.exit();
        self.set_context(cpu, Context::SwitchedBack(id));
    }

    /// Push onto `cpu`'s own queue (after a switch-out).
    fn push(&mut self, cpu: CpuIndex, id: ThreadId) {
        self.queues.push(cpu, id);
        self.thread(id).queued_since = Some(self.round);
    }

    fn syscall(&mut self, cpu: CpuIndex, call: Call) -> Checked {
        let Context::User(id) = self.context(cpu) else {
            return Ok(());
        };
        match call {
            Call::Block => {
                self.begin_block(cpu, id);
                return Ok(());
            }
            Call::Exit => {
                self.exit_current(cpu, id);
                return Ok(());
            }
            Call::ExitProcess => {
                // `Process::exit`: kill every thread of the process, the
                // caller included (it ends at its kill check on the way out).
                let space = self.thread(id).space;
                self.exited_spaces[space] = true;
                self.exited_at[space] = self.statistics.steps;
                for target in self.live() {
                    if self.threads[usize::from(target)].space == space {
                        self.kill(target, cpu)?;
                    }
                }
            }
            Call::Spawn { space } => {
                let space = usize::from(space) % SPACES;
                // A thread starts only in a live process (`create_thread`
                // refuses an exited one). An exited process whose threads
                // are all gone and whose space no CPU holds any more stands
                // for a new process: its slot is reused.
                let gone = self.exited_spaces[space]
                    && self.space_masks[space].is_empty()
                    && self
                        .threads
                        .iter()
                        .all(|thread| thread.space != space || thread.state.dead());
                if gone {
                    self.exited_spaces[space] = false;
                }
                if !self.exited_spaces[space]
                    && self.live().len() < MOST_LIVE
                    && self.threads.len() < MOST_THREADS
                {
                    let new = self.threads.len() as ThreadId;
                    self.threads.push(SimThread {
                        state: RunState::new(),
                        killed: false,
                        space,
                        resume: Resume::Returning,
                        queued_since: None,
                    });
                    self.make_runnable(new, None, cpu)?;
                }
            }
            Call::Wake { thread } => {
                if let Some(target) = self.live_thread(thread) {
                    self.wake(target, cpu)?;
                }
            }
            Call::Kill { thread } => {
                if let Some(target) = self.live_thread(thread) {
                    self.kill(target, cpu)?;
                }
            }
        }
        self.set_context(cpu, Context::Returning(id));
        Ok(())
    }

    /// `Thread::wake` from code on `waker`, under the thread's run lock.
    fn wake(&mut self, id: ThreadId, waker: CpuIndex) -> Checked {
        match self.thread(id).state.wake() {
            Wake::Place { last_cpu } => self.make_runnable(id, last_cpu, waker),
            Wake::StillOnCpu | Wake::Nothing => Ok(()),
        }
    }

    /// `Thread::kill` from code on `killer`, under the thread's run lock.
    fn kill(&mut self, id: ThreadId, killer: CpuIndex) -> Checked {
        self.statistics.kills += 1;
        self.thread(id).killed = true;
        if let Some(target) = self.thread(id).state.interrupt_for_kill(killer) {
            self.cpus[target.get()].interrupt_pending = true;
        }
        self.wake(id, killer)
    }

    /// `make_runnable` from code on `waker`, with the placement and IPI checks.
    fn make_runnable(
        &mut self,
        id: ThreadId,
        last_cpu: Option<CpuIndex>,
        waker: CpuIndex,
    ) -> Checked {
        let idle = self.queues.idle.get();
        let halting = self.queues.halting.get();
        let wakeup = make_runnable(&self.queues, id, last_cpu, waker);
        self.thread(id).queued_since = Some(self.round);
        let target = wakeup.cpu;
        if !idle.is_empty() && !idle.contains(target) {
            return Err(format!(
                "placement: thread {id} queued on busy {target:?} while {idle:?} were idle"
            ));
        }
        match wakeup.interrupt {
            Some(cpu) => {
                if cpu != target || cpu == waker || !halting.contains(cpu) {
                    return Err(format!(
                        "ipi: to {cpu:?} (target {target:?}, waker {waker:?}, halting {halting:?})"
                    ));
                }
                self.statistics.wake_interrupts += 1;
                self.cpus[cpu.get()].interrupt_pending = true;
            }
            None => {
                if halting.contains(target) && target != waker {
                    return Err(format!(
                        "lost wake-up: {target:?} was halting and got no IPI"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The timer interrupt, taken only where interrupts are on (user mode, halt).
    fn tick(&mut self, cpu: CpuIndex, expiry: Option<u8>) -> Checked {
        let context = self.context(cpu);
        if !matches!(context, Context::User(_) | Context::Halted) {
            return Ok(());
        }
        if let Some(target) = expiry.and_then(|pick| self.live_thread(pick)) {
            self.wake(target, cpu)?;
        }
        match context {
            Context::User(id) => {
                if should_preempt(&self.queues, cpu) {
                    self.statistics.preemptions += 1;
                    self.thread(id).resume = Resume::Returning;
                    self.set_context(cpu, Context::SwitchedBack(id));
                } else {
                    self.set_context(cpu, Context::Returning(id));
                }
            }
            _ => self.leave_idle(cpu),
        }
        Ok(())
    }

    /// A pending IPI, taken where interrupts are on.
    fn deliver_interrupt(&mut self, cpu: CpuIndex) -> Checked {
        if !self.cpus[cpu.get()].interrupt_pending {
            return Ok(());
        }
        match self.context(cpu) {
            Context::User(id) => self.set_context(cpu, Context::Returning(id)),
            Context::Halted => self.leave_idle(cpu),
            _ => return Ok(()),
        }
        self.cpus[cpu.get()].interrupt_pending = false;
        Ok(())
    }

    /// Time advances: every CPU, in an order from `order`, runs until it is in user mode or
    /// halted, then takes its tick.
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
            let mut steps = 0;
            while !matches!(self.context(cpu), Context::User(_) | Context::Halted) {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                self.step(cpu, state >> 63 == 1)?;
                self.check_all()?;
                steps += 1;
                if steps > SETTLE_STEPS {
                    return Err(format!(
                        "progress: {cpu:?} stuck at {:?}",
                        self.context(cpu)
                    ));
                }
            }
            self.deliver_interrupt(cpu)?;
            self.tick(cpu, None)?;
        }
        Ok(())
    }

    // --- invariants ---------------------------------------------------------------------------

    fn check_all(&self) -> Checked {
        self.check_locations()?;
        self.check_idle()?;
        self.check_kills()?;
        self.check_address_spaces()?;
        self.check_starvation()
    }

    fn check_locations(&self) -> Checked {
        let count = self.threads.len();
        let mut queued: Vec<Vec<CpuIndex>> = vec![Vec::new(); count];
        let mut on: Vec<Vec<(CpuIndex, Context)>> = vec![Vec::new(); count];
        for cpu in CpuIndex::all(self.cpus.len()) {
            for id in self.queues.queued(cpu) {
                queued[usize::from(id)].push(cpu);
            }
            let context = self.context(cpu);
            match context {
                Context::Picked(id)
                | Context::Resumed(id)
                | Context::User(id)
                | Context::Blocking(id)
                | Context::Returning(id)
                | Context::SwitchedBack(id) => on[usize::from(id)].push((cpu, context)),
                Context::Loop | Context::Polling | Context::HaltCheck | Context::Halted => {}
            }
        }
        for id in 0..count {
            let state = self.threads[id].state;
            let (queued, on) = (&queued[id], &on[id]);
            let fits = if state.on_cpu() {
                queued.is_empty()
                    && matches!(on[..], [(cpu, context)]
                        if Some(cpu) == state.last_cpu() && !matches!(context, Context::Picked(_)))
            } else if state.blocked() || state.dead() {
                queued.is_empty() && on.is_empty()
            } else {
                let in_hand = matches!(on[..], [(_, Context::Picked(_))]);
                (queued.len() == 1 && on.is_empty()) || (queued.is_empty() && in_hand)
            };
            if !fits {
                return Err(format!(
                    "location: thread {id} in {state:?} is queued on {queued:?} and on {on:?}"
                ));
            }
        }
        Ok(())
    }

    fn check_idle(&self) -> Checked {
        for cpu in CpuIndex::all(self.cpus.len()) {
            let context = self.context(cpu);
            let idle = matches!(
                context,
                Context::Polling | Context::HaltCheck | Context::Halted
            );
            let halting = matches!(context, Context::HaltCheck | Context::Halted);
            if self.queues.idle.get().contains(cpu) != idle
                || self.queues.halting.get().contains(cpu) != halting
            {
                return Err(format!(
                    "idle mask: {cpu:?} at {context:?} with idle {:?} halting {:?}",
                    self.queues.idle.get(),
                    self.queues.halting.get()
                ));
            }
            if context == Context::Halted
                && self.queues.length(cpu) > 0
                && !self.cpus[cpu.get()].interrupt_pending
            {
                return Err(format!(
                    "lost wake-up: {cpu:?} halted with {:?} queued and no IPI",
                    self.queues.queued(cpu)
                ));
            }
        }
        Ok(())
    }

    fn check_kills(&self) -> Checked {
        for (id, thread) in self.threads.iter().enumerate() {
            if !thread.killed || thread.state.dead() {
                continue;
            }
            if thread.state.blocked() && !thread.state.on_cpu() {
                return Err(format!("kill: thread {id} is killed and stays blocked"));
            }
        }
        for cpu in CpuIndex::all(self.cpus.len()) {
            if let Context::User(id) = self.context(cpu) {
                if self.threads[usize::from(id)].killed && !self.cpus[cpu.get()].interrupt_pending {
                    return Err(format!(
                        "kill: thread {id} is killed in user mode on {cpu:?} with no IPI"
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_address_spaces(&self) -> Checked {
        for cpu in CpuIndex::all(self.cpus.len()) {
            let state = &self.cpus[cpu.get()];
            // A process that exits while a CPU idles stays loaded there until
            // that CPU's next pass through its loop (a tick, or the IPI of the
            // teardown's shootdown); one that exited before the CPU's last pass
            // must be gone.
            if let (Context::Halted, Some(space)) = (state.context, state.loaded_space) {
                if self.exited_spaces[space] && self.exited_at[space] < state.released_at {
                    return Err(format!(
                        "address space: {cpu:?} halted with exited space {space} loaded"
                    ));
                }
            }
        }
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
            let running = match self.context(cpu) {
                Context::Resumed(id)
                | Context::User(id)
                | Context::Blocking(id)
                | Context::Returning(id)
                | Context::SwitchedBack(id) => Some(id),
                _ => None,
            };
            if let Some(id) = running {
                let space = self.threads[usize::from(id)].space;
                if self.cpus[cpu.get()].loaded_space != Some(space) {
                    return Err(format!(
                        "address space: thread {id} is on {cpu:?} without its space loaded"
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
                        "starvation: thread {id} queued since round {since}, now {}",
                        self.round
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Threads queued on CPU 0 at the start, one per address space (the boot manifest's
/// processes).
const FIRST_THREADS: usize = SPACES;

/// Run `events` on a fresh model whose first threads are queued on CPU 0; the error names
/// the step and the broken invariant.
fn run(cpus: usize, events: &[Event]) -> Result<Statistics, String> {
    let mut model = Model::new(cpus);
    for space in 0..FIRST_THREADS {
        model.threads.push(SimThread {
            state: RunState::new(),
            killed: false,
            space,
            resume: Resume::Returning,
            queued_since: None,
        });
        model.push(CpuIndex::FIRST, space as ThreadId);
    }
    for (step, event) in events.iter().enumerate() {
        model
            .apply(event)
            .map_err(|error| format!("step {step} ({event:?}): {error}"))?;
    }
    Ok(model.statistics)
}

fn call() -> impl Strategy<Value = Call> {
    let byte = any::<u8>;
    prop_oneof![
        4 => Just(Call::Block),
        3 => byte().prop_map(|space| Call::Spawn { space }),
        5 => byte().prop_map(|thread| Call::Wake { thread }),
        1 => byte().prop_map(|thread| Call::Kill { thread }),
        1 => Just(Call::Exit),
        1 => Just(Call::ExitProcess),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    let byte = any::<u8>;
    prop_oneof![
        12 => (byte(), any::<bool>()).prop_map(|(cpu, choice)| Event::Step { cpu, choice }),
        6 => (byte(), call()).prop_map(|(cpu, call)| Event::Syscall { cpu, call }),
        3 => (byte(), proptest::option::of(byte())).prop_map(|(cpu, expiry)| Event::Tick { cpu, expiry }),
        2 => byte().prop_map(|cpu| Event::DeliverInterrupt { cpu }),
        1 => any::<u64>().prop_map(|order| Event::Round { order }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scheduler_keeps_every_invariant(
        cpus in 1usize..=8,
        events in proptest::collection::vec(event(), 1..400),
    ) {
        if let Err(failure) = run(cpus, &events) {
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

    /// Pick an index with these weights.
    fn weighted(&mut self, weights: &[u64]) -> usize {
        let mut pick = self.next() % weights.iter().sum::<u64>();
        let mut kind = 0;
        while pick >= weights[kind] {
            pick -= weights[kind];
            kind += 1;
        }
        kind
    }

    /// An event with about the proptest strategy's weights; `busy` runs (CPU-bound threads)
    /// block rarely and tick often, so preemption and stealing are exercised under load.
    fn event(&mut self, busy: bool) -> Event {
        let weights: [u64; 5] = if busy {
            [12, 4, 6, 2, 2]
        } else {
            [12, 6, 3, 2, 1]
        };
        let cpu = self.byte();
        match self.weighted(&weights) {
            0 => Event::Step {
                cpu,
                choice: self.next().is_multiple_of(2),
            },
            1 => {
                // Process exits are rare: each ends a third of the model's threads.
                let calls: [u64; 6] = if busy {
                    [20, 60, 60, 20, 20, 1]
                } else {
                    [80, 60, 100, 20, 20, 1]
                };
                let call = match self.weighted(&calls) {
                    0 => Call::Block,
                    1 => Call::Spawn { space: self.byte() },
                    2 => Call::Wake {
                        thread: self.byte(),
                    },
                    3 => Call::Kill {
                        thread: self.byte(),
                    },
                    4 => Call::Exit,
                    _ => Call::ExitProcess,
                };
                Event::Syscall { cpu, call }
            }
            2 => Event::Tick {
                cpu,
                expiry: self.next().is_multiple_of(3).then(|| self.byte()),
            },
            3 => Event::DeliverInterrupt { cpu },
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
        let busy = seed.is_multiple_of(2);
        let events: Vec<Event> = (0..SEEDED_STEPS).map(|_| random.event(busy)).collect();
        let statistics = run(cpus, &events)
            .unwrap_or_else(|failure| panic!("seed {seed}, {cpus} cpus: {failure}"));
        total.steps += statistics.steps;
        total.rounds += statistics.rounds;
        total.dispatches += statistics.dispatches;
        total.cr3_writes += statistics.cr3_writes;
        total.steals += statistics.steals;
        total.halts += statistics.halts;
        total.wake_interrupts += statistics.wake_interrupts;
        total.preemptions += statistics.preemptions;
        total.kills += statistics.kills;
        total.space_releases += statistics.space_releases;
        total.longest_wait = total.longest_wait.max(statistics.longest_wait);
    }
    println!(
        "scheduler model: {SEEDED_RUNS} runs, {} interleaved steps, {} rounds, {} dispatches, {} CR3 writes, {} steals, {} halts, {} wake IPIs, {} preemptions, {} kills, {} exited spaces let go, longest wait {} rounds (bound {STARVATION_BOUND_ROUNDS})",
        total.steps, total.rounds, total.dispatches, total.cr3_writes, total.steals, total.halts,
        total.wake_interrupts, total.preemptions, total.kills, total.space_releases, total.longest_wait
    );
    assert!(total.steals > 0 && total.halts > 0 && total.wake_interrupts > 0);
    assert!(total.preemptions > 0 && total.kills > 0 && total.space_releases > 0);
    assert!(
        total.longest_wait > 1,
        "no thread ever waited behind another"
    );
}
