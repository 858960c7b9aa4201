//! Kernel objects that capabilities name, and the endpoint rendezvous.
//!
//! An endpoint pairs callers with receivers. A call carries a message (and
//! optionally a capability, copied into the receiver's table) and waits for
//! the reply, which may carry a capability back. Messages are copied
//! between address spaces through the kernel; no user memory is shared.

use crate::process::Process;
use crate::sched::Thread;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_abi::{CapabilityHandle, CapabilityKind, Error};
use spin::Mutex;

/// What a capability refers to.
#[derive(Clone)]
pub enum KernelObject {
    Console,
    ProcessSpawner,
    ProcessHandle(Arc<Process>),
    Endpoint(Arc<Endpoint>),
    Timer,
    BootManifest,
}

impl KernelObject {
    /// The ABI kind of this object.
    pub fn kind(&self) -> CapabilityKind {
        match self {
            KernelObject::Console => CapabilityKind::Console,
            KernelObject::ProcessSpawner => CapabilityKind::ProcessSpawner,
            KernelObject::ProcessHandle(_) => CapabilityKind::ProcessHandle,
            KernelObject::Endpoint(_) => CapabilityKind::Endpoint,
            KernelObject::Timer => CapabilityKind::Timer,
            KernelObject::BootManifest => CapabilityKind::BootManifest,
        }
    }
}

/// A call waiting for a receiver, or for its reply.
struct Call {
    caller: Arc<Thread>,
    user_data: u64,
    message: Vec<u8>,
    transfer: Option<KernelObject>,
    reply_address: u64,
    reply_capacity: u64,
}

/// A receive waiting for a call.
struct Receive {
    thread: Arc<Thread>,
    user_data: u64,
    address: u64,
    capacity: u64,
}

#[derive(Default)]
struct EndpointState {
    calls: VecDeque<Call>,
    receives: VecDeque<Receive>,
    /// (token, call, id of the process that received it and owes the reply)
    awaiting_reply: Vec<(u64, Call, u64)>,
    next_token: u64,
}

/// A named rendezvous point for calls and replies.
pub struct Endpoint {
    pub name: String,
    state: Mutex<EndpointState>,
}

/// A finished operation: (result, value, extra) for the completion.
pub type Answer = (i64, u64, u32);

impl Endpoint {
    /// A new endpoint.
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Self {
            name: String::from(name),
            state: Mutex::new(EndpointState::default()),
        })
    }

    /// Queue a call; delivered at once if a receiver waits. The caller's
    /// completion is posted when the reply comes.
    pub fn call(
        &self,
        caller: &Arc<Thread>,
        user_data: u64,
        message: Vec<u8>,
        transfer: Option<KernelObject>,
        reply: (u64, u64),
    ) {
        let mut call = Call {
            caller: caller.clone(),
            user_data,
            message,
            transfer,
            reply_address: reply.0,
            reply_capacity: reply.1,
        };
        let mut state = self.state.lock();
        while let Some(receive) = state.receives.pop_front() {
            match deliver(&mut state, call, &receive) {
                Ok(()) => return,
                Err(returned) => call = returned,
            }
        }
        state.calls.push_back(call);
    }

    /// Take the next call into (address, capacity) of `thread`; None means
    /// the receive now waits and completes later.
    pub fn receive(
        &self,
        thread: &Arc<Thread>,
        user_data: u64,
        address: u64,
        capacity: u64,
    ) -> Option<Answer> {
        let receive = Receive {
            thread: thread.clone(),
            user_data,
            address,
            capacity,
        };
        let mut state = self.state.lock();
        if let Some(call) = state.calls.pop_front() {
            // On failure `deliver` has already completed this receive with
            // the error; the call stays first in line for the next receiver.
            if let Err(call) = deliver(&mut state, call, &receive) {
                state.calls.push_front(call);
            }
            return None;
        }
        state.receives.push_back(receive);
        None
    }

    /// Answer the call with `token`: copy the reply into the caller and
    /// complete its call. Returns the replier's own result.
    pub fn reply(&self, token: u64, message: &[u8], transfer: Option<KernelObject>) -> i64 {
        let call = {
            let mut state = self.state.lock();
            let Some(position) = state
                .awaiting_reply
                .iter()
                .position(|(t, _, _)| *t == token)
            else {
                return Error::InvalidArgument.as_result();
            };
            state.awaiting_reply.swap_remove(position).1
        };
        let process = &call.caller.process;
        let answer = if message.len() as u64 > call.reply_capacity {
            (
                Error::TooLarge.as_result(),
                CapabilityHandle::NONE.0 as u64,
                0,
            )
        } else if let Err(error) = process.address_space().write(call.reply_address, message) {
            (error.as_result(), CapabilityHandle::NONE.0 as u64, 0)
        } else {
            match transfer.map(|object| process.grant(object)) {
                Some(Err(error)) => (error.as_result(), CapabilityHandle::NONE.0 as u64, 0),
                Some(Ok(handle)) => (message.len() as i64, handle.0 as u64, 0),
                None => (message.len() as i64, CapabilityHandle::NONE.0 as u64, 0),
            }
        };
        crate::syscall::complete_deferred(
            &call.caller,
            call.user_data,
            answer.0,
            answer.1,
            answer.2,
        );
        0
    }
}

