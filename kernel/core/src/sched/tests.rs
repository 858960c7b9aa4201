//! Unit tests of each scheduling decision, and the cell-based [`TestQueues`] that the model
//! test shares.

use super::*;
use core::cell::{Cell, RefCell};

/// Queue capacity in the tests.
pub(super) const CAPACITY: usize = 8;

/// Queues of the tests.
pub(super) type Queue = RunQueue<u16, CAPACITY>;

/// [`RunQueues`] over plain cells. Holding two queues at once (what would be two spin locks in
/// the kernel) panics, so every test also checks that the policy never nests queue locks.
pub(super) struct TestQueues<const N: usize = CAPACITY> {
    pub(super) queues: Vec<RefCell<RunQueue<u16, N>>>,
    holding: Cell<bool>,
}

impl<const N: usize> TestQueues<N> {
    pub(super) fn new(cpus: usize) -> Self {
        Self {
            queues: CpuIndex::all(cpus)
                .map(|cpu| RefCell::new(RunQueue::new(cpu)))
                .collect(),
            holding: Cell::new(false),
        }
    }

    pub(super) fn queue(&self, cpu: CpuIndex) -> std::cell::Ref<'_, RunQueue<u16, N>> {
        self.queues[cpu.get()].borrow()
    }

    pub(super) fn queue_mut(&self, cpu: CpuIndex) -> std::cell::RefMut<'_, RunQueue<u16, N>> {
        self.queues[cpu.get()].borrow_mut()
    }
}

impl<const N: usize> RunQueues<u16, N> for TestQueues<N> {
    fn cpu_count(&self) -> usize {
        self.queues.len()
    }

    fn with_queue<R>(&self, cpu: CpuIndex, action: impl FnOnce(&mut RunQueue<u16, N>) -> R) -> R {
        assert!(
            !self.holding.replace(true),
            "two run-queue locks held at once"
        );
        let result = action(&mut self.queues[cpu.get()].borrow_mut());
        self.holding.set(false);
        result
    }

    fn hint(&self, cpu: CpuIndex) -> QueueHint {
        self.queues[cpu.get()].borrow().hint()
    }
}

pub(super) fn cpu(index: usize) -> CpuIndex {
    CpuIndex::new(index).unwrap()
}

const NORMAL: Priority = Priority::NORMAL;
const HIGH: Priority = Priority(200);
const LOW: Priority = Priority(10);

/// A queue on CPU 0 running thread 100 at `priority`.
fn running(priority: Priority) -> Queue {
    let mut queue = Queue::new(cpu(0));
    assert_eq!(queue.enqueue(100, priority, 0, cpu(0)), Ok(Notify::Nothing));
    assert_eq!(queue.take_next(0), Ok(Some(100)));
    queue
}

// --- enqueue and its IPI decision -------------------------------------------------------

#[test]
fn enqueue_on_looking_cpu_needs_no_ipi() {
    let mut queue = Queue::new(cpu(1));
    assert_eq!(queue.activity(), Activity::Looking);
    assert_eq!(queue.enqueue(1, NORMAL, 0, cpu(0)), Ok(Notify::Nothing));
    assert_eq!(
        queue.hint(),
        QueueHint {
            idle: true,
            stealable: 1
        }
    );
}

#[test]
fn enqueue_on_halting_cpu_sends_exactly_one_ipi() {
    let mut queue = Queue::new(cpu(1));
    assert_eq!(queue.take_next_or_halt(0), Ok(None));
    assert_eq!(queue.activity(), Activity::Halting);
    assert_eq!(
        queue.enqueue(1, NORMAL, 0, cpu(0)),
        Ok(Notify::Interrupt(cpu(1)))
    );
    assert_eq!(queue.activity(), Activity::Looking);
    assert_eq!(queue.enqueue(2, HIGH, 0, cpu(2)), Ok(Notify::Nothing));
}

#[test]
fn enqueue_from_interrupt_on_the_halting_cpu_itself_needs_no_ipi() {
    let mut queue = Queue::new(cpu(1));
    assert_eq!(queue.take_next_or_halt(0), Ok(None));
    assert_eq!(queue.enqueue(1, NORMAL, 0, cpu(1)), Ok(Notify::Nothing));
    assert_eq!(queue.activity(), Activity::Looking);
}

