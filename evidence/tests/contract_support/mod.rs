//! Shared fixtures for the contract, summary and report tests: synthetic
//! serial logs and bundle directories, so no test needs QEMU.

#![allow(dead_code)]

use capos_evidence::bundle::files::BundleFiles;
use capos_evidence::bundle::provenance::BuildFacts;
use capos_evidence::guest::qemu::Accel;
use capos_evidence::proof::contract::{self, Contract, RepetitionChoice};
use capos_evidence::proof::inputs::{
    AcceleratorRecord, ArtifactRecord, HostRecord, Inputs, QemuRecord, SourceRecord,
};
use capos_evidence::proof::summary::{self, ExitRecord, SerialLine};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// QEMU's status when the guest reports success through isa-debug-exit.
pub const PASS_EXIT: ExitRecord = ExitRecord {
    exit_code: Some(33),
    timed_out: false,
    wall_ms: 900,
    pinned_cpus: None,
};

/// The shipped smp-boot contract.
pub fn smp_boot_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/smp-boot.yaml")
}

/// The shipped smp-boot contract, loaded.
pub fn smp_boot() -> Contract {
    contract::load(&smp_boot_path()).expect("the shipped smp-boot contract is valid")
}

/// A second contract with a speedup gate (1-to-2 median speedup >= 1.6),
/// modelled on smp-process-scale; used on synthetic logs only.
pub const SCALE_CONTRACT: &str = r#"
name: prime-scale
description: Count primes with 1 and 2 workers on as many CPUs.
claim: Two worker processes on two CPUs count primes at least 1.6x faster than one.
accelerator:
  publishable_requires: kvm
repetitions:
  default: 3
  env: CAPOS_PRIME_SCALE_RUNS
cases:
  - {id: cpus1, cpus: 1, workers: 1, cmdline: "workers=1", timeout_secs: 120}
  - {id: cpus2, cpus: 2, workers: 2, cmdline: "workers=2", timeout_secs: 120}
result_line:
  prefix: "[prime-scale] "
  pattern: '\[prime-scale\] cpus=(?P<cpus>\d+) workers=(?P<workers>\d+) primes=(?P<primes>\d+) checksum=(?P<checksum>[0-9a-f]+) elapsed=(?P<elapsed>\d+) verified=(?P<verified>true|false)'
  fields:
    - {name: cpus, kind: integer, must_equal: case.cpus}
    - {name: workers, kind: integer, must_equal: case.workers}
    - {name: primes, kind: integer, must_equal: 216816}
    - {name: checksum, kind: hex, must_equal: "0xbeef"}
    - {name: elapsed, kind: integer, at_least: 1}
    - {name: verified, kind: bool, must_equal: true}
metrics:
  - {name: elapsed_cycles, unit: cycles, source: {field: elapsed}}
  - {name: result_ms, unit: ms, source: {arrival_ms: '\[prime-scale\] .*'}}
speedups:
  - {id: one-to-two, metric: elapsed_cycles, baseline_case: cpus1, case: cpus2}
gates:
  - {id: all-runs-pass, description: every run passes, kind: all_runs_pass}
  - {id: speedup-1-to-2, description: 1-to-2 median speedup of at least 1.6x, kind: speedup_at_least, speedup: one-to-two, threshold: 1.6}
"#;

/// The speedup contract, parsed.
pub fn scale_contract() -> Contract {
    contract::parse(SCALE_CONTRACT, Path::new("prime-scale.yaml"))
        .expect("the test scale contract is valid")
}

/// Lines at 1 ms intervals starting at `start_micros`.
pub fn timed(start_micros: u64, texts: &[String]) -> Vec<SerialLine> {
    texts
        .iter()
        .enumerate()
        .map(|(index, text)| SerialLine {
            arrival_micros: start_micros + 1000 * index as u64,
            text: text.clone(),
        })
        .collect()
}

/// A correct smp-boot serial transcript for `cpus` CPUs.
pub fn smp_boot_lines(cpus: u32) -> Vec<String> {
    let mut lines = vec!["capOS booting".to_string()];
    for cpu in 0..cpus {
        lines.push(format!("[smp] cpu={cpu} apic={cpu} online"));
    }
    lines.push(format!("[smp] online={cpus}"));
    for cpu in 1..cpus {
        lines.push(format!("[ipi] cpu={cpu} ping=ack"));
    }
    for cpu in 0..cpus {
        lines.push(format!("[timer] cpu={cpu} ticks=12"));
    }
    lines.push(format!(
        "[smp-boot] cpus={cpus} online={cpus} ipi_acks={} min_ticks=12 lapic_hz=1000000000 verified=true",
        cpus - 1
    ));
    lines
}

