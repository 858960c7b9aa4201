//! The per-CPU scheduler (design: `docs/scheduler.md`).
//!
//! The scheduler is `capos_kcore::sched`: each thread's [`RunState`], and
//! the run-queue operations [`make_runnable`], [`pick_next`],
//! [`work_waiting`] and [`should_preempt`], host-tested by the interleaving
//! model that drives them in this file's order. This file is the glue: the
//! locks, the context switch, IPIs and CR3 writes.
//!
//! - Each CPU owns a FIFO run queue under its own lock ([`KernelQueues`])
//!   and runs [`scheduler_loop`] on its own boot stack. A thread runs until
//!   it blocks, exits or is preempted, then switches back to its CPU's loop,
//!   which records the switch-out and requeues it on that CPU's queue if
//!   still runnable. Requeueing only after the switch means no CPU can pick
//!   a thread whose context is not yet saved.
//! - Lock order: a thread's run lock, then one run-queue lock. A wake-up and
//!   a kill decide, queue and send their IPI under the woken thread's run
//!   lock, so nothing sees a runnable thread that is in no queue.
//! - CR3 is written only when the next thread's address space differs from
//!   the one this CPU has loaded; the idle loop keeps the old one. A CPU
//!   holds a reference to the process whose space it has loaded, so a space
//!   is never freed while loaded; a loaded space of an exited process is
//!   let go before the CPU halts.
//! - Idle: after running a thread, poll [`work_waiting`] for
//!   [`IDLE_POLL_MICROSECONDS`]; then set the halting bit, fence, re-check,
//!   and `sti; hlt` (`platform::smp::idle`). A waker reads the halting bits
//!   after queueing, so either the re-check sees the thread or the waker
//!   sends the IPI.
//!
//! Lifetime: a thread's own kernel stack never holds an owning reference to
//! the thread across a switch it may not come back from. A thread ends
//! only through `thread::exit_current`, which ends in
//! [`switch_away_for_good`]: dead, the caller's reference dropped, a switch
//! to the loop for good; the loop's reference is then the last one, and
//! dropping it frees the kernel stack (to the stack cache) and releases the
//! process. A thread asked to stop ([`kill`]) is woken if blocked and runs
//! until its next return towards user mode, where the syscall and
//! interrupt paths call `exit_current`. So teardown always runs, from a
//! known place.

use crate::measure::{self, Counter};
use crate::mem::{paging, stacks};
use crate::platform::interrupts::InterruptFrame;
use crate::platform::{context, percpu};
use crate::process::Process;
use crate::thread::{Thread, THREADS_MAX};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use capos_kcore::sched::{
    make_runnable, needs_address_space_switch, pick_next, should_preempt as preempt_due,
    work_waiting, AfterSwitch, CpuIndex, CpuSet, Dispatch, RunQueues, RunState, Wake, MAX_CPUS,
};
use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use spin::Mutex;

/// Pages per thread kernel stack.
const KERNEL_STACK_PAGES: u64 = 8;

/// One CPU's run queue and its length (read without the lock for placement).
struct CpuQueue {
    threads: Mutex<VecDeque<Arc<Thread>>>,
    length: AtomicUsize,
}

static QUEUES: [CpuQueue; MAX_CPUS] = [const {
    CpuQueue {
        threads: Mutex::new(VecDeque::new()),
        length: AtomicUsize::new(0),
    }
}; MAX_CPUS];

