//! Strict judging of runs and the summary built from them, on synthetic logs:
//! a run passes only with exactly one well-formed result line whose fields
//! match the case, and the summary is the same bytes every time.

mod contract_support;

use capos_evidence::bundle::files::BundleFiles;
use capos_evidence::guest::qemu::Accel;
use capos_evidence::proof::summary::{self, ClaimLevel, ExitRecord, GateVerdict, SerialLine};
use contract_support::*;

fn judge_smp(cpus: u32, lines: Vec<String>, exit: &ExitRecord) -> summary::RunRecord {
    let contract = smp_boot();
    let case = contract
        .spec
        .cases
        .iter()
        .position(|case| case.cpus == cpus)
        .unwrap();
    summary::judge_run(
        &contract,
        case,
        1,
        &timed(100_000, &lines),
        exit,
        summary::wording::Wording::CURRENT,
    )
}

fn replace_line(lines: &mut [String], prefix: &str, replacement: &str) {
    let line = lines
        .iter_mut()
        .find(|line| line.starts_with(prefix))
        .unwrap();
    *line = replacement.to_string();
}

#[test]
fn correct_run_passes_with_fields_and_metric() {
    let run = judge_smp(2, smp_boot_lines(2), &PASS_EXIT);
    assert!(run.passed(), "{:?}", run.problems);
    assert_eq!(run.fields[1].as_ref().unwrap().to_string(), "2");
    // "[smp] online=2" is the 4th line: 100 ms + 3 * 1 ms.
    assert_eq!(run.metrics, vec![Some(103.0)]);
}

#[test]
fn missing_result_line_fails_the_run() {
    let mut lines = smp_boot_lines(2);
    lines.pop();
    let run = judge_smp(2, lines, &PASS_EXIT);
    assert!(!run.passed());
    assert!(
        run.problems
            .iter()
            .any(|p| p.contains("result line missing")),
        "{:?}",
        run.problems
    );
    assert!(run.fields.iter().all(Option::is_none));
}

#[test]
fn duplicated_result_line_fails_the_run() {
    let mut lines = smp_boot_lines(2);
    lines.push(lines.last().unwrap().clone());
    let run = judge_smp(2, lines, &PASS_EXIT);
    assert!(
        run.problems
            .iter()
            .any(|p| p.contains("result line duplicated")),
        "{:?}",
        run.problems
    );
}

#[test]
fn a_result_line_not_at_the_line_start_is_not_one() {
    // What a user process printing the result text would produce: the
    // kernel frames it, so it no longer starts with the prefix.
    let forged =
        "[u:evil] [smp-boot] cpus=2 online=2 ipi_acks=1 min_ticks=12 lapic_hz=1000 verified=true";
    let mut lines = smp_boot_lines(2);
    replace_line(&mut lines, "[smp-boot]", forged);
    let run = judge_smp(2, lines, &PASS_EXIT);
    assert!(
        run.problems
            .iter()
            .any(|p| p.contains("result line missing")),
        "{:?}",
        run.problems
    );
}

#[test]
fn malformed_result_line_fails_the_run() {
    for bad in [
        "[smp-boot] cpus=2 online=2 ipi_acks=1 min_ticks=12 lapic_hz=1000 verified=yes",
        "[smp-boot] cpus=2 online=2 ipi_acks=1 min_ticks=12 lapic_hz=1000",
        "[smp-boot] cpus=2 online=2 ipi_acks=1 min_ticks=12 lapic_hz=1000 verified=true trailing",
        "[smp-boot] cpus=2 online=99999999999999999999 ipi_acks=1 min_ticks=12 lapic_hz=1000 verified=true",
    ] {
        let mut lines = smp_boot_lines(2);
        replace_line(&mut lines, "[smp-boot]", bad);
        let run = judge_smp(2, lines, &PASS_EXIT);
        assert!(
            run.problems.iter().any(|p| p.contains("malformed result line")),
            "{bad}: {:?}",
            run.problems
        );
    }
}

