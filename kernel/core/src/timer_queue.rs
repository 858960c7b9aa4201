//! Per-CPU timer deadlines: a fixed-capacity indexed min-heap addressed by generation-checked
//! handles.
//!
//! Invariants:
//! - `order` is a permutation of `0..N`: `order[..len]` is a binary min-heap of occupied slots,
//!   keyed by `(deadline, sequence)`, and `order[len..]` are the free slots. Insertion takes the
//!   free slot at `order[len]`; removal swaps the slot to `order[len - 1]` and shrinks the heap,
//!   so nothing is ever searched and nothing allocates.
//! - `position[slot]` is the index of `slot` in `order`, for every slot, free or occupied, so a
//!   handle finds its heap entry in O(1) and [`TimerQueue::cancel`] removes it in O(log N).
//! - A slot is occupied exactly when its key is `Some`, exactly when `position[slot] < len`.
//! - Every removal (cancel or fire) advances the slot's generation, so the handle naming the
//!   removed entry is stale from then on and never names the slot's next entry. Generations are
//!   64 bits: a handle could only resolve again after 2^64 reuses of its slot.
//! - Equal deadlines fire in insertion order (FIFO): every entry carries a 64-bit insertion
//!   sequence number that breaks ties.
//! - `N <= u32::MAX`, checked at compile time, so a slot index fits a handle. No input panics:
//!   handles are bounds- and generation-checked before use.

use core::fmt;

/// Names one inserted timer; only the handle returned by [`TimerQueue::insert`] (or
/// [`TimerQueue::pop_due`]) for that entry matches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use = "a timer can only be cancelled through its handle"]
pub struct TimerHandle {
    /// Index of the slot holding the entry.
    slot: u32,
    /// Generation the slot had when the entry was inserted.
    generation: u64,
}

impl TimerHandle {
    /// Index of the slot the entry occupied (stable for the entry's lifetime).
    pub const fn slot(self) -> usize {
        self.slot as usize
    }

    /// Generation of the slot when the entry was inserted.
    pub const fn generation(self) -> u64 {
        self.generation
    }
}

/// Why a timer queue operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerQueueError {
    /// Every slot holds a pending timer.
    Full,
}

impl fmt::Display for TimerQueueError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => formatter.write_str("timer queue is full"),
        }
    }
}

/// One slot: a pending deadline and its key, or a free slot.
#[derive(Clone, Copy, Debug)]
struct Entry<K> {
    /// When the timer fires, in nanoseconds of the caller's clock.
    deadline: u64,
    /// Insertion sequence number; breaks ties between equal deadlines (FIFO).
    sequence: u64,
    /// Generation a handle must carry to name this entry.
    generation: u64,
    /// The caller's key; `None` for a free slot.
    key: Option<K>,
}

impl<K> Entry<K> {
    /// A free slot at generation 0.
    const FREE: Self = Self {
        deadline: 0,
        sequence: 0,
        generation: 0,
        key: None,
    };
}

/// At most `N` pending deadlines with keys of type `K`, earliest first.
#[derive(Debug)]
pub struct TimerQueue<K: Copy, const N: usize> {
    /// Deadline, key and generation of every slot.
    entries: [Entry<K>; N],
    /// Heap of occupied slots in `order[..len]`, free slots in `order[len..]`.
    order: [usize; N],
    /// Index of each slot in `order`.
    position: [usize; N],
    /// Number of pending timers.
    len: usize,
    /// Sequence number the next insertion takes.
    next_sequence: u64,
}

impl<K: Copy, const N: usize> TimerQueue<K, N> {
    /// An empty queue; `const` so it can be built in a `static` or a per-CPU structure without
    /// a stack temporary. Fails to compile when `N > u32::MAX`.
    pub const fn new() -> Self {
        const {
            assert!(
                N <= u32::MAX as usize,
                "timer queues hold at most u32::MAX slots"
            )
        };
        let mut order = [0; N];
        let mut index = 0;
        while index < N {
            order[index] = index;
            index += 1;
        }
        Self {
            entries: [Entry::FREE; N],
            order,
            position: order,
            len: 0,
            next_sequence: 0,
        }
    }

