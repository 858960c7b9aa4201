//! `host.json`: the host a proof ran on (topology, this process's CPUs,
//! the placement of every case) at the bundle root, and per run
//! (`logs/<case>/<repetition>/host.json`) where its threads were pinned,
//! read back from `/proc`, and the `/proc` samples its noise figures come from.
//!
//! Invariants:
//! - Part of the bundle format: fields are never removed or renamed within
//!   [`HOST_FORMAT`]; every type denies unknown fields.
//! - `capos verify` parses both files strictly ([`check_bundle`]): every run
//!   that ran has its file, vCPU pinning asks for exactly the CPUs the case
//!   plan names, and the noise figures equal what the recorded samples give
//!   under the recorded limits. A bundle made before host recording has
//!   neither file (its signed manifest says so); one file without the
//!   other is an error.
//! - Pinning or sampling that failed is recorded with its reason, never
//!   left out; noisy runs are flagged, never dropped.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bundle::files::{BundleFiles, FileError};
use crate::host::affinity;
use crate::host::cpulist;
use crate::host::noise::{self, Figures, Limits};
use crate::host::placement::{self, CpuPlan, Policy};
use crate::host::topology::Topology;
use crate::host::watch::{NoiseRecord, Pinning, Role, RunHost, Watch};
use crate::proof::baseline::Os;
use crate::proof::contract::{CaseSpec, Contract};
use crate::proof::inputs::Inputs;
use crate::proof::summary::run_log_path;
use crate::terminal::untrusted;

/// Where a live host's sysfs is.
pub const SYSFS_ROOT: &str = "/sys";

/// The file, at the bundle root and in every run's log directory.
pub const HOST_FILE: &str = "host.json";
/// Format tag of both files.
pub const HOST_FORMAT: &str = "capos-host/v1";

/// The host of a run, recorded at the bundle root before the first boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostDocument {
    /// Always [`HOST_FORMAT`].
    pub format: String,
    /// The topology, when sysfs could be read.
    pub topology: Option<Topology>,
    /// Why it could not, otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_error: Option<String>,
    /// The CPUs `capos` itself was allowed to run on (its affinity).
    pub allowed_cpus: String,
    /// Physical cores usable for pinning (a run with more vCPUs shares cores).
    pub free_cores: u32,
    /// Logical CPUs usable for pinning (a run with more vCPUs is oversubscribed).
    pub free_cpus: u32,
    /// The limits runs are flagged noisy against.
    pub noise_limits: Limits,
    /// The placement of every case that ran.
    pub cases: Vec<CaseHost>,
}

/// What a case's runs start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Runner {
    /// A QEMU (capOS or the Linux guest).
    Qemu,
    /// The native baseline program.
    Native,
}

/// Where one case's vCPUs (or native program) go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseHost {
    /// Case id.
    pub case: String,
    /// What runs: QEMU (vCPU threads pinned one each) or the native program
    /// (started on the plan's CPUs).
    pub runs: Runner,
    /// The placement policy.
    pub policy: Policy,
    /// The placement, when one could be chosen.
    pub plan: Option<CpuPlan>,
    /// Why not, otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl HostDocument {
    /// The placement of case `id`.
    pub fn case(&self, id: &str) -> Option<&CaseHost> {
        self.cases.iter().find(|case| case.case == id)
    }

    /// Whether case `id` had more vCPUs than usable host CPUs (None when
    /// the bundle has no placement for it): the topology-aware answer to
    /// "was this run oversubscribed".
    pub fn oversubscribed(&self, id: &str) -> Option<bool> {
        self.case(id)?.plan.as_ref().map(|plan| plan.oversubscribed)
    }
}

/// One run's host record, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunHostFile {
    /// Always [`HOST_FORMAT`].
    pub format: String,
    /// Pinning, as asked and read back.
    pub pinning: Pinning,
    /// The raw `/proc` samples, or why they are missing.
    pub noise: NoiseRecord,
    /// The figures the samples give, when they give any.
    pub figures: Option<Figures>,
    /// Why they give none, when samples exist but do not compute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures_error: Option<String>,
}