#[test]
fn a_result_line_must_start_the_serial_line() {
    let mut lines = smp_boot_lines(2);
    replace_line(
        &mut lines,
        "[smp-boot]",
        "garbage [smp-boot] cpus=2 online=2 ipi_acks=1 min_ticks=12 lapic_hz=1000 verified=true",
    );
    let run = judge_smp(2, lines, &PASS_EXIT);
    assert!(
        run.problems
            .iter()
            .any(|p| p.contains("result line missing")),
        "{:?}",
        run.problems
    );
}

#[test]
fn field_mismatch_fails_the_run() {
    let mut lines = smp_boot_lines(2);
    replace_line(
        &mut lines,
        "[smp-boot]",
        "[smp-boot] cpus=2 online=1 ipi_acks=1 min_ticks=12 lapic_hz=1000 verified=true",
    );
    let run = judge_smp(2, lines, &PASS_EXIT);
    assert!(
        run.problems
            .iter()
            .any(|p| p.contains("field online = 1") && p.contains("case.cpus = 2")),
        "{:?}",
        run.problems
    );
    let mut lines = smp_boot_lines(4);
    replace_line(
        &mut lines,
        "[smp-boot]",
        "[smp-boot] cpus=4 online=4 ipi_acks=4 min_ticks=0 lapic_hz=1000 verified=false",
    );
    let run = judge_smp(4, lines, &PASS_EXIT);
    let text = run.problems.join("\n");
    assert!(
        text.contains("field ipi_acks = 4, but the contract requires case.cpus - 1 = 3"),
        "{text}"
    );
    assert!(
        text.contains("min_ticks = 0, but the contract requires at least 1"),
        "{text}"
    );
    assert!(text.contains("field verified = false"), "{text}");
}

#[test]
fn per_cpu_lines_must_agree_with_the_result_line() {
    let lines: Vec<String> = smp_boot_lines(4)
        .into_iter()
        .filter(|line| line != "[ipi] cpu=3 ping=ack")
        .collect();
    let run = judge_smp(4, lines, &PASS_EXIT);
    assert!(
        run.problems
            .iter()
            .any(|p| p.contains("case.cpus - 1 = 3 lines matching") && p.contains("found 2")),
        "{:?}",
        run.problems
    );
}

#[test]
fn exit_status_decides_too() {
    let timeout = ExitRecord {
        exit_code: None,
        timed_out: true,
        wall_ms: 60_000,
        pinned_cpus: None,
    };
    let run = judge_smp(1, smp_boot_lines(1), &timeout);
    assert!(run.problems.iter().any(|p| p.contains("timed out")));
    let failure = ExitRecord {
        exit_code: Some(35),
        timed_out: false,
        wall_ms: 100,
        pinned_cpus: None,
    };
    let run = judge_smp(1, smp_boot_lines(1), &failure);
    assert!(run
        .problems
        .iter()
        .any(|p| p.contains("guest reported failure")));
    let reset = ExitRecord {
        exit_code: Some(0),
        timed_out: false,
        wall_ms: 100,
        pinned_cpus: None,
    };
    assert!(!judge_smp(1, smp_boot_lines(1), &reset).passed());
}

#[test]
fn missing_metric_line_fails_the_run() {
    let lines: Vec<String> = smp_boot_lines(1)
        .into_iter()
        .filter(|line| !line.starts_with("[smp] online="))
        .collect();
    let run = judge_smp(1, lines, &PASS_EXIT);
    assert!(run
        .problems
        .iter()
        .any(|p| p.contains("metric online_ms: no line matches")));
    assert_eq!(run.metrics, vec![None]);
}

#[test]
fn timed_log_format_is_strict() {
    let path = "serial.timed.log";
    assert_eq!(
        summary::parse_timed_log("12 a\n13 \n", path).unwrap(),
        vec![
            SerialLine {
                arrival_micros: 12,
                text: "a".into()
            },
            SerialLine {
                arrival_micros: 13,
                text: String::new()
            },
        ]
    );
    for bad in ["x a\n", "12\n", "-1 a\n", "+1 a\n", "12 a"] {
        assert!(summary::parse_timed_log(bad, path).is_err(), "{bad:?}");
    }
}

