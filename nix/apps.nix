# Flake apps from the app table in flake.nix.
#
# Each app is a short script that puts the pinned tools on PATH, exports
# where it came from (for the CLI to record in provenance), decides the
# workspace root and the writable output directory, then runs exactly one
# `capos` subcommand with the caller's arguments.
{
  pkgs,
  build,
  appTable,
  provenance,
}: let
  lib = pkgs.lib;

  # Subcommand words and --flags are plain tokens; anything else is a mistake in the table.
  checkWord = word:
    if builtins.match "(--)?[a-z0-9][a-z0-9-]*" word == null
    then throw "nix/apps.nix: unexpected capos argument ${builtins.toJSON word}"
    else word;

  # Exported by every app; see docs/reproduce.md ("What a Nix run records").
  provenanceExports = name: ''
    export CAPOS_NIX_APP=${name}
    export CAPOS_FLAKE_LOCK_SHA256=${provenance.flakeLockSha256}
    export CAPOS_FLAKE_REV=${lib.escapeShellArg provenance.flakeRev}
    export CAPOS_FLAKE_NAR_HASH=${lib.escapeShellArg provenance.flakeNarHash}
    export CAPOS_FLAKE_LAST_MODIFIED=${provenance.flakeLastModified}
    export CAPOS_GRUB_PLATFORM_DIR=${build.grubPlatformDir}
  '';

  # Sources (contracts, templates, manifests) are the tree the ISO was built
  # from; everything written (bundles, keys, logs) goes under the caller's
  # working directory.
  sourceRootExports = ''
    export CAPOS_ROOT=${build.source.tree}
    export CAPOS_TARGET_DIR="''${CAPOS_TARGET_DIR:-$PWD/target}"
    export CAPOS_EVIDENCE_STORE="''${CAPOS_EVIDENCE_STORE:-$CAPOS_TARGET_DIR/evidence}"
  '';

  isoExports = ''
    export CAPOS_NIX_ISO=${build.iso}
  '';

  # Proofs with Linux baselines: the guest kernel and the static program
  # come from the flake, so nothing is downloaded or built at run time.
  baselineExports = ''
    export CAPOS_LINUX_KERNEL="''${CAPOS_LINUX_KERNEL:-${build.linuxKernelImage}}"
    export CAPOS_BASELINE_PROGRAM="''${CAPOS_BASELINE_PROGRAM:-${build.baseline}/bin/capos-baseline}"
  '';

  mkApp = name: spec: let
    words = map checkWord spec.command;
    # Apps that build or boot get the toolchain and linker too; verify and
    # report need nothing but the CLI.
    needsBuildTools = spec.iso || spec.root == "checkout";
    # Boot the flake's ISO rather than building one from a read-only tree.
    extraArgs = lib.optionals spec.iso ["--iso" "${build.iso}/capos.iso"];
    script = pkgs.writeShellApplication {
      name = "capos-${name}";
      runtimeInputs = [build.capos] ++ lib.optionals needsBuildTools build.buildTools;
      text =
        provenanceExports name
        + (
          if spec.root == "source"
          then sourceRootExports
          else if spec.root == "checkout"
          then ""
          else throw "nix/apps.nix: app ${name}: root must be \"source\" or \"checkout\""
        )
        + lib.optionalString spec.iso isoExports
        + lib.optionalString (spec.baselines or false) baselineExports
        + lib.optionalString needsBuildTools ''
          # Same compiler-wrapper behaviour as the sandboxed ISO build.
          export NIX_HARDENING_ENABLE=""
        ''
        + ''
          exec capos ${builtins.concatStringsSep " " (words ++ extraArgs)} "$@"
        '';
    };
  in {
    type = "app";
    program = "${script}/bin/capos-${name}";
    meta.description = spec.description;
  };
in
  builtins.mapAttrs mkApp appTable
