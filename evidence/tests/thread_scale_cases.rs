//! The shipped thread-scale contract judged from synthetic logs: a clean
//! run of every system passes, and each way a run can be wrong fails
//! closed with its reason (a checksum that is not the host's, a missing
//! phase, a system call inside a worker's window, workers that all ended
//! on one CPU, a result line from another process).

mod contract_support;

use capos_evidence::proof::baseline::Os;
use capos_evidence::proof::contract::{self, Contract};
use capos_evidence::proof::summary::{self, ExitRecord};
use contract_support::{timed, PASS_EXIT};
use std::path::Path;

fn shipped() -> Contract {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/thread-scale.yaml");
    contract::load(&path).expect("the shipped contract is valid")
}

const CHECKSUM: &str = "0xcf317c286a67fa0e";

fn result_body(cpus: u32, threads: u32) -> String {
    format!(
        "cpus={cpus} threads={threads} blocks=262144 rounds=64 checksum={CHECKSUM} spawn_ready=100 work=5000 shutdown=20 total=5120 elapsed=5000 verified=true"
    )
}

/// A passing transcript of `case` (capOS workers end on distinct CPUs).
fn passing(contract: &Contract, id: &str) -> (Vec<String>, ExitRecord) {
    let case = contract.spec.cases.iter().find(|c| c.id == id).unwrap();
    let threads = case.workers.unwrap();
    match case.os {
        Os::Capos => {
            let mut lines: Vec<String> = (0..case.cpus)
                .map(|cpu| format!("[smp] cpu={cpu} apic={cpu} online"))
                .collect();
            for worker in 0..threads {
                lines.push(format!(
                    "[u:thread-scale] [thread-scale:placement] worker={worker} cpu_start={worker} cpu_end={worker} window_syscalls=0"
                ));
            }
            for cpu in 0..case.cpus {
                lines.push(format!(
                    "[u:thread-scale] [thread-scale:placement] cpu={cpu} workers_ended=1"
                ));
            }
            lines.push(format!(
                "[u:thread-scale] [thread-scale] {}",
                result_body(case.cpus, threads)
            ));
            lines.push("[process] pid=2 name=thread-scale exit=0".into());
            lines.push("[u:init] [init] done children=1 failed=0".into());
            (lines, PASS_EXIT)
        }
        Os::Linux => (
            vec![format!(
                "[thread-scale] os=linux {}",
                result_body(case.cpus, threads)
            )],
            // The Linux guest powers off: QEMU exits 0.
            ExitRecord {
                exit_code: Some(0),
                ..PASS_EXIT
            },
        ),
        Os::Native => {
            let pinned = case.cpus.min(2);
            (
                vec![format!(
                    "[thread-scale] os=native {}",
                    result_body(pinned, threads)
                )],
                ExitRecord {
                    exit_code: Some(0),
                    pinned_cpus: Some(pinned),
                    ..PASS_EXIT
                },
            )
        }
    }
}

fn judge(contract: &Contract, id: &str, lines: &[String], exit: &ExitRecord) -> Vec<String> {
    let index = contract.spec.cases.iter().position(|c| c.id == id).unwrap();
    summary::judge_run(
        contract,
        index,
        1,
        &timed(0, lines),
        exit,
        summary::wording::Wording::CURRENT,
    )
    .problems
}

/// `lines` with the first line containing `from` rewritten by `edit`.
fn edited(lines: &[String], from: &str, edit: impl Fn(&str) -> String) -> Vec<String> {
    let mut copy = lines.to_vec();
    let line = copy.iter().position(|l| l.contains(from)).unwrap();
    copy[line] = edit(&copy[line]);
    copy
}

fn fails_with(problems: &[String], reason: &str) {
    assert!(
        problems.iter().any(|problem| problem.contains(reason)),
        "expected a problem mentioning {reason:?}, got {problems:?}"
    );
}

#[test]
fn every_system_passes_with_a_clean_run() {
    let contract = shipped();
    for case in &contract.spec.cases {
        let (lines, exit) = passing(&contract, &case.id);
        let problems = judge(&contract, &case.id, &lines, &exit);
        assert!(problems.is_empty(), "{}: {problems:?}", case.id);
    }
}

