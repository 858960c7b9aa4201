//! In-QEMU test of the boot archive (issue 19, the boot-module ceiling): an
//! ISO whose archive holds 200 extra programs and 200 extra manifests (the
//! old limit was 61 GRUB modules in all) boots the last of them, and the
//! same archive with one damaged header is refused at boot with the byte
//! named. `capos archive-test` runs the same check and prints its lines.
//!
//! The accelerator is TCG unless CAPOS_TEST_ACCEL=auto|kvm says otherwise,
//! as in `qemu_boot.rs`.

use capos_evidence::guest::archive_test::{self, ArchiveTestOptions};
use capos_evidence::guest::qemu::{self, AccelRequest, Verdict};
use capos_evidence::paths;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("evidence/ has a parent")
        .to_path_buf()
}

#[test]
fn two_hundred_extra_programs_and_manifests_boot_and_a_damaged_archive_is_refused() {
    let root = root();
    let request = match std::env::var("CAPOS_TEST_ACCEL").as_deref() {
        Ok("auto") => AccelRequest::Auto,
        Ok("kvm") => AccelRequest::Kvm,
        _ => AccelRequest::Tcg,
    };
    let accel = qemu::detect_accel(&root, request)
        .expect("accelerator")
        .accel;
    let options = ArchiveTestOptions {
        copies: 200,
        cpus: 2,
        accel,
        timeout: Duration::from_secs(120),
    };
    let log_root = paths::qemu_log_root(&root)
        .join("tests")
        .join("boot-archive");
    let report =
        archive_test::run(&root, &options, &log_root).unwrap_or_else(|error| panic!("{error:#}"));
    // The real programs (at least init and hello) and manifests, plus the copies.
    assert!(report.programs >= 202 && report.manifests > 200);
    assert_eq!(report.boot.outcome.verdict, Verdict::Pass);
    assert!(report
        .boot
        .evidence
        .iter()
        .any(|line| line.contains("[init] z-hello-0199 exit=0")));
    assert!(matches!(
        report.damaged.outcome.verdict,
        Verdict::Fail { .. }
    ));
    assert!(report.damaged.evidence[0].contains("[boot] error: boot archive: no newc header"));
}