#[test]
fn enqueue_on_busy_cpu_interrupts_only_for_more_urgent_work_and_once() {
    let mut queue = running(NORMAL);
    assert_eq!(queue.enqueue(1, LOW, 0, cpu(1)), Ok(Notify::Nothing));
    assert_eq!(queue.enqueue(2, NORMAL, 0, cpu(1)), Ok(Notify::Nothing));
    assert_eq!(
        queue.enqueue(3, HIGH, 0, cpu(1)),
        Ok(Notify::Interrupt(cpu(0)))
    );
    // A reschedule is pending: the next urgent wake-up sends nothing more.
    assert_eq!(
        queue.enqueue(4, Priority::HIGHEST, 0, cpu(1)),
        Ok(Notify::Nothing)
    );
    // Handling it clears the flag.
    assert!(matches!(
        queue.on_reschedule(0),
        TickDecision::Switch { .. }
    ));
    assert_eq!(queue.current(), Some(4));
}

#[test]
fn enqueue_of_urgent_work_on_own_cpu_reschedules_locally() {
    let mut queue = running(NORMAL);
    assert_eq!(
        queue.enqueue(1, HIGH, 0, cpu(0)),
        Ok(Notify::RescheduleLocal)
    );
}

#[test]
fn enqueue_refuses_duplicates_and_full_queue() {
    let mut queue = running(NORMAL);
    assert_eq!(
        queue.enqueue(100, NORMAL, 0, cpu(0)),
        Err(ScheduleError::AlreadyQueued)
    );
    assert_eq!(queue.enqueue(1, NORMAL, 0, cpu(0)), Ok(Notify::Nothing));
    assert_eq!(
        queue.enqueue(1, NORMAL, 0, cpu(0)),
        Err(ScheduleError::AlreadyQueued)
    );
    for thread in 2..=CAPACITY as u16 {
        assert_eq!(
            queue.enqueue(thread, NORMAL, 0, cpu(0)),
            Ok(Notify::Nothing)
        );
    }
    assert_eq!(queue.len(), CAPACITY);
    assert_eq!(
        queue.enqueue(99, NORMAL, 0, cpu(0)),
        Err(ScheduleError::QueueFull)
    );
    assert_eq!(queue.len(), CAPACITY);
}

// --- choice of the next entry ------------------------------------------------------------

#[test]
fn next_is_most_urgent_then_first_come() {
    let mut queue = Queue::new(cpu(0));
    for (thread, priority) in [(1, NORMAL), (2, HIGH), (3, NORMAL), (4, HIGH), (5, LOW)] {
        assert_eq!(
            queue.enqueue(thread, priority, 0, cpu(0)),
            Ok(Notify::Nothing)
        );
    }
    let mut order = vec![queue.take_next(0).unwrap().unwrap()];
    while let Ok(Handoff {
        next: Some(next), ..
    }) = queue.on_block(0)
    {
        order.push(next);
    }
    assert_eq!(order, [2, 4, 1, 3, 5]);
}

#[test]
fn aged_entry_goes_ahead_of_more_urgent_ones_oldest_first() {
    let mut queue = Queue::new(cpu(0));
    assert_eq!(queue.enqueue(1, LOW, 0, cpu(0)), Ok(Notify::Nothing));
    assert_eq!(queue.enqueue(2, LOW, 1, cpu(0)), Ok(Notify::Nothing));
    assert_eq!(
        queue.enqueue(3, HIGH, AGING_TICKS, cpu(0)),
        Ok(Notify::Nothing)
    );
    // At AGING_TICKS only thread 1 has aged.
    assert_eq!(queue.take_next(AGING_TICKS), Ok(Some(1)));
    // Later, both 2 and 3 have aged: 2 waited longer.
    let handoff = queue.on_block(3 * AGING_TICKS).unwrap();
    assert_eq!(handoff.next, Some(2));
    // A clock that went backwards ages nothing.
    let mut queue = Queue::new(cpu(0));
    assert_eq!(queue.enqueue(1, LOW, 100, cpu(0)), Ok(Notify::Nothing));
    assert_eq!(queue.enqueue(2, HIGH, 100, cpu(0)), Ok(Notify::Nothing));
    assert_eq!(queue.take_next(0), Ok(Some(2)));
}

