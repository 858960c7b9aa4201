//! The capOS kernel/user ABI, shared by the kernel, the user runtime and the
//! host tools. Everything here is plain data: layouts, numbers, encodings.
//!
//! Invariants:
//! - Every struct is `#[repr(C)]` with explicit padding; sizes are asserted.
//! - A user program talks to the kernel through exactly two syscalls
//!   ([`Syscall`]); all other requests are ring operations on capabilities.
//! - Each thread owns one ring; `cap_enter` waits on the caller's own
//!   completion queue only.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod arguments;
pub mod manifest;
pub mod ring;

pub use ring::{Completion, RingHeader, Submission};

/// Syscall numbers (in `rax`; arguments in `rdi`, `rsi`; result in `rax`).
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    /// `cap_enter(min_complete, timeout_ns)`: consume the caller's submission
    /// queue, then wait until at least `min_complete` completions are
    /// available or `timeout_ns` passes (`u64::MAX` = no timeout). Returns the
    /// number of completions available, or a negative [`Error`].
    CapEnter = 0,
    /// `exit(code)`: end the calling process (all its threads). No return.
    Exit = 1,
    /// `thread_exit(value)`: end the calling thread only; `value` is what
    /// `ThreadJoin` reports. The last thread's exit ends the process with
    /// `value` as its exit code. No return.
    ThreadExit = 2,
}

impl Syscall {
    /// Decode a syscall number.
    pub const fn from_number(number: u64) -> Option<Self> {
        match number {
            0 => Some(Self::CapEnter),
            1 => Some(Self::Exit),
            2 => Some(Self::ThreadExit),
            _ => None,
        }
    }
}

/// `timeout_ns` meaning "wait without a deadline".
pub const NO_TIMEOUT: u64 = u64::MAX;

/// Error codes: a completion's `result` (or a syscall's return) is
/// `-(error as i64)` on failure.
#[repr(i64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Unknown opcode or syscall number.
    InvalidOpcode = 1,
    /// Capability handle out of range, empty, or stale (generation mismatch).
    InvalidCapability = 2,
    /// The capability's object does not support this operation.
    WrongObjectType = 3,
    /// A pointer argument reaches kernel space or unmapped memory.
    BadAddress = 4,
    /// A length argument exceeds the operation's limit.
    TooLarge = 5,
    /// A per-process quota (capabilities, pending operations, processes) is used up.
    QuotaExhausted = 6,
    /// A named object (boot module, manifest entry) does not exist.
    NotFound = 7,
    /// A malformed argument (bad flags, reserved fields set, bad UTF-8).
    InvalidArgument = 8,
    /// The peer of an endpoint or a waited-on object went away.
    PeerGone = 9,
    /// The submission queue indices are inconsistent (producer ran ahead).
    RingOverrun = 10,
    /// `cap_enter` timed out before `min_complete` completions.
    TimedOut = 11,
    OutOfMemory = 12,
    /// The capability lacks the right the operation needs (e.g. receiving
    /// on a call-only `endpoint` capability).
    MissingRight = 13,
    /// The process the operation would grant a capability into has exited
    /// (an exited process accepts no grant: a thread or child spawned by a
    /// process that is exiting, a capability transferred to it by a call or
    /// reply).
    ProcessExited = 14,
}

impl Error {
    /// All errors, for decoding and tests.
    pub const ALL: [Error; 14] = [
        Error::InvalidOpcode,
        Error::InvalidCapability,
        Error::WrongObjectType,
        Error::BadAddress,
        Error::TooLarge,
        Error::QuotaExhausted,
        Error::NotFound,
        Error::InvalidArgument,
        Error::PeerGone,
        Error::RingOverrun,
        Error::TimedOut,
        Error::OutOfMemory,
        Error::MissingRight,
        Error::ProcessExited,
    ];

    /// The negative value carried in a result.
    pub const fn as_result(self) -> i64 {
        -(self as i64)
    }

    /// Decode a negative result.
    pub fn from_result(result: i64) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|error| error.as_result() == result)
    }

    /// Stable lower-case name, used in log lines.
    pub const fn name(self) -> &'static str {
        match self {
            Error::InvalidOpcode => "invalid-opcode",
            Error::InvalidCapability => "invalid-capability",
            Error::WrongObjectType => "wrong-object-type",
            Error::BadAddress => "bad-address",
            Error::TooLarge => "too-large",
            Error::QuotaExhausted => "quota-exhausted",
            Error::NotFound => "not-found",
            Error::InvalidArgument => "invalid-argument",
            Error::PeerGone => "peer-gone",
            Error::RingOverrun => "ring-overrun",
            Error::TimedOut => "timed-out",
            Error::OutOfMemory => "out-of-memory",
            Error::MissingRight => "missing-right",
            Error::ProcessExited => "process-exited",
        }
    }
}

