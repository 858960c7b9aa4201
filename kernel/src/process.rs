//! Processes: an address space loaded from a boot-module ELF, a capability
//! table, one first thread with its ring, and an exit status others wait on.
//!
//! Invariants: a process's capabilities come only from its manifest entry
//! and its spawner's grants; exit happens once (the first code wins), kills
//! every thread, drops every capability and completes every waiter; after
//! it, no grant is accepted (`ProcessExited`), so the emptied table stays
//! empty.
//! A process counts against [`LIVE_PROCESSES_MAX`] and its parent's
//! [`LIVE_CHILDREN_PER_PROCESS`] until it is torn down (its last reference
//! is dropped: threads gone, no handle left), because until then it holds
//! its address space. A spawned process does not run until
//! [`SpawnedChild::start`], so a spawn can be undone by dropping it.

use crate::mem::address_space::{AddressSpace, UserAccess};
use crate::objects::KernelObject;
use crate::ring::ThreadRing;
use crate::thread::{Thread, UserStart};
use crate::{kprintln, userspace};
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use capos_abi::layout::{
    thread_stack_top, RING_BASE, STACK_PAGES, STACK_TOP, THREAD_RING_STRIDE, THREAD_STACK_PAGES,
};
use capos_abi::limits::{
    CAPABILITIES_PER_PROCESS, FRAMES_PER_PROCESS, LIVE_CHILDREN_PER_PROCESS, LIVE_PROCESSES_MAX,
    THREADS_PER_PROCESS,
};
use capos_abi::ring::RING_PAGES;
use capos_abi::{CapabilityHandle, Error};
use capos_kcore::captable::CapabilityTable;
use capos_kcore::elf::{check_user_image, LoadSegment};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use spin::Mutex;

/// Most `PT_LOAD` segments a user image may have.
const MAX_SEGMENTS: usize = 16;

static NEXT_PROCESS_ID: AtomicU64 = AtomicU64::new(1);
static LIVE_PROCESSES: AtomicUsize = AtomicUsize::new(0);
static EXIT_WAITERS: AtomicUsize = AtomicUsize::new(0);

/// How a process or a thread ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code (for a killed thread, its process's).
    pub code: i64,
    /// Ended by the kernel (a fault, or its process's exit), not by itself.
    pub killed: bool,
}

impl ExitStatus {
    /// Ended by its own exit call with `code`.
    pub const fn exited(code: i64) -> Self {
        Self {
            code,
            killed: false,
        }
    }

    /// Ended by the kernel with `code`.
    pub const fn killed(code: i64) -> Self {
        Self { code, killed: true }
    }
}

struct ExitState {
    status: Option<ExitStatus>,
    waiters: Vec<(Arc<Thread>, u64)>,
}

/// Processes not yet torn down (diagnostics).
pub fn live_processes() -> u64 {
    LIVE_PROCESSES.load(Ordering::Relaxed) as u64
}

/// Process-exit waiters registered (diagnostics).
pub fn exit_waiters() -> u64 {
    EXIT_WAITERS.load(Ordering::Relaxed) as u64
}

/// A user process.
pub struct Process {
    pub id: u64,
    pub name: String,
    /// The manifest's init process: its exit ends the run. Set before its
    /// thread can run, so even an init that finishes at once is seen.
    pub is_init: bool,
    pub arguments: String,
    address_space: AddressSpace,
    capabilities: Mutex<CapabilityTable<KernelObject, CAPABILITIES_PER_PROCESS>>,
    exit: Mutex<ExitState>,
    /// Thread slots: slot `k` owns the ring at `RING_BASE + k * stride`
    /// and (for `k >= 1`) the kernel-mapped stack below `thread_stack_top(k)`.
    threads: Mutex<[SlotState; THREADS_PER_PROCESS]>,
    /// Threads that have not finished (the last one to finish ends the process).
    running_threads: AtomicUsize,
    /// The spawner, whose child count this process holds.
    parent: Option<Weak<Process>>,
    /// Children not yet torn down.
    live_children: AtomicUsize,
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(parent) = self.parent.as_ref().and_then(Weak::upgrade) {
            parent.live_children.fetch_sub(1, Ordering::AcqRel);
        }
        LIVE_PROCESSES.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a thread slot holds.
#[derive(Clone, Default)]
enum SlotState {
    #[default]
    Free,
    /// In use by this thread (until its memory is unmapped).
    Used(Weak<Thread>),
    /// Taken for a thread being created.
    Reserved,
}

/// The user memory of one thread: its slot and the pages mapped for it.
pub struct ThreadMemory {
    slot: usize,
    ring_frames: [u64; 2],
    /// Kernel-mapped stack pages (empty when the spawner gave a stack).
    stack_pages: u64,
}

impl ThreadMemory {
    /// The thread's ring base address.
    pub fn ring_base(&self) -> u64 {
        RING_BASE + self.slot as u64 * THREAD_RING_STRIDE
    }