#[test]
fn altered_timed_log_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    smp_boot_bundle(&bundle, Accel::Tcg);
    let timed = bundle.join("logs/cpus2/2/serial.timed.log");
    let text = std::fs::read_to_string(&timed).unwrap();
    std::fs::write(
        &timed,
        text.replace("online=2 ipi_acks", "online=3 ipi_acks"),
    )
    .unwrap();
    let message = format!(
        "{:#}",
        summary::recompute(&BundleFiles::staging(&bundle)).unwrap_err()
    );
    assert!(
        message.contains("logs/cpus2/2/serial.timed.log"),
        "{message}"
    );
    assert!(message.contains("differs from serial.log"), "{message}");
}

#[test]
fn extra_or_missing_run_directories_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    smp_boot_bundle(&bundle, Accel::Tcg);
    std::fs::remove_dir_all(bundle.join("logs/cpus4/3")).unwrap();
    let message = format!(
        "{:#}",
        summary::recompute(&BundleFiles::staging(&bundle)).unwrap_err()
    );
    assert!(message.contains("logs/cpus4"), "{message}");
    assert!(message.contains("3 repetitions"), "{message}");
}

#[test]
fn recompute_is_byte_identical_and_matches_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    smp_boot_bundle(&bundle, Accel::Tcg);
    let first = summary::recompute(&BundleFiles::staging(&bundle)).unwrap();
    let second = summary::recompute(&BundleFiles::staging(&bundle)).unwrap();
    assert_eq!(first, second);

    let csv: Vec<&str> = first.results_csv.lines().collect();
    assert_eq!(
        csv[0],
        "case,repetition,case_cpus,case_workers,verdict,cpus,online,ipi_acks,min_ticks,lapic_hz,verified,online_ms,problems"
    );
    assert_eq!(csv.len(), 1 + 9);
    assert!(
        csv[1].starts_with("cpus1,1,1,,pass,1,1,0,12,1000000000,true,"),
        "{}",
        csv[1]
    );

    // A changed raw byte changes the figures.
    let path = bundle.join("logs/cpus1/1/serial.timed.log");
    let text = std::fs::read_to_string(&path).unwrap();
    let changed: String = text
        .lines()
        .map(|line| {
            let (micros, rest) = line.split_once(' ').unwrap();
            format!("{} {rest}\n", micros.parse::<u64>().unwrap() + 5_000)
        })
        .collect();
    std::fs::write(&path, changed).unwrap();
    assert_ne!(
        summary::recompute(&BundleFiles::staging(&bundle))
            .unwrap()
            .summary_json,
        first.summary_json
    );
}

#[test]
fn smp_boot_summary_is_publishable_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    smp_boot_bundle(&bundle, Accel::Tcg);
    let summary = read_summary(&bundle);
    assert_eq!(summary.contract, "smp-boot");
    assert_eq!(summary.runs.total, 9);
    assert_eq!(summary.runs.failed, 0);
    assert!(summary
        .gates
        .iter()
        .all(|gate| gate.verdict == GateVerdict::Pass));
    assert_eq!(summary.claim.level, ClaimLevel::Publishable);
    assert!(
        summary.claim.reason.contains("accepts any accelerator"),
        "{}",
        summary.claim.reason
    );
    // cpus4 starts at 340 ms; median of reps 1..3 is rep 2 (+2.468 ms), online is line 6 (+5 ms).
    assert_eq!(summary.median("cpus4", "online_ms"), Some(347.468));
    assert!(summary
        .notes
        .iter()
        .any(|note| note.contains("case cpus4 runs 4 virtual CPUs on a host with 2")));
}