/// Kinds of kernel objects a capability can name.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapabilityKind {
    Console = 1,
    ProcessSpawner = 2,
    ProcessHandle = 3,
    Endpoint = 4,
    Timer = 5,
    BootManifest = 6,
    EndpointServer = 7,
    Diagnostics = 8,
    /// Creates sibling threads in the holder's process.
    ThreadSpawner = 9,
    /// One thread, for `ThreadJoin` (never granted by a manifest).
    ThreadHandle = 10,
    /// Park/unpark on words of the holder's address space (futex style).
    ParkSpace = 11,
    /// Map and unmap anonymous pages in the holder's address space.
    Memory = 12,
}

impl CapabilityKind {
    /// All kinds.
    pub const ALL: [CapabilityKind; 12] = [
        CapabilityKind::Console,
        CapabilityKind::ProcessSpawner,
        CapabilityKind::ProcessHandle,
        CapabilityKind::Endpoint,
        CapabilityKind::Timer,
        CapabilityKind::BootManifest,
        CapabilityKind::EndpointServer,
        CapabilityKind::Diagnostics,
        CapabilityKind::ThreadSpawner,
        CapabilityKind::ThreadHandle,
        CapabilityKind::ParkSpace,
        CapabilityKind::Memory,
    ];

    /// The name used in YAML manifests.
    pub const fn name(self) -> &'static str {
        match self {
            CapabilityKind::Console => "console",
            CapabilityKind::ProcessSpawner => "process-spawner",
            CapabilityKind::ProcessHandle => "process-handle",
            CapabilityKind::Endpoint => "endpoint",
            CapabilityKind::Timer => "timer",
            CapabilityKind::BootManifest => "boot-manifest",
            CapabilityKind::EndpointServer => "endpoint-server",
            CapabilityKind::Diagnostics => "diagnostics",
            CapabilityKind::ThreadSpawner => "thread-spawner",
            CapabilityKind::ThreadHandle => "thread-handle",
            CapabilityKind::ParkSpace => "park-space",
            CapabilityKind::Memory => "memory",
        }
    }

    /// The kind of named object a grant of this kind refers to, if it names
    /// one: both endpoint rights (`endpoint`: call only; `endpoint-server`:
    /// receive, reply and call) name an `endpoint` object.
    pub const fn object_kind(self) -> Option<CapabilityKind> {
        match self {
            CapabilityKind::Endpoint | CapabilityKind::EndpointServer => {
                Some(CapabilityKind::Endpoint)
            }
            _ => None,
        }
    }

    /// Parse a manifest name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Decode the numeric kind.
    pub fn from_number(number: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| *kind as u32 == number)
    }
}

/// A capability handle as user space sees it: slot index in the low 16 bits,
/// the slot's generation in the high 16 bits. A handle whose generation does
/// not match the slot's current one is stale and rejected.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CapabilityHandle(pub u32);

impl CapabilityHandle {
    /// "No capability" in argument positions that take an optional handle.
    pub const NONE: CapabilityHandle = CapabilityHandle(u32::MAX);

    /// Build a handle from slot and generation.
    pub const fn new(slot: u16, generation: u16) -> Self {
        Self(((generation as u32) << 16) | slot as u32)
    }

    /// The slot index.
    pub const fn slot(self) -> u16 {
        self.0 as u16
    }