// --- tick and reschedule -----------------------------------------------------------------

#[test]
fn tick_with_nothing_else_runnable_continues() {
    let mut queue = running(NORMAL);
    assert_eq!(queue.on_tick(1), TickDecision::Continue);
    assert_eq!(queue.current(), Some(100));
    assert!(queue.is_empty());
    let mut idle = Queue::new(cpu(0));
    assert_eq!(idle.on_tick(1), TickDecision::Idle);
    assert_eq!(idle.on_reschedule(1), TickDecision::Idle);
}

#[test]
fn tick_round_robins_equal_priority_and_pins_the_previous_thread() {
    let mut queue = running(NORMAL);
    assert_eq!(queue.enqueue(1, NORMAL, 0, cpu(1)), Ok(Notify::Nothing));
    assert_eq!(
        queue.on_tick(1),
        TickDecision::Switch {
            previous: 100,
            next: 1
        }
    );
    let pinned: Vec<_> = queue.entries().collect();
    assert_eq!(
        pinned,
        [QueuedThread {
            thread: 100,
            priority: NORMAL,
            ready_since: 1,
            pinned: true
        }]
    );
    // Pinned: invisible to thieves and to this CPU until the switch completes.
    assert_eq!(
        queue.hint(),
        QueueHint {
            idle: false,
            stealable: 0
        }
    );
    assert_eq!(queue.steal(1), None);
    assert_eq!(queue.on_block(1).map(|handoff| handoff.next), Ok(None));
    queue.finish_switch();
    assert_eq!(
        queue.hint(),
        QueueHint {
            idle: true,
            stealable: 1
        }
    );
    assert_eq!(queue.steal(1).map(|stolen| stolen.thread), Some(100));
}

#[test]
fn tick_keeps_a_more_urgent_thread_until_the_other_ages() {
    let mut queue = running(HIGH);
    assert_eq!(queue.enqueue(1, LOW, 0, cpu(0)), Ok(Notify::Nothing));
    for now in 1..AGING_TICKS {
        assert_eq!(queue.on_tick(now), TickDecision::Continue);
    }
    assert_eq!(
        queue.on_tick(AGING_TICKS),
        TickDecision::Switch {
            previous: 100,
            next: 1
        }
    );
}

#[test]
fn reschedule_switches_only_to_strictly_more_urgent_work() {
    let mut queue = running(NORMAL);
    assert_eq!(queue.enqueue(1, NORMAL, 0, cpu(0)), Ok(Notify::Nothing));
    assert_eq!(queue.on_reschedule(1), TickDecision::Continue);
    assert_eq!(
        queue.enqueue(2, HIGH, 0, cpu(1)),
        Ok(Notify::Interrupt(cpu(0)))
    );
    assert_eq!(
        queue.on_reschedule(1),
        TickDecision::Switch {
            previous: 100,
            next: 2
        }
    );
}

// --- block, exit, steal, adopt -----------------------------------------------------------

#[test]
fn block_and_exit_hand_the_cpu_to_the_next_entry_or_to_idle() {
    let mut queue = running(NORMAL);
    assert_eq!(queue.enqueue(1, NORMAL, 0, cpu(0)), Ok(Notify::Nothing));
    assert_eq!(
        queue.on_block(1),
        Ok(Handoff {
            previous: 100,
            next: Some(1)
        })
    );
    assert_eq!(
        queue.on_exit(1),
        Ok(Handoff {
            previous: 1,
            next: None
        })
    );
    assert_eq!(queue.activity(), Activity::Looking);
    assert_eq!(queue.on_exit(1), Err(ScheduleError::NothingRunning));
    assert_eq!(queue.on_block(1), Err(ScheduleError::NothingRunning));
}

#[test]
fn busy_cpu_cannot_take_or_adopt_but_never_loses_the_stolen_thread() {
    let mut queue = running(NORMAL);
    assert_eq!(queue.take_next(0), Err(ScheduleError::CpuBusy));
    assert_eq!(queue.take_next_or_halt(0), Err(ScheduleError::CpuBusy));
    let mut victim = Queue::new(cpu(1));
    assert_eq!(victim.enqueue(7, HIGH, 3, cpu(1)), Ok(Notify::Nothing));
    let stolen = victim.steal(5).unwrap();
    assert!(victim.is_empty());
    assert_eq!(queue.adopt(stolen), Err(ScheduleError::CpuBusy));
    assert_eq!(
        queue.entries().collect::<Vec<_>>(),
        [QueuedThread {
            thread: 7,
            priority: HIGH,
            ready_since: 3,
            pinned: false
        }]
    );
}

