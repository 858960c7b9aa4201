//! Pinning and noise sampling applied to one running process: a QEMU (its
//! vCPU threads found through QMP) or a native baseline program.
//!
//! Invariants:
//! - Nothing here fails the run: a pinning or sampling failure is recorded
//!   in the [`RunHost`] it returns (and so in the bundle and the report),
//!   with the reason, and the run goes on unpinned or unmeasured.
//! - Pinning counts as effective only when every thread's read-back
//!   affinity equals what was asked for.
//! - The QMP socket lives in a private temporary directory, never in the
//!   bundle (a bundle holds regular files only).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::affinity;
use super::cpulist;
use super::noise::{ProcSample, Samples};
use super::placement::CpuPlan;
use super::qmp;

/// How long QEMU gets to open its monitor socket and answer.
const QMP_DEADLINE: Duration = Duration::from_secs(10);

/// What a thread was for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Role {
    /// QEMU's thread for vCPU `index`.
    Vcpu { index: u32 },
    /// Another QEMU thread (main loop, I/O, RCU, ...).
    Other,
    /// The native baseline program (its workers inherit its affinity).
    Program,
}

/// One thread's pinning, as asked and as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedThread {
    /// Host thread id.
    pub tid: u32,
    /// Its name (`comm`), e.g. `CPU 0/TCG`.
    pub name: String,
    /// What it is.
    pub role: Role,
    /// The CPUs asked for, as a CPU list.
    pub wanted: String,
    /// Why `sched_setaffinity` failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_error: Option<String>,
    /// `Cpus_allowed_list` read back from `/proc` after pinning.
    pub read_back: Option<String>,
    /// Why the read-back failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_back_error: Option<String>,
}

impl PinnedThread {
    /// Whether the read-back shows exactly the wanted CPUs.
    pub fn effective(&self) -> bool {
        let Ok(wanted) = cpulist::parse(&self.wanted) else {
            return false;
        };
        self.read_back
            .as_deref()
            .is_some_and(|got| affinity::read_back_matches(got, &wanted))
    }
}

/// Pinning of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pinning {
    /// Every thread pinned (QEMU: vCPUs first, then the others).
    pub threads: Vec<PinnedThread>,
    /// Why pinning could not be done at all (e.g. QMP did not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Pinning {
    /// Every thread read back as wanted, at least one thread, no error.
    pub fn effective(&self) -> bool {
        self.error.is_none()
            && !self.threads.is_empty()
            && self.threads.iter().all(PinnedThread::effective)
    }

    /// Why it is not effective, for people; None when it is.
    pub fn problem(&self) -> Option<String> {
        if let Some(error) = &self.error {
            return Some(error.clone());
        }
        if self.threads.is_empty() {
            return Some("no thread was pinned".into());
        }
        self.threads
            .iter()
            .find(|thread| !thread.effective())
            .map(|thread| {
                let reason = thread
                    .set_error
                    .clone()
                    .or_else(|| thread.read_back_error.clone())
                    .unwrap_or_else(|| {
                        format!(
                            "read back {}",
                            thread.read_back.as_deref().unwrap_or("nothing")
                        )
                    });
                format!(
                    "thread {} ({}) wanted {}: {reason}",
                    thread.tid, thread.name, thread.wanted
                )
            })
    }
}

/// Noise of one run: the raw samples, or why they are missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseRecord {
    /// The samples, when both were taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<Samples>,
    /// Why not, otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything the host side recorded about one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunHost {
    /// Where its threads were pinned.
    pub pinning: Pinning,
    /// How busy the rest of the host was.
    pub noise: NoiseRecord,
}

enum Target {
    Qemu {
        plan: CpuPlan,
        socket: PathBuf,
        _directory: tempfile::TempDir,
    },
    Native {
        cpus: Vec<u32>,
    },
    /// Noise only: no placement could be chosen, for `reason`.
    Unpinned {
        reason: String,
    },
}

