//! Address-space decisions around a context switch and a TLB shootdown: when to write CR3,
//! which CPUs to interrupt, how a target flushes, and when the initiator may free frames.
//!
//! Invariants:
//! - CR3 is written only when the next thread's address space differs from the loaded one;
//!   the idle loop (no next address space) keeps whatever is loaded.
//! - The shootdown targets are the CPUs of the address space's mask, minus the initiator (which
//!   flushes locally): never a broadcast.
//! - A [`Shootdown`] completes only when every target has flushed generation `G` or later, or
//!   no longer has the address space loaded; only then may the unmapped frames be freed.
//! - Flush generations only grow, and a CPU's published flushed generation only grows
//!   (`fetch_max`): comparing with `>=` is all the protocol needs.
//! - A switch reads the next address space's generation before its CR3 write; a target
//!   acknowledges every shootdown IPI, even when it had nothing to flush.

use super::{CpuIndex, CpuSet};

/// Most pages a target invalidates one by one; beyond it, it flushes everything.
pub const FLUSH_PAGE_LIMIT: usize = 32;

/// What a switch does about the loaded address space.
#[must_use = "Load means write CR3 and update both address spaces' CPU masks"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressSpaceSwitch<A> {
    /// Keep the loaded address space: no CR3 write.
    Keep,
    /// Load `next`, in this order: set this CPU in `next`'s mask (SeqCst), read `next`'s
    /// flush generation, write CR3, publish the generation read as flushed (`fetch_max`),
    /// clear this CPU from `previous`'s mask. Reading the generation after the CR3 write would
    /// let the CPU claim a flush of a PTE change it cached before.
    Load {
        /// The address space loaded until now, if any.
        previous: Option<A>,
        /// The address space to load.
        next: A,
    },
}

/// Whether switching to a thread of `next` needs a CR3 write, given what is `loaded`.
#[must_use]
pub fn needs_address_space_switch<A: PartialEq>(loaded: Option<&A>, next: &A) -> bool {
    loaded != Some(next)
}

/// The CR3 decision for a switch to a thread of `next`, or to the idle loop (`None`), which
/// keeps whatever is loaded.
pub fn address_space_switch<A: Copy + PartialEq>(
    loaded: Option<A>,
    next: Option<A>,
) -> AddressSpaceSwitch<A> {
    match next {
        Some(next) if needs_address_space_switch(loaded.as_ref(), &next) => {
            AddressSpaceSwitch::Load {
                previous: loaded,
                next,
            }
        }
        _ => AddressSpaceSwitch::Keep,
    }
}

/// How a CPU invalidates an unmapped range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushMethod {
    /// `invlpg` each page.
    Pages,
    /// Reload CR3 (flushes every non-global entry).
    Everything,
}

/// How to invalidate `pages` pages: one by one up to [`FLUSH_PAGE_LIMIT`], else everything.
#[must_use]
pub fn flush_method(pages: usize) -> FlushMethod {
    if pages <= FLUSH_PAGE_LIMIT {
        FlushMethod::Pages
    } else {
        FlushMethod::Everything
    }
}

/// The CPUs to interrupt for a shootdown: every CPU with the address space loaded but the
/// initiator.
#[must_use]
pub fn shootdown_targets(loaded_on: CpuSet, initiator: CpuIndex) -> CpuSet {
    loaded_on.without(initiator)
}

/// What a target does on a shootdown IPI for one address space. After acting, in every case,
/// it publishes the request's generation as flushed (`fetch_max`): the initiator waits for
/// that even from a CPU that had nothing to flush.
#[must_use = "the target must act, then publish the request's generation as flushed"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShootdownResponse {
    /// The address space is no longer loaded here: nothing to flush.
    Nothing,
    /// A thread of the address space runs here: invalidate, then publish the generation.
    Invalidate(FlushMethod),
    /// The CPU is idle and keeps the address space only lazily: load the kernel table (a
    /// full flush) and leave the mask, so later shootdowns skip this CPU.
    Unload,
}

/// A target's response to a shootdown of `pages` pages, knowing whether the address space
/// is loaded on this CPU and whether the CPU is idle.
pub fn respond_to_shootdown(
    space_loaded_here: bool,
    cpu_idle: bool,
    pages: usize,
) -> ShootdownResponse {
    match (space_loaded_here, cpu_idle) {
        (false, _) => ShootdownResponse::Nothing,
        (true, true) => ShootdownResponse::Unload,
        (true, false) => ShootdownResponse::Invalidate(flush_method(pages)),
    }
}

/// What the initiator reads about one target while it waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetView {
    /// The target is still in the address space's mask.
    pub has_space_loaded: bool,
    /// The latest generation of this address space the target has flushed.
    pub flushed_generation: u64,
}

/// An initiator's wait for one shootdown of generation `generation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shootdown {
    generation: u64,
    waiting: CpuSet,
}

impl Shootdown {
    /// Start waiting for the [`shootdown_targets`] of `loaded_on` (read after the page-table
    /// change and a fence) to flush `generation`.
    pub fn new(loaded_on: CpuSet, initiator: CpuIndex, generation: u64) -> Self {
        Self {
            generation,
            waiting: shootdown_targets(loaded_on, initiator),
        }
    }

    /// The generation waited for.
    pub const fn generation(&self) -> u64 {
        self.generation
    }

    /// Targets that have not acknowledged yet (each needs one IPI at the start).
    pub const fn waiting(&self) -> CpuSet {
        self.waiting
    }

    /// Record what the initiator read about `cpu`; returns whether the shootdown is complete.
    pub fn observe(&mut self, cpu: CpuIndex, view: TargetView) -> bool {
        if !view.has_space_loaded || view.flushed_generation >= self.generation {
            self.waiting.remove(cpu);
        }
        self.is_complete()
    }

    /// Whether every target has acknowledged: the frames may be freed.
    pub const fn is_complete(&self) -> bool {
        self.waiting.is_empty()
    }
}
