//! Typed wrappers for every opcode: build the submission, [`Ring::call`] it,
//! decode the completion.
//!
//! Each wrapper borrows the buffers it names for the whole call, which is
//! what makes these safe: the kernel is done with them when `call` returns.
//! The one unsafe wrapper is [`Ring::thread_spawn`]: no buffer, but the new
//! thread runs code and a stack the caller vouches for.

use crate::ring::{decode_result, Ring};
use alloc::string::String;
use alloc::vec::Vec;
use capos_abi::arguments;
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

/// A thread [`Ring::thread_spawn`] started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpawnedThread {
    /// Its ThreadHandle, for [`Ring::thread_join`] (drop it to detach).
    pub handle: CapabilityHandle,
    /// The kernel's id of the thread (also in its `rdx` at start).
    pub id: u64,
}

/// How a thread ended, as `ThreadJoin` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadEnd {
    /// The value it passed to `thread_exit` (or the process's exit code if
    /// it was killed).
    pub value: i64,
    /// True if the kernel stopped it (process exit or a fault).
    pub killed: bool,
}

/// What a `Park` request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parked {
    /// An `Unpark` woke the thread (result 0).
    Unparked,
    /// The word did not hold the expected value; no wait (result 1).
    Differed,
    /// The timeout passed first (`TimedOut`).
    TimedOut,
}

/// What [`Ring::boot_info`] reports about the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootInfo {
    /// CPUs online (the bootstrap processor included).
    pub cpus: u32,
    /// TSC frequency in Hz, as the kernel calibrated it at boot.
    pub tsc_hz: u64,
}

