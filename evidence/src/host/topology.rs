//! The host's CPU topology from sysfs: online logical CPUs, which package
//! and core each belongs to, its SMT siblings, and the NUMA nodes.
//!
//! Invariants:
//! - [`Topology::read`] takes the sysfs root (`/sys` on a live host), so
//!   tests parse fixture trees; nothing else is read.
//! - Only online CPUs are described; offline ones are listed by number
//!   (their `topology/` directory may be missing).
//! - A physical core is a set of SMT siblings (`thread_siblings_list`),
//!   named by its lowest CPU: `core_id` repeats across packages and dies,
//!   the sibling set does not.
//! - Missing NUMA information (`devices/system/node` absent, as on kernels
//!   without NUMA) gives no nodes, never an invented one.
//! - Any other missing or malformed file is an error naming the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cpulist::{self, CpuListError};

/// Why the topology could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A file could not be read.
    #[error("{}: {cause}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// A CPU list file did not parse.
    #[error("{}: {cause}", path.display())]
    CpuList {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: CpuListError,
    },
    /// A number file did not hold a number.
    #[error("{}: {text:?} is not a number", path.display())]
    Number {
        /// The file.
        path: PathBuf,
        /// Its (trimmed) contents.
        text: String,
    },
    /// The facts contradict each other.
    #[error("{0}")]
    Inconsistent(String),
}

/// One online logical CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogicalCpu {
    /// Its number (`cpuN`).
    pub cpu: u32,
    /// `physical_package_id`.
    pub package: u32,
    /// `core_id` (unique only within a package).
    pub core_id: u32,
    /// Its SMT siblings, itself included (`thread_siblings_list`), online ones only.
    pub siblings: Vec<u32>,
    /// Its NUMA node, when the host reports nodes.
    pub node: Option<u32>,
}

impl LogicalCpu {
    /// The physical core it belongs to, named by its lowest sibling.
    pub fn core(&self) -> u32 {
        self.siblings.first().copied().unwrap_or(self.cpu)
    }
}

/// One NUMA node and its online CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumaNode {
    /// `nodeN`.
    pub node: u32,
    /// Its online CPUs (`cpulist`, restricted to online ones).
    pub cpus: Vec<u32>,
}

/// The host's CPUs as sysfs describes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Online logical CPUs, ascending.
    pub cpus: Vec<LogicalCpu>,
    /// Present but offline CPUs (`present` minus `online`).
    pub offline: Vec<u32>,
    /// NUMA nodes; empty when the host reports none.
    pub nodes: Vec<NumaNode>,
}

fn read_text(path: &Path) -> Result<String, TopologyError> {
    std::fs::read_to_string(path).map_err(|cause| TopologyError::Read {
        path: path.to_path_buf(),
        cause,
    })
}

fn read_list(path: &Path) -> Result<Vec<u32>, TopologyError> {
    cpulist::parse(&read_text(path)?).map_err(|cause| TopologyError::CpuList {
        path: path.to_path_buf(),
        cause,
    })
}

fn read_number(path: &Path) -> Result<u32, TopologyError> {
    let text = read_text(path)?;
    let trimmed = text.trim();
    // Some platforms print -1 for an unknown package; it is not a number we can use.
    trimmed.parse::<u32>().map_err(|_| TopologyError::Number {
        path: path.to_path_buf(),
        text: trimmed.to_string(),
    })
}