/// The thread each CPU runs (null in its scheduler loop). Set and cleared
/// only by that CPU's [`run`], which holds a reference to the thread for as
/// long as the pointer is set; read only by the same CPU ([`current`]).
static CURRENT: [AtomicPtr<Thread>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

/// The process whose address space each CPU has loaded (None: the kernel's).
static LOADED: [Mutex<Option<Arc<Process>>>; MAX_CPUS] = [const { Mutex::new(None) }; MAX_CPUS];

/// Give each CPU's queue room for [`THREADS_MAX`] threads, so a wake-up
/// never allocates (call once CPUs are known).
pub fn init_queues(cpus: usize) {
    for queue in QUEUES.iter().take(cpus) {
        if queue.threads.lock().try_reserve(THREADS_MAX).is_err() {
            crate::mem::fail(format_args!("no heap for the run queues"));
        }
    }
}

/// The run queues as `kcore::sched` reaches them: one lock per queue, the
/// lengths in atomics, the idle masks of `platform::smp::idle`.
struct KernelQueues;

impl RunQueues<Arc<Thread>> for KernelQueues {
    fn cpu_count(&self) -> usize {
        percpu::count().clamp(1, MAX_CPUS)
    }

    fn push(&self, cpu: CpuIndex, thread: Arc<Thread>) {
        let queue = &QUEUES[cpu.get()];
        let mut threads = measure::lock_run_queue(&queue.threads);
        threads.push_back(thread);
        queue.length.store(threads.len(), Ordering::Release);
    }

    fn pop(&self, cpu: CpuIndex) -> Option<Arc<Thread>> {
        let queue = &QUEUES[cpu.get()];
        let mut threads = measure::lock_run_queue(&queue.threads);
        let thread = threads.pop_front();
        queue.length.store(threads.len(), Ordering::Release);
        thread
    }

    fn length(&self, cpu: CpuIndex) -> usize {
        QUEUES[cpu.get()].length.load(Ordering::Acquire)
    }

    fn idle(&self) -> CpuSet {
        CpuSet::from_bits(crate::platform::smp::idle_mask())
    }

    fn halting(&self) -> CpuSet {
        CpuSet::from_bits(crate::platform::smp::halting_mask())
    }
}

/// This CPU's index as `kcore::sched` names CPUs.
fn here() -> CpuIndex {
    CpuIndex::new(percpu::current().index).unwrap_or(CpuIndex::FIRST)
}

/// Queue `thread` (runnable, off every CPU; `last_cpu` None when new) where
/// the placement policy says, and interrupt that CPU if it is halting.
/// Called under the thread's run lock (or before anyone else knows it).
fn queue_runnable(thread: Arc<Thread>, last_cpu: Option<CpuIndex>) {
    let here = here();
    let wakeup = make_runnable(&KernelQueues, thread, last_cpu, here);
    if wakeup.cpu == here {
        measure::count(Counter::WakeLocal);
    } else {
        measure::count(Counter::WakeRemote);
    }
    if let Some(cpu) = wakeup.interrupt {
        crate::platform::smp::send_reschedule(cpu.get());
    }
}
/// Threads' kernel stacks, kept for reuse up to a bound (`StackCache`).
static STACKS: stacks::StackCache<KERNEL_STACK_PAGES> = stacks::StackCache::new();

/// What the scheduler keeps of a thread: its run state (under the run
/// lock), the saved kernel context, the FPU area and the kernel stack. The
/// rest of the thread (`thread::Thread`) is not the scheduler's.
pub struct Scheduled {
    run: Mutex<RunState>,
    context: UnsafeCell<u64>,
    fpu: UnsafeCell<context::FpuArea>,
    kernel_stack_top: u64,
}

// SAFETY: `context` and `fpu` are touched only by the CPU running the thread
// or switching it (serialised by `RunState::on_cpu`); `run` is a lock.
unsafe impl Sync for Scheduled {}
// SAFETY: as above; a thread moves between CPUs only while switched out.
unsafe impl Send for Scheduled {}

impl Scheduled {
    /// A new thread's scheduling state: runnable, never run, with a kernel
    /// stack laid out to enter user mode with `frame` and the initial FPU
    /// state. None when out of memory.
    pub fn new(frame: InterruptFrame) -> Option<Self> {
        let stack_top = STACKS.take()?;
        // SAFETY: the stack is freshly mapped (or cached) kernel memory
        // that belongs to this thread alone, 16-byte aligned at its top;
        // nothing runs on it yet.
        let saved = unsafe { context::prepare_first_entry(stack_top, frame) };
        Some(Self {
            run: Mutex::new(RunState::new()),
            context: UnsafeCell::new(saved),
            fpu: UnsafeCell::new(context::FpuArea::initial()),
            kernel_stack_top: stack_top,
        })
    }
}

impl Drop for Scheduled {
    fn drop(&mut self) {
        STACKS.give_back(self.kernel_stack_top);
    }
}

/// Make a new thread runnable for the first time.
pub fn start(thread: &Arc<Thread>) {
    let _state = thread.scheduled.run.lock();
    queue_runnable(thread.clone(), None);
}

/// Wake `thread` if it is blocked.
pub fn wake(thread: &Arc<Thread>) {
    let mut state = thread.scheduled.run.lock();
    wake_locked(thread, &mut state);
}

/// [`wake`] with the run lock held: a thread woken off its CPU is queued
/// before the lock is released.
fn wake_locked(thread: &Arc<Thread>, state: &mut RunState) {
    match state.wake() {
        Wake::Place { last_cpu } => queue_runnable(thread.clone(), last_cpu),
        Wake::StillOnCpu | Wake::Nothing => {}
    }
}

/// Ask `thread` to stop: under its run lock, set its kill flag, interrupt
/// its CPU if it runs on another one (so it leaves user mode now) and wake
/// it if it is blocked. It exits at its next return towards user mode.
pub fn kill(thread: &Arc<Thread>) {
    let mut state = thread.scheduled.run.lock();
    thread.note_killed();
    if let Some(cpu) = state.interrupt_for_kill(here()) {
        crate::platform::smp::send_reschedule(cpu.get());
    }
    wake_locked(thread, &mut state);
}

/// The running thread has ended (`thread::exit_current`): mark it dead,
/// drop the caller's reference (this CPU's loop holds another, so the
/// thread outlives this function) and switch to the loop for good.
pub fn switch_away_for_good(thread: Arc<Thread>) -> ! {
    thread.scheduled.run.lock().exit();
    let saved = thread.scheduled.context.get();
    drop(thread);
    let cpu = percpu::current();
    // SAFETY: the scheduler loop of this CPU holds a reference to the
    // thread until after this switch, so `saved` stays valid; the thread
    // is dead, so nothing ever switches back to the saved context.
    unsafe { context::switch(saved, *cpu.scheduler_context.get()) };
    crate::kprintln!("[kernel] error: a dead thread was resumed");
    crate::platform::exit::failure()
}

/// Kernel stacks cached for reuse.
pub fn cached_stacks() -> u64 {
    STACKS.cached()
}

/// The thread running on this CPU, if any, borrowed: see [`Running`].
pub fn current() -> Option<Running> {
    let thread = CURRENT[percpu::current().index].load(Ordering::Relaxed);
    if thread.is_null() {
        return None;
    }
    // SAFETY: a non-null pointer in this CPU's slot came from `Arc::as_ptr`
    // in `run`, which holds its reference for as long as the thread runs
    // (see `Running`); only this CPU (interrupts off) writes or reads the
    // slot.
    Some(Running(
        ManuallyDrop::new(unsafe { Arc::from_raw(thread) }),
        PhantomData,
    ))
}

/// The running thread as its own code sees it: an `Arc` that counts no
/// reference of its own, so a system call that does not block changes no
/// reference count. Sound because a running thread is always counted
/// elsewhere: by the frame of [`run`] while it runs, by the run queue
/// while it is preempted, and by [`block_until`], which holds a counted
/// reference across the block (a blocked thread may be in no queue, and
/// its timer registration is not counted). A `Running` stays on the
/// thread's own stack (neither `Send` nor `Clone`); whatever must outlive
/// the call (a registration, `thread::exit_current`) takes an `Arc::clone`.
pub struct Running(ManuallyDrop<Arc<Thread>>, PhantomData<*const ()>);

impl core::ops::Deref for Running {
    type Target = Arc<Thread>;

    fn deref(&self) -> &Arc<Thread> {
        &self.0
    }
}

/// Block the running thread until `ready()` holds (re-checked after each
/// wake) or the thread is killed. Called inside a system call (or an
/// interrupt from user mode: the system-call FPU switch is correct there
/// too, since the entry saved the whole state already).
pub fn block_until(thread: &Arc<Thread>, mut ready: impl FnMut() -> bool) {
    // Counted for as long as the thread may be blocked: nothing else need
    // hold it then (see `Running`).
    let _blocked = Arc::clone(thread);
    loop {
        thread.scheduled.run.lock().begin_block();
        if ready() || thread.killed() {
            thread.scheduled.run.lock().cancel_block();
            return;
        }
        switch_to_scheduler(thread, SwitchFrom::SystemCall);
    }
}

/// Where the running thread is when it gives up its CPU, which decides
/// the FPU work of the switch.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SwitchFrom {
    /// In an interrupt from user mode: the entry saved the whole FPU state
    /// to the thread's area and `interrupt_return` restores it, so the
    /// switch does no FPU work.
    Interrupt,
    /// In a system call (`block_until`): the switch saves and restores what
    /// the system call preserves (x87/MMX, upper AVX).
    SystemCall,
}