/// The figures of `noise` under `limits`: (figures, error).
fn noise_figures(noise: &NoiseRecord, limits: Limits) -> (Option<Figures>, Option<String>) {
    match &noise.samples {
        Some(samples) => match noise::figures(samples, limits) {
            Ok(figures) => (Some(figures), None),
            Err(error) => (None, Some(error.to_string())),
        },
        None => (None, None),
    }
}

impl RunHostFile {
    /// The stored form of `record`, figures computed under `limits`.
    pub fn new(record: RunHost, limits: Limits) -> RunHostFile {
        let (figures, figures_error) = noise_figures(&record.noise, limits);
        RunHostFile {
            format: HOST_FORMAT.to_string(),
            pinning: record.pinning,
            noise: record.noise,
            figures,
            figures_error,
        }
    }
}

/// How many vCPUs case `case` runs with: its CPU count, except that a
/// native program gets at most the CPUs the host lets it use.
fn vcpus_of(case: &CaseSpec, usable: u32) -> u32 {
    match case.os {
        Os::Native => case.cpus.min(usable.max(1)),
        _ => case.cpus,
    }
}

/// Read this host and place every case of `cases` (the ones that will run).
pub fn plan(sysfs_root: &Path, cases: &[&CaseSpec]) -> HostDocument {
    let allowed = affinity::allowed_cpus();
    let topology = Topology::read(sysfs_root);
    let allowed_text = match &allowed {
        Ok(cpus) => cpulist::format(cpus),
        Err(error) => format!("unknown ({error})"),
    };
    let (free_cores, free_cpus) = match (&topology, &allowed) {
        (Ok(topology), Ok(allowed)) => (
            placement::free_cpus(topology, allowed, Policy::PhysicalCores),
            placement::free_cpus(topology, allowed, Policy::Siblings),
        ),
        _ => (0, 0),
    };
    let cases = cases
        .iter()
        .map(|case| {
            let policy = Policy::for_condition(case.condition.as_ref().map(|c| c.env.as_str()));
            let chosen = match (&topology, &allowed) {
                (Ok(topology), Ok(allowed)) => {
                    placement::choose(topology, allowed, vcpus_of(case, free_cpus), policy)
                        .map_err(|error| error.to_string())
                }
                (Err(error), _) => Err(format!("the host topology is unknown: {error}")),
                (_, Err(error)) => Err(format!("this process's CPUs are unknown: {error}")),
            };
            let (plan, error) = match chosen {
                Ok(plan) => (Some(plan), None),
                Err(error) => (None, Some(error)),
            };
            CaseHost {
                case: case.id.clone(),
                runs: if case.os == Os::Native {
                    Runner::Native
                } else {
                    Runner::Qemu
                },
                policy,
                plan,
                error,
            }
        })
        .collect();
    let (topology, topology_error) = match topology {
        Ok(topology) => (Some(topology), None),
        Err(error) => (None, Some(error.to_string())),
    };
    HostDocument {
        format: HOST_FORMAT.to_string(),
        topology,
        topology_error,
        allowed_cpus: allowed_text,
        free_cores,
        free_cpus,
        noise_limits: Limits::DEFAULT,
        cases,
    }
}

/// The watch for one run of `case`: pinned by its plan, or noise only
/// (with the reason) when it has none.
pub fn watch_for(document: &HostDocument, case: &CaseSpec) -> Watch {
    let Some(entry) = document.case(&case.id) else {
        return Watch::unpinned(format!("case {} has no placement", case.id));
    };
    match (&entry.plan, entry.runs) {
        (Some(plan), Runner::Native) => Watch::native(plan.vcpu_cpus.clone()),
        (Some(plan), Runner::Qemu) => match Watch::qemu(plan.clone()) {
            Ok(watch) => watch,
            Err(error) => Watch::unpinned(format!("no directory for the QMP socket: {error}")),
        },
        (None, _) => Watch::unpinned(
            entry
                .error
                .clone()
                .unwrap_or_else(|| "no placement".to_string()),
        ),
    }
}

