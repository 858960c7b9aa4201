//! Processes: an address space loaded from a boot-module ELF, a capability
//! table, one first thread with its ring, and an exit status others wait on.
//!
//! Invariants: a process's capabilities come only from its manifest entry
//! and its spawner's grants; exit happens once (the first code wins), drops
//! every capability and completes every waiter.

use crate::mem::address_space::{AddressSpace, UserAccess};
use crate::objects::KernelObject;
use crate::ring::ThreadRing;
use crate::sched::{Thread, UserStart};
use crate::{kprintln, userspace};
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use capos_abi::layout::{RING_BASE, STACK_PAGES, STACK_TOP, USER_IMAGE_BASE};
use capos_abi::limits::CAPABILITIES_PER_PROCESS;
use capos_abi::ring::RING_PAGES;
use capos_abi::{CapabilityHandle, Error};
use capos_kcore::captable::CapabilityTable;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use spin::Mutex;
use xmas_elf::program::{ProgramHeader, Type};
use xmas_elf::ElfFile;

/// Most processes alive at once.
const MAX_LIVE_PROCESSES: usize = 128;

static NEXT_PROCESS_ID: AtomicU64 = AtomicU64::new(1);
static LIVE_PROCESSES: AtomicUsize = AtomicUsize::new(0);

struct ExitState {
    code: Option<i64>,
    killed: bool,
    waiters: Vec<(Arc<Thread>, u64)>,
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
    threads: Mutex<Vec<Weak<Thread>>>,
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

    /// Add a capability; returns its handle.
    pub fn grant(&self, object: KernelObject) -> Result<CapabilityHandle, Error> {
        self.capabilities
            .lock()
            .insert(object)
            .map_err(|error| error.as_abi())
    }

    /// Release a handle.
    pub fn drop_capability(&self, handle: CapabilityHandle) -> Result<(), Error> {
        self.capabilities
            .lock()
            .remove(handle)
            .map(|_| ())
            .map_err(|error| error.as_abi())
    }

    /// The exit code, once exited.
    pub fn exit_code(&self) -> Option<i64> {
        self.exit.lock().code
    }

    /// The exit status now (code, killed by a fault), or None after
    /// registering `(thread, user_data)` to be completed when it exits.
    pub fn wait(&self, thread: &Arc<Thread>, user_data: u64) -> Option<(i64, bool)> {
        let mut exit = self.exit.lock();
        match exit.code {
            Some(code) => Some((code, exit.killed)),
            None => {
                exit.waiters.push((thread.clone(), user_data));
                None
            }
        }
    }

    /// End the process with `code` (`killed`: by the kernel, after a fault):
    /// stop its threads, drop its capabilities, complete its waiters. Later
    /// calls do nothing.
    pub fn exit(&self, code: i64, killed: bool) {
        let waiters = {
            let mut exit = self.exit.lock();
            if exit.code.is_some() {
                return;
            }
            exit.code = Some(code);
            exit.killed = killed;
            core::mem::take(&mut exit.waiters)
        };
        for thread in self.threads.lock().iter().filter_map(Weak::upgrade) {
            thread.mark_exited();
        }
        self.capabilities.lock().clear();
        kprintln!("[process] pid={} name={} exit={}", self.id, self.name, code);
        for (thread, user_data) in waiters {
            crate::syscall::complete_deferred(
                &thread,
                user_data,
                0,
                code as u64,
                u32::from(killed),
            );
        }
        LIVE_PROCESSES.fetch_sub(1, Ordering::AcqRel);
        userspace::process_exited(self, code);
    }
}

/// Why a spawn failed, as an ABI error.
fn out_of_memory() -> Error {
    Error::QuotaExhausted
}

/// Create and start process `name` from the manifest entry with that name,
/// with its declared capabilities followed by `grants`.
pub fn spawn(entry_name: &str, grants: Vec<KernelObject>) -> Result<Arc<Process>, Error> {
    spawn_entry(entry_name, grants, false)
}

/// Create and start the manifest's init process.
pub fn spawn_init(entry_name: &str) -> Result<Arc<Process>, Error> {
    spawn_entry(entry_name, Vec::new(), true)
}