/// Pinning and sampling for one run; see the module documentation.
pub struct Watch {
    target: Target,
    start: Result<ProcSample, String>,
    end: Option<Result<ProcSample, String>>,
    pinning: Pinning,
}

impl Watch {
    fn new(target: Target) -> Watch {
        Watch {
            target,
            start: Err("the start sample was not taken".into()),
            end: None,
            pinning: Pinning {
                threads: Vec::new(),
                error: None,
            },
        }
    }

    /// Watch a QEMU run placed by `plan`.
    pub fn qemu(plan: CpuPlan) -> std::io::Result<Watch> {
        let directory = tempfile::Builder::new().prefix("capos-qmp").tempdir()?;
        let socket = directory.path().join("qmp.sock");
        Ok(Watch::new(Target::Qemu {
            plan,
            socket,
            _directory: directory,
        }))
    }

    /// Watch a native program that runs on `cpus`.
    pub fn native(cpus: Vec<u32>) -> Watch {
        Watch::new(Target::Native { cpus })
    }

    /// Sample the host but pin nothing, recording `reason` as the pinning error.
    pub fn unpinned(reason: String) -> Watch {
        Watch::new(Target::Unpinned { reason })
    }

    /// Arguments to add to the program's command line (QEMU: the monitor).
    pub fn extra_arguments(&self) -> Vec<String> {
        match &self.target {
            // debug-threads names the vCPU threads (`CPU 0/TCG`) in /proc.
            Target::Qemu { socket, .. } => vec![
                "-name".into(),
                "capos,debug-threads=on".into(),
                "-qmp".into(),
                format!("unix:{},server=on,wait=off", socket.display()),
            ],
            Target::Native { .. } | Target::Unpinned { .. } => Vec::new(),
        }
    }

    /// The CPUs the program must start on (native runs), if any.
    pub fn spawn_cpus(&self) -> Option<&[u32]> {
        match &self.target {
            Target::Native { cpus } => Some(cpus),
            Target::Qemu { .. } | Target::Unpinned { .. } => None,
        }
    }

    /// Just before the process starts: the start sample.
    pub fn before_start(&mut self) {
        self.start = ProcSample::take(None).map_err(|error| error.to_string());
    }

    /// Record that spawning with [`Watch::spawn_cpus`] failed to set them.
    pub fn spawn_affinity_failed(&mut self, error: &std::io::Error) {
        self.pinning.error = Some(format!(
            "could not restrict the program to its CPUs before starting it: {error}"
        ));
    }

    /// The process `pid` runs: pin it, then read its threads' affinity back.
    pub fn started(&mut self, pid: u32) {
        let pinning = match &self.target {
            Target::Qemu { plan, socket, .. } => pin_qemu(pid, plan, socket),
            Target::Native { cpus } => Pinning {
                threads: vec![read_back_thread(pid, pid, Role::Program, cpus, None)],
                error: None,
            },
            Target::Unpinned { reason } => Pinning {
                threads: Vec::new(),
                error: Some(format!("not pinned: {reason}")),
            },
        };
        if self.pinning.error.is_none() {
            self.pinning = pinning;
        } else {
            self.pinning.threads = pinning.threads;
        }
    }

    /// The process `pid` has exited but is not reaped (or is about to be
    /// killed at its timeout): the end sample.
    pub fn exited(&mut self, pid: u32) {
        self.end = Some(ProcSample::take(Some(pid)).map_err(|error| error.to_string()));
        // A native program may have been read back before its exec; its
        // name is final now.
        if let Target::Native { .. } = self.target {
            for thread in &mut self.pinning.threads {
                if let Ok(name) = affinity::thread_name(pid, thread.tid) {
                    thread.name = name;
                }
            }
        }
    }