    /// The generation.
    pub const fn generation(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

/// Ring operations. `Submission::capability` names the object.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// Complete immediately with result 0 (no capability needed).
    Nop = 0,
    /// Console: write `arguments[0]` (pointer), `arguments[1]` (length <= [`limits::CONSOLE_WRITE_MAX`]).
    ConsoleWrite = 1,
    /// ProcessSpawner: start boot module named by (`arguments[0]` pointer,
    /// `arguments[1]` length) granting the handles in the u32 array
    /// (`arguments[2]` pointer, `arguments[3]` count). Result: a new ProcessHandle.
    Spawn = 2,
    /// ProcessHandle: complete when the process has exited; result = exit code.
    ProcessWait = 3,
    /// Endpoint: send (`arguments[0]` pointer, `arguments[1]` length <=
    /// [`limits::MESSAGE_MAX`]) with an optional handle to transfer
    /// (`arguments[2]`, or `CapabilityHandle::NONE`), wait for the reply into
    /// (`arguments[3]` pointer, `arguments[4]` capacity). Result: reply length;
    /// `Completion::value`: transferred handle or `NONE`.
    EndpointCall = 4,
    /// Endpoint: wait for a call into (`arguments[0]` pointer, `arguments[1]`
    /// capacity). Result: message length; `value`: reply token;
    /// `Completion::extra`: transferred handle or `NONE`.
    EndpointReceive = 5,
    /// Endpoint: answer the call with token `arguments[0]` with
    /// (`arguments[1]` pointer, `arguments[2]` length) and optional handle `arguments[3]`.
    EndpointReply = 6,
    /// Timer: result = nanoseconds since boot.
    TimerNow = 7,
    /// Timer: complete after `arguments[0]` nanoseconds; result = 0.
    TimerSleep = 8,
    /// BootManifest: copy from byte `arguments[2]` of this process's manifest
    /// entry's argument string into (`arguments[0]` pointer, `arguments[1]`
    /// capacity). Result: bytes copied; `value`: total length.
    ManifestRead = 9,
    /// Any capability: release the handle (the slot's generation advances).
    CapabilityDrop = 10,
    /// Diagnostics: copy the kernel's [`KernelCounters`] to (`arguments[0]`
    /// pointer, `arguments[1]` length, at least its size); result: bytes written.
    DiagnosticsRead = 11,
    /// ThreadSpawner: start a sibling thread at `arguments[0]` (entry) with
    /// the stack top `arguments[1]` (0: the kernel maps a stack of
    /// `layout::THREAD_STACK_PAGES` with a guard page below), `rsi` =
    /// `arguments[2]` and FS base (thread pointer) `arguments[3]`. Result: a
    /// ThreadHandle; `value`: the thread id.
    ThreadSpawn = 12,
    /// ThreadHandle: completes when the thread has ended; `value`: its exit
    /// value; `extra`: 1 if it was killed (process exit or fault).
    ThreadJoin = 13,
    /// ParkSpace: wait while the `u32` at `arguments[0]` (4-aligned) equals
    /// `arguments[1]`, up to `arguments[2]` ns (`NO_TIMEOUT`: forever).
    /// Result 0: unparked; 1: the word differed (no wait); or `TimedOut`.
    Park = 14,
    /// ParkSpace: wake up to `arguments[1]` threads parked on the word at
    /// `arguments[0]`. Result: how many were woken.
    Unpark = 15,
    /// Memory: map `arguments[1]` bytes (a page multiple, at most
    /// `limits::MAP_MAX`) of fresh zeroed pages at the page-aligned
    /// `arguments[0]` inside `[layout::MAP_BASE, layout::MAP_END)`;
    /// `arguments[2]` bit 0: writable. Never executable. Refused if any page
    /// is mapped already (nothing is mapped then). Result: bytes mapped.
    MemoryMap = 16,
    /// Memory: unmap the pages of `[arguments[0], +arguments[1])` inside the
    /// map region. Every CPU that may cache them has flushed them before
    /// this completes. Result: bytes that were mapped and are now gone.
    MemoryUnmap = 17,
    /// BootManifest: facts about the machine this boot runs on. Result: the
    /// number of CPUs online; `Completion::value`: the TSC frequency in Hz
    /// as calibrated at boot.
    BootInfo = 18,
    /// Diagnostics: facts about the calling thread. Result: the index of
    /// the CPU it runs on; `Completion::value`: the system calls it has
    /// made so far, this one included (so the calls between two
    /// `ThreadInfo`s are the difference minus one).
    ThreadInfo = 19,
    /// Diagnostics: phase mark `arguments[0]` (0..=3) of the guest
    /// measurement (`docs/scheduler.md`, *Guest measurement*): 0 before the
    /// first thread spawn, 1 all workers ready, 2 all workers done, 3 after
    /// the last join. Marks must come in order, each once per boot
    /// (otherwise `InvalidArgument`); mark 3 prints the `[measure]` lines.
    /// Result: 0. A kernel built without the `measure` feature answers
    /// `InvalidOpcode`: it does not offer the operation.
    MeasureMark = 20,
}

impl Opcode {
    /// Decode an opcode; unknown values are `None` (answered with InvalidOpcode).
    pub const fn from_number(number: u16) -> Option<Self> {
        match number {
            0 => Some(Self::Nop),
            1 => Some(Self::ConsoleWrite),
            2 => Some(Self::Spawn),
            3 => Some(Self::ProcessWait),
            4 => Some(Self::EndpointCall),
            5 => Some(Self::EndpointReceive),
            6 => Some(Self::EndpointReply),
            7 => Some(Self::TimerNow),
            8 => Some(Self::TimerSleep),
            9 => Some(Self::ManifestRead),
            10 => Some(Self::CapabilityDrop),
            11 => Some(Self::DiagnosticsRead),
            12 => Some(Self::ThreadSpawn),
            13 => Some(Self::ThreadJoin),
            14 => Some(Self::Park),
            15 => Some(Self::Unpark),
            16 => Some(Self::MemoryMap),
            17 => Some(Self::MemoryUnmap),
            18 => Some(Self::BootInfo),
            19 => Some(Self::ThreadInfo),
            20 => Some(Self::MeasureMark),
            _ => None,
        }
    }
}

/// Limits the kernel enforces (bad input beyond them gets [`Error::TooLarge`]
/// or [`Error::QuotaExhausted`]).
/// Kernel resource counters, as `DiagnosticsRead` copies them out. A loop
/// of spawn/exit cycles must bring every one back to its starting value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    /// Physical frames free.
    pub free_frames: u64,
    /// Kernel heap bytes in use.
    pub heap_used_bytes: u64,
    /// Threads not yet torn down (kernel stack and ring still held).
    pub live_threads: u64,
    /// Processes not yet torn down (address space still held).
    pub live_processes: u64,
    /// Registered timer deadlines, over all CPUs.
    pub timer_waiters: u64,
    /// Endpoint calls and receives queued or awaiting a reply.
    pub endpoint_waiters: u64,
    /// Process-exit waiters registered.
    pub exit_waiters: u64,
    /// Kernel stacks cached for reuse.
    pub cached_stacks: u64,
    /// Threads waiting in `Park`.
    pub parked_threads: u64,
}

