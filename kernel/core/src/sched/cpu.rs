//! CPU indices and sets of CPUs (64 at most), the vocabulary of every scheduling decision.
//!
//! Invariants:
//! - A [`CpuIndex`] is always below [`MAX_CPUS`]; the only way to make one checks it.
//! - A [`CpuSet`] is a 64-bit mask, bit `i` standing for CPU `i`; no operation panics.

/// Most CPUs the scheduler knows about: one bit each in a [`CpuSet`].
pub const MAX_CPUS: usize = 64;

/// The index of a CPU, below [`MAX_CPUS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuIndex(u8);

impl CpuIndex {
    /// CPU 0, the bootstrap processor.
    pub const FIRST: Self = Self(0);

    /// The CPU with this index, or `None` when it is not below [`MAX_CPUS`].
    pub const fn new(index: usize) -> Option<Self> {
        if index < MAX_CPUS {
            Some(Self(index as u8))
        } else {
            None
        }
    }

    /// The index as a `usize`, for indexing per-CPU arrays.
    pub const fn get(self) -> usize {
        self.0 as usize
    }

    /// Every CPU index below `count` (capped at [`MAX_CPUS`]), in order.
    pub fn all(count: usize) -> impl Iterator<Item = Self> {
        (0..count.min(MAX_CPUS)).filter_map(Self::new)
    }

    /// Every CPU index below `count` (capped at [`MAX_CPUS`]), starting at `self` and wrapping
    /// around, so that searches starting at different CPUs spread out instead of piling onto
    /// CPU 0. Yields nothing when `self` is not below `count`.
    pub fn cyclic_from(self, count: usize) -> impl Iterator<Item = Self> {
        let count = count.min(MAX_CPUS);
        let start = if self.get() < count {
            self.get()
        } else {
            count
        };
        let length = if start < count { count } else { 0 };
        (0..length).filter_map(move |step| Self::new((start + step) % count))
    }
}

/// A set of CPUs, one bit per CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CpuSet(u64);

impl CpuSet {
    /// No CPU.
    pub const EMPTY: Self = Self(0);

    /// The set with exactly these bits.
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// The set's bits (bit `i` for CPU `i`), for storing in an atomic.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// CPUs `0..count` (every CPU when `count >= MAX_CPUS`).
    pub const fn first(count: usize) -> Self {
        if count >= MAX_CPUS {
            Self(u64::MAX)
        } else {
            Self((1u64 << count) - 1)
        }
    }

    /// The set holding only `cpu`.
    pub const fn only(cpu: CpuIndex) -> Self {
        Self(1 << cpu.0)
    }

    /// Whether `cpu` is in the set.
    pub const fn contains(self, cpu: CpuIndex) -> bool {
        self.0 & (1 << cpu.0) != 0
    }

    /// The set plus `cpu`.
    pub const fn with(self, cpu: CpuIndex) -> Self {
        Self(self.0 | (1 << cpu.0))
    }

    /// The set minus `cpu`.
    pub const fn without(self, cpu: CpuIndex) -> Self {
        Self(self.0 & !(1 << cpu.0))
    }

    /// CPUs in both sets.
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Add `cpu`.
    pub fn insert(&mut self, cpu: CpuIndex) {
        *self = self.with(cpu);
    }

    /// Remove `cpu`.
    pub fn remove(&mut self, cpu: CpuIndex) {
        *self = self.without(cpu);
    }

    /// Whether no CPU is in the set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of CPUs in the set.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The CPUs in the set, lowest index first.
    pub fn iter(self) -> impl Iterator<Item = CpuIndex> {
        CpuIndex::all(MAX_CPUS).filter(move |cpu| self.contains(*cpu))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(index: usize) -> CpuIndex {
        CpuIndex::new(index).unwrap()
    }

    #[test]
    fn cpu_index_is_checked() {
        assert_eq!(CpuIndex::new(63).map(CpuIndex::get), Some(63));
        assert_eq!(CpuIndex::new(64), None);
        assert_eq!(CpuIndex::new(usize::MAX), None);
        assert_eq!(
            CpuIndex::all(3).map(CpuIndex::get).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(CpuIndex::all(1000).count(), MAX_CPUS);
    }

    #[test]
    fn cyclic_from_wraps_and_ignores_outside_start() {
        let order: Vec<usize> = cpu(2).cyclic_from(4).map(CpuIndex::get).collect();
        assert_eq!(order, [2, 3, 0, 1]);
        assert_eq!(cpu(5).cyclic_from(4).count(), 0);
        assert_eq!(cpu(0).cyclic_from(0).count(), 0);
        assert_eq!(cpu(63).cyclic_from(usize::MAX).count(), MAX_CPUS);
    }

    #[test]
    fn set_operations() {
        let set = CpuSet::EMPTY.with(cpu(0)).with(cpu(5)).with(cpu(63));
        assert!(set.contains(cpu(5)) && !set.contains(cpu(4)));
        assert_eq!(set.len(), 3);
        assert_eq!(
            set.iter().map(CpuIndex::get).collect::<Vec<_>>(),
            [0, 5, 63]
        );
        let mut other = set;
        other.remove(cpu(5));
        other.insert(cpu(1));
        assert_eq!(other.intersection(set), CpuSet::only(cpu(0)).with(cpu(63)));
        assert_eq!(
            set.without(cpu(0)).without(cpu(5)).without(cpu(63)),
            CpuSet::EMPTY
        );
        assert!(CpuSet::EMPTY.is_empty());
        assert_eq!(CpuSet::first(0), CpuSet::EMPTY);
        assert_eq!(CpuSet::first(3).bits(), 0b111);
        assert_eq!(CpuSet::first(64).len(), 64);
        assert_eq!(CpuSet::first(1000).len(), 64);
        assert_eq!(CpuSet::from_bits(0b1010).iter().count(), 2);
    }
}
