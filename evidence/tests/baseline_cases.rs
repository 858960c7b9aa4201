//! Baseline cases (os: linux / native) in contracts, judged from synthetic
//! logs: the shipped smp-process-scale contract, what validation refuses,
//! how each system's runs pass or fail, and that verify's recompute covers
//! the comparison figures.

mod contract_support;

use capos_evidence::bundle::files::BundleFiles;
use capos_evidence::guest::qemu::Accel;
use capos_evidence::proof::contract::{self, Contract};
use capos_evidence::proof::inputs::SkippedCase;
use capos_evidence::proof::summary::{self, ExitRecord, SummaryDocument};
use contract_support::*;
use std::path::Path;

fn shipped() -> (Contract, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/smp-process-scale.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    (
        contract::load(&path).expect("the shipped contract is valid"),
        text,
    )
}

const CHECKSUM: &str = "0x00258a1e40a95225";

/// A result line of `os` ("capos" is framed by the coordinator's console).
fn result_line(os: &str, cpus: u32, workers: u32, elapsed: u64) -> String {
    let body = format!(
        "cpus={cpus} workers={workers} range=1000000000..1200000000 primes=9607171 checksum={CHECKSUM} elapsed={elapsed} verified=true"
    );
    match os {
        "capos" => format!("[u:smp-process-scale] [smp-process-scale] {body}"),
        os => format!("[smp-process-scale] os={os} {body}"),
    }
}

/// A passing transcript and exit record of `case`.
fn passing(case: &contract::CaseSpec, host_cpus: u32, elapsed: u64) -> (Vec<String>, ExitRecord) {
    let workers = case.workers.unwrap();
    match case.os {
        capos_evidence::proof::baseline::Os::Capos => {
            let mut lines: Vec<String> = (0..case.cpus)
                .map(|cpu| format!("[smp] cpu={cpu} apic={cpu} online"))
                .collect();
            for pid in 0..workers {
                lines.push(format!(
                    "[process] pid={} name=smp-process-worker exit=0",
                    pid + 3
                ));
            }
            lines.push(result_line("capos", case.cpus, workers, elapsed));
            lines.push("[u:init] [init] done children=1 failed=0".into());
            (lines, PASS_EXIT)
        }
        capos_evidence::proof::baseline::Os::Linux => (
            vec![
                result_line("linux", case.cpus, workers, elapsed),
                "[    5.4] reboot: Power down".into(),
            ],
            exit(Some(0), None),
        ),
        capos_evidence::proof::baseline::Os::Native => {
            let pinned = case.cpus.min(host_cpus);
            (
                vec![result_line("native", pinned, workers, elapsed)],
                exit(Some(0), Some(pinned)),
            )
        }
    }
}

fn exit(code: Option<i32>, pinned_cpus: Option<u32>) -> ExitRecord {
    ExitRecord {
        exit_code: code,
        timed_out: false,
        wall_ms: 1000,
        pinned_cpus,
    }
}

fn judge(contract: &Contract, case_id: &str, lines: Vec<String>, exit: &ExitRecord) -> Vec<String> {
    let index = contract
        .spec
        .cases
        .iter()
        .position(|c| c.id == case_id)
        .unwrap();
    summary::judge_run(
        contract,
        index,
        1,
        &timed(0, &lines),
        exit,
        summary::wording::Wording::CURRENT,
    )
    .problems
}

fn case<'a>(contract: &'a Contract, id: &str) -> &'a contract::CaseSpec {
    contract.spec.cases.iter().find(|c| c.id == id).unwrap()
}

#[test]
fn every_system_passes_with_its_own_line() {
    let (contract, _) = shipped();
    for case in contract.spec.cases.iter().filter(|c| c.condition.is_none()) {
        let (lines, exit) = passing(case, 2, 1_000_000);
        let problems = judge(&contract, &case.id, lines, &exit);
        assert!(problems.is_empty(), "{}: {problems:?}", case.id);
    }
}

#[test]
fn capos_lines_count_only_from_the_coordinator() {
    let (contract, _) = shipped();
    let (mut lines, exit) = passing(case(&contract, "cpus2"), 2, 5);
    let line = lines
        .iter()
        .position(|l| l.contains("[smp-process-scale]"))
        .unwrap();
    // Unframed, or framed as another process: not the coordinator's line.
    for forged in [
        lines[line].replacen("[u:smp-process-scale] ", "", 1),
        lines[line].replacen("[u:smp-process-scale]", "[u:smp-process-worker]", 1),
    ] {
        let mut copy = lines.clone();
        copy[line] = forged;
        let problems = judge(&contract, "cpus2", copy, &exit);
        assert!(
            problems.iter().any(|p| p.contains("result line missing")),
            "{problems:?}"
        );
    }
    lines.push(lines[line].clone());
    let problems = judge(&contract, "cpus2", lines, &exit);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("result line duplicated")),
        "{problems:?}"
    );
}

