//! Host records in a bundle (`host.json` at the root and per run): what
//! `capos verify` accepts, what it refuses, and what the report shows.
//! Synthetic bundles only; the samples are shaped like this machine's
//! `/proc` lines.

mod contract_support;

use capos_evidence::bundle::files::BundleFiles;
use capos_evidence::guest::qemu::Accel;
use capos_evidence::host::noise::{Limits, ProcSample, Samples};
use capos_evidence::host::placement::{CpuPlan, Policy};
use capos_evidence::host::topology::{LogicalCpu, NumaNode, Topology};
use capos_evidence::host::watch::{NoiseRecord, PinnedThread, Pinning, Role, RunHost};
use capos_evidence::proof::host::{
    self, CaseHost, HostDocument, HostError, RunHostFile, Runner, HOST_FILE, HOST_FORMAT,
};
use capos_evidence::proof::report::{self, BundleFacts, Templates};
use capos_evidence::proof::summary;
use contract_support::*;
use std::path::Path;

fn topology() -> Topology {
    let cpu = |cpu: u32| LogicalCpu {
        cpu,
        package: 0,
        core_id: cpu,
        siblings: vec![cpu],
        node: Some(0),
    };
    Topology {
        cpus: vec![cpu(0), cpu(1)],
        offline: Vec::new(),
        nodes: vec![NumaNode {
            node: 0,
            cpus: vec![0, 1],
        }],
    }
}

fn plan(vcpu_cpus: Vec<u32>, other_cpus: Vec<u32>) -> CpuPlan {
    let others_have_room = vcpu_cpus.len() < 2;
    CpuPlan {
        policy: Policy::PhysicalCores,
        vcpu_cpus,
        other_cpus,
        others_have_room,
        shares_cores: false,
        oversubscribed: false,
    }
}

fn document() -> HostDocument {
    HostDocument {
        format: HOST_FORMAT.into(),
        topology: Some(topology()),
        topology_error: None,
        allowed_cpus: "0-1".into(),
        free_cores: 2,
        free_cpus: 2,
        noise_limits: Limits::DEFAULT,
        cases: vec![
            CaseHost {
                case: "cpus1".into(),
                runs: Runner::Qemu,
                policy: Policy::PhysicalCores,
                plan: Some(plan(vec![0], vec![1])),
                error: None,
            },
            CaseHost {
                case: "cpus2".into(),
                runs: Runner::Qemu,
                policy: Policy::PhysicalCores,
                plan: Some(plan(vec![0, 1], vec![0, 1])),
                error: None,
            },
        ],
    }
}

fn stat_line(pid: u32, name: &str, utime: u64) -> String {
    format!(
        "{pid} ({name}) S 1 {pid} {pid} 0 -1 4194560 100 0 0 0 {utime} 5 0 0 20 0 5 0 100 1000 50"
    )
}

/// Samples of a run in which other processes took `other` ticks.
fn samples(other: u64) -> Samples {
    let sample = |user: u64, idle: u64, process: Option<String>, harness: u64| ProcSample {
        stat: vec![
            format!("cpu  {user} 0 100 {idle} 0 0 0 0 0 0"),
            format!("cpu0 {} 0 50 {} 0 0 0 0 0 0", user / 2, idle / 2),
            format!(
                "cpu1 {} 0 50 {} 0 0 0 0 0 0",
                user - user / 2,
                idle - idle / 2
            ),
        ],
        loadavg: "0.30 0.20 0.10 1/150 4000".into(),
        process,
        harness: stat_line(10, "capos", harness),
    };
    Samples {
        start: sample(1000, 5000, None, 50),
        // 400 ticks pass: the process 200 (195 user + 5 system), the
        // harness 2, others `other`, the rest idle.
        end: sample(
            1000 + 202 + other,
            5000 + 400 - 202 - other,
            Some(stat_line(4001, "qemu-system-x86", 195)),
            52,
        ),
    }
}

