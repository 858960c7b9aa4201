//! Per-process capability table: fixed slots addressed by generation-checked handles.
//!
//! Invariants:
//! - A handle is `slot | generation << 16` ([`CapabilityHandle`]). It resolves only while its
//!   slot is occupied and the slot's generation equals the handle's generation.
//! - Every removal (including [`CapabilityTable::clear`]) advances the slot's generation, so the
//!   handle that named the removed object is stale from then on, also after the slot is reused.
//! - Generations are 16 bits and wrap: a handle kept across exactly 65,536 reuses of its slot
//!   would resolve again. The table is per process, so such a handle can only ever name another
//!   capability the same process holds — a confusion inside one process, never a grant of
//!   authority the process did not already have. The object in a slot always carries a
//!   generation different from the one of the object removed just before it.
//! - `N <= 0xFFFF`, checked at compile time, so slot `0xFFFF` never exists and
//!   [`CapabilityHandle::NONE`] never resolves.
//! - `live` always equals the number of occupied slots.
//! - Insertion takes the lowest free slot; nothing allocates and no input panics.

use core::fmt;

use capos_abi::{CapabilityHandle, Error};

/// Why a capability table operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapabilityError {
    /// The handle is out of range, names an empty slot, or is stale (generation mismatch).
    Invalid,
    /// Every slot is occupied.
    Full,
}

impl CapabilityError {
    /// The ABI error a completion reports for this refusal.
    pub const fn as_abi(self) -> Error {
        match self {
            Self::Invalid => Error::InvalidCapability,
            Self::Full => Error::QuotaExhausted,
        }
    }
}

impl fmt::Display for CapabilityError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid => formatter.write_str("capability handle is invalid or stale"),
            Self::Full => formatter.write_str("capability table is full"),
        }
    }
}

/// One table entry: the current generation and the object, if any.
#[derive(Debug)]
struct Slot<T> {
    /// Generation a handle must carry to name `object`.
    generation: u16,
    /// The capability's object; `None` for a free slot.
    object: Option<T>,
}

impl<T> Slot<T> {
    /// A free slot at generation 0.
    const EMPTY: Self = Self {
        generation: 0,
        object: None,
    };
}

/// A fixed-size table of `N` capabilities naming objects of type `T`.
#[derive(Debug)]
pub struct CapabilityTable<T, const N: usize> {
    /// The slots; a handle's slot index selects one.
    slots: [Slot<T>; N],
    /// Number of occupied slots.
    live: usize,
}

impl<T, const N: usize> CapabilityTable<T, N> {
    /// An empty table. Fails to compile when `N > 0xFFFF` (slots are 16-bit and slot `0xFFFF`
    /// is reserved so that [`CapabilityHandle::NONE`] never resolves).
    pub const fn new() -> Self {
        const { assert!(N <= 0xFFFF, "capability tables hold at most 0xFFFF slots") };
        Self {
            slots: [Slot::EMPTY; N],
            live: 0,
        }
    }

    /// Store `object` in the lowest free slot and return the handle naming it, which carries
    /// the slot's current generation.
    pub fn insert(&mut self, object: T) -> Result<CapabilityHandle, CapabilityError> {
        let (index, slot) = self
            .slots
            .iter_mut()
            .enumerate()
            .find(|(_, slot)| slot.object.is_none())
            .ok_or(CapabilityError::Full)?;
        // Cannot fail: `new` guarantees N <= 0xFFFF.
        let index = u16::try_from(index).map_err(|_| CapabilityError::Full)?;
        slot.object = Some(object);
        self.live += 1;
        Ok(CapabilityHandle::new(index, slot.generation))
    }

    /// The object `handle` names, or [`CapabilityError::Invalid`] when it is out of range,
    /// empty or stale.
    pub fn get(&self, handle: CapabilityHandle) -> Result<&T, CapabilityError> {
        let slot = self
            .slots
            .get(usize::from(handle.slot()))
            .ok_or(CapabilityError::Invalid)?;
        if slot.generation != handle.generation() {
            return Err(CapabilityError::Invalid);
        }
        slot.object.as_ref().ok_or(CapabilityError::Invalid)
    }

    /// Take the object `handle` names out of the table and advance the slot's generation
    /// (wrapping; see the module documentation), so `handle` is stale from now on.
    pub fn remove(&mut self, handle: CapabilityHandle) -> Result<T, CapabilityError> {
        let slot = self
            .slots
            .get_mut(usize::from(handle.slot()))
            .ok_or(CapabilityError::Invalid)?;
        if slot.generation != handle.generation() {
            return Err(CapabilityError::Invalid);
        }
        let object = slot.object.take().ok_or(CapabilityError::Invalid)?;
        slot.generation = slot.generation.wrapping_add(1);
        self.live = self.live.saturating_sub(1);
        Ok(object)
    }