#[test]
fn baseline_runs_fail_closed() {
    let (contract, _) = shipped();
    let linux = case(&contract, "linux-cpus2");
    let (lines, exit_ok) = passing(linux, 2, 5);

    // The line of another system, or without its os word.
    let wrong_os = vec![lines[0].replace("os=linux", "os=native")];
    assert!(judge(&contract, "linux-cpus2", wrong_os, &exit_ok)
        .iter()
        .any(|p| p.contains("another system")));
    let no_os = vec![lines[0].replace("os=linux ", "")];
    assert!(!judge(&contract, "linux-cpus2", no_os, &exit_ok).is_empty());

    // A wrong prime count, a guest that never prints, a kernel panic, a bad exit.
    let wrong_count = vec![lines[0].replace("primes=9607171", "primes=9607170")];
    assert!(judge(&contract, "linux-cpus2", wrong_count, &exit_ok)
        .iter()
        .any(|p| p.contains("field primes")));
    assert!(judge(&contract, "linux-cpus2", vec![], &exit_ok)
        .iter()
        .any(|p| p.contains("result line missing")));
    let mut panicked = lines.clone();
    panicked.push("[    2.0] Kernel panic - not syncing: Attempted to kill init!".into());
    assert!(judge(&contract, "linux-cpus2", panicked, &exit_ok)
        .iter()
        .any(|p| p.contains("panicked")));
    assert!(!judge(
        &contract,
        "linux-cpus2",
        lines.clone(),
        &exit(Some(1), None)
    )
    .is_empty());
    let mut timed_out = exit_ok.clone();
    timed_out.timed_out = true;
    assert!(!judge(&contract, "linux-cpus2", lines, &timed_out).is_empty());

    // Native: cpus= is judged against the pinned count, which must be recorded.
    let native = case(&contract, "native-cpus4");
    let (lines, exit_pinned) = passing(native, 2, 5);
    assert!(judge(&contract, "native-cpus4", lines.clone(), &exit_pinned).is_empty());
    let unrecorded = exit(Some(0), None);
    assert!(judge(&contract, "native-cpus4", lines.clone(), &unrecorded)
        .iter()
        .any(|p| p.contains("pinned_cpus")));
    let claims_four = vec![lines[0].replace("cpus=2", "cpus=4")];
    assert!(!judge(&contract, "native-cpus4", claims_four, &exit_pinned).is_empty());
}

/// A whole bundle of the shipped contract: `capos` medians 10/5/4, Linux
/// 10/5/3, native 4/2/2 (times 1e9 cycles), one run per case.
fn bundle(dir: &Path) -> std::path::PathBuf {
    let (contract, text) = shipped();
    let bundle = dir.join("bundle");
    let mut inputs = inputs("smp-process-scale", Accel::Tcg, 1, 2);
    for case in contract.spec.cases.iter().filter(|c| c.condition.is_some()) {
        inputs.skipped_cases.push(SkippedCase {
            id: case.id.clone(),
            reason: "not requested".into(),
        });
    }
    write_basics(&bundle, &text, &inputs);
    let elapsed = |id: &str| -> u64 {
        match id {
            "cpus1" | "linux-cpus1" => 10,
            "cpus2" | "linux-cpus2" => 5,
            "cpus4" => 4,
            "linux-cpus4" => 3,
            "native-cpus1" => 4,
            _ => 2,
        }
    };
    for case in contract.spec.cases.iter().filter(|c| c.condition.is_none()) {
        let (lines, exit) = passing(case, 2, elapsed(&case.id) * 1_000_000_000);
        write_run(&bundle, &case.id, 1, &timed(100_000, &lines), &exit);
    }
    bundle
}