impl Topology {
    /// Read the topology under `sysfs_root` (`/sys` on a live host).
    pub fn read(sysfs_root: &Path) -> Result<Topology, TopologyError> {
        let cpu_root = sysfs_root.join("devices/system/cpu");
        let online = read_list(&cpu_root.join("online"))?;
        if online.is_empty() {
            return Err(TopologyError::Inconsistent(format!(
                "{}: no CPU is online",
                cpu_root.join("online").display()
            )));
        }
        let present_path = cpu_root.join("present");
        let present = if present_path.exists() {
            read_list(&present_path)?
        } else {
            online.clone()
        };
        let offline: Vec<u32> = present
            .iter()
            .copied()
            .filter(|cpu| online.binary_search(cpu).is_err())
            .collect();
        let nodes = read_nodes(&sysfs_root.join("devices/system/node"), &online)?;
        let node_of: BTreeMap<u32, u32> = nodes
            .iter()
            .flat_map(|node| node.cpus.iter().map(move |&cpu| (cpu, node.node)))
            .collect();
        let mut cpus = Vec::with_capacity(online.len());
        for &cpu in &online {
            let topology = cpu_root.join(format!("cpu{cpu}/topology"));
            let siblings: Vec<u32> = read_list(&topology.join("thread_siblings_list"))?
                .into_iter()
                .filter(|sibling| online.binary_search(sibling).is_ok())
                .collect();
            if !siblings.contains(&cpu) {
                return Err(TopologyError::Inconsistent(format!(
                    "{}: cpu{cpu} is not among its own siblings",
                    topology.join("thread_siblings_list").display()
                )));
            }
            cpus.push(LogicalCpu {
                cpu,
                package: read_number(&topology.join("physical_package_id"))?,
                core_id: read_number(&topology.join("core_id"))?,
                siblings,
                node: node_of.get(&cpu).copied(),
            });
        }
        let topology = Topology {
            cpus,
            offline,
            nodes,
        };
        topology.check_siblings()?;
        Ok(topology)
    }

    /// Siblings must agree: if a lists b, b lists a, with the same set.
    fn check_siblings(&self) -> Result<(), TopologyError> {
        for cpu in &self.cpus {
            for sibling in &cpu.siblings {
                let other = self.cpu(*sibling).ok_or_else(|| {
                    TopologyError::Inconsistent(format!("cpu{sibling} is listed but not described"))
                })?;
                if other.siblings != cpu.siblings {
                    return Err(TopologyError::Inconsistent(format!(
                        "cpu{} lists siblings {} but cpu{} lists {}",
                        cpu.cpu,
                        cpulist::format(&cpu.siblings),
                        other.cpu,
                        cpulist::format(&other.siblings)
                    )));
                }
            }
        }
        Ok(())
    }

    /// The online CPU `cpu`, if described.
    pub fn cpu(&self, cpu: u32) -> Option<&LogicalCpu> {
        self.cpus.iter().find(|entry| entry.cpu == cpu)
    }

    /// Distinct packages.
    pub fn package_count(&self) -> usize {
        let mut packages: Vec<u32> = self.cpus.iter().map(|cpu| cpu.package).collect();
        packages.sort_unstable();
        packages.dedup();
        packages.len()
    }

    /// Physical cores, each as its online sibling list, ordered by lowest CPU.
    pub fn cores(&self) -> Vec<Vec<u32>> {
        let mut cores: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for cpu in &self.cpus {
            cores.insert(cpu.core(), cpu.siblings.clone());
        }
        cores.into_values().collect()
    }

    /// Whether any core has more than one online thread.
    pub fn has_smt(&self) -> bool {
        self.cpus.iter().any(|cpu| cpu.siblings.len() > 1)
    }

    /// One line for people: `2 CPUs online (0-1), 1 package, 2 cores, no SMT, 1 NUMA node`.
    pub fn describe(&self) -> String {
        let online: Vec<u32> = self.cpus.iter().map(|cpu| cpu.cpu).collect();
        let plural = |count: usize, word: &str| {
            format!("{count} {word}{}", if count == 1 { "" } else { "s" })
        };
        let mut text = format!(
            "{} online ({}), {}, {}, {}",
            plural(online.len(), "CPU"),
            cpulist::format(&online),
            plural(self.package_count(), "package"),
            plural(self.cores().len(), "core"),
            if self.has_smt() {
                let threads = self.cpus.iter().map(|cpu| cpu.siblings.len()).max();
                format!("SMT ({} threads per core)", threads.unwrap_or(1))
            } else {
                "no SMT".to_string()
            }
        );
        text.push_str(&match self.nodes.len() {
            0 => ", no NUMA information".to_string(),
            count => format!(", {}", plural(count, "NUMA node")),
        });
        if !self.offline.is_empty() {
            text.push_str(&format!(", offline {}", cpulist::format(&self.offline)));
        }
        text
    }
}

