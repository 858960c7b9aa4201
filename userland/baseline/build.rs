//! Link `capos-empty` without a C runtime: it is its own `_start`.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for argument in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-Wl,--build-id=none",
    ] {
        println!("cargo:rustc-link-arg-bin=capos-empty={argument}");
    }
}