#[test]
fn a_checksum_that_is_not_the_hosts_fails() {
    let contract = shipped();
    for id in ["cpus2", "linux-cpus2"] {
        let (lines, exit) = passing(&contract, id);
        let wrong = edited(&lines, "checksum=", |l| {
            l.replace(CHECKSUM, "0xcf317c286a67fa0f")
        });
        fails_with(&judge(&contract, id, &wrong, &exit), "field checksum");
        let unverified = edited(&lines, "verified=", |l| {
            l.replace("verified=true", "verified=false")
        });
        fails_with(&judge(&contract, id, &unverified, &exit), "field verified");
    }
}

#[test]
fn a_missing_phase_fails() {
    let contract = shipped();
    let (lines, exit) = passing(&contract, "cpus2");
    for phase in [
        "spawn_ready=100 ",
        "work=5000 ",
        "shutdown=20 ",
        "total=5120 ",
    ] {
        let missing = edited(&lines, "[thread-scale] cpus=", |l| l.replace(phase, ""));
        fails_with(&judge(&contract, "cpus2", &missing, &exit), "result line");
    }
}

#[test]
fn a_system_call_in_a_window_fails() {
    let contract = shipped();
    let (lines, exit) = passing(&contract, "cpus2");
    let called = edited(&lines, "worker=1 ", |l| {
        l.replace("window_syscalls=0", "window_syscalls=1")
    });
    fails_with(
        &judge(&contract, "cpus2", &called, &exit),
        "window_syscalls=0",
    );
}

#[test]
fn workers_that_all_ended_on_one_cpu_fail() {
    let contract = shipped();
    let (lines, exit) = passing(&contract, "cpus4");
    let one_cpu: Vec<String> = lines
        .iter()
        .filter(|l| !l.contains("workers_ended=1"))
        .cloned()
        .chain(["[u:thread-scale] [thread-scale:placement] cpu=0 workers_ended=4".to_string()])
        .collect();
    fails_with(&judge(&contract, "cpus4", &one_cpu, &exit), "workers_ended");
}

#[test]
fn lines_of_another_process_do_not_count() {
    let contract = shipped();
    let (lines, exit) = passing(&contract, "cpus2");
    let forged = edited(&lines, "[thread-scale] cpus=", |l| {
        l.replace("[u:thread-scale]", "[u:init]")
    });
    fails_with(
        &judge(&contract, "cpus2", &forged, &exit),
        "result line missing",
    );
    let placement = edited(&lines, "worker=0 ", |l| {
        l.replace("[u:thread-scale]", "[u:init]")
    });
    fails_with(
        &judge(&contract, "cpus2", &placement, &exit),
        "window_syscalls=0",
    );
}

/// `CAPOS_THREAD_SCALE_TOTAL_BLOCKS`: the size and the host's checksum for
/// it replace the written expectations, every case passes them on, and a
/// run of the default size no longer passes.
#[test]
fn a_chosen_size_is_judged_against_the_hosts_checksum() {
    let contract = shipped();
    let environment = std::collections::BTreeMap::from([(
        "CAPOS_THREAD_SCALE_TOTAL_BLOCKS".to_string(),
        "2048".to_string(),
    )]);
    let sized = capos_evidence::proof::workload_size::sized(&contract, &environment)
        .unwrap()
        .expect("the shipped contract has a workload size");
    let shape = capos_workloads::hash::Shape {
        blocks: 2048,
        rounds: 64,
    };
    let checksum = capos_workloads::hash::short_checksum(
        &capos_workloads::hash::expected_root(shape).unwrap(),
    );
    let case = |id: &str| sized.spec.cases.iter().find(|c| c.id == id).unwrap();
    assert!(case("cpus2")
        .cmdline
        .ends_with(&format!("user.blocks=2048 user.expect={checksum}")));
    assert_eq!(
        case("native-cpus2").cmdline,
        format!("--blocks 2048 --expect {checksum}")
    );
    for id in ["cpus2", "linux-cpus2", "native-cpus2"] {
        let (lines, exit) = passing(&contract, id);
        let resized = edited(&lines, "checksum=", |l| {
            l.replace("blocks=262144", "blocks=2048")
                .replace(CHECKSUM, &format!("{checksum:#018x}"))
        });
        let problems = judge(&sized, id, &resized, &exit);
        assert!(problems.is_empty(), "{id}: {problems:?}");
        fails_with(&judge(&sized, id, &lines, &exit), "field blocks");
    }
    let bad = std::collections::BTreeMap::from([(
        "CAPOS_THREAD_SCALE_TOTAL_BLOCKS".to_string(),
        "1000".to_string(),
    )]);
    let error = capos_evidence::proof::workload_size::sized(&contract, &bad).unwrap_err();
    assert!(error.to_string().contains("multiple of 1024"), "{error}");
}
