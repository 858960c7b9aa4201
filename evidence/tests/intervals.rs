//! Format v2: bootstrap intervals on synthetic bundles of the shipped
//! smp-process-scale contract (a copy frozen here, so editing the shipped
//! contract cannot change the pinned v2 outputs in `tests/frozen/v2/`). Gates judged on the interval at their
//! boundaries, the host-capacity and oversubscription rules, opt-in gates,
//! byte-for-byte recomputation, a tampered interval refused by `verify`,
//! and adaptive rounds replayed against their stopping rule.

mod contract_support;

use capos_evidence::bundle::files::BundleFiles;
use capos_evidence::bundle::writer::BundleWriter;
use capos_evidence::guest::qemu::Accel;
use capos_evidence::proof::adaptive::{Decision, StoppingRule};
use capos_evidence::proof::audit::verify_bundle;
use capos_evidence::proof::baseline::Os;
use capos_evidence::proof::bootstrap::{BootstrapPlan, Interval};
use capos_evidence::proof::contract;
use capos_evidence::proof::inputs::{Inputs, SkippedCase};
use capos_evidence::proof::summary::{
    self, ClaimLevel, ExitRecord, GateSummary, GateVerdict, InconclusiveReason, SummaryDocument,
};
use contract_support::*;
use std::path::{Path, PathBuf};

const CHECKSUM: &str = "0x00258a1e40a95225";
const CONTRACT: &str = include_str!("frozen/v2/smp-process-scale.yaml");

/// A result line of `os` (capOS lines are framed by the coordinator's console).
fn result_line(os: Os, cpus: u32, workers: u32, elapsed: u64) -> String {
    let body = format!(
        "cpus={cpus} workers={workers} range=1000000000..1200000000 primes=9607171 checksum={CHECKSUM} elapsed={elapsed} verified=true"
    );
    match os {
        Os::Capos => format!("[u:smp-process-scale] [smp-process-scale] {body}"),
        Os::Linux => format!("[smp-process-scale] os=linux {body}"),
        Os::Native => format!("[smp-process-scale] os=native {body}"),
    }
}

/// A passing transcript and exit record of `case` on a host with `host_cpus`.
fn passing(case: &contract::CaseSpec, host_cpus: u32, elapsed: u64) -> (Vec<String>, ExitRecord) {
    let workers = case.workers.unwrap_or(case.cpus);
    let exit = |code: i32, pinned_cpus: Option<u32>| ExitRecord {
        exit_code: Some(code),
        timed_out: false,
        wall_ms: 1000,
        pinned_cpus,
    };
    match case.os {
        Os::Capos => {
            let mut lines: Vec<String> = (0..case.cpus)
                .map(|cpu| format!("[smp] cpu={cpu} apic={cpu} online"))
                .collect();
            for pid in 0..workers {
                lines.push(format!(
                    "[process] pid={} name=smp-process-worker exit=0",
                    pid + 3
                ));
            }
            lines.push(result_line(Os::Capos, case.cpus, workers, elapsed));
            lines.push("[u:init] [init] done children=1 failed=0".into());
            (lines, PASS_EXIT)
        }
        Os::Linux => (
            vec![
                result_line(Os::Linux, case.cpus, workers, elapsed),
                "[    5.4] reboot: Power down".into(),
            ],
            exit(0, None),
        ),
        Os::Native => {
            let pinned = case.cpus.min(host_cpus);
            (
                vec![result_line(Os::Native, pinned, workers, elapsed)],
                exit(0, Some(pinned)),
            )
        }
    }
}

/// v2 inputs with a fixed seed, `rounds` repetitions and `host_cpus` free CPUs.
fn v2_inputs(rounds: u32, host_cpus: u32) -> Inputs {
    let mut inputs = inputs("smp-process-scale", Accel::Kvm, rounds, host_cpus);
    inputs.format = "capos-inputs/v2".into();
    inputs.host.available_cpus = Some(host_cpus);
    inputs.statistics = Some(BootstrapPlan::with_seed(0x0123_4567_89ab_cdef));
    let contract = contract::parse(CONTRACT, Path::new("smp-process-scale.yaml")).unwrap();
    for case in contract.spec.cases.iter().filter(|c| c.condition.is_some()) {
        inputs.skipped_cases.push(SkippedCase {
            id: case.id.clone(),
            reason: "not requested".into(),
        });
    }
    inputs
}