fn thread(tid: u32, role: Role, wanted: &str) -> PinnedThread {
    PinnedThread {
        tid,
        name: match role {
            Role::Vcpu { index } => format!("CPU {index}/TCG"),
            _ => "qemu-system-x86".into(),
        },
        role,
        wanted: wanted.into(),
        set_error: None,
        read_back: Some(wanted.into()),
        read_back_error: None,
    }
}

fn run_record(case: &str, other: u64) -> RunHost {
    let mut threads = vec![thread(4002, Role::Vcpu { index: 0 }, "0")];
    let others = if case == "cpus2" {
        threads.push(thread(4003, Role::Vcpu { index: 1 }, "1"));
        "0-1"
    } else {
        "1"
    };
    threads.push(thread(4001, Role::Other, others));
    RunHost {
        pinning: Pinning {
            threads,
            error: None,
        },
        noise: NoiseRecord {
            samples: Some(samples(other)),
            error: None,
        },
    }
}

/// A prime-scale bundle of three runs per case with host records; the
/// second run of cpus2 had a busy neighbour.
fn bundle_with_hosts(bundle: &Path) {
    scale_bundle(
        bundle,
        Accel::Tcg,
        &[2_000_000, 2_100_000, 1_900_000],
        &[1_050_000, 1_000_000, 1_200_000],
    );
    host::write_document(bundle, &document()).unwrap();
    for case in ["cpus1", "cpus2"] {
        for repetition in 1..=3 {
            let other = if (case, repetition) == ("cpus2", 2) {
                150
            } else {
                3
            };
            let dir = bundle.join(summary::run_log_path(case, repetition));
            host::write_run(&dir, run_record(case, other), Limits::DEFAULT).unwrap();
        }
    }
}

fn check(bundle: &Path) -> Result<Option<host::BundleHost>, HostError> {
    let files = BundleFiles::staging(bundle);
    let (contract, inputs) = summary::read_bundle_basics(&files).unwrap();
    host::check_bundle(&files, &contract, &inputs)
}

fn run_file(bundle: &Path, case: &str, repetition: u32) -> std::path::PathBuf {
    bundle
        .join(summary::run_log_path(case, repetition))
        .join(HOST_FILE)
}

fn edit_run(bundle: &Path, case: &str, repetition: u32, edit: impl FnOnce(&mut RunHostFile)) {
    let path = run_file(bundle, case, repetition);
    let mut file: RunHostFile = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut file);
    std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
}

#[test]
fn a_complete_record_verifies_and_flags_the_noisy_run() {
    let dir = tempfile::tempdir().unwrap();
    bundle_with_hosts(dir.path());
    let record = check(dir.path()).unwrap().expect("host records");
    assert_eq!(record.runs.len(), 6);
    let flagged: Vec<(&str, u32)> = record
        .runs
        .iter()
        .filter(|(_, _, file)| !file.figures.as_ref().unwrap().flags.is_empty())
        .map(|(case, repetition, _)| (case.as_str(), *repetition))
        .collect();
    assert_eq!(flagged, [("cpus2", 2)]);
    assert_eq!(record.document.oversubscribed("cpus2"), Some(false));
}

#[test]
fn a_bundle_without_host_records_is_an_older_bundle() {
    let dir = tempfile::tempdir().unwrap();
    scale_bundle(dir.path(), Accel::Tcg, &[2_000_000], &[1_000_000]);
    assert!(check(dir.path()).unwrap().is_none());
    // A run's record without the root document is refused.
    host::write_run(
        &dir.path().join(summary::run_log_path("cpus1", 1)),
        run_record("cpus1", 0),
        Limits::DEFAULT,
    )
    .unwrap();
    let error = check(dir.path()).unwrap_err().to_string();
    assert!(error.contains("without the bundle's host.json"), "{error}");
}