/// Why a bundle's host files are not what this capos wrote.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// Reading failed.
    #[error(transparent)]
    Read(#[from] FileError),
    /// A file is malformed or contradicts the contract or another file.
    #[error("{}: {}", untrusted(path), untrusted(detail))]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

fn invalid(path: &str, detail: impl Into<String>) -> HostError {
    HostError::Invalid {
        path: path.to_string(),
        detail: detail.into(),
    }
}

/// The bytes of `path`, or None when the bundle has no such file.
fn read_optional(files: &BundleFiles, path: &str) -> Result<Option<Vec<u8>>, HostError> {
    match files.read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(FileError::NotListed { .. }) => Ok(None),
        Err(FileError::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

fn parse<T: serde::de::DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T, HostError> {
    serde_json::from_slice(bytes).map_err(|error| invalid(path, error.to_string()))
}

/// The root `host.json` alone, parsed strictly, None for a bundle made
/// before host recording: what a judge needs to ask
/// [`HostDocument::oversubscribed`] without the per-run checks.
pub fn read_document(files: &BundleFiles) -> Result<Option<HostDocument>, HostError> {
    let Some(bytes) = read_optional(files, HOST_FILE)? else {
        return Ok(None);
    };
    let document: HostDocument = parse(HOST_FILE, &bytes)?;
    if document.format != HOST_FORMAT {
        return Err(invalid(
            HOST_FILE,
            format!(
                "format {:?} is not {HOST_FORMAT:?}; a newer capos wrote it",
                document.format
            ),
        ));
    }
    Ok(Some(document))
}

/// A bundle's host record: the document and every run's file, in case then
/// repetition order (runs of skipped cases are absent).
#[derive(Debug, Clone, PartialEq)]
pub struct BundleHost {
    /// The root `host.json`.
    pub document: HostDocument,
    /// (case id, repetition, its file).
    pub runs: Vec<(String, u32, RunHostFile)>,
}

/// Read and check a bundle's host files (see the module invariants); None
/// for a bundle made before host recording.
pub fn check_bundle(
    files: &BundleFiles,
    contract: &Contract,
    inputs: &Inputs,
) -> Result<Option<BundleHost>, HostError> {
    let ran: Vec<&CaseSpec> = contract
        .spec
        .cases
        .iter()
        .filter(|case| inputs.skipped_reason(&case.id).is_none())
        .collect();
    let run_paths = ran.iter().flat_map(|case| {
        (1..=inputs.repetitions.count).map(move |repetition| {
            (
                case,
                repetition,
                format!("{}/{HOST_FILE}", run_log_path(&case.id, repetition)),
            )
        })
    });
    let Some(document) = read_document(files)? else {
        for (_, _, path) in run_paths {
            if read_optional(files, &path)?.is_some() {
                return Err(invalid(
                    &path,
                    format!("a run's host record without the bundle's {HOST_FILE}"),
                ));
            }
        }
        return Ok(None);
    };
    for entry in &document.cases {
        if !ran.iter().any(|case| case.id == entry.case) {
            return Err(invalid(
                HOST_FILE,
                format!("places case {:?}, which did not run", entry.case),
            ));
        }
    }
    let mut runs = Vec::new();
    for (case, repetition, path) in run_paths {
        let entry = document
            .case(&case.id)
            .ok_or_else(|| invalid(HOST_FILE, format!("no placement for case {:?}", case.id)))?;
        let bytes = read_optional(files, &path)?
            .ok_or_else(|| invalid(&path, "missing: every run records its host"))?;
        let file: RunHostFile = parse(&path, &bytes)?;
        if file.format != HOST_FORMAT {
            return Err(invalid(
                &path,
                format!("format {:?} is not {HOST_FORMAT:?}", file.format),
            ));
        }
        check_pinning(&path, &file.pinning, entry)?;
        let recomputed = noise_figures(&file.noise, document.noise_limits);
        if (&file.figures, &file.figures_error) != (&recomputed.0, &recomputed.1) {
            return Err(invalid(
                &path,
                "the noise figures differ from the ones its /proc samples give",
            ));
        }
        if file.noise.samples.is_none() && file.noise.error.is_none() {
            return Err(invalid(
                &path,
                "neither noise samples nor why they are missing",
            ));
        }
        runs.push((case.id.clone(), repetition, file));
    }
    Ok(Some(BundleHost { document, runs }))
}

/// Every pinned thread asked for what the case's plan names.
fn check_pinning(path: &str, pinning: &Pinning, entry: &CaseHost) -> Result<(), HostError> {
    let Some(plan) = &entry.plan else {
        if !pinning.threads.is_empty() {
            return Err(invalid(
                path,
                "threads pinned for a case without a placement",
            ));
        }
        return Ok(());
    };
    if pinning.error.is_none() && pinning.threads.is_empty() {
        return Err(invalid(path, "no thread pinned and no reason why"));
    }
    let mut sorted = plan.vcpu_cpus.clone();
    sorted.sort_unstable();
    sorted.dedup();
    for thread in &pinning.threads {
        let expected = match &thread.role {
            Role::Vcpu { index } => plan
                .vcpu_cpus
                .get(*index as usize)
                .map(|cpu| cpulist::format(&[*cpu]))
                .ok_or_else(|| invalid(path, format!("vCPU {index} is not in the case's plan")))?,
            Role::Other => cpulist::format(&plan.other_cpus),
            Role::Program => cpulist::format(&sorted),
        };
        if thread.wanted != expected {
            return Err(invalid(
                path,
                format!(
                    "thread {} asked for CPUs {} but the case's plan names {expected}",
                    thread.tid, thread.wanted
                ),
            ));
        }
    }
    Ok(())
}

/// Write a run's host record into its log directory; returns what people
/// must see at once: pinning that did not happen as planned, a noisy run,
/// noise that could not be measured.
pub fn write_run(log_dir: &Path, record: RunHost, limits: Limits) -> anyhow::Result<Vec<String>> {
    let file = RunHostFile::new(record, limits);
    let path = log_dir.join(HOST_FILE);
    let text = serde_json::to_string_pretty(&file)? + "\n";
    std::fs::write(&path, text)
        .map_err(|error| anyhow::anyhow!("writing {}: {error}", path.display()))?;
    let mut warnings = Vec::new();
    if let Some(problem) = file.pinning.problem() {
        warnings.push(format!("pinning NOT as planned: {problem}"));
    }
    match (&file.figures, &file.figures_error, &file.noise.error) {
        (Some(figures), _, _) if !figures.flags.is_empty() => {
            warnings.push(format!("noisy host: {}", figures.flags.join("; ")));
        }
        (None, Some(error), _) | (None, None, Some(error)) => {
            warnings.push(format!("host noise not measured: {error}"));
        }
        _ => {}
    }
    Ok(warnings)
}

/// Write the bundle's host document.
pub fn write_document(bundle_root: &Path, document: &HostDocument) -> anyhow::Result<()> {
    let path = bundle_root.join(HOST_FILE);
    let text = serde_json::to_string_pretty(document)? + "\n";
    std::fs::write(&path, text)
        .map_err(|error| anyhow::anyhow!("writing {}: {error}", path.display()))
}

/// What the plan says, one line per fact, for the run's progress output.
pub fn describe_plan(document: &HostDocument) -> Vec<String> {
    let mut lines = vec![match (&document.topology, &document.topology_error) {
        (Some(topology), _) => format!(
            "{}; capos may use CPUs {}",
            topology.describe(),
            document.allowed_cpus
        ),
        (None, Some(error)) => format!("topology unknown ({error}); nothing is pinned"),
        (None, None) => "topology unknown; nothing is pinned".to_string(),
    }];
    for case in &document.cases {
        lines.push(format!("{}: {}", case.case, describe_case(case)));
    }
    lines
}

/// `vCPU 0 -> CPU 0, vCPU 1 -> CPU 1; other threads on 0-1 (no room)`.
pub fn describe_case(case: &CaseHost) -> String {
    let Some(plan) = &case.plan else {
        return format!(
            "not pinned: {}",
            case.error.as_deref().unwrap_or("no placement")
        );
    };
    if case.runs == Runner::Native {
        let mut cpus = plan.vcpu_cpus.clone();
        cpus.sort_unstable();
        cpus.dedup();
        return format!("native program started on CPUs {}", cpulist::format(&cpus));
    }
    let vcpus: Vec<String> = plan
        .vcpu_cpus
        .iter()
        .enumerate()
        .map(|(index, cpu)| format!("vCPU {index} -> CPU {cpu}"))
        .collect();
    let mut text = format!(
        "{}; other threads on {}{}",
        vcpus.join(", "),
        cpulist::format(&plan.other_cpus),
        if plan.others_have_room {
            ""
        } else {
            " (no room of their own)"
        }
    );
    if plan.policy == Policy::Siblings {
        text.push_str("; SMT siblings on purpose");
    } else if plan.shares_cores {
        text.push_str("; shares physical cores");
    }
    if plan.oversubscribed {
        text.push_str("; OVERSUBSCRIBED: more vCPUs than host CPUs");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::topology::fixture;

    fn contract(name: &str) -> Contract {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("contracts")
            .join(format!("{name}.yaml"));
        crate::proof::contract::load(&path).unwrap()
    }

    /// The live affinity must include CPUs 0 and 1 for the fixture plans.
    fn has_cpus_0_and_1() -> bool {
        affinity::allowed_cpus()
            .map(|cpus| cpus.contains(&0) && cpus.contains(&1))
            .unwrap_or(false)
    }

    #[test]
    fn thread_scale_on_two_cpus_pins_vcpu_0_and_1_to_cpus_0_and_1() {
        if !has_cpus_0_and_1() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        fixture::two_cpus_no_smt(dir.path());
        let contract = contract("thread-scale");
        let cases: Vec<&CaseSpec> = contract.spec.cases.iter().collect();
        let document = plan(dir.path(), &cases);
        let plan_of = |id: &str| document.case(id).unwrap().plan.clone().unwrap();
        assert_eq!(plan_of("cpus2").vcpu_cpus, [0, 1]);
        assert_eq!(plan_of("linux-cpus1").vcpu_cpus, [0]);
        assert_eq!(plan_of("linux-cpus1").other_cpus, [1]);
        assert_eq!(document.oversubscribed("cpus4"), Some(true));
        assert_eq!(document.oversubscribed("cpus2"), Some(false));
        assert_eq!(document.case("native-cpus4").unwrap().runs, Runner::Native);
        assert_eq!(plan_of("native-cpus4").vcpu_cpus, [0, 1]);
        assert_eq!(
            describe_case(document.case("native-cpus4").unwrap()),
            "native program started on CPUs 0-1"
        );
        assert_eq!((document.free_cores, document.free_cpus), (2, 2));
    }

    #[test]
    fn smt_cases_use_siblings_and_an_unreadable_topology_pins_nothing() {
        if !has_cpus_0_and_1() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        fixture::smt_two_sockets(dir.path());
        let contract = contract("smp-process-scale");
        let cases: Vec<&CaseSpec> = contract.spec.cases.iter().collect();
        let document = plan(dir.path(), &cases);
        let cpus8 = document.case("cpus8").unwrap();
        assert_eq!(cpus8.policy, Policy::Siblings);
        assert_eq!(
            document.case("cpus2").unwrap().policy,
            Policy::PhysicalCores
        );
        let missing = plan(&dir.path().join("absent"), &cases);
        assert!(missing.topology.is_none());
        let entry = missing.case("cpus2").unwrap();
        assert!(entry.plan.is_none());
        assert!(entry
            .error
            .as_deref()
            .unwrap()
            .contains("topology is unknown"));
        assert!(describe_case(entry).starts_with("not pinned: "));
    }
}