    /// Number of capabilities held.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether the table holds no capability.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Number of slots (`N`).
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Every capability held, with its current handle, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (CapabilityHandle, &T)> + '_ {
        self.slots
            .iter()
            .zip(0..=u16::MAX)
            .filter_map(|(slot, index)| {
                let object = slot.object.as_ref()?;
                Some((CapabilityHandle::new(index, slot.generation), object))
            })
    }

    /// Drop every capability (for example when the process exits), advancing each occupied
    /// slot's generation so no earlier handle resolves again. Returns how many were dropped.
    pub fn clear(&mut self) -> usize {
        let mut dropped = 0;
        for slot in &mut self.slots {
            if slot.object.take().is_some() {
                slot.generation = slot.generation.wrapping_add(1);
                dropped += 1;
            }
        }
        self.live = 0;
        dropped
    }
}

impl<T, const N: usize> Default for CapabilityTable<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Table = CapabilityTable<u32, 4>;

    #[test]
    fn insert_takes_lowest_free_slot_and_get_resolves() {
        let mut table = Table::new();
        let first = table.insert(10).unwrap();
        let second = table.insert(20).unwrap();
        assert_eq!(first, CapabilityHandle::new(0, 0));
        assert_eq!(second, CapabilityHandle::new(1, 0));
        assert_eq!(table.get(first), Ok(&10));
        assert_eq!(table.get(second), Ok(&20));
        assert_eq!(table.len(), 2);
        assert!(!table.is_empty());
        assert_eq!(table.remove(first), Ok(10));
        let third = table.insert(30).unwrap();
        assert_eq!(third, CapabilityHandle::new(0, 1));
    }

    #[test]
    fn stale_handle_is_invalid_after_reuse() {
        let mut table = Table::new();
        let old = table.insert(1).unwrap();
        assert_eq!(table.remove(old), Ok(1));
        assert_eq!(table.get(old), Err(CapabilityError::Invalid));
        assert_eq!(table.remove(old), Err(CapabilityError::Invalid));
        let new = table.insert(2).unwrap();
        assert_eq!(new.slot(), old.slot());
        assert_ne!(new, old);
        assert_eq!(table.get(old), Err(CapabilityError::Invalid));
        assert_eq!(table.remove(old), Err(CapabilityError::Invalid));
        assert_eq!(table.get(new), Ok(&2));
    }

    #[test]
    fn full_table_refuses_and_maps_to_quota() {
        let mut table = Table::new();
        for value in 0..4 {
            table.insert(value).unwrap();
        }
        assert_eq!(table.insert(4), Err(CapabilityError::Full));
        assert_eq!(CapabilityError::Full.as_abi(), Error::QuotaExhausted);
        assert_eq!(CapabilityError::Invalid.as_abi(), Error::InvalidCapability);
    }

    #[test]
    fn none_and_out_of_range_handles_are_invalid() {
        let mut table = CapabilityTable::<u32, 0xFFFF>::new();
        assert_eq!(table.insert(1), Ok(CapabilityHandle::new(0, 0)));
        assert_eq!(
            table.get(CapabilityHandle::NONE),
            Err(CapabilityError::Invalid)
        );
        assert_eq!(
            table.remove(CapabilityHandle::NONE),
            Err(CapabilityError::Invalid)
        );
        let mut small = Table::new();
        for value in 0..4 {
            small.insert(value).unwrap();
        }
        assert_eq!(
            small.get(CapabilityHandle::new(4, 0)),
            Err(CapabilityError::Invalid)
        );
        assert_eq!(
            small.get(CapabilityHandle::NONE),
            Err(CapabilityError::Invalid)
        );
    }

    #[test]
    fn empty_table_has_nothing() {
        let mut table = CapabilityTable::<u32, 0>::default();
        assert_eq!(table.insert(1), Err(CapabilityError::Full));
        assert_eq!(
            table.get(CapabilityHandle::new(0, 0)),
            Err(CapabilityError::Invalid)
        );
        assert_eq!(table.capacity(), 0);
    }

    #[test]
    fn iter_lists_live_capabilities_with_current_handles() {
        let mut table = Table::new();
        let a = table.insert(1).unwrap();
        let b = table.insert(2).unwrap();
        let c = table.insert(3).unwrap();
        table.remove(b).unwrap();
        let d = table.insert(4).unwrap();
        let listed: Vec<_> = table
            .iter()
            .map(|(handle, &value)| (handle, value))
            .collect();
        assert_eq!(listed, vec![(a, 1), (d, 4), (c, 3)]);
    }

    #[test]
    fn clear_drops_everything_and_invalidates_handles() {
        let mut table = Table::new();
        let handles: Vec<_> = (0..3).map(|value| table.insert(value).unwrap()).collect();
        assert_eq!(table.clear(), 3);
        assert!(table.is_empty());
        assert_eq!(table.iter().count(), 0);
        for handle in &handles {
            assert_eq!(table.get(*handle), Err(CapabilityError::Invalid));
        }
        let reused = table.insert(9).unwrap();
        assert_eq!(reused, CapabilityHandle::new(0, 1));
        assert_eq!(table.clear(), 1);
        assert_eq!(table.clear(), 0);
    }

    #[test]
    fn generation_wraps_after_65536_reuses_as_documented() {
        let mut table = CapabilityTable::<u32, 1>::new();
        let first = table.insert(0).unwrap();
        table.remove(first).unwrap();
        for round in 1..=u16::MAX as u32 {
            let handle = table.insert(round).unwrap();
            assert_eq!(handle.generation() as u32, round);
            assert_eq!(table.get(first), Err(CapabilityError::Invalid));
            table.remove(handle).unwrap();
        }
        // The 65,537th object in the slot carries generation 0 again.
        let wrapped = table.insert(7).unwrap();
        assert_eq!(wrapped, first);
    }

    /// One step of the model test.
    #[derive(Clone, Debug)]
    enum Operation {
        Insert(u32),
        /// Remove the handle at this index (modulo) of every handle ever issued.
        Remove(usize),
        /// Look up the handle at this index (modulo) of every handle ever issued.
        Get(usize),
        /// Look up an arbitrary handle value.
        GetRaw(u32),
        Clear,
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            3 => any::<u32>().prop_map(Operation::Insert),
            3 => any::<usize>().prop_map(Operation::Remove),
            3 => any::<usize>().prop_map(Operation::Get),
            1 => any::<u32>().prop_map(Operation::GetRaw),
            1 => Just(Operation::Clear),
        ]
    }

    proptest! {
        #[test]
        fn table_matches_model(operations in proptest::collection::vec(operation(), 0..300)) {
            let mut table = Table::new();
            // Every handle ever issued, with its object and whether it is still live.
            let mut issued: Vec<(CapabilityHandle, u32, bool)> = Vec::new();
            for operation in operations {
                match operation {
                    Operation::Insert(value) => {
                        let live_slots: Vec<u16> = issued
                            .iter()
                            .filter(|(_, _, live)| *live)
                            .map(|(handle, _, _)| handle.slot())
                            .collect();
                        let lowest_free = (0..4u16).find(|slot| !live_slots.contains(slot));
                        match table.insert(value) {
                            Ok(handle) => {
                                prop_assert_eq!(Some(handle.slot()), lowest_free);
                                prop_assert!(
                                    issued.iter().all(|(old, _, _)| *old != handle),
                                    "handle {:?} issued twice", handle
                                );
                                issued.push((handle, value, true));
                            }
                            Err(error) => {
                                prop_assert_eq!(error, CapabilityError::Full);
                                prop_assert_eq!(lowest_free, None);
                            }
                        }
                    }
                    Operation::Remove(index) if !issued.is_empty() => {
                        let index = index % issued.len();
                        let (handle, value, live) = issued[index];
                        if live {
                            prop_assert_eq!(table.remove(handle), Ok(value));
                            issued[index].2 = false;
                        } else {
                            prop_assert_eq!(table.remove(handle), Err(CapabilityError::Invalid));
                        }
                    }
                    Operation::Get(index) if !issued.is_empty() => {
                        let (handle, value, live) = issued[index % issued.len()];
                        if live {
                            prop_assert_eq!(table.get(handle), Ok(&value));
                        } else {
                            prop_assert_eq!(table.get(handle), Err(CapabilityError::Invalid));
                        }
                    }
                    Operation::Remove(_) | Operation::Get(_) => {}
                    Operation::GetRaw(raw) => {
                        let handle = CapabilityHandle(raw);
                        let expected = issued
                            .iter()
                            .find(|(known, _, live)| *live && *known == handle)
                            .map(|(_, value, _)| value);
                        prop_assert_eq!(table.get(handle).ok(), expected);
                    }
                    Operation::Clear => {
                        let live = issued.iter().filter(|(_, _, live)| *live).count();
                        prop_assert_eq!(table.clear(), live);
                        for entry in &mut issued {
                            entry.2 = false;
                        }
                    }
                }
                let live: Vec<(CapabilityHandle, u32)> = issued
                    .iter()
                    .filter(|(_, _, live)| *live)
                    .map(|(handle, value, _)| (*handle, *value))
                    .collect();
                prop_assert_eq!(table.len(), live.len());
                let mut listed: Vec<(CapabilityHandle, u32)> =
                    table.iter().map(|(handle, &value)| (handle, value)).collect();
                let mut expected = live.clone();
                listed.sort_by_key(|(handle, _)| handle.0);
                expected.sort_by_key(|(handle, _)| handle.0);
                prop_assert_eq!(listed, expected);
            }
        }
    }
}
