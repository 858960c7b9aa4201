//! Kernel objects that capabilities name, and the endpoint rendezvous.
//!
//! An endpoint pairs callers with receivers. A call carries a message (and
//! optionally a capability, copied into the receiver's table) and waits for
//! the reply, which may carry a capability back. Messages are copied
//! between address spaces through the kernel; no user memory is shared.
//!
//! Invariants:
//! - Rights: an `endpoint` capability can only call; receiving and replying
//!   need the `endpoint-server` right ([`EndpointRights`]). A capability
//!   passed along keeps its rights.
//! - A reply token names one received call and is bound to the thread that
//!   received it: tokens are never reused (64-bit counter), and a reply from
//!   any other thread, or a second reply, is refused with `NotFound`.
//! - Every queued call and receive is an operation in flight of its thread
//!   (bounded by `PENDING_PER_THREAD`); queues grow fallibly
//!   (`OutOfMemory`). A thread's entries (its receives, its calls, the
//!   calls it received and has not answered) are all removed when the
//!   thread ends (it notes the endpoint in its `registrations` before it
//!   queues anything), and a process's when it exits; an unanswered call
//!   whose receiver ended completes with `PeerGone`.
//! - A capability transferred to an exited process is refused
//!   (`ProcessExited`, see `Process::grant`).

use crate::process::Process;
use crate::registrations::Registration;
use crate::ring::Answer;
use crate::thread::Thread;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_abi::limits::MESSAGE_MAX;
use capos_abi::{CapabilityHandle, Error};
use spin::Mutex;

/// What a capability refers to.
#[derive(Clone)]
pub enum KernelObject {
    Console,
    ProcessSpawner,
    ProcessHandle(Arc<Process>),
    Endpoint(Arc<Endpoint>, EndpointRights),
    Timer,
    BootManifest,
    Diagnostics,
    ThreadSpawner,
    ThreadHandle(Arc<Thread>),
    ParkSpace,
    Memory,
}

/// What an endpoint capability allows beyond calling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointRights {
    /// Receive calls and reply to them.
    pub receive: bool,
}

impl EndpointRights {
    /// Call only (`endpoint`).
    pub const CALL: Self = Self { receive: false };
    /// Call, receive and reply (`endpoint-server`).
    pub const SERVE: Self = Self { receive: true };

    /// `MissingRight` unless these rights include receiving.
    pub fn require_receive(self) -> Result<(), Error> {
        if self.receive {
            Ok(())
        } else {
            Err(Error::MissingRight)
        }
    }
}

/// A message copied in from user space, held inline: a call or reply
/// needs no heap of its own.
pub struct Message {
    bytes: [u8; MESSAGE_MAX as usize],
    length: usize,
}

impl Message {
    /// Copy `length` bytes at `address` of `thread`'s address space
    /// (`TooLarge` past [`MESSAGE_MAX`]; see `AddressSpace::read_argument`).
    pub fn read(thread: &Thread, address: u64, length: u64) -> Result<Self, Error> {
        if length > MESSAGE_MAX {
            return Err(Error::TooLarge);
        }
        let mut message = Self {
            bytes: [0; MESSAGE_MAX as usize],
            length: length as usize,
        };
        thread
            .process
            .address_space()
            .read_argument(address, &mut message.bytes[..message.length])?;
        Ok(message)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.length]
    }
}

/// A buffer in a process's memory, checked to lie in user space, that an
/// answer is copied into later (a call's reply, a receive's message).
#[derive(Clone, Copy, Debug)]
pub struct UserBuffer {
    /// User address of the first byte.
    pub address: u64,
    /// Bytes it holds.
    pub capacity: u64,
}

/// A call waiting for a receiver, or for its reply.
struct Call {
    caller: Arc<Thread>,
    user_data: u64,
    message: Message,
    transfer: Option<KernelObject>,
    /// Where the reply goes in the caller.
    reply: UserBuffer,
}

/// A receive waiting for a call.
struct Receive {
    thread: Arc<Thread>,
    user_data: u64,
    /// Where the call's message goes in the receiver.
    buffer: UserBuffer,
}

/// A delivered call waiting for its reply.
struct Awaiting {
    token: u64,
    call: Call,
    /// The thread that received the call; only it may reply.
    receiver: Arc<Thread>,
}

#[derive(Default)]
struct EndpointState {
    calls: VecDeque<Call>,
    receives: VecDeque<Receive>,
    awaiting_reply: Vec<Awaiting>,
    next_token: u64,
}

/// Entries of room an empty queue keeps, so a steady exchange of calls
/// and replies allocates nothing.
const IDLE_ROOM: usize = 4;