    /// The ring frames (for the kernel's view of the ring).
    pub fn ring_frames(&self) -> [u64; 2] {
        self.ring_frames
    }

    fn page_addresses(&self, out: &mut Vec<u64>) -> Result<(), Error> {
        out.try_reserve((RING_PAGES + self.stack_pages) as usize)
            .map_err(|_| Error::OutOfMemory)?;
        for page in 0..RING_PAGES {
            out.push(self.ring_base() + page * 4096);
        }
        let top = thread_stack_top(self.slot as u64);
        for page in 0..self.stack_pages {
            out.push(top - (page + 1) * 4096);
        }
        Ok(())
    }
}

/// Thread memory waiting to be unmapped, with its process.
static RETIRED: Mutex<Vec<(Arc<Process>, ThreadMemory)>> = Mutex::new(Vec::new());
static RETIRED_COUNT: AtomicUsize = AtomicUsize::new(0);

/// A thread is gone: queue its memory for [`reap_retired`], which the
/// scheduler loop runs with no lock held (unmapping needs a TLB shootdown,
/// which must not wait while holding locks). A process that is itself
/// going away needs no unmap: its address space is freed whole.
pub fn retire_thread_memory(process: Arc<Process>, memory: ThreadMemory) {
    let mut retired = RETIRED.lock();
    if retired.try_reserve(1).is_ok() {
        retired.push((process, memory));
        RETIRED_COUNT.fetch_add(1, Ordering::Release);
    } else {
        // Keep the slot taken: the pages stay mapped until the process ends.
        crate::kprintln!("[kernel] warning: thread memory kept until its process ends (no heap)");
    }
}

/// Give the retired list room for every thread, so retiring never
/// allocates and its capacity never changes (call once at boot).
pub fn init_retired(threads: usize) {
    if RETIRED.lock().try_reserve(threads).is_err() {
        crate::mem::fail(format_args!("no heap for the retired-thread list"));
    }
}

/// Unmap retired thread memory, shoot down the CPUs that may cache it,
/// free the frames and the slots. Cheap when nothing is retired. Entries
/// are taken one at a time, so no lock is held during a shootdown.
pub fn reap_retired() {
    if RETIRED_COUNT.load(Ordering::Acquire) == 0 {
        return;
    }
    let mut pages = Vec::new();
    let mut frames = Vec::new();
    loop {
        let Some((process, memory)) = RETIRED.lock().pop() else {
            break;
        };
        RETIRED_COUNT.fetch_sub(1, Ordering::AcqRel);
        pages.clear();
        frames.clear();
        if Arc::strong_count(&process) > 1 && memory.page_addresses(&mut pages).is_ok() {
            process.address_space.unmap_pages(&pages, &mut frames);
            crate::platform::tlb::shootdown(process.address_space.loaded_cpus());
            for frame in frames.drain(..) {
                crate::mem::frames::free(frame);
            }
        }
        process.threads.lock()[memory.slot] = SlotState::Free;
    }
}

/// A spawned process whose first thread has not started yet.
pub struct SpawnedChild {
    pub process: Arc<Process>,
    thread: Arc<Thread>,
}

impl SpawnedChild {
    /// Let the child run.
    pub fn start(self) {
        self.thread.start();
    }
}

impl Process {
    /// The process's address space.
    pub fn address_space(&self) -> &AddressSpace {
        &self.address_space
    }