#[test]
fn one_bad_run_fails_the_claim_but_keeps_figures_from_passing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    smp_boot_bundle(&bundle, Accel::Tcg);
    let mut lines = smp_boot_lines(2);
    replace_line(
        &mut lines,
        "[smp-boot]",
        "[smp-boot] cpus=2 online=1 ipi_acks=1 min_ticks=12 lapic_hz=1000 verified=true",
    );
    write_run(&bundle, "cpus2", 3, &timed(100_000, &lines), &PASS_EXIT);
    finish_bundle(&bundle);
    let summary = read_summary(&bundle);
    assert_eq!(summary.runs.failed, 1);
    assert_eq!(summary.claim.level, ClaimLevel::Failed);
    let gate = |id: &str| {
        summary
            .gates
            .iter()
            .find(|gate| gate.id == id)
            .unwrap()
            .clone()
    };
    assert_eq!(gate("all-runs-pass").verdict, GateVerdict::Fail);
    assert_eq!(gate("online-equals-cpus").verdict, GateVerdict::Fail);
    assert_eq!(
        gate("online-equals-cpus").detail,
        "online equalled case.cpus in 8 of 9 runs"
    );
    assert_eq!(summary.failures[0].logs, "logs/cpus2/3");
    let cpus2 = summary
        .cases
        .iter()
        .find(|case| case.id == "cpus2")
        .unwrap();
    assert_eq!(cpus2.metrics[0].statistics.as_ref().unwrap().n, 2);
    let csv = std::fs::read_to_string(bundle.join("results.csv")).unwrap();
    assert!(csv.contains("cpus2,3,2,,fail,"), "{csv}");
}

#[test]
fn speedup_gate_passes_under_kvm_and_is_diagnostic_under_tcg() {
    let dir = tempfile::tempdir().unwrap();
    let kvm = dir.path().join("kvm");
    scale_bundle(
        &kvm,
        Accel::Kvm,
        &[2_000_000, 2_100_000, 1_900_000],
        &[1_050_000, 1_000_000, 1_200_000],
    );
    let summary = read_summary(&kvm);
    assert_eq!(summary.speedups[0].value, Some(1.905));
    assert_eq!(summary.speedups[0].ideal, 2.0);
    let gate = summary
        .gates
        .iter()
        .find(|gate| gate.id == "speedup-1-to-2")
        .unwrap();
    assert_eq!(
        (gate.verdict, gate.value, gate.threshold),
        (GateVerdict::Pass, Some(1.905), Some(1.6))
    );
    assert_eq!(summary.claim.level, ClaimLevel::Publishable);

    let tcg = dir.path().join("tcg");
    scale_bundle(
        &tcg,
        Accel::Tcg,
        &[2_000_000, 2_100_000, 1_900_000],
        &[1_050_000, 1_000_000, 1_200_000],
    );
    let summary = read_summary(&tcg);
    assert_eq!(summary.claim.level, ClaimLevel::Diagnostic);
    assert!(
        summary.claim.reason.contains("publishable only under KVM"),
        "{}",
        summary.claim.reason
    );
    assert!(
        summary.claim.reason.contains("tcg"),
        "{}",
        summary.claim.reason
    );
}

#[test]
fn speedup_below_threshold_fails_the_claim() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    scale_bundle(
        &bundle,
        Accel::Kvm,
        &[2_000_000, 2_000_000, 2_000_000],
        &[1_300_000, 1_250_000, 1_260_000],
    );
    let summary = read_summary(&bundle);
    let gate = summary
        .gates
        .iter()
        .find(|gate| gate.id == "speedup-1-to-2")
        .unwrap();
    assert_eq!(gate.verdict, GateVerdict::Fail);
    assert_eq!(gate.value, Some(1.587));
    assert_eq!(summary.claim.level, ClaimLevel::Failed);
    assert!(summary.claim.reason.contains("speedup-1-to-2"));
}

#[test]
fn hex_and_workers_fields_are_checked() {
    let contract = scale_contract();
    let mut lines = scale_lines(2, 1000);
    lines[1] = lines[1]
        .replace("checksum=beef", "checksum=beee")
        .replace("workers=2", "workers=1");
    let run = summary::judge_run(
        &contract,
        1,
        1,
        &timed(0, &lines),
        &PASS_EXIT,
        summary::wording::Wording::CURRENT,
    );
    let text = run.problems.join("\n");
    assert!(
        text.contains("field checksum = 0xbeee, but the contract requires 0xbeef"),
        "{text}"
    );
    assert!(
        text.contains("field workers = 1, but the contract requires case.workers = 2"),
        "{text}"
    );
}