/// A bundle of `contract_text` whose run `repetition` of case `id` takes
/// `elapsed(id, repetition)` cycles.
fn bundle_with(
    dir: &Path,
    contract_text: &str,
    inputs: &Inputs,
    elapsed: &dyn Fn(&str, u32) -> u64,
) -> PathBuf {
    let contract = contract::parse(contract_text, Path::new("smp-process-scale.yaml")).unwrap();
    let bundle = dir.join("bundle");
    write_basics(&bundle, contract_text, inputs);
    for case in contract.spec.cases.iter().filter(|c| c.condition.is_none()) {
        for repetition in 1..=inputs.repetitions.count {
            let (lines, exit) =
                passing(case, inputs.free_host_cpus(), elapsed(&case.id, repetition));
            write_run(
                &bundle,
                &case.id,
                repetition,
                &timed(100_000, &lines),
                &exit,
            );
        }
    }
    bundle
}

/// One system's 1/2/4-CPU times, in 1e6 cycles.
type Times = (f64, f64, f64);

/// Per-system 1/2/4-CPU times (in 1e6 cycles) with a small per-run wobble.
fn scaled(one: f64, two: f64, four: f64) -> impl Fn(u32, u32) -> u64 {
    move |cpus, repetition| {
        let base = match cpus {
            1 => one,
            2 => two,
            _ => four,
        };
        let wobble = [1.0, 1.004, 0.997, 1.002, 0.999, 1.001, 0.998][(repetition as usize - 1) % 7];
        (base * wobble * 1_000_000.0) as u64
    }
}

fn cpus_of(id: &str) -> u32 {
    id.trim_start_matches("linux-")
        .trim_start_matches("native-")
        .trim_start_matches("cpus")
        .parse()
        .unwrap()
}

fn system_of(id: &str) -> &'static str {
    if id.starts_with("linux-") {
        "linux"
    } else if id.starts_with("native-") {
        "native"
    } else {
        "capos"
    }
}

fn recompute(bundle: &Path) -> (summary::Recomputed, SummaryDocument) {
    let recomputed = summary::recompute(&BundleFiles::staging(bundle)).unwrap();
    let document = serde_json::from_str(&recomputed.summary_json).unwrap();
    (recomputed, document)
}

fn gate<'a>(document: &'a SummaryDocument, id: &str) -> &'a GateSummary {
    document.gates.iter().find(|gate| gate.id == id).unwrap()
}

/// A bundle where capOS, Linux and native take `capos`, `linux`, `native`
/// (1/2/4-CPU times) on a host with `host_cpus` free CPUs.
fn systems_bundle(
    dir: &Path,
    rounds: u32,
    host_cpus: u32,
    (capos, linux, native): (Times, Times, Times),
) -> PathBuf {
    let times = |(one, two, four): Times| scaled(one, two, four);
    let (capos, linux, native) = (times(capos), times(linux), times(native));
    bundle_with(
        dir,
        CONTRACT,
        &v2_inputs(rounds, host_cpus),
        &|id, repetition| {
            let cpus = cpus_of(id);
            match system_of(id) {
                "linux" => linux(cpus, repetition),
                "native" => native(cpus, repetition),
                _ => capos(cpus, repetition),
            }
        },
    )
}

#[test]
fn every_median_speedup_and_ratio_has_an_interval_around_it() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = systems_bundle(
        dir.path(),
        5,
        4,
        (
            (1000.0, 510.0, 260.0),
            (1000.0, 505.0, 255.0),
            (400.0, 201.0, 101.0),
        ),
    );
    let (_, document) = recompute(&bundle);
    assert_eq!(document.format, "capos-summary/v2");
    for case in document.cases.iter().filter(|case| case.skipped.is_none()) {
        let metric = &case.metrics[0];
        let median = metric.statistics.as_ref().unwrap().median;
        let interval = metric.interval.unwrap();
        assert!(
            interval.lower <= median && median <= interval.upper,
            "{case:?}"
        );
    }
    for speedup in document.speedups.iter().filter(|s| s.value.is_some()) {
        let interval = speedup.interval.unwrap();
        let value = speedup.value.unwrap();
        assert!(
            interval.lower <= value && value <= interval.upper,
            "{speedup:?}"
        );
    }
    assert!(document.ratios.iter().all(|ratio| ratio.interval.is_some()));
    let seed = gate(&document, "seed-speedup-1-2");
    assert_eq!(seed.verdict, GateVerdict::Pass, "{}", seed.detail);
    assert!(seed.detail.contains("95% interval ["), "{}", seed.detail);
    let host = seed.host_capacity.as_ref().unwrap();
    assert_eq!(host.speedup, "native-1-2");
    assert_eq!(host.needed, 1.8);
    assert_eq!(document.claim.level, ClaimLevel::Publishable);
    assert_eq!(
        document.statistics.as_ref().unwrap().seed,
        0x0123_4567_89ab_cdef
    );
}

