//! Typed wrappers for every opcode: build the submission, [`Ring::call`] it,
//! decode the completion.
//!
//! Each wrapper borrows the buffers it names for the whole call, which is
//! what makes these safe: the kernel is done with them when `call` returns.

use crate::ring::{decode_result, Ring};
use alloc::string::String;
use alloc::vec::Vec;
use capos_abi::limits::MESSAGE_MAX;
use capos_abi::{CapabilityHandle, Completion, Error, Opcode, Submission};
use core::sync::atomic::AtomicU8;

/// A call taken off an endpoint by [`Ring::endpoint_receive`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes of the message written to the buffer.
    pub length: usize,
    /// Pass to [`Ring::endpoint_reply`] to answer this call.
    pub token: u64,
    /// A capability the caller transferred, now in this process's table.
    pub transferred: Option<CapabilityHandle>,
}

/// What [`Ring::boot_info`] reports about the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootInfo {
    /// CPUs online (the bootstrap processor included).
    pub cpus: u32,
    /// TSC frequency in Hz, as the kernel calibrated it at boot.
    pub tsc_hz: u64,
}

/// Why [`Ring::reap`] found a child not cleanly finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReapError {
    /// `ProcessWait` failed.
    Wait(Error),
    /// Dropping the handle failed.
    Drop(Error),
    /// The child ended with this nonzero exit status.
    Status(i64),
}

impl core::fmt::Display for ReapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReapError::Wait(error) => write!(f, "wait {}", error.name()),
            ReapError::Drop(error) => write!(f, "drop {}", error.name()),
            ReapError::Status(status) => write!(f, "exit={status}"),
        }
    }
}

/// An optional handle as completions carry it: `CapabilityHandle::NONE`
/// (in 32 or 64 bits) means none.
fn optional_handle(value: u64) -> Option<CapabilityHandle> {
    let none = u64::from(CapabilityHandle::NONE.0);
    (value != none && value != u64::MAX).then_some(CapabilityHandle(value as u32))
}

/// An optional handle as arguments carry it.
fn handle_argument(handle: Option<CapabilityHandle>) -> u64 {
    u64::from(handle.unwrap_or(CapabilityHandle::NONE).0)
}

/// Where empty ranges point. The kernel refuses addresses in the null page
/// even for zero-length ranges, and a Rust empty slice's pointer may be
/// dangling there, so an empty range names this (writable) byte instead.
static EMPTY_RANGE: AtomicU8 = AtomicU8::new(0);

/// Address of a buffer the kernel reads (an in-image address if empty).
fn address<T>(items: &[T]) -> u64 {
    if items.is_empty() {
        EMPTY_RANGE.as_ptr() as u64
    } else {
        items.as_ptr() as u64
    }
}

/// Address of a buffer the kernel writes (an in-image address if empty).
fn address_mut<T>(items: &mut [T]) -> u64 {
    if items.is_empty() {
        EMPTY_RANGE.as_ptr() as u64
    } else {
        items.as_mut_ptr() as u64
    }
}

impl Ring {
    /// A submission with a fresh runtime `user_data`.
    fn request(
        &mut self,
        opcode: Opcode,
        capability: CapabilityHandle,
        arguments: [u64; 6],
    ) -> Submission {
        Submission {
            opcode: opcode as u16,
            flags: 0,
            capability: capability.0,
            user_data: self.fresh_user_data(),
            arguments,
        }
    }

    /// Call a submission that names no memory, or memory borrowed by the
    /// caller for the duration of this call.
    fn call_borrowing(&mut self, submission: Submission) -> Completion {
        // SAFETY: every wrapper below names only memory borrowed from its own
        // arguments, which outlives this call, and `call` returns only once
        // the kernel has completed the operation (or never consumed it).
        unsafe { self.call(submission) }
    }

    /// `Nop`: a round trip through the kernel.
    pub fn nop(&mut self) -> Result<(), Error> {
        let submission = self.request(Opcode::Nop, CapabilityHandle::NONE, [0; 6]);
        decode_result(self.call_borrowing(submission).result).map(drop)
    }