    /// Add a timer firing at `deadline` carrying `key`, in O(log N). Refused with
    /// [`TimerQueueError::Full`] when `N` timers are pending; the queue is then unchanged.
    pub fn insert(&mut self, deadline: u64, key: K) -> Result<TimerHandle, TimerQueueError> {
        let slot = *self.order.get(self.len).ok_or(TimerQueueError::Full)?;
        let entry = &mut self.entries[slot];
        entry.deadline = deadline;
        entry.sequence = self.next_sequence;
        entry.key = Some(key);
        let handle = TimerHandle {
            // Cannot truncate: `new` guarantees N <= u32::MAX.
            slot: slot as u32,
            generation: entry.generation,
        };
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.len += 1;
        self.sift_up(self.len - 1);
        Ok(handle)
    }

    /// Remove the pending timer `handle` names and return its key, in O(log N). A handle that
    /// is out of range, stale, already cancelled or already fired returns `None` and changes
    /// nothing.
    pub fn cancel(&mut self, handle: TimerHandle) -> Option<K> {
        let slot = handle.slot();
        let entry = self.entries.get(slot)?;
        if entry.generation != handle.generation || entry.key.is_none() {
            return None;
        }
        self.remove_at(self.position[slot])
    }

    /// The earliest pending deadline, in O(1).
    pub fn next_deadline(&self) -> Option<u64> {
        let &slot = self.order[..self.len].first()?;
        Some(self.entries[slot].deadline)
    }

    /// Remove and return the earliest timer if its deadline is at or before `now`, in
    /// O(log N). Returns at most one timer; call again until `None` to fire everything due.
    /// The returned handle is already stale.
    pub fn pop_due(&mut self, now: u64) -> Option<(TimerHandle, K)> {
        let &slot = self.order[..self.len].first()?;
        let entry = &self.entries[slot];
        if entry.deadline > now {
            return None;
        }
        let handle = TimerHandle {
            slot: slot as u32,
            generation: entry.generation,
        };
        let key = self.remove_at(0)?;
        Some((handle, key))
    }

    /// Number of pending timers.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is pending.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most timers that can be pending at once (`N`).
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Take the entry at heap index `index` (< `len`) out of the heap, free its slot, advance
    /// its generation and restore the heap order.
    fn remove_at(&mut self, index: usize) -> Option<K> {
        let last = self.len.checked_sub(1)?;
        let slot = *self.order.get(index)?;
        self.swap(index, last);
        self.len = last;
        let entry = &mut self.entries[slot];
        entry.generation = entry.generation.wrapping_add(1);
        let key = entry.key.take();
        if index < self.len {
            // The entry moved into `index` came from the bottom: it may belong above or below.
            self.sift_down(index);
            self.sift_up(index);
        }
        key
    }

    /// Whether the entry at heap index `first` fires before the one at `second`.
    fn earlier(&self, first: usize, second: usize) -> bool {
        let first = &self.entries[self.order[first]];
        let second = &self.entries[self.order[second]];
        (first.deadline, first.sequence) < (second.deadline, second.sequence)
    }

    /// Exchange heap indices `first` and `second`, keeping `position` in step.
    fn swap(&mut self, first: usize, second: usize) {
        self.order.swap(first, second);
        self.position[self.order[first]] = first;
        self.position[self.order[second]] = second;
    }

    /// Move the entry at heap index `index` up while it fires before its parent.
    fn sift_up(&mut self, mut index: usize) {
        while index > 0 {
            let parent = (index - 1) / 2;
            if !self.earlier(index, parent) {
                break;
            }
            self.swap(index, parent);
            index = parent;
        }
    }

    /// Move the entry at heap index `index` down while a child fires before it.
    fn sift_down(&mut self, mut index: usize) {
        loop {
            let left = index.saturating_mul(2).saturating_add(1);
            if left >= self.len {
                break;
            }
            let right = left + 1;
            let child = if right < self.len && self.earlier(right, left) {
                right
            } else {
                left
            };
            if !self.earlier(child, index) {
                break;
            }
            self.swap(index, child);
            index = child;
        }
    }
}