impl Endpoint {
    /// Process `process_id` has exited: its waiting receives go away, calls
    /// it sent are dropped, and every call it received but never answered
    /// completes with `PeerGone`, so no caller waits forever.
    pub fn process_exited(&self, process_id: u64) {
        let orphaned: Vec<Call> = {
            let mut state = self.state.lock();
            state
                .receives
                .retain(|receive| receive.thread.process.id != process_id);
            state
                .calls
                .retain(|call| call.caller.process.id != process_id);
            let (orphaned, kept): (Vec<_>, Vec<_>) = core::mem::take(&mut state.awaiting_reply)
                .into_iter()
                .partition(|(_, _, server)| *server == process_id);
            state.awaiting_reply = kept;
            orphaned.into_iter().map(|(_, call, _)| call).collect()
        };
        for call in orphaned {
            crate::syscall::complete_deferred(
                &call.caller,
                call.user_data,
                Error::PeerGone.as_result(),
                u64::from(CapabilityHandle::NONE.0),
                0,
            );
        }
    }
}

/// Hand `call` to `receive`: copy the message and capability into the
/// receiver and complete its receive. On a bad receive buffer the receiver
/// gets an error and the call is handed back.
fn deliver(state: &mut EndpointState, call: Call, receive: &Receive) -> Result<(), Call> {
    let process = &receive.thread.process;
    let length = call.message.len() as u64;
    if length > receive.capacity {
        crate::syscall::complete_deferred(
            &receive.thread,
            receive.user_data,
            Error::TooLarge.as_result(),
            0,
            0,
        );
        return Err(call);
    }
    if let Err(error) = process
        .address_space()
        .write(receive.address, &call.message)
    {
        crate::syscall::complete_deferred(
            &receive.thread,
            receive.user_data,
            error.as_result(),
            0,
            0,
        );
        return Err(call);
    }
    let transferred = match call.transfer.clone().map(|object| process.grant(object)) {
        Some(Ok(handle)) => handle,
        Some(Err(error)) => {
            crate::syscall::complete_deferred(
                &receive.thread,
                receive.user_data,
                error.as_result(),
                0,
                0,
            );
            return Err(call);
        }
        None => CapabilityHandle::NONE,
    };
    state.next_token += 1;
    let token = state.next_token;
    crate::syscall::complete_deferred(
        &receive.thread,
        receive.user_data,
        length as i64,
        token,
        transferred.0,
    );
    state.awaiting_reply.push((token, call, process.id));
    Ok(())
}