    /// What was recorded; the watch is empty afterwards.
    pub fn take_record(&mut self) -> RunHost {
        let start = std::mem::replace(
            &mut self.start,
            Err("the start sample was not taken".into()),
        );
        let pinning = std::mem::replace(
            &mut self.pinning,
            Pinning {
                threads: Vec::new(),
                error: None,
            },
        );
        let noise = match (start, self.end.take()) {
            (Ok(start), Some(Ok(end))) => NoiseRecord {
                samples: Some(Samples { start, end }),
                error: None,
            },
            (Err(error), _) | (_, Some(Err(error))) => NoiseRecord {
                samples: None,
                error: Some(error),
            },
            (Ok(_), None) => NoiseRecord {
                samples: None,
                error: Some("the end sample was not taken".into()),
            },
        };
        RunHost { pinning, noise }
    }
}

/// Pin `cpus` to thread `tid` of `pid` when `set` is true, and read it back.
fn read_back_thread(pid: u32, tid: u32, role: Role, cpus: &[u32], set: Option<()>) -> PinnedThread {
    let set_error = set.and_then(|()| {
        let tid_value = i32::try_from(tid).unwrap_or(i32::MAX);
        affinity::set_thread_affinity(tid_value, cpus)
            .err()
            .map(|error| format!("sched_setaffinity: {error}"))
    });
    let (read_back, read_back_error) = match affinity::read_back(pid, tid) {
        Ok(list) => (Some(list), None),
        Err(error) => (None, Some(format!("reading Cpus_allowed_list: {error}"))),
    };
    PinnedThread {
        tid,
        name: affinity::thread_name(pid, tid).unwrap_or_else(|_| "?".into()),
        role,
        wanted: cpulist::format(&{
            let mut sorted = cpus.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            sorted
        }),
        set_error,
        read_back,
        read_back_error,
    }
}

