//! Unit tests of each scheduling decision, and the cell-based [`TestQueues`] that the model
//! test shares.

use super::*;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

/// [`RunQueues`] over plain cells, with the idle and halting masks the kernel's idle loop
/// keeps. Touching a queue while another is held (what would be two spin locks in the kernel)
/// panics, so every test also checks that no operation nests queue locks.
pub(super) struct TestQueues {
    pub(super) queues: Vec<RefCell<VecDeque<u16>>>,
    pub(super) idle: Cell<CpuSet>,
    pub(super) halting: Cell<CpuSet>,
    holding: Cell<bool>,
}

impl TestQueues {
    pub(super) fn new(cpus: usize) -> Self {
        Self {
            queues: (0..cpus).map(|_| RefCell::new(VecDeque::new())).collect(),
            idle: Cell::new(CpuSet::EMPTY),
            halting: Cell::new(CpuSet::EMPTY),
            holding: Cell::new(false),
        }
    }

    /// The threads queued on `cpu`, oldest first.
    pub(super) fn queued(&self, cpu: CpuIndex) -> Vec<u16> {
        self.queues[cpu.get()].borrow().iter().copied().collect()
    }

    fn locked<R>(&self, cpu: CpuIndex, action: impl FnOnce(&mut VecDeque<u16>) -> R) -> R {
        assert!(
            !self.holding.replace(true),
            "two run-queue locks held at once"
        );
        let result = action(&mut self.queues[cpu.get()].borrow_mut());
        self.holding.set(false);
        result
    }
}

impl RunQueues<u16> for TestQueues {
    fn cpu_count(&self) -> usize {
        self.queues.len()
    }

    fn push(&self, cpu: CpuIndex, thread: u16) {
        self.locked(cpu, |queue| queue.push_back(thread));
    }

    fn pop(&self, cpu: CpuIndex) -> Option<u16> {
        self.locked(cpu, VecDeque::pop_front)
    }

    fn length(&self, cpu: CpuIndex) -> usize {
        self.queues[cpu.get()].borrow().len()
    }

    fn idle(&self) -> CpuSet {
        self.idle.get()
    }

    fn halting(&self) -> CpuSet {
        self.halting.get()
    }
}

pub(super) fn cpu(index: usize) -> CpuIndex {
    CpuIndex::new(index).unwrap()
}

// --- a thread's run state ----------------------------------------------------------------

#[test]
fn thread_runs_blocks_and_is_woken_off_its_cpu() {
    let mut state = RunState::new();
    assert!(state.queueable() && state.last_cpu().is_none());
    assert_eq!(state.dispatch(cpu(1)), Dispatch::Run);
    assert!(state.on_cpu() && !state.queueable());
    state.begin_block();
    assert_eq!(state.switched_out(), AfterSwitch::Leave);
    assert!(state.blocked() && !state.on_cpu() && !state.queueable());
    assert_eq!(
        state.wake(),
        Wake::Place {
            last_cpu: Some(cpu(1))
        }
    );
    assert!(state.queueable());
    assert_eq!(state.wake(), Wake::Nothing, "a second wake-up is a no-op");
}

#[test]
fn wake_while_still_on_the_cpu_is_requeued_by_the_switch_out() {
    let mut state = RunState::new();
    assert_eq!(state.dispatch(cpu(0)), Dispatch::Run);
    state.begin_block();
    assert_eq!(state.wake(), Wake::StillOnCpu);
    assert_eq!(state.switched_out(), AfterSwitch::Requeue);
    assert!(state.queueable());
}

#[test]
fn cancelled_block_and_preemption_keep_the_thread_runnable() {
    let mut state = RunState::new();
    assert_eq!(state.dispatch(cpu(0)), Dispatch::Run);
    state.begin_block();
    state.cancel_block();
    assert_eq!(state.wake(), Wake::Nothing);
    assert_eq!(state.switched_out(), AfterSwitch::Requeue);
}

