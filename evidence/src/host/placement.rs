//! Which host CPU each vCPU of a run gets, and where QEMU's other threads go.
//!
//! Policy (recorded with every bundle, see `docs/evidence.md`):
//! - Only CPUs that are online and in this process's affinity are used.
//! - [`Policy::PhysicalCores`] (every case but SMT ones): one logical CPU
//!   per physical core, the lowest-numbered thread of each core, cores in
//!   order of NUMA node, then lowest CPU. When one node has enough cores
//!   the vCPUs stay on it (the first such node). With more vCPUs than
//!   cores, second threads of cores follow in the same order, and beyond
//!   the usable CPUs the list wraps round (the run is oversubscribed).
//! - [`Policy::Siblings`] (the seed's `*_INCLUDE_SMT` cases): the SMT
//!   threads of one core before the next core, on purpose.
//! - QEMU's other threads (I/O, RCU, monitor) go to the usable CPUs no
//!   vCPU has; with no such CPU they keep every usable CPU (no room).

use serde::{Deserialize, Serialize};

use super::topology::Topology;

/// How vCPUs are spread over the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// One logical CPU per physical core.
    PhysicalCores,
    /// SMT siblings of a core together (SMT diagnostic cases).
    Siblings,
}

impl Policy {
    /// The policy of a case whose condition variable is `condition_env`:
    /// the seed's `*_INCLUDE_SMT` switches select sibling placement.
    pub fn for_condition(condition_env: Option<&str>) -> Policy {
        match condition_env {
            Some(name) if name.ends_with("_INCLUDE_SMT") => Policy::Siblings,
            _ => Policy::PhysicalCores,
        }
    }
}

/// Why no placement could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// No online CPU is in this process's affinity.
    #[error("no online CPU is in this process's affinity ({allowed}); nothing to pin to")]
    NoUsableCpu {
        /// The affinity, as a CPU list.
        allowed: String,
    },
    /// A run with no vCPU.
    #[error("a run needs at least one vCPU")]
    NoVcpu,
}

/// The placement of one run's vCPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuPlan {
    /// The policy it follows.
    pub policy: Policy,
    /// Host CPU of vCPU i, for i in 0..vcpus.
    pub vcpu_cpus: Vec<u32>,
    /// CPUs for QEMU's other threads; every usable CPU when there is no room.
    pub other_cpus: Vec<u32>,
    /// Whether the other threads got CPUs of their own.
    pub others_have_room: bool,
    /// Two vCPUs share a physical core (SMT threads or the same CPU).
    pub shares_cores: bool,
    /// More vCPUs than usable logical CPUs: vCPUs share CPUs.
    pub oversubscribed: bool,
}

/// The CPUs usable for pinning: online ones in `allowed`, ascending.
pub fn usable_cpus(topology: &Topology, allowed: &[u32]) -> Vec<u32> {
    topology
        .cpus
        .iter()
        .map(|cpu| cpu.cpu)
        .filter(|cpu| allowed.contains(cpu))
        .collect()
}