impl EndpointState {
    /// Give back the capacity of queues that are empty beyond
    /// [`IDLE_ROOM`] entries, so an idle endpoint holds at most that much
    /// heap whatever its past load was (after a burst of calls the kernel's
    /// heap counter returns to its value after the first few).
    fn release_idle_capacity(&mut self) {
        if self.calls.is_empty() {
            self.calls.shrink_to(IDLE_ROOM);
        }
        if self.receives.is_empty() {
            self.receives.shrink_to(IDLE_ROOM);
        }
        if self.awaiting_reply.is_empty() {
            self.awaiting_reply.shrink_to(IDLE_ROOM);
        }
    }
}

/// Calls, receives and unanswered calls queued on every endpoint.
static QUEUED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Entries queued on endpoints, kernel-wide (diagnostics).
pub fn endpoint_waiters() -> u64 {
    QUEUED.load(core::sync::atomic::Ordering::Relaxed)
}

fn queued_changed(added: usize, removed: usize) {
    use core::sync::atomic::Ordering;
    QUEUED.fetch_add(added as u64, Ordering::Relaxed);
    QUEUED.fetch_sub(removed as u64, Ordering::Relaxed);
}

/// A named rendezvous point for calls and replies.
pub struct Endpoint {
    state: Mutex<EndpointState>,
}

impl Endpoint {
    /// A new endpoint.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(EndpointState::default()),
        })
    }

    /// Queue a call; delivered at once if a receiver waits. The caller's
    /// completion is posted when the reply comes. Noted in the caller's
    /// registrations first, so its end withdraws the call.
    pub fn call(
        self: &Arc<Self>,
        caller: &Arc<Thread>,
        user_data: u64,
        message: Message,
        transfer: Option<KernelObject>,
        reply: UserBuffer,
    ) -> Result<(), Error> {
        caller
            .registrations
            .note(Registration::Endpoint(Arc::downgrade(self)))?;
        let mut call = Call {
            caller: caller.clone(),
            user_data,
            message,
            transfer,
            reply,
        };
        let mut state = self.state.lock();
        // Room for the call either way: queued, or awaiting its reply.
        state
            .calls
            .try_reserve(1)
            .and(state.awaiting_reply.try_reserve(1))
            .map_err(|_| Error::OutOfMemory)?;
        while let Some(receive) = state.receives.pop_front() {
            queued_changed(0, 1);
            match deliver(&mut state, call, receive) {
                Ok(()) => return Ok(()),
                Err(returned) => call = returned,
            }
        }
        state.calls.push_back(call);
        queued_changed(1, 0);
        Ok(())
    }

    /// Take the next call into `buffer` of `thread`; the receive completes
    /// now (a call was queued) or later. Noted in the thread's
    /// registrations first, so its end withdraws the receive and answers
    /// the calls it received with `PeerGone`.
    pub fn receive(
        self: &Arc<Self>,
        thread: &Arc<Thread>,
        user_data: u64,
        buffer: UserBuffer,
    ) -> Result<(), Error> {
        thread
            .registrations
            .note(Registration::Endpoint(Arc::downgrade(self)))?;
        let receive = Receive {
            thread: thread.clone(),
            user_data,
            buffer,
        };
        let mut state = self.state.lock();
        state
            .receives
            .try_reserve(1)
            .and(state.awaiting_reply.try_reserve(1))
            .map_err(|_| Error::OutOfMemory)?;
        if let Some(call) = state.calls.pop_front() {
            queued_changed(0, 1);
            // On failure `deliver` has already completed this receive with
            // the error; the call stays first in line for the next receiver.
            if let Err(call) = deliver(&mut state, call, receive) {
                state.calls.push_front(call);
                queued_changed(1, 0);
            }
            return Ok(());
        }
        state.receives.push_back(receive);
        queued_changed(1, 0);
        Ok(())
    }

    /// Answer the call with `token`, which `replier` must have received:
    /// copy the reply into the caller and complete its call. A token this
    /// thread does not hold (forged, another thread's, already answered) is
    /// `NotFound`. Problems on the caller's side go to the caller.
    pub fn reply(
        &self,
        replier: &Thread,
        token: u64,
        message: &[u8],
        transfer: Option<KernelObject>,
    ) -> Result<(), Error> {
        let call = {
            let mut state = self.state.lock();
            let position = state
                .awaiting_reply
                .iter()
                .position(|awaiting| {
                    awaiting.token == token && core::ptr::eq(&*awaiting.receiver, replier)
                })
                .ok_or(Error::NotFound)?;
            queued_changed(0, 1);
            state.release_idle_capacity();
            state.awaiting_reply.swap_remove(position).call
        };
        let process = &call.caller.process;
        let answer = if message.len() as u64 > call.reply.capacity {
            Answer::error_without_capability(Error::TooLarge)
        } else if let Err(error) = process.address_space().write(call.reply.address, message) {
            Answer::error_without_capability(error)
        } else {
            match transfer.map(|object| process.grant(object)) {
                Some(Err(error)) => Answer::error_without_capability(error),
                Some(Ok(handle)) => Answer::ok_with(message.len() as i64, u64::from(handle.0)),
                None => Answer::ok_with(message.len() as i64, u64::from(CapabilityHandle::NONE.0)),
            }
        };
        crate::ring::post(&call.caller, call.user_data, answer);
        Ok(())
    }
}

