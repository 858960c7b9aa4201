//! Bundle format v1 is frozen: recomputing these synthetic v1 bundles must
//! give, byte for byte, the `results.csv` and `summary.json` stored under
//! `tests/frozen/v1/`. They cover every failure sentence, gate detail, note
//! and claim level a v1 summary can hold, so rewording any of them (which
//! would make every older bundle fail `capos verify`) fails here instead.
//! New wording belongs to a new format version (`proof::summary::wording`).
//!
//! `CAPOS_BLESS=1 cargo test --test frozen_wording` rewrites the files; only
//! ever do that for a new format version's directory.

mod contract_support;

use capos_evidence::bundle::files::BundleFiles;
use capos_evidence::guest::qemu::Accel;
use capos_evidence::proof::summary::{self, ExitRecord};
use contract_support::*;

fn exit(code: Option<i32>, timed_out: bool) -> ExitRecord {
    ExitRecord {
        exit_code: code,
        timed_out,
        wall_ms: 1000,
        pinned_cpus: None,
    }
}

/// Every run problem a v1 summary can record, on the smp-boot contract.
#[test]
fn failing_smp_boot_runs() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let contract = smp_boot();
    write_basics(
        &bundle,
        &contract.text,
        &inputs("smp-boot", Accel::Kvm, 3, 2),
    );
    let pass = exit(Some(33), false);
    let with = |cpus: u32, edit: &dyn Fn(&mut Vec<String>)| {
        let mut lines = smp_boot_lines(cpus);
        edit(&mut lines);
        timed(400_000, &lines)
    };
    let result_index = |lines: &Vec<String>| lines.len() - 1;
    // cpus1: a pass, a timeout, an unparsable field.
    write_run(&bundle, "cpus1", 1, &with(1, &|_| {}), &pass);
    write_run(&bundle, "cpus1", 2, &with(1, &|_| {}), &exit(None, true));
    write_run(
        &bundle,
        "cpus1",
        3,
        &with(1, &|lines| {
            let last = result_index(lines);
            lines[last] = lines[last].replace("cpus=1", "cpus=99999999999999999999999");
        }),
        &pass,
    );
    // cpus2: a missing IPI line with a field that disagrees and a guest
    // failure; no result line, no metric line and a killed QEMU; a pass.
    write_run(
        &bundle,
        "cpus2",
        1,
        &with(2, &|lines| {
            lines.retain(|line| !line.starts_with("[ipi]"));
            let last = result_index(lines);
            lines[last] = lines[last].replace("ipi_acks=1", "ipi_acks=0");
        }),
        &exit(Some(35), false),
    );
    write_run(
        &bundle,
        "cpus2",
        2,
        &with(2, &|lines| {
            lines.retain(|line| {
                !line.starts_with("[smp-boot]") && !line.starts_with("[smp] online=")
            });
        }),
        &exit(None, false),
    );
    write_run(&bundle, "cpus2", 3, &with(2, &|_| {}), &pass);
    // cpus4: a duplicated result line and no verdict; a malformed one and an
    // odd QEMU status; a field below its minimum.
    write_run(
        &bundle,
        "cpus4",
        1,
        &with(4, &|lines| {
            let last = lines[result_index(lines)].clone();
            lines.push(last);
        }),
        &exit(Some(0), false),
    );
    write_run(
        &bundle,
        "cpus4",
        2,
        &with(4, &|lines| {
            let last = result_index(lines);
            lines[last] = "[smp-boot] garbage".to_string();
        }),
        &exit(Some(7), false),
    );
    write_run(
        &bundle,
        "cpus4",
        3,
        &with(4, &|lines| {
            let last = result_index(lines);
            lines[last] = lines[last].replace("min_ticks=12", "min_ticks=0");
        }),
        &pass,
    );
    check_frozen("smp-boot-failures", &bundle);
}

/// Every run and gate passes under TCG, on a contract that accepts any accelerator.
#[test]
fn publishable_smp_boot() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    smp_boot_bundle(&bundle, Accel::Tcg);
    check_frozen("smp-boot-publishable", &bundle);
}

/// Speedup contract: passing under TCG (diagnostic), under KVM (publishable),
/// a speedup below its threshold, and a speedup with no passing runs.
#[test]
fn speedup_claims() {
    let dir = tempfile::tempdir().unwrap();
    let one = [2_000_000, 2_100_000, 1_900_000];
    let two = [1_050_000, 1_000_000, 1_200_000];
    let bundle = dir.path().join("diagnostic");
    scale_bundle(&bundle, Accel::Tcg, &one, &two);
    check_frozen("scale-diagnostic", &bundle);
    let bundle = dir.path().join("publishable");
    scale_bundle(&bundle, Accel::Kvm, &one, &two);
    check_frozen("scale-publishable", &bundle);
    let bundle = dir.path().join("slow");
    scale_bundle(
        &bundle,
        Accel::Kvm,
        &one,
        &[1_900_000, 1_800_000, 2_000_000],
    );
    check_frozen("scale-below-threshold", &bundle);

    let bundle = dir.path().join("none");
    write_basics(
        &bundle,
        SCALE_CONTRACT,
        &inputs("prime-scale", Accel::Kvm, 1, 1),
    );
    write_run(
        &bundle,
        "cpus1",
        1,
        &timed(500_000, &scale_lines(1, 1000)),
        &PASS_EXIT,
    );
    write_run(
        &bundle,
        "cpus2",
        1,
        &timed(500_000, &scale_lines(2, 1000)),
        &exit(None, true),
    );
    check_frozen("scale-no-speedup", &bundle);
}

/// A bundle of a format this capos does not know is refused, not recomputed
/// with the wrong wording.
#[test]
fn an_unknown_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let mut recorded = inputs("prime-scale", Accel::Kvm, 1, 2);
    recorded.format = "capos-inputs/v9".into();
    write_basics(&bundle, SCALE_CONTRACT, &recorded);
    write_run(
        &bundle,
        "cpus1",
        1,
        &timed(500_000, &scale_lines(1, 1000)),
        &PASS_EXIT,
    );
    write_run(
        &bundle,
        "cpus2",
        1,
        &timed(500_000, &scale_lines(2, 500)),
        &PASS_EXIT,
    );
    let message = format!(
        "{:#}",
        summary::recompute(&BundleFiles::staging(&bundle)).unwrap_err()
    );
    assert!(
        message.contains("\"capos-inputs/v9\" is not one this capos knows (capos-inputs/v2)"),
        "{message}"
    );
}
