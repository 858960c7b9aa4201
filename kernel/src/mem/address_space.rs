//! User address spaces: a top-level table whose upper half is the kernel's,
//! user pages mapped with the U bit, and checked access to user memory.
//!
//! Invariants:
//! - The upper half (entries 256..512) is copied from the kernel table when
//!   the space is created; the kernel adds mappings there only at boot and in
//!   regions whose intermediate tables already exist, so every space sees them.
//! - The kernel never dereferences a user pointer: it translates each page
//!   through this space's tables (present + user, + writable for writes) and
//!   copies through the physical window. A bad pointer is an error value,
//!   never a kernel fault.
//! - Frames mapped here are owned by the space and freed when it is dropped.
//!   No CPU has the space loaded by then: a CPU that loads it holds a
//!   reference to its process until it loads another table.
//! - Mapping and unmapping take the space's table lock for writing; every
//!   translation and user copy holds it for reading, so a page cannot be
//!   unmapped (and its frame freed) while the kernel copies through it.
//! - `recent` remembers the last translation made for a read and for a
//!   write (`capos_kcore::usermem::RecentTranslation`): stored only under
//!   the table lock, cleared by every mapping and unmapping before it
//!   releases the lock for writing, so a copy never goes through a
//!   translation the tables no longer hold.
//! - `loaded_cpus` has the bit of every CPU that may hold translations of
//!   this space (set before its CR3 write, cleared after it loads another
//!   table); an unmap is followed by a TLB shootdown of exactly those CPUs
//!   before the frames are freed.

use super::{frames, paging, physical_to_virtual, PAGE_SIZE};
use alloc::vec::Vec;
use capos_abi::Error;
use capos_kcore::usermem::RecentTranslation;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::{Mutex, RwLock};
use x86_64::structures::paging::PageTableFlags as Flags;

const ENTRIES: usize = 512;
const ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// Page permissions for user mappings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserAccess {
    pub writable: bool,
    pub executable: bool,
}

/// A user address space.
pub struct AddressSpace {
    root: u64,
    /// Every frame this space owns: tables and mapped pages.
    owned: Mutex<Vec<u64>>,
    /// Held for writing while the tables change, for reading while they are used.
    tables: RwLock<()>,
    /// CPUs that may cache translations of this space (bit = CPU index).
    loaded_cpus: AtomicU64,
    /// The last translation for a read ([0]) and for a write ([1]), packed
    /// ([`RecentTranslation`]); 0 when none.
    recent: [AtomicU64; 2],
}

fn table(physical: u64) -> &'static mut [u64; ENTRIES] {
    // SAFETY: `physical` is a page-table frame owned by an address space or
    // the kernel; the physical window maps it; callers hold the space (and
    // so exclusive access to its lower-half tables).
    unsafe { &mut *(physical_to_virtual(physical) as *mut [u64; ENTRIES]) }
}

impl AddressSpace {
    /// A new space sharing the kernel's upper half. None when out of memory.
    pub fn new() -> Option<Self> {
        let root = frames::allocate_zeroed()?;
        let kernel = table(paging::kernel_table());
        table(root)[256..].copy_from_slice(&kernel[256..]);
        let mut owned = Vec::new();
        owned.try_reserve(64).ok()?;
        owned.push(root);
        Some(Self {
            root,
            owned: Mutex::new(owned),
            tables: RwLock::new(()),
            loaded_cpus: AtomicU64::new(0),
            recent: [AtomicU64::new(0), AtomicU64::new(0)],
        })
    }

    /// Record that CPU `index` is about to load this space.
    pub fn note_loaded(&self, index: usize) {
        self.loaded_cpus
            .fetch_or(1 << (index % 64), Ordering::SeqCst);
    }

    /// Record that CPU `index` has loaded another table.
    pub fn note_unloaded(&self, index: usize) {
        self.loaded_cpus
            .fetch_and(!(1 << (index % 64)), Ordering::SeqCst);
    }

    /// CPUs that may cache translations of this space.
    pub fn loaded_cpus(&self) -> u64 {
        self.loaded_cpus.load(Ordering::SeqCst)
    }

    /// Frames this space owns (tables and pages).
    pub fn frame_count(&self) -> usize {
        self.owned.lock().len()
    }