impl Endpoint {
    /// Process `process_id` has exited: its waiting receives go away, calls
    /// it sent are dropped, and every call it received but never answered
    /// completes with `PeerGone`, so no caller waits forever. (Each of its
    /// threads does the same for itself as it ends; this does it for all
    /// at once, at the exit.)
    pub fn process_exited(&self, process_id: u64) {
        self.withdraw(|thread| thread.process.id == process_id);
    }

    /// `thread` is ending (`registrations::withdraw_all`): its waiting
    /// receives go away, its calls are dropped, and every call it received
    /// but never answered completes with `PeerGone`.
    pub fn thread_ended(&self, thread: &Thread) {
        self.withdraw(|entry| core::ptr::eq(entry, thread));
    }

    /// Take off every entry of the threads `gone` selects: receives, calls
    /// queued or awaiting their reply (forgotten: a later reply finds
    /// nothing), and calls they received and never answered (back to their
    /// callers as `PeerGone`, after the endpoint lock is released).
    fn withdraw(&self, gone: impl Fn(&Thread) -> bool) {
        let mut orphaned: Vec<Call> = Vec::new();
        {
            let mut state = self.state.lock();
            let before = state.receives.len() + state.calls.len() + state.awaiting_reply.len();
            state.receives.retain(|receive| !gone(&receive.thread));
            state.calls.retain(|call| !gone(&call.caller));
            let mut index = 0;
            while index < state.awaiting_reply.len() {
                let awaiting = &state.awaiting_reply[index];
                if gone(&awaiting.call.caller) {
                    state.awaiting_reply.swap_remove(index);
                } else if gone(&awaiting.receiver) {
                    let awaiting = state.awaiting_reply.swap_remove(index);
                    if orphaned.try_reserve(1).is_ok() {
                        orphaned.push(awaiting.call);
                    } else {
                        complete_orphan(awaiting.call);
                    }
                } else {
                    index += 1;
                }
            }
            let after = state.receives.len() + state.calls.len() + state.awaiting_reply.len();
            queued_changed(0, before - after);
            state.release_idle_capacity();
        }
        for call in orphaned {
            complete_orphan(call);
        }
    }
}

/// Tell the caller of an unanswered call that its server is gone.
fn complete_orphan(call: Call) {
    crate::ring::post(
        &call.caller,
        call.user_data,
        Answer::error_without_capability(Error::PeerGone),
    );
}

/// Hand `call` to `receive`: copy the message and capability into the
/// receiver and complete its receive. On a bad receive buffer the receiver
/// gets an error and the call is handed back. The caller has reserved room
/// in `awaiting_reply`.
// The call comes back by value on failure; boxing it would bring back the
// allocation per call that the inline message avoids.
#[allow(clippy::result_large_err)]
fn deliver(state: &mut EndpointState, call: Call, receive: Receive) -> Result<(), Call> {
    let process = &receive.thread.process;
    let length = call.message.as_bytes().len() as u64;
    if length > receive.buffer.capacity {
        crate::ring::post(
            &receive.thread,
            receive.user_data,
            Answer::error(Error::TooLarge),
        );
        return Err(call);
    }
    if let Err(error) = process
        .address_space()
        .write(receive.buffer.address, call.message.as_bytes())
    {
        crate::ring::post(&receive.thread, receive.user_data, Answer::error(error));
        return Err(call);
    }
    let transferred = match call.transfer.clone().map(|object| process.grant(object)) {
        Some(Ok(handle)) => handle,
        Some(Err(error)) => {
            crate::ring::post(&receive.thread, receive.user_data, Answer::error(error));
            return Err(call);
        }
        None => CapabilityHandle::NONE,
    };
    state.next_token += 1;
    let token = state.next_token;
    crate::ring::post(
        &receive.thread,
        receive.user_data,
        Answer {
            result: length as i64,
            value: token,
            extra: transferred.0,
        },
    );
    state.awaiting_reply.push(Awaiting {
        token,
        call,
        receiver: receive.thread,
    });
    queued_changed(1, 0);
    Ok(())
}