    /// Physical address of the top-level page table.
    pub fn address_space_root(&self) -> u64 {
        self.address_space.root()
    }

    /// Look a handle up.
    pub fn capability(&self, handle: CapabilityHandle) -> Result<KernelObject, Error> {
        self.capabilities
            .lock()
            .get(handle)
            .cloned()
            .map_err(|error| error.as_abi())
    }

    /// Add a capability; returns its handle. An exited process accepts no
    /// grant (`ProcessExited`): the exit check and the insert happen under
    /// the table lock, and `exit` records its code before it empties the
    /// table under that lock, so an entry is either refused here or dropped
    /// by `exit`. Never left behind in an emptied table, where it could
    /// keep its process alive for good (a handle of one of its own threads
    /// is a cycle: table, thread, process). A refused object is dropped
    /// after the lock is released (its drop may tear down a process).
    pub fn grant(&self, object: KernelObject) -> Result<CapabilityHandle, Error> {
        let refused = {
            let mut table = self.capabilities.lock();
            if self.exit_code().is_none() {
                return table.insert(object).map_err(|error| error.as_abi());
            }
            object
        };
        drop(refused);
        Err(Error::ProcessExited)
    }

    /// Release a handle.
    pub fn drop_capability(&self, handle: CapabilityHandle) -> Result<(), Error> {
        self.capabilities
            .lock()
            .remove(handle)
            .map(|_| ())
            .map_err(|error| error.as_abi())
    }