/// Give up the CPU; the thread is requeued unless blocked or dead, and may
/// resume on any CPU.
pub fn switch_to_scheduler(thread: &Thread, from: SwitchFrom) {
    let cpu = percpu::current();
    let fpu = thread.scheduled.fpu.get().cast::<u8>();
    // SAFETY: `context` and `fpu` belong to this thread, which is running
    // here; `from` says where its FPU state is (see `SwitchFrom`); the
    // scheduler context was saved by this CPU's loop when it switched to us.
    unsafe {
        if from == SwitchFrom::SystemCall {
            crate::platform::cpu::save_fpu_in_system_call(fpu);
        }
        context::switch(thread.scheduled.context.get(), *cpu.scheduler_context.get());
        if from == SwitchFrom::SystemCall {
            crate::platform::cpu::restore_fpu_in_system_call(fpu);
        }
    }
}

/// How long an idle CPU polls for work before it halts, after it ran a
/// thread: long enough for the reply of a call between two CPUs or a
/// ping-pong through a park word (tens of microseconds under TCG), short
/// against the 10 ms tick.
const IDLE_POLL_MICROSECONDS: u64 = 100;

/// Run threads forever on this CPU.
pub fn scheduler_loop() -> ! {
    let here = here();
    let poll_cycles = crate::platform::apic::tsc_hz() / 1_000_000 * IDLE_POLL_MICROSECONDS;
    // Poll only after running a thread: a CPU woken from its halt by a
    // tick with nothing to do halts again at once.
    let mut poll = false;
    loop {
        crate::process::reap_retired();
        STACKS.reap();
        match pick_next(&KernelQueues, here) {
            Some(picked) => {
                measure::count(match picked.stolen_from {
                    None => Counter::Picks,
                    Some(_) => Counter::Steals,
                });
                run(picked.thread);
                poll = true;
            }
            None => {
                release_exited_space(here.get());
                // The timer interrupt that ends the halt also fires due
                // waiters and, at the next pass, steals again.
                let cycles = if poll { poll_cycles } else { 0 };
                crate::platform::smp::idle(cycles, || work_waiting(&KernelQueues, here));
                poll = false;
            }
        }
    }
}