/// What [`Ring::thread_info`] reports about the calling thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadInfo {
    /// The CPU the thread ran on when the kernel answered.
    pub cpu: u32,
    /// System calls the thread has made, the one that asked included.
    pub syscalls: u64,
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
    pub(crate) fn request(
        &self,
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
    #[inline]
    pub(crate) fn call_borrowing(&self, submission: Submission) -> Completion {
        // SAFETY: every wrapper below names only memory borrowed from its own
        // arguments, which outlives this call, and `call` returns only once
        // the kernel has completed the operation (or never consumed it).
        unsafe { self.call(submission) }
    }

    /// `Nop`: a round trip through the kernel.
    pub fn nop(&self) -> Result<(), Error> {
        let submission = self.request(Opcode::Nop, CapabilityHandle::NONE, [0; 6]);
        decode_result(self.call_borrowing(submission).result).map(drop)
    }

    /// `ConsoleWrite`: write `bytes` (at most `limits::CONSOLE_WRITE_MAX`)
    /// to the console; returns the bytes written.
    pub fn console_write(&self, console: CapabilityHandle, bytes: &[u8]) -> Result<usize, Error> {
        let arguments = arguments::ConsoleWrite {
            address: address(bytes),
            length: bytes.len() as u64,
        };
        let submission = self.request(Opcode::ConsoleWrite, console, arguments.encode());
        decode_result(self.call_borrowing(submission).result).map(|count| count as usize)
    }

    /// `Spawn`: start the manifest process `name`, which gets its manifest
    /// grants followed by `grants` (copies of this process's handles).
    /// Returns a ProcessHandle for [`Ring::wait`].
    pub fn spawn(
        &self,
        spawner: CapabilityHandle,
        name: &str,
        grants: &[CapabilityHandle],
    ) -> Result<CapabilityHandle, Error> {
        let arguments = arguments::Spawn {
            name_address: address(name.as_bytes()),
            name_length: name.len() as u64,
            grants_address: address(grants),
            grant_count: grants.len() as u64,
        };
        let submission = self.request(Opcode::Spawn, spawner, arguments.encode());
        let handle = decode_result(self.call_borrowing(submission).result)?;
        Ok(CapabilityHandle(handle as u32))
    }

    /// `ProcessWait`: block until the process has ended; returns its exit
    /// status (the completion's `value`): the code it passed to `exit`, or
    /// `-(128 + vector)` if the kernel killed it for CPU exception `vector`
    /// (the completion's `extra` is then 1; docs/abi.md).
    pub fn wait(&self, process: CapabilityHandle) -> Result<i64, Error> {
        let submission = self.request(Opcode::ProcessWait, process, [0; 6]);
        let completion = self.call_borrowing(submission);
        decode_result(completion.result)?;
        Ok(completion.value as i64)
    }

    /// `MemoryMap`: fresh zeroed pages at `[address, +length)` in the map
    /// region (`writable` or read-only; never executable).
    pub fn memory_map(
        &self,
        memory: CapabilityHandle,
        address: u64,
        length: u64,
        writable: bool,
    ) -> Result<u64, Error> {
        let arguments = capos_abi::arguments::MemoryMap {
            address,
            length,
            flags: u64::from(writable),
        };
        let submission = self.request(Opcode::MemoryMap, memory, arguments.encode());
        let completion = self.call_borrowing(submission);
        decode_result(completion.result)
    }

    /// `MemoryUnmap`: unmap `[address, +length)`; every CPU has flushed the
    /// pages when this returns. Returns the bytes that were mapped.
    pub fn memory_unmap(
        &self,
        memory: CapabilityHandle,
        address: u64,
        length: u64,
    ) -> Result<u64, Error> {
        let arguments = capos_abi::arguments::MemoryUnmap { address, length };
        let submission = self.request(Opcode::MemoryUnmap, memory, arguments.encode());
        let completion = self.call_borrowing(submission);
        decode_result(completion.result)
    }

    /// `TimerNow`: nanoseconds since boot.
    pub fn timer_now(&self, timer: CapabilityHandle) -> Result<u64, Error> {
        let submission = self.request(Opcode::TimerNow, timer, [0; 6]);
        decode_result(self.call_borrowing(submission).result)
    }

    /// `TimerSleep`: block this thread for at least `nanoseconds`.
    pub fn timer_sleep(&self, timer: CapabilityHandle, nanoseconds: u64) -> Result<(), Error> {
        let arguments = arguments::TimerSleep { nanoseconds };
        let submission = self.request(Opcode::TimerSleep, timer, arguments.encode());
        decode_result(self.call_borrowing(submission).result).map(drop)
    }

    /// `ManifestRead`: copy this process's argument string, from byte
    /// `offset`, into `buffer`. Returns (bytes copied, total length).
    pub fn manifest_read(
        &self,
        manifest: CapabilityHandle,
        buffer: &mut [u8],
        offset: u64,
    ) -> Result<(usize, u64), Error> {
        let arguments = arguments::ManifestRead {
            buffer_address: address_mut(buffer),
            buffer_capacity: buffer.len() as u64,
            offset,
        };
        let submission = self.request(Opcode::ManifestRead, manifest, arguments.encode());
        let completion = self.call_borrowing(submission);
        let copied = decode_result(completion.result)?;
        Ok((copied as usize, completion.value))
    }

    /// `BootInfo`: facts about this boot's machine, from the BootManifest
    /// capability.
    pub fn boot_info(&self, manifest: CapabilityHandle) -> Result<BootInfo, Error> {
        let submission = self.request(Opcode::BootInfo, manifest, [0; 6]);
        let completion = self.call_borrowing(submission);
        let cpus = decode_result(completion.result)?;
        Ok(BootInfo {
            cpus: u32::try_from(cpus).map_err(|_| Error::InvalidArgument)?,
            tsc_hz: completion.value,
        })
    }

    /// `ThreadInfo` on a Diagnostics capability: the caller's CPU and its
    /// system call count so far.
    pub fn thread_info(&self, diagnostics: CapabilityHandle) -> Result<ThreadInfo, Error> {
        let submission = self.request(Opcode::ThreadInfo, diagnostics, [0; 6]);
        let completion = self.call_borrowing(submission);
        let cpu = decode_result(completion.result)?;
        Ok(ThreadInfo {
            cpu: u32::try_from(cpu).map_err(|_| Error::InvalidArgument)?,
            syscalls: completion.value,
        })
    }

    /// The whole argument string, read with [`Ring::manifest_read`].
    /// Not UTF-8 is `InvalidArgument`.
    pub fn manifest_arguments(&self, manifest: CapabilityHandle) -> Result<String, Error> {
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
        &self,
        endpoint: CapabilityHandle,
        message: &[u8],
        transfer: Option<CapabilityHandle>,
        reply: &mut [u8],
    ) -> Result<(usize, Option<CapabilityHandle>), Error> {
        // The kernel refuses a reply capacity above MESSAGE_MAX, and no
        // reply is longer: offer at most that much of the buffer.
        let capacity = reply.len().min(MESSAGE_MAX as usize);
        let reply = &mut reply[..capacity];
        let arguments = arguments::EndpointCall {
            message_address: address(message),
            message_length: message.len() as u64,
            transfer: handle_argument(transfer),
            reply_address: address_mut(reply),
            reply_capacity: reply.len() as u64,
        };
        let submission = self.request(Opcode::EndpointCall, endpoint, arguments.encode());
        let completion = self.call_borrowing(submission);
        let length = decode_result(completion.result)?;
        Ok((length as usize, optional_handle(completion.value)))
    }

    /// `EndpointReceive`: wait for a call into `buffer`.
    pub fn endpoint_receive(
        &self,
        endpoint: CapabilityHandle,
        buffer: &mut [u8],
    ) -> Result<Received, Error> {
        let arguments = arguments::EndpointReceive {
            buffer_address: address_mut(buffer),
            buffer_capacity: buffer.len() as u64,
        };
        let submission = self.request(Opcode::EndpointReceive, endpoint, arguments.encode());
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
        &self,
        endpoint: CapabilityHandle,
        token: u64,
        message: &[u8],
        transfer: Option<CapabilityHandle>,
    ) -> Result<(), Error> {
        let arguments = arguments::EndpointReply {
            token,
            message_address: address(message),
            message_length: message.len() as u64,
            transfer: handle_argument(transfer),
        };
        let submission = self.request(Opcode::EndpointReply, endpoint, arguments.encode());
        decode_result(self.call_borrowing(submission).result).map(drop)
    }

    /// Wait for the child `process`, drop its handle, and require exit
    /// status 0: what a parent does with a child it is done with.
    pub fn reap(&self, process: CapabilityHandle) -> Result<(), ReapError> {
        let status = self.wait(process).map_err(ReapError::Wait)?;
        self.drop_capability(process).map_err(ReapError::Drop)?;
        if status != 0 {
            return Err(ReapError::Status(status));
        }
        Ok(())
    }

    /// `CapabilityDrop`: release `handle`; its slot's generation advances, so
    /// the handle is stale from now on.
    pub fn drop_capability(&self, handle: CapabilityHandle) -> Result<(), Error> {
        let submission = self.request(Opcode::CapabilityDrop, handle, [0; 6]);
        decode_result(self.call_borrowing(submission).result).map(drop)
    }

    /// `ThreadSpawn`: start a sibling thread at `entry` with `rsp =
    /// stack_top` (0: the kernel maps [`capos_abi::layout::THREAD_STACK_PAGES`]
    /// with a guard page), `rsi = argument` and FS base `thread_pointer`;
    /// its `rdi` is its own ring base and `rdx` its id (docs/abi.md). Most
    /// programs want [`crate::thread::spawn`] instead.
    ///
    /// # Safety
    /// The new thread runs whatever is at `entry` in this address space,
    /// with this stack: the caller vouches that this code and stack are fit
    /// for it (a stack no other code uses, code that ends with `thread_exit`
    /// or `exit`). Addresses the kernel refuses start nothing.
    pub unsafe fn thread_spawn(
        &self,
        spawner: CapabilityHandle,
        arguments: arguments::ThreadSpawn,
    ) -> Result<SpawnedThread, Error> {
        // SAFETY: forwarded from this function's contract.
        let completion = unsafe { self.thread_spawn_completion(spawner, arguments) }?;
        spawned_thread(&completion)
    }

    /// The `ThreadSpawn` completion; `Err` only when `cap_enter` failed, in
    /// which case the thread may still start later ([`Ring::try_call`]).
    ///
    /// # Safety
    /// As for [`Ring::thread_spawn`].
    pub(crate) unsafe fn thread_spawn_completion(
        &self,
        spawner: CapabilityHandle,
        arguments: arguments::ThreadSpawn,
    ) -> Result<Completion, Error> {
        let submission = self.request(Opcode::ThreadSpawn, spawner, arguments.encode());
        // SAFETY: `ThreadSpawn` names no memory the kernel reads or writes
        // for the request; what the new thread runs is the caller's promise.
        unsafe { self.try_call(submission) }
    }

    /// `ThreadJoin`: block until the thread of `thread` (a ThreadHandle) has
    /// ended; its exit value and whether it was killed. The handle stays
    /// valid (drop it with [`Ring::drop_capability`]).
    pub fn thread_join(&self, thread: CapabilityHandle) -> Result<ThreadEnd, Error> {
        let submission = self.request(Opcode::ThreadJoin, thread, [0; 6]);
        let completion = self.call_borrowing(submission);
        decode_result(completion.result)?;
        Ok(ThreadEnd {
            value: completion.value as i64,
            killed: completion.extra != 0,
        })
    }

    /// `Park` on `space` (a ParkSpace): wait while the `u32` at `address`
    /// (4-aligned, in this process) equals `expected`, for at most
    /// `timeout_ns` ([`capos_abi::NO_TIMEOUT`]: forever). The kernel only
    /// reads the word, once, when it takes the request, so any address is
    /// safe to pass: bad ones are refused (`InvalidArgument` misaligned,
    /// `BadAddress` unmapped).
    pub fn park(
        &self,
        space: CapabilityHandle,
        address: u64,
        expected: u32,
        timeout_ns: u64,
    ) -> Result<Parked, Error> {
        let arguments = arguments::Park {
            address,
            expected: u64::from(expected),
            timeout_ns,
        };
        let submission = self.request(Opcode::Park, space, arguments.encode());
        match decode_result(self.call_borrowing(submission).result) {
            Ok(0) => Ok(Parked::Unparked),
            Ok(_) => Ok(Parked::Differed),
            Err(Error::TimedOut) => Ok(Parked::TimedOut),
            Err(error) => Err(error),
        }
    }

    /// `Unpark` on `space`: wake up to `count` threads of this process
    /// parked on the word at `address`; returns how many were woken.
    pub fn unpark(&self, space: CapabilityHandle, address: u64, count: u64) -> Result<u64, Error> {
        let arguments = arguments::Unpark { address, count };
        let submission = self.request(Opcode::Unpark, space, arguments.encode());
        decode_result(self.call_borrowing(submission).result)
    }
}

/// Decode a `ThreadSpawn` completion: result = the handle, value = the id.
pub(crate) fn spawned_thread(completion: &Completion) -> Result<SpawnedThread, Error> {
    let handle = decode_result(completion.result)?;
    Ok(SpawnedThread {
        handle: CapabilityHandle(handle as u32),
        id: completion.value,
    })
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
        let ring = unsafe { Ring::from_base(memory.0.as_ptr() as usize) };
        assert_eq!(ring.nop(), Ok(()));
        // The fake kernel answers everything but Nop with InvalidOpcode.
        assert_eq!(
            ring.console_write(CapabilityHandle::new(0, 0), b"hi"),
            Err(Error::InvalidOpcode)
        );
        assert_eq!(ring.ready_completions(), 0);
    }
}
