# A stand-in for `import nixpkgs { ... }` that knows only the attributes the
# flake uses. Derivations are plain attribute sets with a fake store path,
# except writeShellApplication, whose "path" is the script text itself, so
# ci/check-flake can read back what each app runs from the app's `program`
# string without writing anything to the Nix store.
# Test scaffolding only; the flake itself never imports this file.
{
  system,
  overlays ? [],
}: let
  lib = import ./mock-lib.nix;

  mockDrv = name: attrs:
    attrs
    // {
      type = "derivation";
      inherit name system;
      outPath = "/nix/store/00000000000000000000000000000000-${name}";
    };

  drvName = args:
    args.name or "${args.pname}-${args.version}";

  base = final: {
    inherit lib mockDrv;

    stdenv = {
      mkDerivation = args: mockDrv (drvName args) args;
      cc = mockDrv "gcc-wrapper" {};
    };

    mkShell = args: mockDrv "nix-shell" args;

    runCommand = name: env: buildCommand: mockDrv name (env // {inherit buildCommand;});

    # Mirrors the real script header (strict mode, PATH from runtimeInputs).
    writeShellApplication = {
      name,
      text,
      runtimeInputs ? [],
      ...
    } @ args: let
      script = ''
        #!/bin/bash
        set -o errexit
        set -o nounset
        set -o pipefail

        export PATH="${lib.makeBinPath runtimeInputs}:$PATH"

        ${text}
      '';
    in
      (mockDrv name args) // {outPath = script;};

    makeWrapper = mockDrv "make-shell-wrapper-hook" {};

    makeRustPlatform = {
      cargo,
      rustc,
    }: {
      buildRustPackage = args:
        assert builtins.isString (builtins.readFile args.cargoLock.lockFile);
          mockDrv (drvName args) args;
      importCargoLock = {lockFile, ...}:
        assert builtins.isString (builtins.readFile lockFile);
          mockDrv "cargo-vendor-dir" {};
    };

    qemu_kvm = mockDrv "qemu-host-cpu-only" {};
    grub2 = mockDrv "grub" {};
    xorriso = mockDrv "xorriso" {};
    mtools = mockDrv "mtools" {};
    git = mockDrv "git" {};
    glibc = mockDrv "glibc" {static = mockDrv "glibc-static" {};};
    linuxPackages = {kernel = mockDrv "linux" {};};
    alejandra = mockDrv "alejandra" {};
  };

  fix = f: let
    x = f x;
  in
    x;
in
  fix (final: builtins.foldl' (prev: overlay: prev // overlay final prev) (base final) overlays)
