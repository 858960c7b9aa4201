//! The report's host section: the topology, where each case's vCPUs were
//! pinned and whether every run read back as planned, and each run's noise
//! with the runs above the recorded limits flagged (none is dropped).
//!
//! Invariants: it renders only what [`crate::proof::host::check_bundle`]
//! accepted; figures are preformatted here, so the templates do no
//! arithmetic and the same bundle always renders the same bytes.

use serde::Serialize;

use crate::host::watch::{PinnedThread, Role};
use crate::proof::host::{self, BundleHost};

/// The section, for the templates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostView {
    /// One line on the topology (or why it is unknown).
    pub topology: String,
    /// CPUs capos could use.
    pub allowed_cpus: String,
    /// Usable physical cores and logical CPUs.
    pub free_cores: u32,
    /// Usable logical CPUs.
    pub free_cpus: u32,
    /// The noise limits, in words.
    pub limits: String,
    /// Per case: its placement and how many runs read back as planned.
    pub cases: Vec<CaseRow>,
    /// Per run: pinning read-back and noise.
    pub runs: Vec<RunRow>,
    /// Runs flagged noisy.
    pub noisy_runs: usize,
}

/// One case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseRow {
    /// Case id.
    pub case: String,
    /// The placement in words.
    pub placement: String,
    /// `5/5`: runs whose every thread read back as planned.
    pub pinned: String,
}

/// One run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    /// Case id.
    pub case: String,
    /// Repetition.
    pub repetition: u32,
    /// `as planned`, or why not.
    pub pinning: String,
    /// Read-back per vCPU / program: `vCPU 0: 0, vCPU 1: 1`.
    pub read_back: String,
    /// Average CPUs other processes kept busy.
    pub other_cpus: String,
    /// Stolen share, percent.
    pub steal: String,
    /// 1-minute load at start and end.
    pub load: String,
    /// Why the run is flagged; empty when it is not.
    pub flags: String,
}

fn thread_read_back(thread: &PinnedThread) -> Option<String> {
    let label = match &thread.role {
        Role::Vcpu { index } => format!("vCPU {index}"),
        Role::Program => "program".to_string(),
        Role::Other => return None,
    };
    Some(format!(
        "{label}: {}",
        thread.read_back.as_deref().unwrap_or("unread")
    ))
}

/// The view of a checked host record.
pub fn view(record: &BundleHost) -> HostView {
    let document = &record.document;
    let topology = match (&document.topology, &document.topology_error) {
        (Some(topology), _) => topology.describe(),
        (None, Some(error)) => format!("unknown: {error}"),
        (None, None) => "unknown".to_string(),
    };
    let runs: Vec<RunRow> = record
        .runs
        .iter()
        .map(|(case, repetition, file)| {
            let mut read_back: Vec<String> = file
                .pinning
                .threads
                .iter()
                .filter_map(thread_read_back)
                .collect();
            let others: Vec<&PinnedThread> = file
                .pinning
                .threads
                .iter()
                .filter(|thread| thread.role == Role::Other)
                .collect();
            if !others.is_empty() {
                let mut lists: Vec<&str> = others
                    .iter()
                    .map(|thread| thread.read_back.as_deref().unwrap_or("unread"))
                    .collect();
                lists.sort_unstable();
                lists.dedup();
                read_back.push(format!(
                    "{} other threads: {}",
                    others.len(),
                    lists.join(" / ")
                ));
            }
            let (other_cpus, steal, load, flags) =
                match (&file.figures, &file.figures_error, &file.noise.error) {
                    (Some(figures), _, _) => (
                        format!("{:.3}", figures.other_cpus),
                        format!("{:.1}%", figures.steal_share * 100.0),
                        format!("{:.2} → {:.2}", figures.load_start, figures.load_end),
                        figures.flags.join("; "),
                    ),
                    (None, Some(error), _) | (None, None, Some(error)) => (
                        "—".into(),
                        "—".into(),
                        "—".into(),
                        format!("noise not measured: {error}"),
                    ),
                    (None, None, None) => (
                        "—".into(),
                        "—".into(),
                        "—".into(),
                        "noise not measured".into(),
                    ),
                };
            RunRow {
                case: case.clone(),
                repetition: *repetition,
                pinning: match file.pinning.problem() {
                    None => "as planned".to_string(),
                    Some(problem) => format!("NOT as planned: {problem}"),
                },
                read_back: read_back.join(", "),
                other_cpus,
                steal,
                load,
                flags,
            }
        })
        .collect();
    let cases = document
        .cases
        .iter()
        .map(|case| {
            let files: Vec<_> = record
                .runs
                .iter()
                .filter(|(id, _, _)| *id == case.case)
                .collect();
            let effective = files
                .iter()
                .filter(|(_, _, file)| file.pinning.effective())
                .count();
            CaseRow {
                case: case.case.clone(),
                placement: host::describe_case(case),
                pinned: format!("{effective}/{}", files.len()),
            }
        })
        .collect();
    HostView {
        topology,
        allowed_cpus: document.allowed_cpus.clone(),
        free_cores: document.free_cores,
        free_cpus: document.free_cpus,
        limits: format!(
            "other processes above {} CPUs on average, or more than {:.1}% of host CPU time stolen",
            document.noise_limits.other_cpus,
            document.noise_limits.steal_share * 100.0
        ),
        noisy_runs: runs.iter().filter(|run| !run.flags.is_empty()).count(),
        cases,
        runs,
    }
}