#[test]
fn an_ended_thread_is_never_dispatched_requeued_or_woken() {
    let mut state = RunState::new();
    assert_eq!(state.dispatch(cpu(2)), Dispatch::Run);
    state.exit();
    assert_eq!(state.wake(), Wake::Nothing);
    assert_eq!(state.switched_out(), AfterSwitch::Leave);
    assert_eq!(state.dispatch(cpu(2)), Dispatch::Skip);
    assert!(state.dead() && !state.on_cpu() && !state.queueable());
    // Ended while blocked-and-switching: still no requeue, no wake.
    let mut state = RunState::new();
    assert_eq!(state.dispatch(cpu(0)), Dispatch::Run);
    state.begin_block();
    state.exit();
    assert_eq!(state.wake(), Wake::Nothing);
    assert_eq!(state.switched_out(), AfterSwitch::Leave);
}

#[test]
fn a_kill_interrupts_only_a_thread_running_on_another_cpu() {
    let mut state = RunState::new();
    assert_eq!(state.interrupt_for_kill(cpu(0)), None, "never ran");
    assert_eq!(state.dispatch(cpu(3)), Dispatch::Run);
    assert_eq!(state.interrupt_for_kill(cpu(0)), Some(cpu(3)));
    assert_eq!(
        state.interrupt_for_kill(cpu(3)),
        None,
        "the killer's own CPU"
    );
    assert_eq!(state.switched_out(), AfterSwitch::Requeue);
    assert_eq!(
        state.interrupt_for_kill(cpu(0)),
        None,
        "queued, not running"
    );
}

// --- placement ---------------------------------------------------------------------------

fn set(cpus: &[usize]) -> CpuSet {
    cpus.iter()
        .fold(CpuSet::EMPTY, |set, index| set.with(cpu(*index)))
}

#[test]
fn placement_rules_in_order() {
    let loads = [1, 0, 2, 0];
    let place = |last: Option<usize>, waker, idle: &[usize]| {
        place_wake(last.map(cpu), waker, set(idle), &loads)
    };
    let expect = |index, rule| Placement {
        cpu: cpu(index),
        rule,
    };
    assert_eq!(
        place(Some(1), cpu(2), &[1, 3]),
        expect(1, PlacementRule::LastCpuIdle)
    );
    assert_eq!(
        place(Some(1), cpu(0), &[0, 3]),
        expect(3, PlacementRule::OtherIdleCpu)
    );
    assert_eq!(
        place(Some(3), cpu(0), &[1, 2]),
        expect(1, PlacementRule::OtherIdleCpu)
    );
    assert_eq!(
        place(Some(1), cpu(0), &[]),
        expect(1, PlacementRule::LastCpu)
    );
    assert_eq!(
        place(None, cpu(2), &[0]),
        expect(0, PlacementRule::OtherIdleCpu)
    );
    // New thread, all busy: least loaded, the waker's CPU first on a tie.
    assert_eq!(
        place(None, cpu(3), &[]),
        expect(3, PlacementRule::LeastLoaded)
    );
    assert_eq!(
        place(None, cpu(2), &[]),
        expect(3, PlacementRule::LeastLoaded)
    );
    assert_eq!(
        place(None, cpu(0), &[]),
        expect(1, PlacementRule::LeastLoaded)
    );
}

#[test]
fn placement_ignores_cpus_outside_the_count() {
    let loads = [0, 0];
    let idle_outside = set(&[5]);
    let placement = place_wake(Some(cpu(7)), cpu(6), idle_outside, &loads);
    assert!(placement.cpu.get() < 2, "{placement:?}");
    let placement = place_wake(Some(cpu(7)), cpu(6), set(&[1, 5]), &loads);
    assert_eq!(placement.cpu, cpu(1));
    // No CPU at all (make_runnable refuses that earlier): CPU 0, and no panic.
    assert_eq!(place_wake(None, cpu(3), CpuSet::EMPTY, &[]).cpu, cpu(0));
}