    /// `ConsoleWrite`: write `bytes` (at most `limits::CONSOLE_WRITE_MAX`)
    /// to the console; returns the bytes written.
    pub fn console_write(
        &mut self,
        console: CapabilityHandle,
        bytes: &[u8],
    ) -> Result<usize, Error> {
        let arguments = [address(bytes), bytes.len() as u64, 0, 0, 0, 0];
        let submission = self.request(Opcode::ConsoleWrite, console, arguments);
        decode_result(self.call_borrowing(submission).result).map(|count| count as usize)
    }

    /// `Spawn`: start the manifest process `name`, which gets its manifest
    /// grants followed by `grants` (copies of this process's handles).
    /// Returns a ProcessHandle for [`Ring::wait`].
    pub fn spawn(
        &mut self,
        spawner: CapabilityHandle,
        name: &str,
        grants: &[CapabilityHandle],
    ) -> Result<CapabilityHandle, Error> {
        let arguments = [
            address(name.as_bytes()),
            name.len() as u64,
            address(grants),
            grants.len() as u64,
            0,
            0,
        ];
        let submission = self.request(Opcode::Spawn, spawner, arguments);
        let handle = decode_result(self.call_borrowing(submission).result)?;
        Ok(CapabilityHandle(handle as u32))
    }

    /// `ProcessWait`: block until the process has ended; returns its exit
    /// status (the completion's `value`): the code it passed to `exit`, or
    /// `-(128 + vector)` if the kernel killed it for CPU exception `vector`
    /// (the completion's `extra` is then 1; docs/abi.md).
    pub fn wait(&mut self, process: CapabilityHandle) -> Result<i64, Error> {
        let submission = self.request(Opcode::ProcessWait, process, [0; 6]);
        let completion = self.call_borrowing(submission);
        decode_result(completion.result)?;
        Ok(completion.value as i64)
    }

    /// `TimerNow`: nanoseconds since boot.
    pub fn timer_now(&mut self, timer: CapabilityHandle) -> Result<u64, Error> {
        let submission = self.request(Opcode::TimerNow, timer, [0; 6]);
        decode_result(self.call_borrowing(submission).result)
    }

    /// `TimerSleep`: block this thread for at least `nanoseconds`.
    pub fn timer_sleep(&mut self, timer: CapabilityHandle, nanoseconds: u64) -> Result<(), Error> {
        let submission = self.request(Opcode::TimerSleep, timer, [nanoseconds, 0, 0, 0, 0, 0]);
        decode_result(self.call_borrowing(submission).result).map(drop)
    }

    /// `ManifestRead`: copy this process's argument string, from byte
    /// `offset`, into `buffer`. Returns (bytes copied, total length).
    pub fn manifest_read(
        &mut self,
        manifest: CapabilityHandle,
        buffer: &mut [u8],
        offset: u64,
    ) -> Result<(usize, u64), Error> {
        let arguments = [address_mut(buffer), buffer.len() as u64, offset, 0, 0, 0];
        let submission = self.request(Opcode::ManifestRead, manifest, arguments);
        let completion = self.call_borrowing(submission);
        let copied = decode_result(completion.result)?;
        Ok((copied as usize, completion.value))
    }

    /// `BootInfo`: facts about this boot's machine, from the BootManifest
    /// capability.
    pub fn boot_info(&mut self, manifest: CapabilityHandle) -> Result<BootInfo, Error> {
        let submission = self.request(Opcode::BootInfo, manifest, [0; 6]);
        let completion = self.call_borrowing(submission);
        let cpus = decode_result(completion.result)?;
        Ok(BootInfo {
            cpus: u32::try_from(cpus).map_err(|_| Error::InvalidArgument)?,
            tsc_hz: completion.value,
        })
    }