const _: () = assert!(core::mem::size_of::<KernelCounters>() == 72);

pub mod limits {
    /// Longest console write.
    pub const CONSOLE_WRITE_MAX: u64 = 4096;
    /// Longest endpoint message or reply.
    pub const MESSAGE_MAX: u64 = 256;
    /// Longest boot-module name.
    pub const NAME_MAX: u64 = 64;
    /// Most handles granted at spawn.
    pub const GRANTS_MAX: u64 = 16;
    /// Capability slots per process.
    pub const CAPABILITIES_PER_PROCESS: usize = 64;
    /// Operations in flight (waiting for a completion) per thread: endpoint
    /// calls and receives, timer sleeps and process waits all count.
    pub const PENDING_PER_THREAD: usize = 32;
    /// Processes alive at once, kernel-wide.
    pub const LIVE_PROCESSES_MAX: usize = 128;
    /// Children a process may have alive at once.
    pub const LIVE_CHILDREN_PER_PROCESS: usize = 32;
    /// Physical frames one process may own (image, stack, ring, tables): 16 MiB.
    pub const FRAMES_PER_PROCESS: usize = 4096;
    /// Timer deadlines one CPU holds at once; a full table refuses
    /// `TimerSleep` and timed `cap_enter` with `QuotaExhausted`.
    pub const TIMERS_PER_CPU: usize = 2048;
    /// Threads a process may have at once (its first thread included).
    pub const THREADS_PER_PROCESS: usize = 64;
    /// Most kernel stacks of ended threads the kernel keeps mapped for
    /// reuse (`KernelCounters::cached_stacks` never exceeds it); the frames
    /// of any more go back to the allocator.
    pub const KERNEL_STACKS_CACHED: usize = 16;
    /// Threads not yet torn down, kernel-wide.
    pub const THREADS_MAX: usize = 1024;
    /// Largest `MemoryMap` / `MemoryUnmap` in one request: 4 MiB.
    pub const MAP_MAX: u64 = 4 << 20;
}

/// User address-space layout.
pub mod layout {
    /// Lowest address a program may be linked at.
    pub const USER_IMAGE_BASE: u64 = 0x40_0000;
    /// Where the first thread's ring is mapped (two pages). Rings and
    /// stacks sit in the image's first GiB, so one page directory (and one
    /// directory-pointer table) holds the image, every ring and every
    /// stack: fewer table pages per process, and fewer for the MMU (or,
    /// under QEMU TCG, its software walker after every CR3 write) to read.
    pub const RING_BASE: u64 = 0x3F00_0000;
    /// Top of the first thread's stack (stack grows down).
    pub const STACK_TOP: u64 = 0x4000_0000;
    /// Pages in the first thread's stack.
    pub const STACK_PAGES: u64 = 16;
    /// Exclusive upper bound of user addresses.
    pub const USER_END: u64 = 0x8000_0000_0000;
    /// Start of the region `MemoryMap` may map into.
    pub const MAP_BASE: u64 = 0x1000_0000_0000;
    /// End (exclusive) of the `MemoryMap` region.
    pub const MAP_END: u64 = 0x7E00_0000_0000;
    /// Distance between the rings of consecutive thread slots: thread slot
    /// `k` (the first thread is slot 0) has its ring at
    /// `RING_BASE + k * THREAD_RING_STRIDE`, with unmapped pages between.
    pub const THREAD_RING_STRIDE: u64 = 0x1_0000;
    /// Pages of a stack the kernel maps for a new thread.
    pub const THREAD_STACK_PAGES: u64 = 16;
    /// Top of the kernel-mapped stack of thread slot `k >= 1`: below the
    /// first thread's stack, each with an unmapped guard page below it.
    pub const fn thread_stack_top(slot: u64) -> u64 {
        STACK_TOP - slot * (THREAD_STACK_PAGES + 1) * 4096
    }
}