    /// Physical address of the top-level table (for CR3).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Map one fresh zeroed frame at user page `address`; returns the frame.
    /// Mapping where something is mapped already fails (the frame is kept
    /// by the space and freed with it).
    pub fn map_new_page(&self, address: u64, access: UserAccess) -> Option<u64> {
        let _tables = self.tables.write();
        self.forget_translations();
        let mut owned = self.owned.lock();
        owned.try_reserve(1).ok()?;
        let frame = frames::allocate_zeroed()?;
        owned.push(frame);
        self.map(&mut owned, address, frame, access)?;
        Some(frame)
    }

    /// Unmap the pages at `addresses` and give their frames back to the
    /// caller, which must shoot down [`Self::loaded_cpus`] before freeing
    /// them ([`crate::mem::tlb::shootdown_and_free`]).
    pub fn unmap_pages(&self, addresses: &[u64], frames_out: &mut Vec<u64>) {
        let _tables = self.tables.write();
        self.forget_translations();
        let mut owned = self.owned.lock();
        for &address in addresses {
            let Some(entry) = self.leaf_entry(address) else {
                continue;
            };
            let frame = *entry & ADDRESS_MASK;
            *entry = 0;
            if let Some(position) = owned.iter().position(|owned| *owned == frame) {
                owned.swap_remove(position);
                if frames_out.try_reserve(1).is_ok() {
                    frames_out.push(frame);
                }
            }
        }
    }

    /// Clear the remembered translations (the caller holds the table lock
    /// for writing and is about to change the tables).
    fn forget_translations(&self) {
        for recent in &self.recent {
            recent.store(0, Ordering::Relaxed);
        }
    }

    /// [`Self::translate`], answered from the remembered translation of the
    /// same page when there is one (a read may use a write's), and
    /// remembering what it walks. The caller holds the table lock.
    fn translate_recent(&self, address: u64, write: bool) -> Option<u64> {
        let slot = usize::from(write);
        for recent in &self.recent[slot..] {
            let word = recent.load(Ordering::Relaxed);
            if let Some(physical) = RecentTranslation::lookup(word, address, write) {
                return Some(physical);
            }
        }
        let physical = self.translate(address, write)?;
        let remembered = RecentTranslation {
            page: address & !(PAGE_SIZE - 1),
            frame: physical & !(PAGE_SIZE - 1),
            writable: write,
        };
        if let Some(word) = remembered.pack() {
            self.recent[slot].store(word, Ordering::Relaxed);
        }
        Some(physical)
    }

    /// Whether a page is mapped at `address`.
    pub fn is_mapped(&self, address: u64) -> bool {
        let _tables = self.tables.read();
        self.leaf_entry(address).is_some()
    }