/// A constant sample gives a zero-width interval, so the boundaries are
/// exact: a speedup of exactly the threshold passes, one a step below fails.
#[test]
fn gate_verdicts_at_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let exact = |capos_two: u64| {
        move |id: &str, _repetition: u32| -> u64 {
            match (system_of(id), cpus_of(id)) {
                ("capos", 1) => 16_000_000,
                ("capos", 2) => capos_two,
                (_, 1) => 10_000_000,
                (_, 2) => 5_000_000,
                _ => 2_500_000,
            }
        }
    };
    let at = bundle_with(
        &dir.path().join("at"),
        CONTRACT,
        &v2_inputs(3, 4),
        &exact(10_000_000),
    );
    let (_, document) = recompute(&at);
    let seed = gate(&document, "seed-speedup-1-2");
    assert_eq!(
        seed.interval,
        Some(Interval {
            lower: 1.6,
            upper: 1.6
        })
    );
    assert_eq!(seed.verdict, GateVerdict::Pass, "{}", seed.detail);

    let below = bundle_with(
        &dir.path().join("below"),
        CONTRACT,
        &v2_inputs(3, 4),
        &exact(10_010_000),
    );
    let (_, document) = recompute(&below);
    let seed = gate(&document, "seed-speedup-1-2");
    assert_eq!(
        seed.interval,
        Some(Interval {
            lower: 1.598,
            upper: 1.598
        })
    );
    assert_eq!(seed.verdict, GateVerdict::Fail, "{}", seed.detail);
    assert!(
        seed.detail.ends_with("lies below the threshold: fail"),
        "{}",
        seed.detail
    );
    assert_eq!(document.claim.level, ClaimLevel::Failed);
}

/// capOS's 1-to-2 times spread around 1.6x: the interval contains the
/// threshold, so the gate is inconclusive, not passed or failed.
#[test]
fn an_interval_containing_the_threshold_is_inconclusive() {
    let dir = tempfile::tempdir().unwrap();
    let spread = [5.2, 7.0, 5.5, 6.8, 6.25];
    let bundle = bundle_with(
        dir.path(),
        CONTRACT,
        &v2_inputs(5, 4),
        &|id, repetition| match (system_of(id), cpus_of(id)) {
            ("capos", 2) => (spread[repetition as usize - 1] * 1_000_000.0) as u64,
            (_, 1) => 10_000_000,
            (_, 2) => 5_000_000,
            _ => 2_500_000,
        },
    );
    let (_, document) = recompute(&bundle);
    let seed = gate(&document, "seed-speedup-1-2");
    assert_eq!(seed.verdict, GateVerdict::Inconclusive, "{}", seed.detail);
    assert_eq!(
        seed.reason,
        Some(InconclusiveReason::IntervalContainsThreshold)
    );
    let interval = seed.interval.unwrap();
    assert!(
        interval.lower < 1.6 && interval.upper >= 1.6,
        "{interval:?}"
    );
    assert_eq!(document.claim.level, ClaimLevel::Inconclusive);
    assert!(document.claim.reason.contains("seed-speedup-1-2"));
    // The signed run log records it as inconclusive, not as failed.
    assert_eq!(
        capos_evidence::proof::history::verdict_of(&document),
        capos_evidence::bundle::runlog::Verdict::Inconclusive
    );
}