impl<K: Copy, const N: usize> Default for TimerQueue<K, N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn pops_in_deadline_order_and_never_early() {
        let mut queue = TimerQueue::<u32, 8>::new();
        for (deadline, key) in [(30, 3), (10, 1), (20, 2), (40, 4)] {
            let _ = queue.insert(deadline, key).unwrap();
        }
        assert_eq!(queue.next_deadline(), Some(10));
        assert_eq!(queue.pop_due(9), None);
        assert_eq!(queue.pop_due(25).map(|(_, key)| key), Some(1));
        assert_eq!(queue.pop_due(25).map(|(_, key)| key), Some(2));
        assert_eq!(queue.pop_due(25), None);
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.pop_due(u64::MAX).map(|(_, key)| key), Some(3));
        assert_eq!(queue.pop_due(u64::MAX).map(|(_, key)| key), Some(4));
        assert!(queue.is_empty());
        assert_eq!(queue.next_deadline(), None);
    }

    #[test]
    fn equal_deadlines_fire_in_insertion_order() {
        let mut queue = TimerQueue::<u32, 8>::new();
        for key in 0..8 {
            let _ = queue.insert(5, key).unwrap();
        }
        let fired: Vec<u32> =
            core::iter::from_fn(|| queue.pop_due(5).map(|(_, key)| key)).collect();
        assert_eq!(fired, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn cancel_removes_exactly_the_named_entry() {
        let mut queue = TimerQueue::<u32, 4>::new();
        let first = queue.insert(10, 1).unwrap();
        let second = queue.insert(20, 2).unwrap();
        assert_eq!(queue.cancel(first), Some(1));
        assert_eq!(queue.cancel(first), None, "double cancel");
        assert_eq!(queue.next_deadline(), Some(20));
        // The freed slot is reused; the old handle must not name the new entry.
        let third = queue.insert(5, 3).unwrap();
        assert_eq!(third.slot(), first.slot());
        assert_ne!(third, first);
        assert_eq!(queue.cancel(first), None, "stale handle");
        assert_eq!(queue.len(), 2);
        let (fired, key) = queue.pop_due(5).unwrap();
        assert_eq!((fired, key), (third, 3));
        assert_eq!(queue.cancel(third), None, "already fired");
        assert_eq!(queue.cancel(second), Some(2));
        assert!(queue.is_empty());
    }

    #[test]
    fn full_queue_refuses_and_keeps_everything() {
        let mut queue = TimerQueue::<u32, 2>::new();
        assert_eq!(queue.capacity(), 2);
        let _ = queue.insert(2, 2).unwrap();
        let _ = queue.insert(1, 1).unwrap();
        assert_eq!(queue.insert(0, 0), Err(TimerQueueError::Full));
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.pop_due(10).map(|(_, key)| key), Some(1));
        assert_eq!(queue.pop_due(10).map(|(_, key)| key), Some(2));
    }

    #[test]
    fn forged_and_zero_capacity_handles_are_refused() {
        let mut empty = TimerQueue::<u32, 0>::new();
        assert_eq!(empty.insert(1, 1), Err(TimerQueueError::Full));
        assert_eq!(empty.pop_due(u64::MAX), None);
        let forged = TimerHandle {
            slot: u32::MAX,
            generation: 0,
        };
        assert_eq!(empty.cancel(forged), None);
        let mut queue = TimerQueue::<u32, 4>::new();
        assert_eq!(queue.cancel(forged), None);
        let _ = queue.insert(1, 1).unwrap();
        let wrong_generation = TimerHandle {
            slot: 0,
            generation: 7,
        };
        assert_eq!(queue.cancel(wrong_generation), None);
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn a_static_queue_is_built_at_compile_time() {
        static QUEUE: TimerQueue<u64, 1024> = TimerQueue::new();
        assert!(QUEUE.is_empty());
        assert_eq!(QUEUE.capacity(), 1024);
    }

    /// One step of the model test.
    #[derive(Clone, Debug)]
    enum Operation {
        /// Insert a timer at this deadline.
        Insert(u64),
        /// Cancel the handle issued by the n-th successful insert (modulo the count), which may
        /// be pending, cancelled or fired.
        Cancel(usize),
        /// Cancel a made-up handle.
        CancelForged(u32, u64),
        /// Fire everything due at this time.
        PopDue(u64),
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            4 => (0u64..40).prop_map(Operation::Insert),
            2 => any::<usize>().prop_map(Operation::Cancel),
            1 => (0u32..10, 0u64..4).prop_map(|(slot, generation)| Operation::CancelForged(slot, generation)),
            2 => (0u64..50).prop_map(Operation::PopDue),
        ]
    }

    const MODEL_CAPACITY: usize = 8;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Against a `BTreeMap` keyed by (deadline, insertion number): every timer fires exactly
        /// once unless cancelled, never early, in (deadline, FIFO) order, with its own handle;
        /// stale and forged handles change nothing; `Full` loses nothing.
        #[test]
        fn matches_a_sorted_map_model(operations in proptest::collection::vec(operation(), 0..200)) {
            let mut queue = TimerQueue::<u64, MODEL_CAPACITY>::new();
            let mut model: BTreeMap<(u64, u64), (u64, TimerHandle)> = BTreeMap::new();
            let mut handles: Vec<(TimerHandle, (u64, u64))> = Vec::new();
            let mut fired_or_cancelled = std::collections::HashSet::new();
            let mut next_key = 0u64;
            for operation in operations {
                match operation {
                    Operation::Insert(deadline) => {
                        let key = next_key;
                        next_key += 1;
                        match queue.insert(deadline, key) {
                            Ok(handle) => {
                                prop_assert!(model.len() < MODEL_CAPACITY);
                                model.insert((deadline, key), (key, handle));
                                handles.push((handle, (deadline, key)));
                            }
                            Err(TimerQueueError::Full) => prop_assert_eq!(model.len(), MODEL_CAPACITY),
                        }
                    }
                    Operation::Cancel(choice) => {
                        if handles.is_empty() {
                            continue;
                        }
                        let (handle, model_key) = handles[choice % handles.len()];
                        let expected = model.remove(&model_key).map(|(key, _)| key);
                        prop_assert_eq!(queue.cancel(handle), expected);
                        if let Some(key) = expected {
                            prop_assert!(fired_or_cancelled.insert(key));
                        }
                    }
                    Operation::CancelForged(slot, generation) => {
                        let forged = TimerHandle { slot, generation };
                        let live = model.iter().find(|(_, (_, handle))| *handle == forged).map(|(&model_key, _)| model_key);
                        let expected = live.and_then(|model_key| model.remove(&model_key)).map(|(key, _)| key);
                        prop_assert_eq!(queue.cancel(forged), expected);
                        if let Some(key) = expected {
                            prop_assert!(fired_or_cancelled.insert(key));
                        }
                    }
                    Operation::PopDue(now) => {
                        while let Some((handle, key)) = queue.pop_due(now) {
                            let (&(deadline, model_key), &(_, model_handle)) = model.iter().next().expect("fired a timer the model does not hold");
                            prop_assert_eq!(key, model_key, "fired out of order");
                            prop_assert!(deadline <= now, "fired early");
                            prop_assert_eq!(handle, model_handle);
                            model.remove(&(deadline, model_key));
                            prop_assert!(fired_or_cancelled.insert(key), "fired twice");
                        }
                        prop_assert!(model.keys().next().is_none_or(|&(deadline, _)| deadline > now), "a due timer did not fire");
                    }
                }
                prop_assert_eq!(queue.len(), model.len());
                prop_assert_eq!(queue.next_deadline(), model.keys().next().map(|&(deadline, _)| deadline));
            }
            while let Some((_, key)) = queue.pop_due(u64::MAX) {
                let (&model_key, _) = model.iter().next().expect("fired a timer the model does not hold");
                prop_assert_eq!(key, model_key.1);
                model.remove(&model_key);
                prop_assert!(fired_or_cancelled.insert(key), "fired twice");
            }
            prop_assert!(model.is_empty());
            prop_assert_eq!(fired_or_cancelled.len(), handles.len(), "a timer was lost");
        }
    }
}