/// Ask QEMU `pid` for its vCPU threads, pin each to its CPU and every
/// other thread to the plan's other CPUs, then read all of them back.
fn pin_qemu(pid: u32, plan: &CpuPlan, socket: &std::path::Path) -> Pinning {
    let failed = |error: String| Pinning {
        threads: Vec::new(),
        error: Some(error),
    };
    let deadline = Instant::now() + QMP_DEADLINE;
    // A QEMU that dies at start never opens its monitor: say so at once.
    while !socket.exists() && Instant::now() < deadline {
        if affinity::exited_unreaped(pid).unwrap_or(false) {
            return failed("QEMU exited before its monitor socket opened".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let vcpus =
        match qmp::Client::connect(socket, deadline).and_then(|mut client| client.vcpu_threads()) {
            Ok(vcpus) => vcpus,
            Err(error) => return failed(format!("no vCPU thread ids: {error}")),
        };
    if vcpus.len() != plan.vcpu_cpus.len() {
        return failed(format!(
            "QEMU reports {} vCPUs but the run has {}",
            vcpus.len(),
            plan.vcpu_cpus.len()
        ));
    }
    // Other threads first, so threads they start later inherit the other CPUs.
    let vcpu_tids: Vec<u32> = vcpus.iter().map(|vcpu| vcpu.thread_id).collect();
    let mut others = Vec::new();
    match affinity::thread_ids(pid) {
        Ok(tids) => {
            for tid in tids.into_iter().filter(|tid| !vcpu_tids.contains(tid)) {
                others.push(read_back_thread(
                    pid,
                    tid,
                    Role::Other,
                    &plan.other_cpus,
                    Some(()),
                ));
            }
        }
        Err(error) => return failed(format!("listing /proc/{pid}/task: {error}")),
    }
    let mut threads: Vec<PinnedThread> = vcpus
        .iter()
        .map(|vcpu| {
            let cpu = plan.vcpu_cpus[vcpu.index as usize];
            read_back_thread(
                pid,
                vcpu.thread_id,
                Role::Vcpu { index: vcpu.index },
                &[cpu],
                Some(()),
            )
        })
        .collect();
    threads.extend(others);
    Pinning {
        threads,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::noise;
    use super::*;

    fn thread(wanted: &str, read_back: Option<&str>) -> PinnedThread {
        PinnedThread {
            tid: 5,
            name: "CPU 0/TCG".into(),
            role: Role::Vcpu { index: 0 },
            wanted: wanted.into(),
            set_error: None,
            read_back: read_back.map(str::to_string),
            read_back_error: None,
        }
    }

    #[test]
    fn pinning_is_effective_only_when_read_back_matches() {
        let good = Pinning {
            threads: vec![thread("0", Some("0"))],
            error: None,
        };
        assert!(good.effective());
        assert_eq!(good.problem(), None);
        let wrong = Pinning {
            threads: vec![thread("0", Some("0-1"))],
            error: None,
        };
        assert!(!wrong.effective());
        assert!(wrong.problem().unwrap().contains("read back 0-1"));
        let mut refused = thread("0", Some("0-1"));
        refused.set_error = Some("sched_setaffinity: Operation not permitted (os error 1)".into());
        let refused = Pinning {
            threads: vec![refused],
            error: None,
        };
        assert!(refused.problem().unwrap().contains("not permitted"));
        let none = Pinning {
            threads: Vec::new(),
            error: Some("no vCPU thread ids: QMP connect: refused".into()),
        };
        assert!(!none.effective());
        assert!(none.problem().unwrap().contains("QMP"));
    }

    #[test]
    fn a_refused_pinning_is_recorded_with_the_reason() {
        // CPU 1000 fits a cpu_set_t but exists on no machine here: the
        // kernel refuses the call (EINVAL), as it would refuse an
        // unpermitted one (EPERM); the record keeps the reason and the
        // unchanged read-back.
        let pid = std::process::id();
        // SAFETY: gettid has no preconditions; this test's own thread is pinned.
        let tid = u32::try_from(unsafe { libc::gettid() }).unwrap();
        let before = affinity::read_back(pid, tid).unwrap();
        let thread = read_back_thread(pid, tid, Role::Other, &[1000], Some(()));
        let error = thread
            .set_error
            .clone()
            .expect("the kernel refuses CPU 1000");
        assert!(error.starts_with("sched_setaffinity: "), "{error}");
        assert_eq!(thread.read_back.as_deref(), Some(before.as_str()));
        let pinning = Pinning {
            threads: vec![thread],
            error: None,
        };
        assert!(!pinning.effective());
        assert!(pinning
            .problem()
            .unwrap()
            .contains("wanted 1000: sched_setaffinity"));
    }

    #[test]
    fn a_qemu_that_dies_at_start_is_recorded_at_once() {
        let plan = CpuPlan {
            policy: super::super::placement::Policy::PhysicalCores,
            vcpu_cpus: vec![0],
            other_cpus: vec![0],
            others_have_room: false,
            shares_cores: false,
            oversubscribed: false,
        };
        let mut watch = Watch::qemu(plan).unwrap();
        assert_eq!(watch.extra_arguments()[2], "-qmp");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let started = Instant::now();
        watch.started(child.id());
        assert!(started.elapsed() < QMP_DEADLINE / 2);
        child.wait().unwrap();
        let record = watch.take_record();
        assert_eq!(
            record.pinning.error.as_deref(),
            Some("QEMU exited before its monitor socket opened")
        );
        assert!(!record.pinning.effective());
    }

    #[test]
    fn a_native_child_is_read_back_on_its_cpus() {
        let allowed = affinity::allowed_cpus().unwrap();
        let cpus = vec![allowed[0]];
        let mut watch = Watch::native(cpus.clone());
        watch.before_start();
        let (child, restored) = affinity::with_thread_affinity(&cpus, || {
            std::process::Command::new("sleep").arg("1").spawn()
        })
        .unwrap();
        restored.unwrap();
        let mut child = child.unwrap();
        watch.started(child.id());
        child.kill().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !affinity::exited_unreaped(child.id()).unwrap() {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(2));
        }
        watch.exited(child.id());
        child.wait().unwrap();
        let record = watch.take_record();
        assert!(record.pinning.effective(), "{:?}", record.pinning);
        let samples = record.noise.samples.expect("both samples");
        noise::figures(&samples, noise::Limits::DEFAULT).unwrap();
    }
}