#[test]
fn summary_has_per_system_speedups_ratios_and_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle(dir.path());
    let recomputed = summary::recompute(&BundleFiles::staging(&bundle)).unwrap();
    let document: SummaryDocument = serde_json::from_str(&recomputed.summary_json).unwrap();
    assert_eq!(document.runs.failed, 0, "{:?}", document.failures);
    let speedup = |id: &str| document.speedups.iter().find(|s| s.id == id).unwrap().value;
    assert_eq!(speedup("capos-1-2"), Some(2.0));
    assert_eq!(speedup("linux-1-4"), Some(3.333));
    assert_eq!(speedup("native-1-2"), Some(2.0));
    assert_eq!(document.ratios[0].value, Some(1.0));
    assert_eq!(document.ratios[1].value, Some(0.75));
    let gate = |id: &str| document.gates.iter().find(|g| g.id == id).unwrap().verdict;
    assert_eq!(gate("seed-speedup-1-2"), summary::GateVerdict::Pass);
    assert_eq!(gate("linux-relative-1-2"), summary::GateVerdict::Pass);
    // Under TCG a passing scaling claim is diagnostic, and says so.
    assert_eq!(document.claim.level, summary::ClaimLevel::Diagnostic);
    let comparison = document.comparison.as_ref().unwrap();
    assert_eq!(comparison.rows.len(), 3, "skipped 8-CPU cases make no row");
    let four = &comparison.rows[2];
    assert_eq!((four.cpus, four.speedup_ratio), (4, Some(0.75)));
    assert!(document
        .notes
        .iter()
        .any(|n| n.contains("native-cpus4") && n.contains("pinned")));
    assert!(document
        .notes
        .iter()
        .any(|n| n.contains("cpus8 did not run")));
    // Recompute is deterministic.
    assert_eq!(
        summary::recompute(&BundleFiles::staging(&bundle)).unwrap(),
        recomputed
    );
}

#[test]
fn a_slow_capos_fails_the_linux_relative_gate() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle(dir.path());
    let (contract, _) = shipped();
    // capOS at -smp 2 takes 6.5 instead of 5: 1.538x against Linux's 2x.
    let (lines, exit) = passing(case(&contract, "cpus2"), 2, 6_500_000_000);
    write_run(&bundle, "cpus2", 1, &timed(100_000, &lines), &exit);
    let document: SummaryDocument = serde_json::from_str(
        &summary::recompute(&BundleFiles::staging(&bundle))
            .unwrap()
            .summary_json,
    )
    .unwrap();
    let gate = |id: &str| document.gates.iter().find(|g| g.id == id).unwrap().clone();
    assert_eq!(gate("seed-speedup-1-2").verdict, summary::GateVerdict::Fail);
    let relative = gate("linux-relative-1-2");
    assert_eq!(relative.verdict, summary::GateVerdict::Fail);
    assert_eq!(relative.value, Some(0.769));
}

#[test]
fn only_conditional_cases_may_be_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle(dir.path());
    let (_, text) = shipped();
    let mut inputs = inputs("smp-process-scale", Accel::Tcg, 1, 2);
    inputs.skipped_cases.push(SkippedCase {
        id: "linux-cpus2".into(),
        reason: "inconvenient".into(),
    });
    write_basics(&bundle, &text, &inputs);
    let error = format!(
        "{:#}",
        summary::recompute(&BundleFiles::staging(&bundle)).unwrap_err()
    );
    assert!(error.contains("only a conditional case"), "{error}");
}

fn problems(text: &str) -> String {
    match contract::parse(text, Path::new("test.yaml")) {
        Ok(_) => String::new(),
        Err(error) => error.to_string(),
    }
}

#[test]
fn validation_refuses_inconsistent_baselines() {
    let (_, text) = shipped();
    let cases = [
        // A Linux case with capOS boot options.
        (
            "- {id: linux-cpus1, os: linux, cpus: 1, workers: 1, timeout_secs: 300}",
            "- {id: linux-cpus1, os: linux, cpus: 1, workers: 1, cmdline: \"x=1\", timeout_secs: 300}",
            "cmdline is for capOS",
        ),
        // A speedup across systems.
        (
            "baseline_case: linux-cpus1, case: linux-cpus2}",
            "baseline_case: cpus1, case: linux-cpus2}",
            "stays within one system",
        ),
        // A ratio of different CPU steps.
        (
            "{id: capos-over-linux-1-2, speedup: capos-1-2, reference: linux-1-2}",
            "{id: capos-over-linux-1-2, speedup: capos-1-2, reference: linux-1-4}",
            "different CPU counts",
        ),
        // An ungated ratio that is not diagnostic.
        (
            "reference: linux-1-4, diagnostic: true}",
            "reference: linux-1-4}",
            "has no ratio_at_least gate",
        ),
        // A gated speedup on a case that may not run.
        (
            "{id: capos-1-8, metric: elapsed_cycles, baseline_case: cpus1, case: cpus8, diagnostic: true}",
            "{id: capos-1-8, metric: elapsed_cycles, baseline_case: cpus1, case: cpus8}",
            "conditional case",
        ),
        // The frame written into the prefix as well as named.
        (
            "prefix: \"[smp-process-scale] \"",
            "prefix: \"[u:smp-process-scale] [smp-process-scale] \"",
            "console frame",
        ),
        // No baseline program.
        ("baseline:\n  program: smp-process-scale\n", "", "need `baseline"),
        ("program: smp-process-scale\ncases", "program: fortune\ncases", "not a capos-baseline program"),
    ];
    for (from, to, expected) in cases {
        assert!(
            text.contains(from),
            "fixture text {from:?} not in the contract"
        );
        let message = problems(&text.replacen(from, to, 1));
        assert!(message.contains(expected), "{expected:?} not in: {message}");
    }
    assert_eq!(problems(&text), "");
}