    /// The present leaf entry mapping `address`, if any.
    fn leaf_entry(&self, address: u64) -> Option<&'static mut u64> {
        let mut current = self.root;
        for level in [3, 2, 1] {
            let index = ((address >> (12 + 9 * level)) & 0x1FF) as usize;
            let entry = table(current)[index];
            if entry & Flags::PRESENT.bits() == 0 {
                return None;
            }
            current = entry & ADDRESS_MASK;
        }
        let entry = &mut table(current)[((address >> 12) & 0x1FF) as usize];
        (*entry & Flags::PRESENT.bits() != 0).then_some(entry)
    }

    fn map(
        &self,
        owned: &mut Vec<u64>,
        address: u64,
        frame: u64,
        access: UserAccess,
    ) -> Option<()> {
        let mut current = self.root;
        for level in [3, 2, 1] {
            let index = ((address >> (12 + 9 * level)) & 0x1FF) as usize;
            let entry = &mut table(current)[index];
            if *entry & Flags::PRESENT.bits() == 0 {
                owned.try_reserve(1).ok()?;
                let next = frames::allocate_zeroed()?;
                owned.push(next);
                *entry = next | (Flags::PRESENT | Flags::WRITABLE | Flags::USER_ACCESSIBLE).bits();
            }
            current = *entry & ADDRESS_MASK;
        }
        let mut flags = Flags::PRESENT | Flags::USER_ACCESSIBLE;
        if access.writable {
            flags |= Flags::WRITABLE;
        }
        if !access.executable {
            flags |= Flags::NO_EXECUTE;
        }
        let index = ((address >> 12) & 0x1FF) as usize;
        let entry = &mut table(current)[index];
        if *entry & Flags::PRESENT.bits() != 0 {
            return None;
        }
        *entry = frame | flags.bits();
        Some(())
    }

    /// Physical address behind user `address`, if mapped user-accessible
    /// (and writable when `write`). The caller holds the table lock.
    fn translate(&self, address: u64, write: bool) -> Option<u64> {
        if address >= capos_abi::layout::USER_END {
            return None;
        }
        let mut current = self.root;
        for level in [3, 2, 1, 0] {
            let index = ((address >> (12 + 9 * level)) & 0x1FF) as usize;
            let entry = table(current)[index];
            let required = Flags::PRESENT | Flags::USER_ACCESSIBLE;
            if entry & required.bits() != required.bits() {
                return None;
            }
            if write && entry & Flags::WRITABLE.bits() == 0 {
                return None;
            }
            current = entry & ADDRESS_MASK;
        }
        Some(current | (address & (PAGE_SIZE - 1)))
    }

    /// Copy an operation's argument (a message, a name, text) from user
    /// memory at `address` into `out`. An empty argument reads nothing: its
    /// pointer may dangle, as a Rust empty slice's may.
    pub fn read_argument(&self, address: u64, out: &mut [u8]) -> Result<(), Error> {
        if out.is_empty() {
            return Ok(());
        }
        self.read(address, out)
    }

    /// Copy `out.len()` bytes from user memory at `address`.
    pub fn read(&self, address: u64, out: &mut [u8]) -> Result<(), Error> {
        self.walk(
            address,
            out.len() as u64,
            false,
            |physical, offset, length| {
                // SAFETY: `physical..+length` lies in one mapped user page,
                // reached through the physical window.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        physical_to_virtual(physical) as *const u8,
                        out[offset..].as_mut_ptr(),
                        length,
                    );
                }
            },
        )
    }

    /// Copy `bytes` into user memory at `address` (pages must be writable).
    pub fn write(&self, address: u64, bytes: &[u8]) -> Result<(), Error> {
        self.walk(
            address,
            bytes.len() as u64,
            true,
            |physical, offset, length| {
                // SAFETY: as in `read`, and the page is user-writable.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        bytes[offset..].as_ptr(),
                        physical_to_virtual(physical) as *mut u8,
                        length,
                    );
                }
            },
        )
    }

    /// Check the whole range first, then call `copy(physical, offset, length)` per page piece.
    /// Ranges of up to [`INLINE_PIECES`] pages (every message and ring
    /// operation argument) keep their pieces on the stack; longer ones in a
    /// fallibly reserved list.
    fn walk(
        &self,
        address: u64,
        length: u64,
        write: bool,
        mut copy: impl FnMut(u64, usize, usize),
    ) -> Result<(), Error> {
        capos_kcore::usermem::check_user_range(address, length)?;
        let _tables = self.tables.read();
        // Within one page (a park word, a message, a reply): one
        // translation, no list of pieces.
        if length > 0 && (address & (PAGE_SIZE - 1)) + length <= PAGE_SIZE {
            let physical = self
                .translate_recent(address, write)
                .ok_or(Error::BadAddress)?;
            copy(physical, 0, length as usize);
            return Ok(());
        }
        let count = length.div_ceil(PAGE_SIZE) as usize + 1;
        let mut inline = [(0u64, 0usize, 0usize); INLINE_PIECES];
        let mut listed = Vec::new();
        let pieces = if count <= INLINE_PIECES {
            &mut inline[..]
        } else {
            listed
                .try_reserve_exact(count)
                .map_err(|_| Error::OutOfMemory)?;
            listed.resize(count, (0, 0, 0));
            &mut listed[..]
        };
        let mut used = 0;
        let mut done = 0u64;
        while done < length {
            let current = address + done;
            let physical = self.translate(current, write).ok_or(Error::BadAddress)?;
            let in_page = (PAGE_SIZE - (current & (PAGE_SIZE - 1))).min(length - done);
            pieces[used] = (physical, done as usize, in_page as usize);
            used += 1;
            done += in_page;
        }
        for &(physical, offset, piece) in &pieces[..used] {
            copy(physical, offset, piece);
        }
        Ok(())
    }
}

/// Page pieces a user copy keeps on the stack (a range of up to three pages).
const INLINE_PIECES: usize = 4;

impl Drop for AddressSpace {
    fn drop(&mut self) {
        for frame in self.owned.get_mut().drain(..) {
            frames::free(frame);
        }
    }
}
