//! Guest measurement in bundles (kernel feature `measure`): a measuring
//! kernel's capOS runs fail closed without one well-formed `[measure]`
//! block, `measure.log` must be exactly the serial log's `[measure]`
//! lines, and the report shows the per-phase medians and top symbols.

mod contract_support;

use capos_evidence::bundle::files::BundleFiles;
use capos_evidence::guest::qemu::Accel;
use capos_evidence::proof::measure::{self, SymbolTable};
use capos_evidence::proof::report::{self, BundleFacts, Templates};
use capos_evidence::proof::summary;
use capos_kcore::measure::{Counter, Counters, Phase, PhaseLine};
use contract_support::*;
use std::path::Path;

/// A `[measure]` block whose phases count 1, 2 and 3 times `scale`.
fn block(scale: u64) -> Vec<String> {
    let phase = |phase, value: u64| {
        PhaseLine {
            phase,
            counters: Counters([value * scale; Counter::COUNT]),
        }
        .to_string()
    };
    vec![
        phase(Phase::SpawnReady, 1),
        phase(Phase::Work, 2),
        phase(Phase::Shutdown, 3),
        phase(Phase::Total, 6),
        "[measure] pc=0x401010 samples=30".into(),
        "[measure] pc=0x401234 samples=10".into(),
        "[measure] pc_samples total=50 dropped=0".into(),
    ]
}

fn symbols() -> SymbolTable {
    SymbolTable::new(
        vec![(0x401000, "hash_chunks".into()), (0x401200, "spin".into())],
        vec![(0x401000, 0x402000)],
    )
}

/// A prime-scale bundle of a measuring kernel, two runs per case; `edit`
/// may change a run's `[measure]` lines (by case and repetition).
fn measured_bundle(bundle: &Path, edit: &dyn Fn(&str, u32, &mut Vec<String>)) {
    let mut inputs = inputs("prime-scale", Accel::Tcg, 2, 2);
    inputs.kernel_features = vec!["measure".into()];
    write_basics(bundle, SCALE_CONTRACT, &inputs);
    for (case, cpus) in [("cpus1", 1), ("cpus2", 2)] {
        for repetition in 1..=2 {
            let mut lines = scale_lines(cpus, 1000 * u64::from(cpus));
            let mut measured = block(u64::from(repetition) * u64::from(cpus));
            edit(case, repetition, &mut measured);
            lines.extend(measured);
            write_run(
                bundle,
                case,
                repetition,
                &timed(400_000, &lines),
                &PASS_EXIT,
            );
            let dir = bundle.join(summary::run_log_path(case, repetition));
            let texts = lines.iter().map(String::as_str);
            std::fs::write(
                dir.join(measure::MEASURE_FILE),
                measure::measure_log_text(texts.clone()),
            )
            .unwrap();
            if let Ok(parsed) = measure::parse_block(&measure::measure_lines(texts)) {
                let text = measure::render_symbols(&parsed, "prime-scale", "ab", &symbols());
                std::fs::write(dir.join(measure::SYMBOLS_FILE), text).unwrap();
            }
        }
    }
}

#[test]
fn good_blocks_pass_and_the_report_shows_the_phase_table() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    measured_bundle(&bundle, &|_, _, _| {});
    finish_bundle(&bundle);
    let stored = read_summary(&bundle);
    assert_eq!(stored.runs.failed, 0, "{:?}", stored.failures);
    let facts = BundleFacts {
        name: "f".repeat(64),
        key_id: "test-key".into(),
        files: 1,
        link_prefix: Some("../../bundle/".into()),
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
    assert!(
        markdown.contains("| Kernel features | **measure**"),
        "{markdown}"
    );
    assert!(markdown.contains("## Guest measurement"), "{markdown}");
    assert!(markdown.contains("### Case cpus2 (2 runs)"), "{markdown}");
    assert!(
        markdown.contains("| Counter | spawn_ready | work | shutdown | total |\n|---|---|---|---|---|\n| rq_lock | 3 | 6 | 9 | 18 |\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| serial_bytes | 1.5 | 3 | 4.5 | 9 |\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| `hash_chunks` | 60 | 60.0% |\n| `spin` | 20 | 20.0% |\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains("[user-pc-symbols.log](../../bundle/logs/cpus1/1/user-pc-symbols.log)"),
        "{markdown}"
    );
    assert!(rendered.html.contains("<h2>Guest measurement</h2>"));
    assert!(rendered.html.contains("<td>rq_hold_cycles</td>"));
}

#[test]
fn a_missing_or_malformed_block_fails_the_run_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    measured_bundle(
        &bundle,
        &|case, repetition, lines| match (case, repetition) {
            ("cpus1", 2) => lines.clear(),
            ("cpus2", 1) => lines[1] = lines[1].replace("picks=4 ", "picks=x "),
            ("cpus2", 2) => {
                lines.remove(3);
            }
            _ => {}
        },
    );
    finish_bundle(&bundle);
    let stored = read_summary(&bundle);
    assert_eq!(stored.runs.failed, 3);
    let problems = |case: &str, repetition: u32| {
        stored
            .failures
            .iter()
            .find(|failure| failure.case == case && failure.repetition == repetition)
            .map(|failure| failure.problems.join("; "))
            .unwrap_or_default()
    };
    assert_eq!(
        problems("cpus1", 2),
        "guest measurement (kernel feature measure): no `[measure]` lines in the serial log (the kernel prints them at the last phase mark)"
    );
    assert!(
        problems("cpus2", 1).contains("serial line 4: field `picks` is not a number"),
        "{}",
        problems("cpus2", 1)
    );
    assert!(
        problems("cpus2", 2).contains("expected the `phase=total` line"),
        "{}",
        problems("cpus2", 2)
    );
}

#[test]
fn an_altered_measure_log_is_caught_on_recomputation() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    measured_bundle(&bundle, &|_, _, _| {});
    let log = bundle.join("logs/cpus2/1").join(measure::MEASURE_FILE);
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, text.replace("samples=30", "samples=31")).unwrap();
    let error = summary::recompute(&BundleFiles::staging(&bundle)).unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("logs/cpus2/1/measure.log: line 5 differs from serial.log"),
        "{message}"
    );
}

/// From format v2 on, a bundle of a measuring kernel is never publishable,
/// even when every run and gate passed under KVM (v1 bundles keep their
/// recorded judgement).
#[test]
fn a_measuring_kernel_is_never_publishable() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    measured_bundle(&bundle, &|_, _, _| {});
    // The runs take 1000 and 2000 cycles: a gate of 0.4x passes.
    let contract = SCALE_CONTRACT.replace("threshold: 1.6}", "threshold: 0.4}");
    let mut recorded = inputs("prime-scale", Accel::Kvm, 2, 2);
    recorded.kernel_features = vec!["measure".into()];
    write_basics(&bundle, &contract, &recorded);
    finish_bundle(&bundle);
    assert_eq!(
        read_summary(&bundle).claim.level,
        summary::ClaimLevel::Publishable,
        "v1 judged the claim without the kernel's features"
    );
    recorded.format = "capos-inputs/v2".into();
    recorded.statistics = Some(capos_evidence::proof::bootstrap::BootstrapPlan::with_seed(
        1,
    ));
    write_basics(&bundle, &contract, &recorded);
    finish_bundle(&bundle);
    let claim = read_summary(&bundle).claim;
    assert_eq!(claim.level, summary::ClaimLevel::Diagnostic);
    assert!(claim.reason.contains("measure feature"), "{}", claim.reason);
}