#[test]
fn the_report_sets_capos_beside_its_baselines() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle(dir.path());
    finish_bundle(&bundle);
    let templates = capos_evidence::proof::report::Templates::builtin();
    let facts = capos_evidence::proof::report::BundleFacts {
        name: "f".repeat(64),
        key_id: "test-key".into(),
        files: 1,
        link_prefix: None,
        tool: Default::default(),
        history: capos_evidence::proof::history::UNKNOWN_ARCHIVE.to_owned(),
    };
    let rendered =
        capos_evidence::proof::report::render(&templates, &BundleFiles::staging(&bundle), &facts)
            .unwrap();
    assert!(rendered.markdown.contains("## capOS beside its baselines"));
    assert!(
        rendered.markdown.contains(
            "| elapsed_cycles (cycles) | 2 | 2 | 5.00 G | 2x | 5.00 G | 2x | 2.00 G | 2x | 1 | 1 |"
        ),
        "{}",
        rendered.markdown
    );
    assert!(rendered
        .markdown
        .contains("| capos-over-linux-1-2 | capos-1-2 / linux-1-2 | 1 | — | gated |"));
    // One chart, a curve per system, a legend and the ideal line.
    assert_eq!(rendered.charts.len(), 1);
    let svg = &rendered.charts[0].1;
    assert_eq!(
        svg.matches("<polyline").count(),
        4,
        "three curves and the ideal"
    );
    for label in ["capOS", "Linux guest", "native", "ideal"] {
        assert!(svg.contains(&format!(">{label}</text>")), "{label}");
    }
    // Logs are listed only for cases that ran.
    assert!(!rendered.markdown.contains("logs/cpus8/"));
}

/// Baseline bundles are part of format v1 too: their sentences (each
/// system's exit problems, a Linux panic, a line of another system, pinning,
/// the baseline notes, ratio gate details) are pinned like the capOS ones
/// in `tests/frozen/v1/` (see `tests/frozen_wording.rs`).
#[test]
fn baseline_wording_is_frozen() {
    let dir = tempfile::tempdir().unwrap();
    let passing_bundle = bundle(dir.path());
    check_frozen("baseline-diagnostic", &passing_bundle);

    let failing = dir.path().join("failing");
    std::fs::rename(&passing_bundle, &failing).unwrap();
    let (contract, _) = shipped();
    let run = |id: &str, lines: Vec<String>, exit: ExitRecord| {
        write_run(&failing, id, 1, &timed(100_000, &lines), &exit);
    };
    let lines = |id: &str| passing(case(&contract, id), 2, 5_000_000_000).0;
    // Linux: a line of another system (so no linux-1-2 speedup and no
    // ratio), a panic with a bad status, a timeout.
    run(
        "linux-cpus1",
        vec![lines("linux-cpus1")[0].replace("os=linux", "os=native")],
        exit(Some(0), None),
    );
    let mut panicked = lines("linux-cpus2");
    panicked.push("[    2.0] Kernel panic - not syncing: Attempted to kill init!".into());
    run("linux-cpus2", panicked, exit(Some(1), None));
    let mut timed_out = exit(None, None);
    timed_out.timed_out = true;
    run("linux-cpus4", lines("linux-cpus4"), timed_out);
    // Native: killed, a status, pinning unrecorded and out of range.
    run("native-cpus1", lines("native-cpus1"), exit(None, Some(1)));
    run(
        "native-cpus2",
        lines("native-cpus2"),
        exit(Some(3), Some(2)),
    );
    run("native-cpus4", lines("native-cpus4"), exit(Some(0), None));
    check_frozen("baseline-failures", &failing);
    run(
        "native-cpus4",
        lines("native-cpus4"),
        exit(Some(0), Some(9)),
    );
    check_frozen("baseline-pinning", &failing);
}
