//! Everything a thread has registered with other kernel objects, owned by
//! the thread, so that its end takes all of it back ([`withdraw_all`]).
//!
//! A registration is an entry naming the thread that some other object
//! keeps until an event completes it: a timer deadline, a park wait, a
//! process-exit wait, a join, an endpoint receive, call or awaited reply.
//! Left behind by an ended thread, such an entry pins the thread (its
//! kernel stack, ring and slot) and may swallow work meant for the living
//! (a call delivered into a dead receiver's buffer).
//!
//! Invariants:
//! - Only the thread itself makes registrations (on its own system call
//!   path), and [`withdraw_all`] runs on that same path as the first step
//!   of its end (`thread::exit_current`), so no registration can be made
//!   after the withdrawal.
//! - Every kind is a [`Kind`]; [`withdraw_all`] matches on all of them, so
//!   a new kind does not compile until its withdrawal is written. Timers
//!   and park waits keep their own per-thread records (`timer::ThreadTimers`,
//!   the park buckets); the others are noted here ([`Registrations::note`])
//!   before the object queues them, one entry per object.
//! - The list holds weak references only (no cycle through it), one per
//!   object, and is pruned whenever an entry is added, so it stays bounded
//!   by the live objects the thread may still wait on.
//! - Lock order: a process's exit state → a thread's registration list →
//!   a thread's end state (`Process::wait` notes under its exit lock; a
//!   note prunes ended join targets). Withdrawal takes the list and
//!   releases it before it touches any object.

use crate::objects::Endpoint;
use crate::process::Process;
use crate::thread::Thread;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use capos_abi::Error;
use spin::Mutex;

/// The kinds of registration a thread can make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A deadline (`TimerSleep`, a `cap_enter` or `Park` timeout).
    Timer,
    /// A `Park` wait.
    Park,
    /// A `ProcessWait` on a process that has not exited.
    ExitWait,
    /// A `ThreadJoin` on a thread that has not ended.
    Join,
    /// An `EndpointReceive` or `EndpointCall` queued on an endpoint, or a
    /// received call awaiting this thread's reply (or a call of this
    /// thread awaiting its reply).
    Endpoint,
}

impl Kind {
    /// Every kind, in the order [`withdraw_all`] withdraws them.
    pub const ALL: [Kind; 5] = [
        Kind::Timer,
        Kind::Park,
        Kind::ExitWait,
        Kind::Join,
        Kind::Endpoint,
    ];
}

/// One noted registration: the object that holds an entry naming the
/// thread.
pub enum Registration {
    ExitWait(Weak<Process>),
    Join(Weak<Thread>),
    Endpoint(Weak<Endpoint>),
}

impl Registration {
    fn kind(&self) -> Kind {
        match self {
            Registration::ExitWait(_) => Kind::ExitWait,
            Registration::Join(_) => Kind::Join,
            Registration::Endpoint(_) => Kind::Endpoint,
        }
    }

    fn same_object(&self, other: &Registration) -> bool {
        match (self, other) {
            (Registration::ExitWait(a), Registration::ExitWait(b)) => a.ptr_eq(b),
            (Registration::Join(a), Registration::Join(b)) => a.ptr_eq(b),
            (Registration::Endpoint(a), Registration::Endpoint(b)) => a.ptr_eq(b),
            _ => false,
        }
    }

    /// Whether the object may still hold an entry of the thread: it is
    /// alive and (for a process or thread) has not ended, since an end
    /// completes and drops every wait on it.
    fn may_be_held(&self) -> bool {
        match self {
            // Not `exit_code()`: an exit wait is noted under its process's
            // exit lock. An exited process forgets its waits itself
            // (`forget_exit_wait`).
            Registration::ExitWait(process) => process.strong_count() > 0,
            Registration::Join(target) => target.upgrade().is_some_and(|target| !target.ended()),
            Registration::Endpoint(endpoint) => endpoint.strong_count() > 0,
        }
    }
}

/// A thread's noted registrations.
pub struct Registrations {
    entries: Mutex<Vec<Registration>>,
}

impl Registrations {
    /// None yet.
    pub const fn new() -> Self {
        Self {
            entries: Mutex::new(Vec::new()),
        }
    }

    /// Note that the object of `registration` is about to hold an entry
    /// naming this thread (call before queueing it there). A second entry
    /// for the same object is not added (the common case, a server
    /// receiving on its endpoint again, is one comparison); before a new
    /// one is added, entries whose object can no longer hold one are
    /// dropped. `OutOfMemory` when the list cannot grow (then queue
    /// nothing).
    pub fn note(&self, registration: Registration) -> Result<(), Error> {
        let mut entries = self.entries.lock();
        if entries.iter().any(|known| known.same_object(&registration)) {
            return Ok(());
        }
        entries.retain(Registration::may_be_held);
        entries.try_reserve(1).map_err(|_| Error::OutOfMemory)?;
        entries.push(registration);
        Ok(())
    }

    /// `process` has exited and answered this thread's waits on it.
    pub fn forget_exit_wait(&self, process: &Process) {
        self.entries.lock().retain(|known| match known {
            Registration::ExitWait(waited) => !core::ptr::eq(waited.as_ptr(), process),
            _ => true,
        });
    }

    fn take(&self) -> Vec<Registration> {
        core::mem::take(&mut *self.entries.lock())
    }
}

/// `thread` is ending: withdraw every registration it made, of every
/// [`Kind`]. Timer deadlines are cancelled, park waits dropped, exit
/// waits and joins removed from their objects, the thread's receives and
/// calls taken off their endpoints, and every call it received but did not
/// answer completed with `PeerGone` for its caller.
pub fn withdraw_all(thread: &Arc<Thread>) {
    let noted = thread.registrations.take();
    for kind in Kind::ALL {
        match kind {
            Kind::Timer => thread.timers.cancel_all(),
            Kind::Park => crate::park::forget_thread(thread),
            Kind::ExitWait | Kind::Join | Kind::Endpoint => {
                for registration in noted.iter().filter(|noted| noted.kind() == kind) {
                    withdraw(thread, registration);
                }
            }
        }
    }
}

/// Take `thread`'s entries off the object of one noted registration.
fn withdraw(thread: &Arc<Thread>, registration: &Registration) {
    match registration {
        Registration::ExitWait(process) => {
            if let Some(process) = process.upgrade() {
                process.forget_waiter(thread);
            }
        }
        Registration::Join(target) => {
            if let Some(target) = target.upgrade() {
                target.forget_joiner(thread);
            }
        }
        Registration::Endpoint(endpoint) => {
            if let Some(endpoint) = endpoint.upgrade() {
                endpoint.thread_ended(thread);
            }
        }
    }
}
