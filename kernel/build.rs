//! Kernel build script: links with the kernel's linker script and generates
//! the interrupt entry stubs. Refuses to run without the kernel codegen flags,
//! so a plain `cargo build -p capos-kernel` explains itself instead of failing
//! at link time.

use std::fmt::Write as _;
use std::path::PathBuf;

/// Vectors for which the CPU pushes an error code.
const ERROR_CODE_VECTORS: [u8; 10] = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30];

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=build.rs");

    std::fs::write(out_dir.join("vectors.S"), interrupt_stubs()).expect("writing vectors.S");

    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let is_bare_metal_build = flags
        .split('\x1f')
        .any(|flag| flag == "-Ccode-model=kernel");
    if !is_bare_metal_build {
        // Host `cargo check`/`clippy` of the workspace: nothing to link.
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
        "-Wl,-n".into(),
        "-Wl,--gc-sections".into(),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}

/// One entry stub per vector: push a zero error code where the CPU pushes
/// none, push the vector number, jump to the common entry. Plus a table of
/// stub addresses the IDT setup reads.
fn interrupt_stubs() -> String {
    let mut text = String::from(".section .text.interrupt_stubs, \"ax\"\n.code64\n");
    for vector in 0..=255u16 {
        let has_error_code = vector < 32 && ERROR_CODE_VECTORS.contains(&(vector as u8));
        writeln!(text, ".balign 16\ninterrupt_stub_{vector}:").unwrap();
        if !has_error_code {
            text.push_str("    pushq $0\n");
        }
        writeln!(text, "    pushq ${vector}\n    jmp interrupt_common").unwrap();
    }
    text.push_str(".section .rodata.interrupt_stub_table, \"a\"\n.balign 8\n.global INTERRUPT_STUB_TABLE\nINTERRUPT_STUB_TABLE:\n");
    for vector in 0..=255u16 {
        writeln!(text, "    .quad interrupt_stub_{vector}").unwrap();
    }
    text.push_str(".text\n");
    text
}