/// Whether this CPU should stop running the current thread at a tick: only
/// when its own queue holds another.
pub fn should_preempt() -> bool {
    preempt_due(&KernelQueues, here())
}

/// Load `process`'s address space on CPU `here` unless it is loaded already.
fn switch_address_space(here: usize, process: &Arc<Process>) {
    let mut loaded = LOADED[here].lock();
    let current = loaded.as_ref().map(|loaded| loaded.address_space_root());
    if !needs_address_space_switch(current.as_ref(), &process.address_space_root()) {
        return;
    }
    process.address_space().note_loaded(here);
    context::load_address_space(process.address_space_root());
    if let Some(previous) = loaded.replace(process.clone()) {
        previous.address_space().note_unloaded(here);
    }
}

/// Before halting: if this CPU still has the space of an exited process
/// loaded, load the kernel's, so the process can be torn down.
fn release_exited_space(here: usize) {
    let mut loaded = LOADED[here].lock();
    if loaded
        .as_ref()
        .is_some_and(|process| process.exit_code().is_some())
    {
        context::load_address_space(paging::kernel_table());
        if let Some(previous) = loaded.take() {
            previous.address_space().note_unloaded(here);
        }
    }
}

fn run(thread: Arc<Thread>) {
    if thread.scheduled.run.lock().dispatch(here()) == Dispatch::Skip {
        return;
    }
    let cpu = percpu::current();
    CURRENT[cpu.index].store(Arc::as_ptr(&thread).cast_mut(), Ordering::Relaxed);
    cpu.set_thread_context(
        thread.scheduled.kernel_stack_top,
        thread.scheduled.fpu.get() as u64,
    );
    crate::platform::cpu::set_fs_base(thread.fs_base);
    switch_address_space(cpu.index, &thread.process);
    // SAFETY: the thread is off every other CPU (on_cpu was false) so its
    // saved context is complete; the scheduler context slot is this CPU's.
    unsafe { context::switch(cpu.scheduler_context.get(), *thread.scheduled.context.get()) };
    // Back on the scheduler stack of the same CPU (threads switch back to
    // the loop of the CPU they run on).
    let cpu = percpu::current();
    CURRENT[cpu.index].store(core::ptr::null_mut(), Ordering::Relaxed);
    let mut state = thread.scheduled.run.lock();
    match state.switched_out() {
        AfterSwitch::Requeue => KernelQueues.push(here(), thread.clone()),
        AfterSwitch::Leave => {}
    }
}

/// Threads waiting in all run queues (for diagnostics).
pub fn queued() -> usize {
    QUEUES
        .iter()
        .map(|queue| queue.length.load(Ordering::Relaxed))
        .sum()
}