#[test]
fn steal_victim_is_the_busiest_other_cpu() {
    assert_eq!(choose_steal_victim(cpu(0), &[5, 1, 3, 3]), Some(cpu(2)));
    assert_eq!(choose_steal_victim(cpu(3), &[2, 1, 2, 9]), Some(cpu(0)));
    assert_eq!(choose_steal_victim(cpu(1), &[2, 9, 0, 2]), Some(cpu(3)));
    assert_eq!(choose_steal_victim(cpu(0), &[4, 0, 0]), None);
    assert_eq!(choose_steal_victim(cpu(0), &[]), None);
    assert_eq!(choose_steal_victim(cpu(9), &[0, 1]), Some(cpu(1)));
}

#[test]
fn an_idle_cpus_queue_is_not_stolen_from() {
    let mut idle = CpuSet::EMPTY;
    idle.insert(cpu(2));
    let mut loads = [5, 1, 3, 3];
    exclude_idle_from_stealing(&mut loads, idle);
    assert_eq!(loads, [5, 1, 0, 3]);
    // CPU 0 steals from CPU 3 now, not from the idle CPU 2 that ties with it.
    assert_eq!(choose_steal_victim(cpu(0), &loads), Some(cpu(3)));
    let mut only_idle = [0, 4];
    let mut both = CpuSet::EMPTY;
    both.insert(cpu(1));
    exclude_idle_from_stealing(&mut only_idle, both);
    assert_eq!(choose_steal_victim(cpu(0), &only_idle), None);
}

// --- the operations over several queues --------------------------------------------------

#[test]
fn make_runnable_places_and_interrupts_only_a_halting_remote_target() {
    let queues = TestQueues::new(3);
    // Every CPU busy: a woken thread goes back to its last CPU, no IPI.
    let wakeup = make_runnable(&queues, 7, Some(cpu(1)), cpu(0));
    assert_eq!((wakeup.cpu, wakeup.interrupt), (cpu(1), None));
    assert_eq!(wakeup.rule, PlacementRule::LastCpu);
    // CPU 2 polls (idle, not halting): it gets the thread and sees it without an IPI.
    queues.idle.set(set(&[2]));
    let wakeup = make_runnable(&queues, 8, Some(cpu(0)), cpu(0));
    assert_eq!((wakeup.cpu, wakeup.interrupt), (cpu(2), None));
    // CPU 2 halts: one IPI, to it only.
    queues.halting.set(set(&[2]));
    let wakeup = make_runnable(&queues, 9, None, cpu(0));
    assert_eq!((wakeup.cpu, wakeup.interrupt), (cpu(2), Some(cpu(2))));
    // An interrupt on the halting CPU itself wakes a thread there: no IPI to itself.
    let wakeup = make_runnable(&queues, 10, Some(cpu(2)), cpu(2));
    assert_eq!((wakeup.cpu, wakeup.interrupt), (cpu(2), None));
    assert_eq!(queues.queued(cpu(2)), [8, 9, 10]);
    assert_eq!(queues.queued(cpu(1)), [7]);
}

#[test]
fn pick_next_takes_the_own_queue_first_then_steals_from_the_busiest() {
    let queues = TestQueues::new(3);
    queues.push(cpu(0), 1);
    queues.push(cpu(1), 2);
    queues.push(cpu(2), 3);
    queues.push(cpu(2), 4);
    assert_eq!(
        pick_next(&queues, cpu(0)),
        Some(Picked {
            thread: 1,
            stolen_from: None
        })
    );
    assert!(should_preempt(&queues, cpu(2)) && !should_preempt(&queues, cpu(0)));
    assert!(work_waiting(&queues, cpu(0)));
    assert_eq!(
        pick_next(&queues, cpu(0)),
        Some(Picked {
            thread: 3,
            stolen_from: Some(cpu(2))
        })
    );
    // An idle CPU's queue is left to that CPU.
    queues.idle.set(set(&[1, 2]));
    queues.pop(cpu(2));
    assert!(!work_waiting(&queues, cpu(0)));
    assert_eq!(pick_next(&queues, cpu(0)), None);
    assert!(work_waiting(&queues, cpu(1)), "its own queue");
}