/// How many vCPUs fit without sharing: usable physical cores, or usable
/// logical CPUs when SMT threads may be used. A run with more vCPUs than
/// this is oversubscribed.
pub fn free_cpus(topology: &Topology, allowed: &[u32], policy: Policy) -> u32 {
    let usable = usable_cpus(topology, allowed);
    let count = match policy {
        Policy::Siblings => usable.len(),
        Policy::PhysicalCores => usable_cores(topology, &usable).len(),
    };
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Usable cores as (node, usable threads ascending), ordered by node, then lowest CPU.
fn usable_cores(topology: &Topology, usable: &[u32]) -> Vec<(Option<u32>, Vec<u32>)> {
    let mut cores: Vec<(Option<u32>, Vec<u32>)> = topology
        .cores()
        .into_iter()
        .filter_map(|siblings| {
            let threads: Vec<u32> = siblings
                .into_iter()
                .filter(|cpu| usable.contains(cpu))
                .collect();
            let first = *threads.first()?;
            let node = topology.cpu(first).and_then(|cpu| cpu.node);
            Some((node, threads))
        })
        .collect();
    cores.sort_by_key(|(node, threads)| (*node, threads[0]));
    cores
}

/// Choose host CPUs for `vcpus` vCPUs under `policy`, given the host's
/// `topology` and this process's `allowed` CPUs.
pub fn choose(
    topology: &Topology,
    allowed: &[u32],
    vcpus: u32,
    policy: Policy,
) -> Result<CpuPlan, PlacementError> {
    if vcpus == 0 {
        return Err(PlacementError::NoVcpu);
    }
    let usable = usable_cpus(topology, allowed);
    if usable.is_empty() {
        return Err(PlacementError::NoUsableCpu {
            allowed: super::cpulist::format(allowed),
        });
    }
    let wanted = vcpus as usize;
    let mut cores = usable_cores(topology, &usable);
    let order: Vec<u32> = match policy {
        Policy::Siblings => cores.into_iter().flat_map(|(_, threads)| threads).collect(),
        Policy::PhysicalCores => {
            // Stay on the first node that has a core for every vCPU.
            let mut nodes: Vec<Option<u32>> = cores.iter().map(|(node, _)| *node).collect();
            nodes.dedup();
            if let Some(node) = nodes
                .into_iter()
                .find(|node| cores.iter().filter(|(other, _)| other == node).count() >= wanted)
            {
                cores.sort_by_key(|(other, threads)| (*other != node, *other, threads[0]));
            }
            // Thread 0 of every core, then thread 1 of every core, ...
            let depth = cores.iter().map(|(_, threads)| threads.len()).max();
            (0..depth.unwrap_or(0))
                .flat_map(|level| {
                    cores
                        .iter()
                        .filter_map(move |(_, threads)| threads.get(level).copied())
                })
                .collect()
        }
    };
    let vcpu_cpus: Vec<u32> = order.iter().copied().cycle().take(wanted).collect();
    let core_of = |cpu: u32| topology.cpu(cpu).map(|entry| entry.core()).unwrap_or(cpu);
    let mut used_cores: Vec<u32> = vcpu_cpus.iter().map(|&cpu| core_of(cpu)).collect();
    used_cores.sort_unstable();
    let distinct_cores = {
        let mut cores = used_cores.clone();
        cores.dedup();
        cores.len()
    };
    let mut others: Vec<u32> = usable
        .iter()
        .copied()
        .filter(|cpu| !vcpu_cpus.contains(cpu))
        .collect();
    let others_have_room = !others.is_empty();
    if !others_have_room {
        others = usable.clone();
    }
    Ok(CpuPlan {
        policy,
        oversubscribed: wanted > usable.len(),
        shares_cores: distinct_cores < wanted,
        vcpu_cpus,
        other_cpus: others,
        others_have_room,
    })
}

#[cfg(test)]
mod tests {
    use super::super::topology::fixture;
    use super::*;

    fn smt_host() -> Topology {
        let dir = tempfile::tempdir().unwrap();
        fixture::smt_two_sockets(dir.path());
        Topology::read(dir.path()).unwrap()
    }

    fn small_host() -> Topology {
        let dir = tempfile::tempdir().unwrap();
        fixture::two_cpus_no_smt(dir.path());
        Topology::read(dir.path()).unwrap()
    }

    const ALL: &[u32] = &[0, 1, 2, 3, 4, 5, 6, 7];

    #[test]
    fn two_host_cpus_give_vcpu_0_and_1_cpus_0_and_1() {
        let host = small_host();
        let plan = choose(&host, &[0, 1], 2, Policy::PhysicalCores).unwrap();
        assert_eq!(plan.vcpu_cpus, [0, 1]);
        assert!(!plan.others_have_room);
        assert_eq!(plan.other_cpus, [0, 1]);
        assert!(!plan.oversubscribed && !plan.shares_cores);
        let one = choose(&host, &[0, 1], 1, Policy::PhysicalCores).unwrap();
        assert_eq!(one.vcpu_cpus, [0]);
        assert_eq!(one.other_cpus, [1]);
        assert!(one.others_have_room);
    }

    #[test]
    fn four_vcpus_on_two_cpus_wrap_and_say_so() {
        let plan = choose(&small_host(), &[0, 1], 4, Policy::PhysicalCores).unwrap();
        assert_eq!(plan.vcpu_cpus, [0, 1, 0, 1]);
        assert!(plan.oversubscribed && plan.shares_cores);
        assert_eq!(free_cpus(&small_host(), &[0, 1], Policy::PhysicalCores), 2);
    }

    #[test]
    fn physical_cores_avoid_siblings_and_stay_on_one_node() {
        let host = smt_host();
        let two = choose(&host, ALL, 2, Policy::PhysicalCores).unwrap();
        assert_eq!(two.vcpu_cpus, [0, 1]);
        assert!(!two.shares_cores);
        assert_eq!(two.other_cpus, [2, 3, 4, 5, 6, 7]);
        // Four cores span both nodes: node 0's cores first, then node 1's.
        let four = choose(&host, ALL, 4, Policy::PhysicalCores).unwrap();
        assert_eq!(four.vcpu_cpus, [0, 1, 2, 3]);
        assert!(!four.shares_cores);
        // More vCPUs than cores: second threads follow, sharing cores.
        let six = choose(&host, ALL, 6, Policy::PhysicalCores).unwrap();
        assert_eq!(six.vcpu_cpus, [0, 1, 2, 3, 4, 5]);
        assert!(six.shares_cores && !six.oversubscribed);
        assert_eq!(free_cpus(&host, ALL, Policy::PhysicalCores), 4);
        assert_eq!(free_cpus(&host, ALL, Policy::Siblings), 8);
    }

    #[test]
    fn physical_cores_prefer_a_node_with_room() {
        let host = smt_host();
        // Affinity leaves node 0 one core (cpu 0) and node 1 two cores.
        let plan = choose(&host, &[0, 2, 3], 2, Policy::PhysicalCores).unwrap();
        assert_eq!(plan.vcpu_cpus, [2, 3]);
        assert_eq!(plan.other_cpus, [0]);
    }

    #[test]
    fn siblings_fill_a_core_first() {
        let host = smt_host();
        let plan = choose(&host, ALL, 2, Policy::Siblings).unwrap();
        assert_eq!(plan.vcpu_cpus, [0, 4]);
        assert!(plan.shares_cores && !plan.oversubscribed);
        let eight = choose(&host, ALL, 8, Policy::Siblings).unwrap();
        assert_eq!(eight.vcpu_cpus, [0, 4, 1, 5, 2, 6, 3, 7]);
        assert!(!eight.others_have_room);
    }

    #[test]
    fn no_usable_cpu_or_no_vcpu_is_an_error() {
        let host = small_host();
        assert!(matches!(
            choose(&host, &[5], 1, Policy::PhysicalCores),
            Err(PlacementError::NoUsableCpu { .. })
        ));
        assert_eq!(
            choose(&host, &[0, 1], 0, Policy::PhysicalCores),
            Err(PlacementError::NoVcpu)
        );
    }

    #[test]
    fn smt_conditions_select_siblings() {
        assert_eq!(
            Policy::for_condition(Some("CAPOS_SMP_SCALE_INCLUDE_SMT")),
            Policy::Siblings
        );
        assert_eq!(
            Policy::for_condition(Some("CAPOS_X")),
            Policy::PhysicalCores
        );
        assert_eq!(Policy::for_condition(None), Policy::PhysicalCores);
    }
}
