//! Links the programs as static user ELFs with linker.ld, but only in a
//! bare-metal build (the user codegen flags are present), so host
//! `cargo check`/`clippy` of the workspace still works.

use std::path::PathBuf;

/// The flag `evidence/src/guest/userland.rs` passes and a host build never does.
const BARE_METAL_MARKER: &str = "-Ccode-model=small";

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if !flags.split('\x1f').any(|flag| flag == BARE_METAL_MARKER) {
        return;
    }
    let script = manifest_dir.join("linker.ld");
    for arg in [
        format!("-T{}", script.display()),
        "-nostartfiles".into(),
        "-nostdlib".into(),
        "-static".into(),
        "-no-pie".into(),
        "-Wl,--build-id=none".into(),
        "-Wl,--gc-sections".into(),
        "-Wl,-z,max-page-size=4096".into(),
        // The entry point lives in the runtime's archive: make sure the
        // linker pulls it in.
        "-Wl,--undefined=_start".into(),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