/// The native baseline got 1.39x from one CPU to two: a slow capOS is
/// inconclusive because of the host; with a host that delivered 2x the
/// same capOS figures fail.
#[test]
fn a_host_that_cannot_deliver_makes_a_shortfall_inconclusive() {
    let dir = tempfile::tempdir().unwrap();
    let capos = (1000.0, 800.0, 700.0);
    let linux = (1000.0, 790.0, 700.0);
    let limited = systems_bundle(
        &dir.path().join("limited"),
        5,
        2,
        (capos, linux, (400.0, 288.0, 288.0)),
    );
    let (_, document) = recompute(&limited);
    let seed = gate(&document, "seed-speedup-1-2");
    assert_eq!(seed.verdict, GateVerdict::Inconclusive, "{}", seed.detail);
    assert_eq!(seed.reason, Some(InconclusiveReason::HostLimited));
    assert!(
        seed.detail
            .contains("inconclusive: the host delivered 1.389x to a native run (native-1-2), below the 1.800x this gate needs"),
        "{}",
        seed.detail
    );
    assert_eq!(document.claim.level, ClaimLevel::Inconclusive);

    let capable = systems_bundle(
        &dir.path().join("capable"),
        5,
        2,
        (capos, linux, (400.0, 200.0, 200.0)),
    );
    let (_, document) = recompute(&capable);
    let seed = gate(&document, "seed-speedup-1-2");
    assert_eq!(seed.verdict, GateVerdict::Fail, "{}", seed.detail);
    assert_eq!(document.claim.level, ClaimLevel::Failed);
}

/// A gate on 4-CPU cases, on a host with 2 free CPUs, that does not pass
/// is inconclusive (oversubscribed), not failed.
#[test]
fn an_oversubscribed_gate_is_inconclusive() {
    let dir = tempfile::tempdir().unwrap();
    let text = CONTRACT.replace(
        "  - id: linux-relative-1-2\n",
        "  - {id: four, description: 1-to-4 at least 3x, kind: speedup_at_least, speedup: capos-1-4, threshold: 3.0}\n  - id: linux-relative-1-2\n",
    );
    let times = scaled(1000.0, 505.0, 510.0);
    let bundle = bundle_with(dir.path(), &text, &v2_inputs(3, 2), &|id, repetition| {
        times(cpus_of(id), repetition)
    });
    let (_, document) = recompute(&bundle);
    let four = gate(&document, "four");
    assert_eq!(four.verdict, GateVerdict::Inconclusive, "{}", four.detail);
    assert_eq!(four.reason, Some(InconclusiveReason::Oversubscribed));
    assert!(four
        .detail
        .contains("case cpus4 runs 4 virtual CPUs on 2 free host CPUs"));
    assert_eq!(
        gate(&document, "seed-speedup-1-2").verdict,
        GateVerdict::Pass
    );
}

/// An opt-in gate is judged and shown, but decides the claim only when
/// its variable was 1.
#[test]
fn an_opt_in_gate_counts_only_when_requested() {
    let dir = tempfile::tempdir().unwrap();
    let text = CONTRACT.replace(
        "    speedup: capos-1-2\n    threshold: 1.6\n",
        "    speedup: capos-1-2\n    threshold: 1.6\n    opt_in_env: CAPOS_TEST_REQUIRE\n",
    );
    let times = scaled(1000.0, 800.0, 700.0);
    let native = scaled(400.0, 200.0, 200.0);
    let elapsed = |id: &str, repetition: u32| match system_of(id) {
        "native" => native(cpus_of(id), repetition),
        _ => times(cpus_of(id), repetition),
    };
    let bundle = bundle_with(&dir.path().join("off"), &text, &v2_inputs(3, 4), &elapsed);
    let (_, document) = recompute(&bundle);
    let seed = gate(&document, "seed-speedup-1-2");
    assert_eq!((seed.verdict, seed.required), (GateVerdict::Fail, false));
    assert!(
        seed.detail.contains("set CAPOS_TEST_REQUIRE=1"),
        "{}",
        seed.detail
    );
    assert_ne!(document.claim.level, ClaimLevel::Failed);

    let mut inputs = v2_inputs(3, 4);
    inputs
        .environment
        .insert("CAPOS_TEST_REQUIRE".into(), "1".into());
    let bundle = bundle_with(&dir.path().join("on"), &text, &inputs, &elapsed);
    let (_, document) = recompute(&bundle);
    assert!(gate(&document, "seed-speedup-1-2").required);
    assert_eq!(document.claim.level, ClaimLevel::Failed);
}

