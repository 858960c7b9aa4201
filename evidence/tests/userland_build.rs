//! Builds the user programs through `build_userland` (as the ISO build
//! does) and checks every ELF: ELF64 x86_64 EXEC without a loader, entry at
//! or above USER_IMAGE_BASE, three segments, none both writable and
//! executable.

use capos_abi::layout::USER_IMAGE_BASE;
use capos_evidence::guest::userland;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("evidence/ has a parent")
        .to_path_buf()
}

#[test]
fn every_program_builds_as_a_static_user_elf() {
    let root = root();
    let programs = userland::build_userland(
        &root,
        capos_evidence::guest::build::source_date_epoch(&root).unwrap(),
    )
    .expect("building the user programs");
    let names: Vec<&str> = programs.iter().map(|(name, _)| name.as_str()).collect();
    for expected in [
        "init",
        "hello",
        "ring-smoke",
        "endpoint-server",
        "endpoint-client",
        "timer-smoke",
        "exit-smoke",
        "fault-smoke",
        "bad-input-smoke",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for (name, path) in &programs {
        // The checker refuses anything but an ELF64 x86_64 EXEC without
        // DYNAMIC, INTERP or TLS headers; what it found is checked here.
        let elf =
            userland::check_user_elf(path).unwrap_or_else(|error| panic!("{name}: {error:#}"));
        assert!(
            elf.entry >= USER_IMAGE_BASE,
            "{name}: entry {:#x}",
            elf.entry
        );
        assert!(
            elf.segments
                .iter()
                .all(|segment| !(segment.writable && segment.executable)),
            "{name}: a writable and executable segment"
        );
        assert_eq!(
            elf.segments.len(),
            3,
            "{name}: want text, rodata, data segments"
        );
    }
}
