//! The address-space decision of a context switch: when to write CR3.
//!
//! Invariant: CR3 is written only when the next thread's address space differs from the one
//! the CPU has loaded; the idle loop keeps whatever is loaded (the kernel half is mapped in
//! every address space).

/// Whether switching to a thread of `next` needs a CR3 write, given what is `loaded`.
#[must_use]
pub fn needs_address_space_switch<A: PartialEq>(loaded: Option<&A>, next: &A) -> bool {
    loaded != Some(next)
}
