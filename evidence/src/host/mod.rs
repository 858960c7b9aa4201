//! The host machine a proof runs on: its CPU topology, where each QEMU
//! vCPU thread (and each native baseline) is pinned, and how busy the rest
//! of the machine was during each run.
//!
//! A leaf layer: it reads `/sys` and `/proc` and calls the Linux affinity
//! system calls, and knows nothing of contracts or bundles. The proof layer
//! records what it returns (`host.json`) and audits it.
//!
//! - [`topology`]: packages, cores, SMT siblings and NUMA nodes from sysfs
//!   (the parser takes a root so tests use fixture trees);
//! - [`placement`]: which logical CPU each vCPU gets (one per physical core,
//!   or sibling threads on purpose for SMT cases);
//! - [`qmp`]: the QEMU monitor protocol, enough to ask for vCPU thread ids;
//! - [`affinity`]: `sched_setaffinity` and reading affinity back from `/proc`;
//! - [`noise`]: `/proc` samples around a run and the noise figures they give;
//! - [`watch`]: all of it applied to one running process.

pub mod affinity;
pub mod cpulist;
pub mod noise;
pub mod placement;
pub mod qmp;
pub mod topology;
pub mod watch;
