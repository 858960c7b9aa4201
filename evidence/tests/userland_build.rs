//! Builds the user programs through `build_userland` (as the ISO build
//! does) and checks every ELF independently of the module's own checker:
//! ELF64 x86_64 EXEC, entry at or above USER_IMAGE_BASE, and no segment
//! both writable and executable.

use capos_abi::layout::USER_IMAGE_BASE;
use capos_evidence::userland;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("evidence/ has a parent")
        .to_path_buf()
}

fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes(bytes[offset..offset + 2].try_into().unwrap())
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap())
}

#[test]
fn every_program_builds_as_a_static_user_elf() {
    let root = root();
    let programs = userland::build_userland(&root).expect("building the user programs");
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
        let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(&bytes[..4], b"\x7fELF", "{name}: magic");
        assert_eq!(bytes[4], 2, "{name}: ELF64");
        assert_eq!(u16_at(&bytes, 16), 2, "{name}: ET_EXEC");
        assert_eq!(u16_at(&bytes, 18), 62, "{name}: EM_X86_64");
        let entry = u64_at(&bytes, 24);
        assert!(entry >= USER_IMAGE_BASE, "{name}: entry {entry:#x}");
        let table = u64_at(&bytes, 32) as usize;
        let size = u16_at(&bytes, 54) as usize;
        let count = u16_at(&bytes, 56) as usize;
        let mut loads = 0;
        for index in 0..count {
            let header = table + index * size;
            let kind = u32_at(&bytes, header);
            let flags = u32_at(&bytes, header + 4);
            assert!(
                ![2, 3, 7].contains(&kind),
                "{name}: program header type {kind} (DYNAMIC/INTERP/TLS)"
            );
            if kind == 1 {
                loads += 1;
                assert!(flags & 3 != 3, "{name}: a writable and executable segment");
            }
        }
        assert_eq!(loads, 3, "{name}: want text, rodata, data segments");
    }
}