#[test]
fn a_missing_run_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    bundle_with_hosts(dir.path());
    std::fs::remove_file(run_file(dir.path(), "cpus2", 3)).unwrap();
    let error = check(dir.path()).unwrap_err().to_string();
    assert!(error.contains("logs/cpus2/3/host.json: missing"), "{error}");
}

#[test]
fn edited_noise_figures_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    bundle_with_hosts(dir.path());
    // Hiding the noisy run: clear its flag and its figure.
    edit_run(dir.path(), "cpus2", 2, |file| {
        let figures = file.figures.as_mut().unwrap();
        figures.flags.clear();
        figures.other_cpus = 0.01;
    });
    let error = check(dir.path()).unwrap_err().to_string();
    assert!(error.contains("noise figures differ"), "{error}");
}

#[test]
fn edited_samples_are_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    bundle_with_hosts(dir.path());
    edit_run(dir.path(), "cpus2", 2, |file| {
        file.noise.samples = Some(samples(3));
    });
    let error = check(dir.path()).unwrap_err().to_string();
    assert!(error.contains("noise figures differ"), "{error}");
}

#[test]
fn a_vcpu_pinned_off_plan_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    bundle_with_hosts(dir.path());
    edit_run(dir.path(), "cpus2", 1, |file| {
        file.pinning.threads[1].wanted = "0".into();
    });
    let error = check(dir.path()).unwrap_err().to_string();
    assert!(
        error.contains("asked for CPUs 0 but the case's plan names 1"),
        "{error}"
    );
}

#[test]
fn unknown_fields_and_formats_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    bundle_with_hosts(dir.path());
    let root = dir.path().join(HOST_FILE);
    let text = std::fs::read_to_string(&root).unwrap();
    std::fs::write(&root, text.replacen('{', "{\"extra\": 1,", 1)).unwrap();
    let error = check(dir.path()).unwrap_err().to_string();
    assert!(error.contains("unknown field"), "{error}");
    std::fs::write(&root, text.replace(HOST_FORMAT, "capos-host/v9")).unwrap();
    let error = check(dir.path()).unwrap_err().to_string();
    assert!(error.contains("capos-host/v9"), "{error}");
}

#[test]
fn pinning_failure_is_shown_not_hidden() {
    let dir = tempfile::tempdir().unwrap();
    bundle_with_hosts(dir.path());
    edit_run(dir.path(), "cpus1", 3, |file| {
        let vcpu = &mut file.pinning.threads[0];
        vcpu.set_error = Some("sched_setaffinity: Operation not permitted (os error 1)".into());
        vcpu.read_back = Some("0-1".into());
    });
    check(dir.path()).unwrap();
    let rendered = report::render(
        &Templates::builtin(),
        &BundleFiles::staging(dir.path()),
        &BundleFacts {
            name: "f".repeat(64),
            key_id: "test-key".into(),
            files: 1,
            link_prefix: None,
            tool: Default::default(),
            history: capos_evidence::proof::history::UNKNOWN_ARCHIVE.to_owned(),
        },
    )
    .unwrap();
    let markdown = &rendered.markdown;
    assert!(
        markdown.contains("## Host: topology, pinning and noise"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| cpus2 | vCPU 0 -> CPU 0, vCPU 1 -> CPU 1; other threads on 0-1 (no room of their own) | 3/3 |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| cpus1 | vCPU 0 -> CPU 0; other threads on 1 | 2/3 |"),
        "{markdown}"
    );
    assert!(markdown.contains("NOT as planned: thread 4002 (CPU 0/TCG) wanted 0: sched_setaffinity: Operation not permitted"), "{markdown}");
    assert!(markdown.contains("1 of 6 runs flagged"), "{markdown}");
    assert!(
        markdown.contains("**noisy**: other processes kept 0.75 CPUs busy (limit 0.25)"),
        "{markdown}"
    );
    assert!(rendered
        .html
        .contains("<h2>Host: topology, pinning and noise</h2>"));
}