/// NUMA nodes under `node_root` (`devices/system/node`), restricted to `online` CPUs.
fn read_nodes(node_root: &Path, online: &[u32]) -> Result<Vec<NumaNode>, TopologyError> {
    if !node_root.is_dir() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(node_root).map_err(|cause| TopologyError::Read {
        path: node_root.to_path_buf(),
        cause,
    })?;
    let mut nodes = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|cause| TopologyError::Read {
            path: node_root.to_path_buf(),
            cause,
        })?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|name| name.strip_prefix("node"))
            .and_then(|number| number.parse::<u32>().ok())
        else {
            continue;
        };
        let cpus = read_list(&entry.path().join("cpulist"))?
            .into_iter()
            .filter(|cpu| online.binary_search(cpu).is_ok())
            .collect();
        nodes.push(NumaNode { node: number, cpus });
    }
    nodes.sort_by_key(|node| node.node);
    Ok(nodes)
}

/// Writing sysfs-shaped fixture trees, for this module's tests and others'.
#[cfg(test)]
pub mod fixture {
    use std::path::Path;

    /// One CPU of a fixture: number, package, core id, siblings list text.
    pub struct FixtureCpu<'a> {
        pub cpu: u32,
        pub package: u32,
        pub core_id: u32,
        pub siblings: &'a str,
    }

    /// Write a sysfs tree under `root`: `online`, `present`, each CPU's
    /// topology files, and `nodes` as (node, cpulist text).
    pub fn write(
        root: &Path,
        online: &str,
        present: &str,
        cpus: &[FixtureCpu<'_>],
        nodes: &[(u32, &str)],
    ) {
        let cpu_root = root.join("devices/system/cpu");
        std::fs::create_dir_all(&cpu_root).unwrap();
        std::fs::write(cpu_root.join("online"), format!("{online}\n")).unwrap();
        std::fs::write(cpu_root.join("present"), format!("{present}\n")).unwrap();
        for cpu in cpus {
            let dir = cpu_root.join(format!("cpu{}/topology", cpu.cpu));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("physical_package_id"),
                format!("{}\n", cpu.package),
            )
            .unwrap();
            std::fs::write(dir.join("core_id"), format!("{}\n", cpu.core_id)).unwrap();
            std::fs::write(
                dir.join("thread_siblings_list"),
                format!("{}\n", cpu.siblings),
            )
            .unwrap();
        }
        for (node, list) in nodes {
            let dir = root.join(format!("devices/system/node/node{node}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cpulist"), format!("{list}\n")).unwrap();
        }
    }

    /// Two packages of two cores with two threads each, Intel-style
    /// numbering (siblings n and n+4), one NUMA node per package.
    pub fn smt_two_sockets(root: &Path) {
        let cpus: Vec<FixtureCpu<'_>> = [
            (0, 0, 0, "0,4"),
            (1, 0, 1, "1,5"),
            (2, 1, 0, "2,6"),
            (3, 1, 1, "3,7"),
            (4, 0, 0, "0,4"),
            (5, 0, 1, "1,5"),
            (6, 1, 0, "2,6"),
            (7, 1, 1, "3,7"),
        ]
        .into_iter()
        .map(|(cpu, package, core_id, siblings)| FixtureCpu {
            cpu,
            package,
            core_id,
            siblings,
        })
        .collect();
        write(root, "0-7", "0-7", &cpus, &[(0, "0-1,4-5"), (1, "2-3,6-7")]);
    }

    /// This project's machine: two CPUs, one package, no SMT, one node.
    pub fn two_cpus_no_smt(root: &Path) {
        let cpus = [
            FixtureCpu {
                cpu: 0,
                package: 0,
                core_id: 0,
                siblings: "0",
            },
            FixtureCpu {
                cpu: 1,
                package: 0,
                core_id: 1,
                siblings: "1",
            },
        ];
        write(root, "0-1", "0-1", &cpus, &[(0, "0-1")]);
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::{self, FixtureCpu};
    use super::*;

    #[test]
    fn reads_a_host_without_smt() {
        let dir = tempfile::tempdir().unwrap();
        fixture::two_cpus_no_smt(dir.path());
        let topology = Topology::read(dir.path()).unwrap();
        assert_eq!(topology.cpus.len(), 2);
        assert_eq!(topology.cores(), vec![vec![0], vec![1]]);
        assert!(!topology.has_smt());
        assert_eq!(topology.package_count(), 1);
        assert_eq!(
            topology.nodes,
            vec![NumaNode {
                node: 0,
                cpus: vec![0, 1]
            }]
        );
        assert_eq!(
            topology.describe(),
            "2 CPUs online (0-1), 1 package, 2 cores, no SMT, 1 NUMA node"
        );
    }

    #[test]
    fn reads_smt_siblings_packages_and_nodes() {
        let dir = tempfile::tempdir().unwrap();
        fixture::smt_two_sockets(dir.path());
        let topology = Topology::read(dir.path()).unwrap();
        assert_eq!(
            topology.cores(),
            vec![vec![0, 4], vec![1, 5], vec![2, 6], vec![3, 7]]
        );
        assert!(topology.has_smt());
        assert_eq!(topology.package_count(), 2);
        assert_eq!(topology.cpu(6).unwrap().node, Some(1));
        assert_eq!(topology.cpu(6).unwrap().core(), 2);
        assert_eq!(
            topology.describe(),
            "8 CPUs online (0-7), 2 packages, 4 cores, SMT (2 threads per core), 2 NUMA nodes"
        );
    }

    #[test]
    fn offline_cpus_are_listed_not_described() {
        let dir = tempfile::tempdir().unwrap();
        // cpu1 is offline: no topology directory, and its sibling cpu3 lists it.
        let cpus = [
            FixtureCpu {
                cpu: 0,
                package: 0,
                core_id: 0,
                siblings: "0,2",
            },
            FixtureCpu {
                cpu: 2,
                package: 0,
                core_id: 0,
                siblings: "0,2",
            },
            FixtureCpu {
                cpu: 3,
                package: 0,
                core_id: 1,
                siblings: "1,3",
            },
        ];
        fixture::write(dir.path(), "0,2-3", "0-3", &cpus, &[(0, "0-3")]);
        let topology = Topology::read(dir.path()).unwrap();
        assert_eq!(topology.offline, vec![1]);
        assert_eq!(topology.cpu(3).unwrap().siblings, vec![3]);
        assert_eq!(topology.cores(), vec![vec![0, 2], vec![3]]);
        assert_eq!(topology.nodes[0].cpus, vec![0, 2, 3]);
        assert!(topology.describe().ends_with(", offline 1"));
    }

    #[test]
    fn no_numa_directory_gives_no_nodes() {
        let dir = tempfile::tempdir().unwrap();
        fixture::two_cpus_no_smt(dir.path());
        std::fs::remove_dir_all(dir.path().join("devices/system/node")).unwrap();
        let topology = Topology::read(dir.path()).unwrap();
        assert!(topology.nodes.is_empty());
        assert!(topology.cpus.iter().all(|cpu| cpu.node.is_none()));
    }

    #[test]
    fn malformed_or_missing_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fixture::two_cpus_no_smt(dir.path());
        let core = dir.path().join("devices/system/cpu/cpu1/topology/core_id");
        std::fs::write(&core, "x\n").unwrap();
        let error = Topology::read(dir.path()).unwrap_err().to_string();
        assert!(error.contains("cpu1/topology/core_id"), "{error}");
        std::fs::remove_file(&core).unwrap();
        let error = Topology::read(dir.path()).unwrap_err().to_string();
        assert!(error.contains("cpu1/topology/core_id"), "{error}");
    }

    #[test]
    fn contradicting_siblings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fixture::two_cpus_no_smt(dir.path());
        std::fs::write(
            dir.path()
                .join("devices/system/cpu/cpu0/topology/thread_siblings_list"),
            "0-1\n",
        )
        .unwrap();
        let error = Topology::read(dir.path()).unwrap_err().to_string();
        assert!(error.contains("lists siblings"), "{error}");
    }

    #[test]
    fn reads_this_host_when_sysfs_exists() {
        // A live sanity check: the real /sys parses (skipped without one).
        if Path::new("/sys/devices/system/cpu/online").exists() {
            let topology = Topology::read(Path::new("/sys")).unwrap();
            assert!(!topology.cpus.is_empty());
        }
    }
}
