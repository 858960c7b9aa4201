//! The kernel's half of every interrupt: the architecture layer classifies
//! it ([`classify`]) and this module acts on the event (timer deadlines,
//! preemption, killed threads, user faults), so `arch` never calls up.

use crate::measure::{self, Counter};
use crate::platform::interrupts::{classify, InterruptEvent, InterruptFrame};
use crate::{sched, timer, userspace};

/// Called by `interrupt_common` (entry.S) for every vector, interrupts off.
#[no_mangle]
extern "C" fn interrupt_dispatch(frame: &mut InterruptFrame) {
    match classify(frame) {
        InterruptEvent::Tick { from_user } => {
            measure::tick(from_user);
            timer::poll();
            if from_user {
                if let Some(thread) = sched::current() {
                    measure::sample_user_pc(thread.process.id, frame.rip);
                    if sched::should_preempt() {
                        sched::switch_to_scheduler(&thread, sched::SwitchFrom::Interrupt);
                    }
                    crate::thread::exit_if_killed(&thread);
                }
            }
        }
        // Sent to a CPU running a thread that has been killed (process
        // exit), or to wake an idle CPU: a killed thread leaves user mode now.
        InterruptEvent::Reschedule { from_user } => {
            measure::count(Counter::RescheduleIpiReceived);
            if from_user {
                if let Some(thread) = sched::current() {
                    crate::thread::exit_if_killed(&thread);
                }
            }
        }
        InterruptEvent::UserFault { name } => userspace::user_fault(frame, name),
        InterruptEvent::Handled => {}
    }
}