    /// The whole argument string, read with [`Ring::manifest_read`].
    /// Not UTF-8 is `InvalidArgument`.
    pub fn manifest_arguments(&mut self, manifest: CapabilityHandle) -> Result<String, Error> {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 128];
        loop {
            let (copied, total) = self.manifest_read(manifest, &mut chunk, bytes.len() as u64)?;
            bytes.extend_from_slice(&chunk[..copied.min(chunk.len())]);
            if bytes.len() as u64 >= total || copied == 0 {
                break;
            }
        }
        String::from_utf8(bytes).map_err(|_| Error::InvalidArgument)
    }

    /// `EndpointCall`: send `message` (optionally transferring `transfer`)
    /// and wait for the reply in `reply`. Returns (reply length, transferred
    /// capability).
    pub fn endpoint_call(
        &mut self,
        endpoint: CapabilityHandle,
        message: &[u8],
        transfer: Option<CapabilityHandle>,
        reply: &mut [u8],
    ) -> Result<(usize, Option<CapabilityHandle>), Error> {
        // The kernel refuses a reply capacity above MESSAGE_MAX, and no
        // reply is longer: offer at most that much of the buffer.
        let capacity = reply.len().min(MESSAGE_MAX as usize);
        let reply = &mut reply[..capacity];
        let arguments = [
            address(message),
            message.len() as u64,
            handle_argument(transfer),
            address_mut(reply),
            reply.len() as u64,
            0,
        ];
        let submission = self.request(Opcode::EndpointCall, endpoint, arguments);
        let completion = self.call_borrowing(submission);
        let length = decode_result(completion.result)?;
        Ok((length as usize, optional_handle(completion.value)))
    }

    /// `EndpointReceive`: wait for a call into `buffer`.
    pub fn endpoint_receive(
        &mut self,
        endpoint: CapabilityHandle,
        buffer: &mut [u8],
    ) -> Result<Received, Error> {
        let arguments = [address_mut(buffer), buffer.len() as u64, 0, 0, 0, 0];
        let submission = self.request(Opcode::EndpointReceive, endpoint, arguments);
        let completion = self.call_borrowing(submission);
        let length = decode_result(completion.result)?;
        Ok(Received {
            length: length as usize,
            token: completion.value,
            transferred: optional_handle(u64::from(completion.extra)),
        })
    }

    /// `EndpointReply`: answer the call `token` with `message`, optionally
    /// transferring `transfer`.
    pub fn endpoint_reply(
        &mut self,
        endpoint: CapabilityHandle,
        token: u64,
        message: &[u8],
        transfer: Option<CapabilityHandle>,
    ) -> Result<(), Error> {
        let arguments = [
            token,
            address(message),
            message.len() as u64,
            handle_argument(transfer),
            0,
            0,
        ];
        let submission = self.request(Opcode::EndpointReply, endpoint, arguments);
        decode_result(self.call_borrowing(submission).result).map(drop)
    }

    /// Wait for the child `process`, drop its handle, and require exit
    /// status 0: what a parent does with a child it is done with.
    pub fn reap(&mut self, process: CapabilityHandle) -> Result<(), ReapError> {
        let status = self.wait(process).map_err(ReapError::Wait)?;
        self.drop_capability(process).map_err(ReapError::Drop)?;
        if status != 0 {
            return Err(ReapError::Status(status));
        }
        Ok(())
    }

    /// `CapabilityDrop`: release `handle`; its slot's generation advances, so
    /// the handle is stale from now on.
    pub fn drop_capability(&mut self, handle: CapabilityHandle) -> Result<(), Error> {
        let submission = self.request(Opcode::CapabilityDrop, handle, [0; 6]);
        decode_result(self.call_borrowing(submission).result).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::fake;

    #[test]
    fn optional_handles_decode_both_none_encodings() {
        assert_eq!(optional_handle(u64::from(u32::MAX)), None);
        assert_eq!(optional_handle(u64::MAX), None);
        assert_eq!(
            optional_handle(0x0001_0003),
            Some(CapabilityHandle::new(3, 1))
        );
        assert_eq!(handle_argument(None), u64::from(u32::MAX));
    }

    #[test]
    fn typed_operations_round_trip_through_the_fake_kernel() {
        let memory = fake::ring_memory();
        // SAFETY: a fresh ring image that outlives the Ring.
        let mut ring = unsafe { Ring::from_base(memory.0.as_ptr() as usize) };
        assert_eq!(ring.nop(), Ok(()));
        // The fake kernel answers everything but Nop with InvalidOpcode.
        assert_eq!(
            ring.console_write(CapabilityHandle::new(0, 0), b"hi"),
            Err(Error::InvalidOpcode)
        );
        assert_eq!(ring.ready_completions(), 0);
    }
}