#[test]
fn adopt_keeps_priority_and_ends_halting() {
    let mut victim = Queue::new(cpu(1));
    assert_eq!(victim.enqueue(7, HIGH, 3, cpu(1)), Ok(Notify::Nothing));
    let mut thief = Queue::new(cpu(0));
    assert_eq!(thief.take_next_or_halt(5), Ok(None));
    assert_eq!(thief.adopt(victim.steal(5).unwrap()), Ok(7));
    assert_eq!(thief.activity(), Activity::Running { priority: HIGH });
}

// --- placement ---------------------------------------------------------------------------

fn waker(index: usize, goes_idle: bool) -> Waker {
    Waker {
        cpu: cpu(index),
        goes_idle,
    }
}

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
        place(Some(1), waker(2, true), &[1, 3]),
        expect(2, PlacementRule::WakerGoesIdle)
    );
    assert_eq!(
        place(Some(1), waker(2, false), &[1, 3]),
        expect(1, PlacementRule::LastCpuIdle)
    );
    assert_eq!(
        place(Some(1), waker(0, false), &[0, 3]),
        expect(3, PlacementRule::OtherIdleCpu)
    );
    assert_eq!(
        place(Some(3), waker(0, false), &[1, 2]),
        expect(1, PlacementRule::OtherIdleCpu)
    );
    assert_eq!(
        place(Some(1), waker(0, false), &[]),
        expect(1, PlacementRule::LastCpu)
    );
    assert_eq!(
        place(None, waker(2, false), &[0]),
        expect(0, PlacementRule::OtherIdleCpu)
    );
    // New thread, all busy: least loaded, the waker's CPU first on a tie.
    assert_eq!(
        place(None, waker(3, false), &[]),
        expect(3, PlacementRule::LeastLoaded)
    );
    assert_eq!(
        place(None, waker(2, false), &[]),
        expect(3, PlacementRule::LeastLoaded)
    );
    assert_eq!(
        place(None, waker(0, false), &[]),
        expect(1, PlacementRule::LeastLoaded)
    );
}