fn spawn_entry(
    entry_name: &str,
    grants: Vec<KernelObject>,
    is_init: bool,
) -> Result<Arc<Process>, Error> {
    let manifest = userspace::manifest().ok_or(Error::NotFound)?;
    let (_, entry) = manifest.find_process(entry_name).ok_or(Error::NotFound)?;
    let image = userspace::module(entry.binary).ok_or(Error::NotFound)?;
    if LIVE_PROCESSES.fetch_add(1, Ordering::AcqRel) >= MAX_LIVE_PROCESSES {
        LIVE_PROCESSES.fetch_sub(1, Ordering::AcqRel);
        return Err(Error::QuotaExhausted);
    }
    let result = build(entry_name, &entry, image, grants, &manifest, is_init);
    if result.is_err() {
        LIVE_PROCESSES.fetch_sub(1, Ordering::AcqRel);
    }
    result
}

fn build(
    entry_name: &str,
    entry: &capos_abi::manifest::Process,
    image: &[u8],
    grants: Vec<KernelObject>,
    manifest: &capos_abi::manifest::Manifest,
    is_init: bool,
) -> Result<Arc<Process>, Error> {
    let mut space = AddressSpace::new().ok_or_else(out_of_memory)?;
    let entry_point = load_elf(&mut space, image)?;
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
    let arguments = userspace::arguments_for(entry);
    let process = Arc::new(Process {
        id: NEXT_PROCESS_ID.fetch_add(1, Ordering::Relaxed),
        name: String::from(entry_name),
        is_init,
        arguments,
        address_space: space,
        capabilities: Mutex::new(table),
        exit: Mutex::new(ExitState {
            code: None,
            killed: false,
            waiters: Vec::new(),
        }),
        threads: Mutex::new(Vec::new()),
    });
    let start = UserStart {
        entry: entry_point,
        stack_top: STACK_TOP,
        arguments: [RING_BASE, slots],
    };
    let thread = Thread::new(process.clone(), ThreadRing::new(ring_frames), &start)
        .ok_or_else(out_of_memory)?;
    process.threads.lock().push(Arc::downgrade(&thread));
    thread.start();
    Ok(process)
}

/// Map every PT_LOAD segment with its own permissions; returns the entry point.
fn load_elf(space: &mut AddressSpace, image: &[u8]) -> Result<u64, Error> {
    // The ELF crate panics on a misaligned image or a table past the end;
    // check both before it reads anything beyond the fixed header.
    if image.len() < 64 || !(image.as_ptr() as usize).is_multiple_of(8) {
        return Err(Error::InvalidArgument);
    }
    let elf = ElfFile::new(image).map_err(|_| Error::InvalidArgument)?;
    let header = &elf.header;
    if header.pt1.class() != xmas_elf::header::Class::SixtyFour
        || header.pt2.machine().as_machine() != xmas_elf::header::Machine::X86_64
        || header.pt2.type_().as_type() != xmas_elf::header::Type::Executable
    {
        return Err(Error::InvalidArgument);
    }
    if !capos_kcore::elf::program_headers_fit(
        image.as_ptr() as usize,
        image.len(),
        header.pt2.ph_offset(),
        header.pt2.ph_count(),
        header.pt2.ph_entry_size(),
    ) {
        return Err(Error::InvalidArgument);
    }
    for program in elf.program_iter() {
        if program.get_type() != Ok(Type::Load) || program.mem_size() == 0 {
            continue;
        }
        load_segment(space, image, &program)?;
    }
    let entry = header.pt2.entry_point();
    if !(USER_IMAGE_BASE..RING_BASE).contains(&entry) {
        return Err(Error::InvalidArgument);
    }
    Ok(entry)
}

fn load_segment(
    space: &mut AddressSpace,
    image: &[u8],
    program: &ProgramHeader,
) -> Result<(), Error> {
    let start = program.virtual_addr();
    let memory_size = program.mem_size();
    let file_size = program.file_size();
    let offset = program.offset();
    let end = start
        .checked_add(memory_size)
        .ok_or(Error::InvalidArgument)?;
    if start < USER_IMAGE_BASE || end > RING_BASE || file_size > memory_size {
        return Err(Error::InvalidArgument);
    }
    let data = offset
        .checked_add(file_size)
        .and_then(|data_end| image.get(offset as usize..data_end as usize))
        .ok_or(Error::InvalidArgument)?;
    let flags = program.flags();
    let access = UserAccess {
        writable: flags.is_write(),
        executable: flags.is_execute(),
    };
    let mut page = start & !0xFFF;
    while page < end {
        let frame = space
            .map_new_page(page, access)
            .ok_or(Error::InvalidArgument)?;
        let copy_start = page.max(start);
        let copy_end = (page + 4096).min(start + file_size);
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