    /// A thread of this process has finished; true if it was the last.
    pub fn thread_finished(&self) -> bool {
        self.running_threads.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// Create a sibling thread (not yet started): `entry` and `stack_top`
    /// (0: map a stack with a guard page) are user addresses, `fs_base` the
    /// thread pointer. Refused: addresses outside user space
    /// (`InvalidArgument`), all slots taken (`QuotaExhausted`), no memory
    /// (`OutOfMemory`), the process exiting (`ProcessExited`); nothing
    /// stays allocated on refusal.
    pub fn create_thread(
        self: &Arc<Self>,
        entry: u64,
        stack_top: u64,
        argument: u64,
        fs_base: u64,
    ) -> Result<Arc<Thread>, Error> {
        use capos_abi::layout::{USER_END, USER_IMAGE_BASE};
        if !(USER_IMAGE_BASE..RING_BASE).contains(&entry)
            || (stack_top != 0 && !(0x1000..=USER_END).contains(&stack_top))
            || !stack_top.is_multiple_of(16)
            || fs_base >= USER_END
        {
            return Err(Error::InvalidArgument);
        }
        if !crate::thread::thread_capacity_left() {
            return Err(Error::QuotaExhausted);
        }
        let slot = {
            let mut threads = self.threads.lock();
            // Checked under the slot lock: `exit` sets its code before it
            // walks the slots, so a thread registered here is either
            // refused or seen (and killed) by that walk.
            if self.exit_code().is_some() {
                return Err(Error::ProcessExited);
            }
            let slot = threads
                .iter()
                .position(|state| matches!(state, SlotState::Free))
                .ok_or(Error::QuotaExhausted)?;
            threads[slot] = SlotState::Reserved;
            slot
        };
        let mut memory = ThreadMemory {
            slot,
            ring_frames: [0; 2],
            stack_pages: 0,
        };
        if let Err(error) = self.map_thread_memory(&mut memory, stack_top == 0) {
            retire_thread_memory(self.clone(), memory);
            return Err(error);
        }
        let stack_top = if stack_top == 0 {
            thread_stack_top(slot as u64)
        } else {
            stack_top
        };
        let id = crate::thread::next_thread_id();
        let start = UserStart {
            entry,
            stack_top,
            arguments: [memory.ring_base(), argument, id],
            fs_base,
        };
        let ring = ThreadRing::new(memory.ring_frames());
        let thread =
            Thread::new(id, self.clone(), ring, memory, &start).ok_or(Error::OutOfMemory)?;
        let mut threads = self.threads.lock();
        threads[slot] = SlotState::Used(Arc::downgrade(&thread));
        if self.exit_code().is_some() {
            // The exit's walk of the slots may have run before this slot
            // was filled: refuse; the unstarted thread is dropped here and
            // its memory and slot retired.
            drop(threads);
            drop(thread);
            return Err(Error::ProcessExited);
        }
        Ok(thread)
    }

    /// Check a `MemoryMap`/`MemoryUnmap` range: page-aligned, inside the map
    /// region, at most `MAP_MAX` bytes.
    fn check_map_range(address: u64, length: u64) -> Result<(), Error> {
        use capos_abi::layout::{MAP_BASE, MAP_END};
        if length > capos_abi::limits::MAP_MAX {
            return Err(Error::TooLarge);
        }
        let end = address.checked_add(length).ok_or(Error::InvalidArgument)?;
        if length == 0
            || !address.is_multiple_of(4096)
            || !length.is_multiple_of(4096)
            || address < MAP_BASE
            || end > MAP_END
        {
            return Err(Error::InvalidArgument);
        }
        Ok(())
    }

    /// Map fresh zeroed pages at `[address, +length)`; all or nothing.
    pub fn map_anonymous(&self, address: u64, length: u64, writable: bool) -> Result<(), Error> {
        Self::check_map_range(address, length)?;
        let pages = length / 4096;
        // Tables may take a few more frames; the quota counts them too.
        if self.address_space.frame_count() as u64 + pages + 4 > FRAMES_PER_PROCESS as u64 {
            return Err(Error::QuotaExhausted);
        }
        let access = UserAccess {
            writable,
            executable: false,
        };
        for page in 0..pages {
            let at = address + page * 4096;
            if self.address_space.is_mapped(at) {
                self.undo_map(address, page);
                return Err(Error::InvalidArgument);
            }
            if self.address_space.map_new_page(at, access).is_none() {
                self.undo_map(address, page);
                return Err(Error::OutOfMemory);
            }
        }
        Ok(())
    }

    /// Take back the first `pages` pages a failed `map_anonymous` mapped.
    fn undo_map(&self, address: u64, pages: u64) {
        let _ = self.unmap_range(address, pages * 4096);
    }

    /// Unmap `[address, +length)` of the map region; returns the bytes that
    /// were mapped. Frames are freed after the TLB shootdown.
    pub fn unmap_anonymous(&self, address: u64, length: u64) -> Result<u64, Error> {
        Self::check_map_range(address, length)?;
        self.unmap_range(address, length)
    }

    fn unmap_range(&self, address: u64, length: u64) -> Result<u64, Error> {
        let mut addresses = Vec::new();
        addresses
            .try_reserve((length / 4096) as usize)
            .map_err(|_| Error::OutOfMemory)?;
        addresses.extend((0..length / 4096).map(|page| address + page * 4096));
        let mut frames = Vec::new();
        frames
            .try_reserve(addresses.len())
            .map_err(|_| Error::OutOfMemory)?;
        self.address_space.unmap_pages(&addresses, &mut frames);
        if !frames.is_empty() {
            crate::platform::tlb::shootdown(self.address_space.loaded_cpus());
        }
        let unmapped = frames.len() as u64 * 4096;
        for frame in frames {
            crate::mem::frames::free(frame);
        }
        Ok(unmapped)
    }

    /// A created thread is about to start: it counts as running until it
    /// finishes. Call just before `Thread::start` (never for a thread that
    /// is dropped unstarted).
    pub fn thread_starting(&self) {
        self.running_threads.fetch_add(1, Ordering::AcqRel);
    }

    /// Map a thread's ring (and a stack, if `with_stack`) into its slot.
    fn map_thread_memory(&self, memory: &mut ThreadMemory, with_stack: bool) -> Result<(), Error> {
        let access = UserAccess {
            writable: true,
            executable: false,
        };
        for page in 0..RING_PAGES {
            memory.ring_frames[page as usize] = self
                .address_space
                .map_new_page(memory.ring_base() + page * 4096, access)
                .ok_or(Error::OutOfMemory)?;
        }
        if with_stack {
            let top = thread_stack_top(memory.slot as u64);
            for page in 0..THREAD_STACK_PAGES {
                self.address_space
                    .map_new_page(top - (page + 1) * 4096, access)
                    .ok_or(Error::OutOfMemory)?;
                memory.stack_pages = page + 1;
            }
        }
        Ok(())
    }

    /// The exit code, once exited.
    pub fn exit_code(&self) -> Option<i64> {
        self.exit.lock().status.map(|status| status.code)
    }

    /// The exit status now, or None after
    /// registering `(thread, user_data)` to be completed when it exits.
    /// Registrations of threads that have since been killed are dropped
    /// first, so the list never outgrows the live waiters.
    pub fn wait(
        self: &Arc<Self>,
        thread: &Arc<Thread>,
        user_data: u64,
    ) -> Result<Option<ExitStatus>, Error> {
        let mut exit = self.exit.lock();
        if let Some(status) = exit.status {
            return Ok(Some(status));
        }
        // Recorded on the waiting thread too, so its end withdraws the
        // registration at once (`forget_waiter`); forgotten again when this
        // process exits (lock order: exit state, then the thread's list).
        thread
            .registrations
            .note(crate::registrations::Registration::ExitWait(
                Arc::downgrade(self),
            ))?;
        let before = exit.waiters.len();
        exit.waiters.retain(|(waiter, _)| !waiter.killed());
        EXIT_WAITERS.fetch_sub(before - exit.waiters.len(), Ordering::Relaxed);
        exit.waiters
            .try_reserve(1)
            .map_err(|_| Error::OutOfMemory)?;
        exit.waiters.push((thread.clone(), user_data));
        EXIT_WAITERS.fetch_add(1, Ordering::Relaxed);
        Ok(None)
    }

    /// Withdraw every exit wait `thread` registered here (it is ending).
    pub fn forget_waiter(&self, thread: &Thread) {
        let mut exit = self.exit.lock();
        let before = exit.waiters.len();
        exit.waiters
            .retain(|(waiter, _)| !core::ptr::eq(Arc::as_ptr(waiter), thread));
        EXIT_WAITERS.fetch_sub(before - exit.waiters.len(), Ordering::Relaxed);
    }

    /// End the process with `status` (killed: by the kernel, after a
    /// fault): stop its threads, drop its capabilities, complete its
    /// waiters. Later calls do nothing.
    pub fn exit(&self, status: ExitStatus) {
        let code = status.code;
        let waiters = {
            let mut exit = self.exit.lock();
            if exit.status.is_some() {
                return;
            }
            exit.status = Some(status);
            let waiters = core::mem::take(&mut exit.waiters);
            EXIT_WAITERS.fetch_sub(waiters.len(), Ordering::Relaxed);
            waiters
        };
        let threads = self.threads.lock().clone();
        for slot in threads {
            if let SlotState::Used(thread) = slot {
                if let Some(thread) = thread.upgrade() {
                    thread.kill();
                }
            }
        }
        // Dropped outside the table lock: a dropped handle may tear down a
        // child process, which takes other locks.
        let capabilities = core::mem::take(&mut *self.capabilities.lock());
        drop(capabilities);
        kprintln!("[process] pid={} name={} exit={}", self.id, self.name, code);
        for (thread, user_data) in waiters {
            thread.registrations.forget_exit_wait(self);
            crate::ring::post(&thread, user_data, crate::ring::Answer::exit(status));
        }
        userspace::process_exited(self, code);
    }
}

/// Running out of frames or heap.
fn out_of_memory() -> Error {
    Error::OutOfMemory
}

/// Create process `name` from the manifest entry with that name, with its
/// declared capabilities followed by `grants`, as a child of `parent`.
/// It runs once the caller calls [`SpawnedChild::start`].
pub fn spawn(
    entry_name: &str,
    grants: Vec<KernelObject>,
    parent: &Arc<Process>,
) -> Result<SpawnedChild, Error> {
    if parent.live_children.fetch_add(1, Ordering::AcqRel) >= LIVE_CHILDREN_PER_PROCESS {
        parent.live_children.fetch_sub(1, Ordering::AcqRel);
        return Err(Error::QuotaExhausted);
    }
    let result = spawn_entry(entry_name, grants, Some(parent));
    if result.is_err() {
        parent.live_children.fetch_sub(1, Ordering::AcqRel);
    }
    result
}

/// Create and start the manifest's init process.
pub fn spawn_init(entry_name: &str) -> Result<Arc<Process>, Error> {
    let child = spawn_entry(entry_name, Vec::new(), None)?;
    let process = child.process.clone();
    child.start();
    Ok(process)
}

fn spawn_entry(
    entry_name: &str,
    grants: Vec<KernelObject>,
    parent: Option<&Arc<Process>>,
) -> Result<SpawnedChild, Error> {
    let manifest = userspace::manifest().ok_or(Error::NotFound)?;
    let (_, entry) = manifest.find_process(entry_name).ok_or(Error::NotFound)?;
    let image = userspace::module(entry.binary).ok_or(Error::NotFound)?;
    if !crate::thread::thread_capacity_left() {
        return Err(Error::QuotaExhausted);
    }
    if LIVE_PROCESSES.fetch_add(1, Ordering::AcqRel) >= LIVE_PROCESSES_MAX {
        LIVE_PROCESSES.fetch_sub(1, Ordering::AcqRel);
        return Err(Error::QuotaExhausted);
    }
    // From here the count belongs to the process (released by its Drop),
    // or is released below if it never gets that far.
    let result = build(entry_name, &entry, image, grants, &manifest, parent);
    if matches!(result, Err(BuildError::BeforeProcess(_))) {
        LIVE_PROCESSES.fetch_sub(1, Ordering::AcqRel);
    }
    result.map_err(BuildError::error)
}

/// A failed build, and whether the process object already existed (its
/// Drop then releases the live count).
enum BuildError {
    BeforeProcess(Error),
    AfterProcess(Error),
}

impl BuildError {
    fn error(self) -> Error {
        match self {
            BuildError::BeforeProcess(error) | BuildError::AfterProcess(error) => error,
        }
    }
}

fn build(
    entry_name: &str,
    entry: &capos_abi::manifest::Process,
    image: &[u8],
    grants: Vec<KernelObject>,
    manifest: &capos_abi::manifest::Manifest,
    parent: Option<&Arc<Process>>,
) -> Result<SpawnedChild, BuildError> {
    let NewSpace {
        space,
        ring_frames,
        entry_point,
        slots,
        table,
    } = build_space(entry, image, grants, manifest).map_err(BuildError::BeforeProcess)?;
    let mut threads: [SlotState; THREADS_PER_PROCESS] = core::array::from_fn(|_| SlotState::Free);
    threads[0] = SlotState::Reserved;
    let arguments = userspace::arguments_for(entry);
    let process = Arc::new(Process {
        id: NEXT_PROCESS_ID.fetch_add(1, Ordering::Relaxed),
        name: String::from(entry_name),
        is_init: parent.is_none(),
        arguments,
        address_space: space,
        capabilities: Mutex::new(table),
        exit: Mutex::new(ExitState {
            status: None,
            waiters: Vec::new(),
        }),
        threads: Mutex::new(threads),
        running_threads: AtomicUsize::new(1),
        parent: parent.map(Arc::downgrade),
        live_children: AtomicUsize::new(0),
    });
    let id = crate::thread::next_thread_id();
    let start = UserStart {
        entry: entry_point,
        stack_top: STACK_TOP,
        arguments: [RING_BASE, slots, id],
        fs_base: 0,
    };
    // The first thread's stack is the process's own (mapped above), so its
    // memory record names only the ring.
    let memory = ThreadMemory {
        slot: 0,
        ring_frames,
        stack_pages: 0,
    };
    let thread = Thread::new(
        id,
        process.clone(),
        ThreadRing::new(ring_frames),
        memory,
        &start,
    )
    .ok_or(BuildError::AfterProcess(Error::OutOfMemory))?;
    process.threads.lock()[0] = SlotState::Used(Arc::downgrade(&thread));
    Ok(SpawnedChild { process, thread })
}

type Table = CapabilityTable<KernelObject, CAPABILITIES_PER_PROCESS>;

/// What a new process starts with, before the process object exists.
struct NewSpace {
    space: AddressSpace,
    ring_frames: [u64; 2],
    entry_point: u64,
    /// Capability slots filled.
    slots: u64,
    table: Table,
}

/// The address space (with its ring frames), entry point, slot count and
/// capability table of a new process.
fn build_space(
    entry: &capos_abi::manifest::Process,
    image: &[u8],
    grants: Vec<KernelObject>,
    manifest: &capos_abi::manifest::Manifest,
) -> Result<NewSpace, Error> {
    let space = AddressSpace::new().ok_or_else(out_of_memory)?;
    let entry_point = load_elf(&space, image)?;
    let stack_access = UserAccess {
        writable: true,
        executable: false,
    };
    for page in 0..STACK_PAGES {
        space
            .map_new_page(STACK_TOP - (page + 1) * 4096, stack_access)
            .ok_or_else(out_of_memory)?;
    }
    let mut ring_frames = [0u64; 2];
    for (index, frame) in ring_frames.iter_mut().enumerate().take(RING_PAGES as usize) {
        *frame = space
            .map_new_page(RING_BASE + index as u64 * 4096, stack_access)
            .ok_or_else(out_of_memory)?;
    }

    let mut table = CapabilityTable::new();
    for grant in manifest.grants(entry) {
        let object = userspace::object_for(grant).ok_or(Error::NotFound)?;
        table.insert(object).map_err(|error| error.as_abi())?;
    }
    for object in grants {
        table.insert(object).map_err(|error| error.as_abi())?;
    }
    let slots = table.len() as u64;
    Ok(NewSpace {
        space,
        ring_frames,
        entry_point,
        slots,
        table,
    })
}

/// Map every PT_LOAD segment with its own permissions; returns the entry
/// point. The image must pass the one user-ELF policy
/// ([`capos_kcore::elf::check_user_image`], also used by the host checker)
/// and fit the per-process frame quota.
fn load_elf(space: &AddressSpace, image: &[u8]) -> Result<u64, Error> {
    let checked = check_user_image::<MAX_SEGMENTS>(image).map_err(|error| {
        crate::kprintln!("[process] refused image: {error}");
        Error::InvalidArgument
    })?;
    let pages: u64 = checked
        .segments()
        .iter()
        .map(|segment| {
            let first = segment.virtual_address & !0xFFF;
            segment.end().div_ceil(4096) - first / 4096
        })
        .sum();
    // Image pages plus stack, ring and a table page per segment.
    let needed = pages + STACK_PAGES + RING_PAGES + 4 + checked.segments().len() as u64;
    if needed > FRAMES_PER_PROCESS as u64 {
        return Err(Error::QuotaExhausted);
    }
    for segment in checked.segments() {
        load_segment(space, image, segment)?;
    }
    Ok(checked.entry())
}

fn load_segment(space: &AddressSpace, image: &[u8], segment: &LoadSegment) -> Result<(), Error> {
    let start = segment.virtual_address;
    let end = segment.end();
    let data = segment.file_bytes(image).ok_or(Error::InvalidArgument)?;
    let access = UserAccess {
        writable: segment.writable,
        executable: segment.executable,
    };
    let mut page = start & !0xFFF;
    while page < end {
        let frame = space.map_new_page(page, access).ok_or_else(out_of_memory)?;
        let copy_start = page.max(start);
        let copy_end = (page + 4096).min(start + data.len() as u64);
        if copy_start < copy_end {
            let source = &data[(copy_start - start) as usize..(copy_end - start) as usize];
            // SAFETY: `frame` is a fresh frame owned by `space`, visible in
            // the physical window; the copy stays inside the page.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    source.as_ptr(),
                    (crate::mem::physical_to_virtual(frame) + (copy_start - page)) as *mut u8,
                    source.len(),
                );
            }
        }
        page += 4096;
    }
    Ok(())
}