/// A correct prime-scale transcript whose elapsed field is `elapsed`.
pub fn scale_lines(cpus: u32, elapsed: u64) -> Vec<String> {
    vec![
        "capOS booting".to_string(),
        format!("[prime-scale] cpus={cpus} workers={cpus} primes=216816 checksum=beef elapsed={elapsed} verified=true"),
    ]
}

/// inputs.json contents for a synthetic bundle.
pub fn inputs(proof: &str, accel: Accel, repetitions: u32, host_cpus: u32) -> Inputs {
    Inputs {
        format: "capos-inputs/v1".into(),
        proof: proof.into(),
        repetitions: RepetitionChoice {
            count: repetitions,
            source: "contract default".into(),
            adaptive: None,
        },
        accelerator: AcceleratorRecord {
            requested: "auto".into(),
            name: accel,
            reason: match accel {
                Accel::Kvm => "KVM probe 0.05s vs TCG 0.14s: KVM usable".into(),
                Accel::Tcg => {
                    "KVM probe failed or exceeded 3.0s (TCG took 0.14s): KVM not really usable"
                        .into()
                }
            },
        },
        kernel_features: Vec::new(),
        iso: ArtifactRecord {
            path: "target/iso/capos.iso".into(),
            sha256: "0".repeat(64),
            built_by_run: true,
        },
        kernel: None,
        qemu: QemuRecord {
            version: "QEMU emulator version 7.2.0".into(),
            path: "/usr/bin/qemu-system-x86_64".into(),
            sha256: "1".repeat(64),
        },
        host: HostRecord {
            cpu_model: "Synthetic CPU".into(),
            cpu_count: host_cpus,
            available_cpus: None,
            kernel: "6.1.0".into(),
        },
        source: SourceRecord {
            git_commit: Some("2".repeat(40)),
            git_dirty: Some(false),
            cargo_lock_sha256: Some("3".repeat(64)),
            flake_lock_sha256: None,
        },
        environment: BTreeMap::new(),
        skipped_cases: Vec::new(),
        baseline: None,
        statistics: None,
    }
}

/// Write one run's raw logs the way `capos run` does.
pub fn write_run(
    bundle: &Path,
    case: &str,
    repetition: u32,
    lines: &[SerialLine],
    exit: &ExitRecord,
) {
    let dir = bundle.join(summary::run_log_path(case, repetition));
    std::fs::create_dir_all(&dir).unwrap();
    let mut serial = String::new();
    let mut timed = String::new();
    for line in lines {
        serial.push_str(&line.text);
        serial.push_str("\r\n");
        timed.push_str(&format!("{} {}\n", line.arrival_micros, line.text));
    }
    std::fs::write(dir.join("serial.log"), serial).unwrap();
    std::fs::write(dir.join("serial.timed.log"), timed).unwrap();
    std::fs::write(dir.join("stderr.log"), "").unwrap();
    std::fs::write(dir.join("command.txt"), "qemu-system-x86_64 -smp 1\n").unwrap();
    std::fs::write(
        dir.join("exit.json"),
        capos_evidence::proof::summary::json_text(exit).unwrap(),
    )
    .unwrap();
}

/// Write contract.yaml and inputs.json of a synthetic bundle.
pub fn write_basics(bundle: &Path, contract_text: &str, inputs: &Inputs) {
    std::fs::create_dir_all(bundle).unwrap();
    std::fs::write(bundle.join("contract.yaml"), contract_text).unwrap();
    std::fs::write(
        bundle.join("inputs.json"),
        capos_evidence::proof::summary::json_text(inputs).unwrap(),
    )
    .unwrap();
}

/// A complete, passing smp-boot bundle directory (unsealed) with three runs per case.
pub fn smp_boot_bundle(bundle: &Path, accel: Accel) {
    let contract = smp_boot();
    write_basics(bundle, &contract.text, &inputs("smp-boot", accel, 3, 2));
    for case in &contract.spec.cases {
        for repetition in 1..=3 {
            let start = 300_000 + 10_000 * u64::from(case.cpus) + 1_234 * u64::from(repetition);
            write_run(
                bundle,
                &case.id,
                repetition,
                &timed(start, &smp_boot_lines(case.cpus)),
                &PASS_EXIT,
            );
        }
    }
    finish_bundle(bundle);
}

