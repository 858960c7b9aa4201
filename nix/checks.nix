# `nix flake check`: host tests, lints, formatting, and one real boot.
{
  pkgs,
  build,
}: let
  # Run one cargo command over the host workspace (default members: the
  # kernel's host-testable core and the evidence CLI), offline, against the
  # vendored crates.
  cargoCheck = name: command:
    pkgs.stdenv.mkDerivation {
      name = "capos-check-${name}";
      src = build.source.tree;
      nativeBuildInputs = build.buildTools ++ build.runtimeTools;
      hardeningDisable = ["all"];
      CAPOS_GRUB_PLATFORM_DIR = build.grubPlatformDir;
      dontConfigure = true;
      dontFixup = true;
      buildPhase = ''
        runHook preBuild
        ${build.setupCargoHome}
        export SOURCE_DATE_EPOCH=${build.sourceDateEpoch}
        ${command}
        runHook postBuild
      '';
      installPhase = ''
        touch "$out"
      '';
    };
in {
  cargo-test = cargoCheck "cargo-test" "cargo test --locked --offline";

  clippy = cargoCheck "clippy" "cargo clippy --locked --offline --all-targets -- -D warnings";

  fmt = cargoCheck "fmt" "cargo fmt --all -- --check";

  # Boot the flake's ISO once under TCG with two CPUs (no KVM in the
  # sandbox). The CLI judges the run from isa-debug-exit and fails closed.
  boot-smoke =
    pkgs.runCommand "capos-boot-smoke" {
      nativeBuildInputs = [build.capos];
    } ''
      capos --root ${build.source.tree} qemu \
        --smp 2 --accel tcg --timeout 300 \
        --iso ${build.iso}/capos.iso \
        --log-dir "$out/qemu"
    '';
}