/// Recomputation gives the same bytes every time, a v2 bundle without its
/// bootstrap plan is refused, and a sealed bundle whose summary states
/// another interval bound fails `verify`.
#[test]
fn verify_recomputes_the_intervals_and_refuses_a_tampered_one() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = systems_bundle(
        &dir.path().join("staging"),
        4,
        4,
        (
            (1000.0, 510.0, 260.0),
            (1000.0, 505.0, 255.0),
            (400.0, 201.0, 101.0),
        ),
    );
    let (first, document) = recompute(&bundle);
    assert_eq!(recompute(&bundle).0, first);

    let mut unplanned = v2_inputs(4, 4);
    unplanned.statistics = None;
    write_basics(&bundle, CONTRACT, &unplanned);
    let error = format!(
        "{:#}",
        summary::recompute(&BundleFiles::staging(&bundle)).unwrap_err()
    );
    assert!(error.contains("requires `statistics`"), "{error}");
    write_basics(&bundle, CONTRACT, &v2_inputs(4, 4));

    let interval = document.speedups[0].interval.unwrap();
    let stored = format!("\"upper\": {}", interval.upper);
    assert!(first.summary_json.contains(&stored));
    for (name, summary_json, valid) in [
        ("honest", first.summary_json.clone(), true),
        (
            "tampered",
            first.summary_json.replacen(
                &stored,
                &format!("\"upper\": {}", interval.upper + 0.5),
                1,
            ),
            false,
        ),
    ] {
        let store = dir.path().join(name);
        let writer = BundleWriter::create(&store).unwrap();
        copy_tree(&bundle, writer.root());
        std::fs::write(writer.root().join("results.csv"), &first.results_csv).unwrap();
        std::fs::write(writer.root().join("summary.json"), summary_json).unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let sealed = writer.seal(&key, &run_facts(name)).unwrap();
        let result = verify_bundle(&sealed, &key.verifying_key(), Default::default());
        match (valid, result) {
            (true, Ok(_)) => {}
            (false, Err(error)) => {
                let message = format!("{error:#}");
                assert!(
                    message.contains("summary.json") && message.contains("recomputed"),
                    "{message}"
                );
            }
            (valid, result) => panic!("{name}: valid={valid} but {:?}", result.err()),
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Adaptive rounds: the stopping rule is replayed from the raw logs. Steady
/// figures stop at the minimum; a bundle that ran on after the rule said
/// stop, or stopped while it said continue, is refused.
#[test]
fn adaptive_rounds_follow_their_recorded_rule() {
    let dir = tempfile::tempdir().unwrap();
    let rule = StoppingRule {
        min_rounds: 3,
        max_rounds: 6,
        target_relative_width: 0.05,
    };
    let steady = (
        (1000.0, 510.0, 260.0),
        (1000.0, 505.0, 255.0),
        (400.0, 201.0, 101.0),
    );
    let adaptive = |rounds: u32| {
        let mut inputs = v2_inputs(rounds, 4);
        inputs.repetitions.adaptive = Some(rule.clone());
        inputs
    };
    let write = |name: &str, inputs: &Inputs, times: &dyn Fn(&str, u32) -> u64| {
        bundle_with(&dir.path().join(name), CONTRACT, inputs, times)
    };
    let steady_times = |id: &str, repetition: u32| {
        let (capos, linux, native) = steady;
        let pick = match system_of(id) {
            "linux" => linux,
            "native" => native,
            _ => capos,
        };
        scaled(pick.0, pick.1, pick.2)(cpus_of(id), repetition)
    };
    let stopped = write("three", &adaptive(3), &steady_times);
    let (_, document) = recompute(&stopped);
    let record = document.adaptive.unwrap();
    assert_eq!(
        (record.rounds, record.stopped),
        (3, Decision::TargetReached)
    );
    assert_eq!(record.widths.len(), 2, "{:?}", record.widths);

    let ran_on = write("four", &adaptive(4), &steady_times);
    let error = format!(
        "{:#}",
        summary::recompute(&BundleFiles::staging(&ran_on)).unwrap_err()
    );
    assert!(
        error.contains("said stop (TargetReached) after round 3"),
        "{error}"
    );

    // Noisy capOS at -smp 2: never narrow, so only the cap may stop it.
    let noisy = |id: &str, repetition: u32| match (system_of(id), cpus_of(id)) {
        ("capos", 2) => [500, 620, 540, 700, 480, 650][repetition as usize - 1] * 1_000_000,
        _ => steady_times(id, repetition),
    };
    let early = write("early", &adaptive(4), &noisy);
    let error = format!(
        "{:#}",
        summary::recompute(&BundleFiles::staging(&early)).unwrap_err()
    );
    assert!(error.contains("the rule says continue"), "{error}");
    let capped = write("capped", &adaptive(6), &noisy);
    let (_, document) = recompute(&capped);
    assert_eq!(document.adaptive.unwrap().stopped, Decision::CapReached);
}

/// Format v2 is frozen like v1: every v2 sentence (each judgement outcome,
/// the inconclusive and oversubscribed claim reasons) and every interval
/// bound (the SplitMix64 stream, the percentile rule, the labels) must
/// recompute to the bytes in `tests/frozen/v2/`. `CAPOS_BLESS=1` rewrites
/// them; only ever do that for a new format version.
#[test]
fn v2_outputs_are_frozen() {
    let dir = tempfile::tempdir().unwrap();
    let steady = (1000.0, 510.0, 260.0);
    let passing = systems_bundle(
        &dir.path().join("pass"),
        5,
        4,
        (steady, steady, (400.0, 201.0, 101.0)),
    );
    check_frozen_in("v2", "scale-pass", &passing);
    let limited = systems_bundle(
        &dir.path().join("limited"),
        5,
        2,
        (
            (1000.0, 800.0, 700.0),
            (1000.0, 790.0, 700.0),
            (400.0, 288.0, 288.0),
        ),
    );
    check_frozen_in("v2", "scale-host-limited", &limited);
    let capable = systems_bundle(
        &dir.path().join("capable"),
        5,
        2,
        (
            (1000.0, 800.0, 700.0),
            (1000.0, 790.0, 700.0),
            (400.0, 200.0, 200.0),
        ),
    );
    check_frozen_in("v2", "scale-below", &capable);
    let spread = [5.2, 7.0, 5.5, 6.8, 6.25];
    let straddling = bundle_with(
        &dir.path().join("straddle"),
        CONTRACT,
        &v2_inputs(5, 4),
        &|id, repetition| match (system_of(id), cpus_of(id)) {
            ("capos", 2) => (spread[repetition as usize - 1] * 1_000_000.0) as u64,
            (_, 1) => 10_000_000,
            (_, 2) => 5_000_000,
            _ => 2_500_000,
        },
    );
    check_frozen_in("v2", "scale-straddle", &straddling);
    let text = CONTRACT.replace(
        "  - id: linux-relative-1-2\n",
        "  - {id: four, description: 1-to-4 at least 3x, kind: speedup_at_least, speedup: capos-1-4, threshold: 3.0}\n  - id: linux-relative-1-2\n",
    );
    let times = scaled(1000.0, 505.0, 510.0);
    let oversubscribed = bundle_with(
        &dir.path().join("over"),
        &text,
        &v2_inputs(3, 2),
        &|id, repetition| times(cpus_of(id), repetition),
    );
    check_frozen_in("v2", "scale-oversubscribed", &oversubscribed);
}

/// The report of a v2 bundle shows every interval, the verdict with its
/// reason, the host's native figure, the method and seed, and bars.
#[test]
fn the_report_shows_intervals_verdicts_and_the_host() {
    use capos_evidence::proof::report::{self, BundleFacts, Templates};
    let dir = tempfile::tempdir().unwrap();
    let bundle = systems_bundle(
        dir.path(),
        5,
        2,
        (
            (1000.0, 800.0, 700.0),
            (1000.0, 790.0, 700.0),
            (400.0, 288.0, 288.0),
        ),
    );
    let recomputed = summary::recompute(&BundleFiles::staging(&bundle)).unwrap();
    std::fs::write(bundle.join("results.csv"), recomputed.results_csv).unwrap();
    std::fs::write(bundle.join("summary.json"), recomputed.summary_json).unwrap();
    let facts = BundleFacts {
        name: "e".repeat(64),
        key_id: "test-key".into(),
        files: 1,
        link_prefix: None,
        tool: Default::default(),
        history: capos_evidence::proof::history::UNKNOWN_ARCHIVE.to_owned(),
    };
    let rendered = report::render(
        &Templates::builtin(),
        &BundleFiles::staging(&bundle),
        &facts,
    )
    .unwrap();
    let markdown = &rendered.markdown;
    for expected in [
        "**Claim level: INCONCLUSIVE**",
        "### Confidence",
        "seed\n`0x0123456789abcdef`",
        r"| seed-speedup-1-2 | **inconclusive** (host-limited) | 1.6 | 1.25 | \[1.244, 1.256\] | native-1-2 1.389x",
        "2 logical CPUs, 2 available to the run",
    ] {
        assert!(
            markdown.contains(expected),
            "{expected:?} missing:\n{markdown}"
        );
    }
    assert!(rendered.html.contains("class=\"inconclusive\""));
    let chart = &rendered.charts[0];
    assert!(chart.1.contains("(bars: 95% interval)"), "{}", chart.1);
}