/// A complete prime-scale bundle with the given elapsed values per case.
pub fn scale_bundle(bundle: &Path, accel: Accel, elapsed_one: &[u64], elapsed_two: &[u64]) {
    assert_eq!(elapsed_one.len(), elapsed_two.len());
    let repetitions = elapsed_one.len() as u32;
    write_basics(
        bundle,
        SCALE_CONTRACT,
        &inputs("prime-scale", accel, repetitions, 2),
    );
    for (case, cpus, values) in [("cpus1", 1, elapsed_one), ("cpus2", 2, elapsed_two)] {
        for (index, elapsed) in values.iter().enumerate() {
            let lines = timed(500_000 + *elapsed / 1000, &scale_lines(cpus, *elapsed));
            write_run(bundle, case, index as u32 + 1, &lines, &PASS_EXIT);
        }
    }
    finish_bundle(bundle);
}

/// Write results.csv and summary.json exactly as `capos run` does.
pub fn finish_bundle(bundle: &Path) {
    let recomputed = summary::recompute(&BundleFiles::staging(bundle)).unwrap();
    std::fs::write(bundle.join("results.csv"), recomputed.results_csv).unwrap();
    std::fs::write(bundle.join("summary.json"), recomputed.summary_json).unwrap();
}

/// summary.json of a bundle, parsed.
pub fn read_summary(bundle: &Path) -> summary::SummaryDocument {
    serde_json::from_slice(&std::fs::read(bundle.join("summary.json")).unwrap()).unwrap()
}

/// Provenance facts for a synthetic smp-boot run called `invocation`.
pub fn run_facts(invocation: &str) -> BuildFacts {
    BuildFacts {
        build_type: "https://capos.dev/evidence/run/v1".into(),
        external_parameters: serde_json::json!({"proof": "smp-boot"}),
        internal_parameters: serde_json::json!({}),
        resolved_dependencies: Vec::new(),
        builder_id: "https://capos.dev/evidence/builder/test".into(),
        builder_version: capos_evidence::tool::builder_version(),
        invocation_id: invocation.into(),
        started_on: "2026-11-22T05:00:00Z".into(),
        finished_on: "2026-11-22T05:00:01Z".into(),
    }
}

/// `capos <arguments>` run from `directory`, with no checkout, trusted key
/// or store named by the environment.
pub fn capos_in(directory: &Path, arguments: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_capos"))
        .current_dir(directory)
        .env_remove("CAPOS_ROOT")
        .env_remove("CAPOS_TRUSTED_KEY")
        .env_remove("CAPOS_TARGET_DIR")
        .env_remove("CAPOS_EVIDENCE_STORE")
        .args(arguments)
        .output()
        .unwrap()
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Compare the recomputed files of `bundle` with `tests/frozen/v1/<name>/`.
pub fn check_frozen(name: &str, bundle: &Path) {
    check_frozen_in("v1", name, bundle);
}

/// Compare the recomputed files of `bundle` with
/// `tests/frozen/<version>/<name>/` (`CAPOS_BLESS=1` rewrites them; only
/// ever for a new version's directory).
pub fn check_frozen_in(version: &str, name: &str, bundle: &Path) {
    let recomputed = summary::recompute(&BundleFiles::staging(bundle)).unwrap();
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/frozen")
        .join(version)
        .join(name);
    if std::env::var_os("CAPOS_BLESS").is_some() {
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(directory.join("results.csv"), &recomputed.results_csv).unwrap();
        std::fs::write(directory.join("summary.json"), &recomputed.summary_json).unwrap();
    }
    for (file, text) in [
        ("results.csv", &recomputed.results_csv),
        ("summary.json", &recomputed.summary_json),
    ] {
        let frozen = std::fs::read_to_string(directory.join(file)).unwrap();
        for (line, (old, new)) in frozen.lines().zip(text.lines()).enumerate() {
            assert_eq!(
                old,
                new,
                "{name}/{file} line {}: {version} wording changed",
                line + 1
            );
        }
        assert_eq!(&frozen, text, "{name}/{file}: {version} output changed");
    }
}
