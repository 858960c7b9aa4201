# The pinned Rust toolchain, the host CLI `capos` and the bootable ISO.
{
  pkgs,
  # Seconds since the epoch: the commit time of the flake source. The CLI
  # uses the same value outside Nix (HEAD's commit time), so both paths
  # stamp the ISO alike.
  sourceDateEpoch,
  # The flake's git revision (or "<rev>-dirty"/"unknown"): stamped into the
  # `capos` binary, which records it in every bundle it makes.
  sourceRevision,
}: let
  lib = pkgs.lib;

  version = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).workspace.package.version;

  # rust-toolchain.toml is the only place the Rust version is written down
  # (1.95.0, rustfmt + clippy, host target only: no rust-src, no build-std).
  toolchain = pkgs.rust-bin.fromRustupToolchainFile ../rust-toolchain.toml;
  rustPlatform = pkgs.makeRustPlatform {
    cargo = toolchain;
    rustc = toolchain;
  };

  source = import ./source.nix {inherit lib;};

  # GRUB's BIOS platform files, handed to `grub-mkrescue -d`.
  grubPlatformDir = "${pkgs.grub2}/lib/grub/i386-pc";

  # What the CLI runs: QEMU to boot, GRUB + xorriso (+ mtools) to pack the ISO.
  runtimeTools = [
    pkgs.qemu_kvm
    pkgs.grub2
    pkgs.xorriso
    pkgs.mtools
  ];

  # What building the kernel adds: rustc/cargo, the C compiler driver that
  # links it, and git (the CLI reads the commit time when not told).
  buildTools = [
    toolchain
    pkgs.stdenv.cc
    pkgs.git
  ];

  # Every crate in Cargo.lock, fetched by hash (no network in the sandbox).
  vendor = rustPlatform.importCargoLock {lockFile = ../Cargo.lock;};

  # Shell snippet: a private CARGO_HOME whose crates.io sources are the
  # vendored crates, laid out where cargo itself would unpack them
  # (registry/src/index.crates.io-<hash>/<name>-<version>). The CLI remaps
  # CARGO_HOME to /cargo in the kernel's debug paths, so a sandboxed build
  # and `nix run .#build-iso` in a checkout embed the same paths.
  setupCargoHome = ''
    export HOME="$NIX_BUILD_TOP/home"
    export CARGO_HOME="$NIX_BUILD_TOP/cargo-home"
    capos_registry="$CARGO_HOME/registry/src/index.crates.io-1949cf8c6b5b557f"
    mkdir -p "$HOME" "$capos_registry"
    cp -r --no-preserve=mode ${vendor}/. "$capos_registry/"
    rm -rf "$capos_registry/.cargo"
    cat > "$CARGO_HOME/config.toml" <<EOF
    [source.crates-io]
    replace-with = "capos-vendored"

    [source.capos-vendored]
    directory = "$capos_registry"

    [net]
    offline = true
    EOF
  '';

  capos = rustPlatform.buildRustPackage {
    pname = "capos";
    inherit version;
    src = source.tree;
    cargoLock.lockFile = ../Cargo.lock;
    cargoBuildFlags = ["-p" "capos-evidence"];
    # No .git in the sandbox: tell the build script which commit this is.
    CAPOS_TOOL_COMMIT = sourceRevision;
    # The host test suite runs once, in checks.cargo-test.
    doCheck = false;
    nativeBuildInputs = [pkgs.makeWrapper];
    postInstall = ''
      wrapProgram $out/bin/capos \
        --prefix PATH : ${lib.makeBinPath runtimeTools} \
        --set-default CAPOS_GRUB_PLATFORM_DIR ${grubPlatformDir}
    '';
    meta = {
      description = "capOS host CLI: build, run, verify, report and reproduce evidence";
      mainProgram = "capos";
    };
  };

  # `capos build iso` inside the sandbox: same CLI, same flags as outside Nix.
  iso = pkgs.stdenv.mkDerivation {
    pname = "capos-iso";
    inherit version;
    src = source.tree;
    nativeBuildInputs = [capos] ++ buildTools ++ runtimeTools;
    # The kernel is linked with its own linker script; the compiler
    # wrapper's hardening flags (-z relro, -pie, ...) must not touch it.
    hardeningDisable = ["all"];
    NIX_DONT_SET_RPATH = "1";
    CAPOS_GRUB_PLATFORM_DIR = grubPlatformDir;
    dontConfigure = true;
    dontFixup = true;
    buildPhase = ''
      runHook preBuild
      ${setupCargoHome}
      export SOURCE_DATE_EPOCH=${sourceDateEpoch}
      capos --root "$PWD" build iso --output "$PWD/target/nix-iso/capos.iso"
      runHook postBuild
    '';
    installPhase = ''
      runHook preInstall
      mkdir -p "$out"
      cp target/nix-iso/capos.iso "$out/capos.iso"
      (cd "$out" && sha256sum capos.iso > capos.iso.sha256)
      runHook postInstall
    '';
    meta.description = "Bootable capOS ISO (GRUB, multiboot2), built reproducibly by `capos build iso`";
  };
  # The Linux baselines: the static baseline program (the native run and
  # the Linux guest's /init) and capos-empty, built by `capos build
  # baseline` like the ISO, against a static glibc.
  baseline = pkgs.stdenv.mkDerivation {
    pname = "capos-baseline";
    inherit version;
    src = source.tree;
    nativeBuildInputs = [capos] ++ buildTools;
    buildInputs = [pkgs.glibc.static];
    hardeningDisable = ["all"];
    dontConfigure = true;
    dontFixup = true;
    buildPhase = ''
      runHook preBuild
      ${setupCargoHome}
      export SOURCE_DATE_EPOCH=${sourceDateEpoch}
      capos --root "$PWD" build baseline --output "$PWD/baseline-bin"
      runHook postBuild
    '';
    installPhase = ''
      runHook preInstall
      install -Dm755 baseline-bin/capos-baseline "$out/bin/capos-baseline"
      install -Dm755 baseline-bin/capos-empty "$out/bin/capos-empty"
      runHook postInstall
    '';
    meta.description = "Static Linux program of the capOS baselines (native runs and the Linux guest's /init)";
  };

  # The Linux guest kernel of the baselines: nixpkgs' default kernel image.
  linuxKernelImage = "${pkgs.linuxPackages.kernel}/bzImage";
in {
  inherit
    version
    toolchain
    source
    grubPlatformDir
    runtimeTools
    buildTools
    vendor
    setupCargoHome
    sourceDateEpoch
    sourceRevision
    capos
    iso
    baseline
    linuxKernelImage
    ;
}