#[test]
fn placement_ignores_cpus_outside_the_count() {
    let loads = [0, 0];
    let idle_outside = set(&[5]);
    let placement = place_wake(Some(cpu(7)), waker(6, true), idle_outside, &loads);
    assert!(placement.cpu.get() < 2, "{placement:?}");
    let placement = place_wake(Some(cpu(7)), waker(6, false), set(&[1, 5]), &loads);
    assert_eq!(placement.cpu, cpu(1));
    // No CPU at all (make_runnable refuses that earlier): CPU 0, and no panic.
    assert_eq!(
        place_wake(None, waker(3, false), CpuSet::EMPTY, &[]).cpu,
        cpu(0)
    );
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

// --- pick_next and make_runnable over several queues -------------------------------------

#[test]
fn pick_next_prefers_own_queue_then_steals_from_the_busiest() {
    let queues = TestQueues::<CAPACITY>::new(3);
    assert_eq!(
        queues.queue_mut(cpu(0)).enqueue(1, NORMAL, 0, cpu(0)),
        Ok(Notify::Nothing)
    );
    assert_eq!(
        queues.queue_mut(cpu(1)).enqueue(2, NORMAL, 0, cpu(1)),
        Ok(Notify::Nothing)
    );
    assert_eq!(
        queues.queue_mut(cpu(2)).enqueue(3, NORMAL, 0, cpu(2)),
        Ok(Notify::Nothing)
    );
    assert_eq!(
        queues.queue_mut(cpu(2)).enqueue(4, NORMAL, 0, cpu(2)),
        Ok(Notify::Nothing)
    );
    assert_eq!(
        pick_next(&queues, cpu(0), 0),
        Ok(Pick::Run {
            thread: 1,
            stolen_from: None
        })
    );
    assert_eq!(
        queues
            .queue_mut(cpu(0))
            .on_exit(0)
            .map(|handoff| handoff.next),
        Ok(None)
    );
    assert_eq!(
        pick_next(&queues, cpu(0), 0),
        Ok(Pick::Run {
            thread: 3,
            stolen_from: Some(cpu(2))
        })
    );
    assert_eq!(queues.queue(cpu(0)).current(), Some(3));
    assert_eq!(pick_next(&queues, cpu(0), 0), Err(ScheduleError::CpuBusy));
    assert_eq!(pick_next(&queues, cpu(3), 0), Err(ScheduleError::NoSuchCpu));
}

#[test]
fn pick_next_skips_a_victim_holding_only_pinned_work_and_halts_when_nothing_is_left() {
    let queues = TestQueues::<CAPACITY>::new(3);
    // CPU 1 preempted 10 for 11: 10 is pinned, so the hint shows nothing stealable there.
    {
        let mut queue = queues.queue_mut(cpu(1));
        assert_eq!(queue.enqueue(10, NORMAL, 0, cpu(1)), Ok(Notify::Nothing));
        assert_eq!(queue.take_next(0), Ok(Some(10)));
        assert_eq!(queue.enqueue(11, NORMAL, 0, cpu(1)), Ok(Notify::Nothing));
        assert!(matches!(queue.on_tick(1), TickDecision::Switch { .. }));
    }
    assert_eq!(pick_next(&queues, cpu(0), 1), Ok(Pick::<u16>::Halt));
    assert_eq!(queues.queue(cpu(0)).activity(), Activity::Halting);
    // Once the switch completes, the entry is stealable again.
    queues.queue_mut(cpu(1)).finish_switch();
    assert_eq!(
        pick_next(&queues, cpu(0), 2),
        Ok(Pick::Run {
            thread: 10,
            stolen_from: Some(cpu(1))
        })
    );
}

#[test]
fn pick_next_after_a_halt_stops_halting_first() {
    let queues = TestQueues::<CAPACITY>::new(2);
    assert_eq!(pick_next(&queues, cpu(1), 0), Ok(Pick::<u16>::Halt));
    assert_eq!(pick_next(&queues, cpu(1), 0), Ok(Pick::<u16>::Halt));
    // Between the two calls the CPU was looking; now it is halting again.
    assert_eq!(queues.queue(cpu(1)).activity(), Activity::Halting);
}

#[test]
fn make_runnable_wakes_one_idle_cpu_with_one_ipi() {
    let queues = TestQueues::<CAPACITY>::new(4);
    for index in 0..4 {
        assert_eq!(pick_next(&queues, cpu(index), 0), Ok(Pick::<u16>::Halt));
    }
    let wakeup = make_runnable(&queues, 5, NORMAL, Some(cpu(2)), waker(0, false), 0);
    assert_eq!(
        wakeup,
        Ok(Wakeup {
            cpu: cpu(2),
            rule: PlacementRule::LastCpuIdle,
            notify: Notify::Interrupt(cpu(2))
        })
    );
    for index in [0, 1, 3] {
        assert_eq!(queues.queue(cpu(index)).activity(), Activity::Halting);
    }
}

#[test]
fn make_runnable_falls_back_when_the_target_queue_is_full() {
    let queues = TestQueues::<CAPACITY>::new(2);
    for thread in 0..CAPACITY as u16 {
        assert_eq!(
            queues.queue_mut(cpu(0)).enqueue(thread, NORMAL, 0, cpu(0)),
            Ok(Notify::Nothing)
        );
    }
    let wakeup = make_runnable(&queues, 50, NORMAL, Some(cpu(0)), waker(0, true), 0).unwrap();
    assert_eq!(wakeup.cpu, cpu(1));
    for thread in 51..50 + CAPACITY as u16 {
        assert_eq!(
            queues.queue_mut(cpu(1)).enqueue(thread, NORMAL, 0, cpu(1)),
            Ok(Notify::Nothing)
        );
    }
    assert_eq!(
        make_runnable(&queues, 99, NORMAL, None, waker(1, false), 0),
        Err(ScheduleError::QueueFull)
    );
}

#[test]
fn no_cpus_is_an_error_not_a_panic() {
    let queues = TestQueues::<CAPACITY>::new(0);
    assert_eq!(
        make_runnable(&queues, 1, NORMAL, None, waker(0, false), 0),
        Err(ScheduleError::NoSuchCpu)
    );
    assert_eq!(pick_next(&queues, cpu(0), 0), Err(ScheduleError::NoSuchCpu));
}

// --- thread state machine ----------------------------------------------------------------

#[test]
fn thread_runs_blocks_and_wakes() {
    let mut thread = ThreadState::new();
    assert_eq!(thread.phase(), Phase::Ready);
    assert_eq!(thread.dispatch(cpu(1)), Ok(()));
    assert_eq!(thread.last_cpu(), Some(cpu(1)));
    assert_eq!(
        thread.dispatch(cpu(2)),
        Err(TransitionError {
            phase: Phase::Running(cpu(1)),
            event: ThreadEvent::Dispatch
        })
    );
    assert_eq!(thread.begin_block(), Ok(BlockDecision::Proceed));
    assert_eq!(
        thread.switched_out(SwitchReason::Stopped),
        Ok(AfterSwitch::Nothing)
    );
    assert_eq!(thread.phase(), Phase::Blocked);
    assert_eq!(
        thread.dispatch(cpu(0)).map_err(|error| error.phase),
        Err(Phase::Blocked)
    );
    assert_eq!(
        thread.wake(),
        WakeAction::Place {
            last_cpu: Some(cpu(1))
        }
    );
    assert_eq!(thread.wake(), WakeAction::Nothing);
    assert_eq!(thread.phase(), Phase::Ready);
}

#[test]
fn wake_while_blocking_is_not_lost() {
    let mut thread = ThreadState::new();
    thread.dispatch(cpu(0)).unwrap();
    assert_eq!(thread.begin_block(), Ok(BlockDecision::Proceed));
    assert_eq!(thread.wake(), WakeAction::AlreadyOnCpu);
    assert_eq!(thread.phase(), Phase::Running(cpu(0)));
    assert_eq!(
        thread.switched_out(SwitchReason::Stopped),
        Ok(AfterSwitch::Place {
            last_cpu: Some(cpu(0))
        })
    );
    assert_eq!(thread.phase(), Phase::Ready);
}

#[test]
fn cancelled_block_and_preemption() {
    let mut thread = ThreadState::new();
    thread.dispatch(cpu(0)).unwrap();
    assert_eq!(thread.begin_block(), Ok(BlockDecision::Proceed));
    assert_eq!(thread.cancel_block(), Ok(()));
    assert_eq!(thread.cancel_block(), Ok(()));
    assert_eq!(
        thread.switched_out(SwitchReason::Preempted),
        Ok(AfterSwitch::Nothing)
    );
    assert_eq!(thread.phase(), Phase::Ready);
    assert!(thread.cancel_block().is_err());
    assert!(thread.begin_block().is_err());
    assert!(thread.exit().is_err());
    assert!(thread.switched_out(SwitchReason::Stopped).is_err());
}

#[test]
fn exit_is_reaped_after_the_switch() {
    let mut thread = ThreadState::new();
    thread.dispatch(cpu(3)).unwrap();
    assert_eq!(thread.exit(), Ok(()));
    assert_eq!(thread.wake(), WakeAction::Nothing);
    assert!(thread.switched_out(SwitchReason::Preempted).is_err());
    assert_eq!(
        thread.switched_out(SwitchReason::Stopped),
        Ok(AfterSwitch::Reap)
    );
    assert_eq!(thread.phase(), Phase::Dead);
    assert_eq!(thread.request_kill(), KillAction::Nothing);
    assert!(!thread.kill_requested());
}

#[test]
fn kill_reaches_the_thread_in_every_phase() {
    let mut running = ThreadState::new();
    running.dispatch(cpu(2)).unwrap();
    assert_eq!(running.request_kill(), KillAction::Interrupt(cpu(2)));
    assert!(running.kill_requested());
    assert_eq!(running.begin_block(), Ok(BlockDecision::Killed));
    assert_eq!(running.phase(), Phase::Running(cpu(2)));

    let mut blocking = ThreadState::new();
    blocking.dispatch(cpu(1)).unwrap();
    assert_eq!(blocking.begin_block(), Ok(BlockDecision::Proceed));
    assert_eq!(blocking.request_kill(), KillAction::Nothing);
    assert_eq!(
        blocking.switched_out(SwitchReason::Stopped),
        Ok(AfterSwitch::Place {
            last_cpu: Some(cpu(1))
        })
    );

    let mut blocked = ThreadState::new();
    blocked.dispatch(cpu(0)).unwrap();
    assert_eq!(blocked.begin_block(), Ok(BlockDecision::Proceed));
    assert_eq!(
        blocked.switched_out(SwitchReason::Stopped),
        Ok(AfterSwitch::Nothing)
    );
    assert_eq!(
        blocked.request_kill(),
        KillAction::Place {
            last_cpu: Some(cpu(0))
        }
    );
    assert_eq!(blocked.phase(), Phase::Ready);

    let mut ready = ThreadState::default();
    assert_eq!(ready.request_kill(), KillAction::Nothing);
    assert!(ready.kill_requested());
    assert_eq!(ready.dispatch(cpu(0)), Ok(()));
}

// --- address spaces and shootdown --------------------------------------------------------

#[test]
fn cr3_is_written_only_for_a_different_address_space() {
    assert!(!needs_address_space_switch(Some(&7u64), &7));
    assert!(needs_address_space_switch(Some(&7u64), &8));
    assert!(needs_address_space_switch(None, &8u64));
    assert_eq!(
        address_space_switch(Some(7u64), Some(7)),
        AddressSpaceSwitch::Keep
    );
    assert_eq!(
        address_space_switch(Some(7u64), None),
        AddressSpaceSwitch::Keep
    );
    assert_eq!(
        address_space_switch(None::<u64>, None),
        AddressSpaceSwitch::Keep
    );
    assert_eq!(
        address_space_switch(Some(7u64), Some(8)),
        AddressSpaceSwitch::Load {
            previous: Some(7),
            next: 8
        }
    );
}

#[test]
fn flush_method_and_targets() {
    assert_eq!(flush_method(0), FlushMethod::Pages);
    assert_eq!(flush_method(FLUSH_PAGE_LIMIT), FlushMethod::Pages);
    assert_eq!(flush_method(FLUSH_PAGE_LIMIT + 1), FlushMethod::Everything);
    assert_eq!(shootdown_targets(set(&[0, 2, 5]), cpu(2)), set(&[0, 5]));
    assert_eq!(shootdown_targets(set(&[2]), cpu(2)), CpuSet::EMPTY);
    assert_eq!(
        respond_to_shootdown(false, false, 1),
        ShootdownResponse::Nothing
    );
    assert_eq!(
        respond_to_shootdown(true, true, 1),
        ShootdownResponse::Unload
    );
    assert_eq!(
        respond_to_shootdown(true, false, 40),
        ShootdownResponse::Invalidate(FlushMethod::Everything)
    );
}

#[test]
fn shootdown_completes_when_every_target_flushed_or_left() {
    let mut shootdown = Shootdown::new(set(&[0, 1, 2, 3]), cpu(0), 5);
    assert_eq!(shootdown.waiting(), set(&[1, 2, 3]));
    assert_eq!(shootdown.generation(), 5);
    let stale = TargetView {
        has_space_loaded: true,
        flushed_generation: 4,
    };
    assert!(!shootdown.observe(cpu(1), stale));
    assert!(!shootdown.observe(
        cpu(1),
        TargetView {
            flushed_generation: 5,
            ..stale
        }
    ));
    assert!(!shootdown.observe(
        cpu(2),
        TargetView {
            has_space_loaded: false,
            flushed_generation: 0
        }
    ));
    assert!(shootdown.observe(
        cpu(3),
        TargetView {
            flushed_generation: 9,
            ..stale
        }
    ));
    assert!(Shootdown::new(set(&[4]), cpu(4), 1).is_complete());
}

#[test]
fn errors_display() {
    assert_eq!(ScheduleError::QueueFull.to_string(), "run queue is full");
    let error = TransitionError {
        phase: Phase::Blocked,
        event: ThreadEvent::Dispatch,
    };
    assert_eq!(
        error.to_string(),
        "Dispatch is not allowed in phase Blocked"
    );
}
