{
  description = "capOS: a capability-based x86_64 SMP kernel and its reproducible evidence pipeline";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = {
    self,
    nixpkgs,
    rust-overlay,
  }: let
    system = "x86_64-linux";
    pkgs = import nixpkgs {
      inherit system;
      overlays = [rust-overlay.overlays.default];
    };

    # Toolchain (from rust-toolchain.toml), host CLI, ISO, tool lists.
    build = import ./nix/packages.nix {
      inherit pkgs;
      sourceDateEpoch = toString self.lastModified;
      sourceRevision = self.rev or self.dirtyRev or "unknown";
    };

    # Every app runs exactly one `capos` subcommand and passes its own
    # arguments through. ci/check-flake reads this table back from the
    # evaluated apps and checks each subcommand (and each proof contract).
    #   root = "source":   CAPOS_ROOT is this flake's source tree (read-only);
    #                      everything written goes under ./target of the
    #                      caller's working directory.
    #   root = "checkout": the CLI finds the checkout from the working
    #                      directory, as it does without Nix.
    #   iso = true:        the app boots the ISO built by packages.iso.
    #   baselines = true:  the app gets the Linux guest kernel (nixpkgs'
    #                      linuxPackages.kernel) and packages.baseline.
    appTable = {
      smp-boot = {
        command = ["run" "smp-boot"];
        root = "source";
        iso = true;
        description = "Run the smp-boot proof (all CPUs come up) and store a signed bundle";
      };
      thread-scale = {
        command = ["run" "thread-scale"];
        root = "source";
        iso = true;
        baselines = true;
        description = "Run the thread-scale proof (sibling threads at -smp 1/2/4) beside the Linux guest and native pthread baselines";
      };
      smp-process-scale = {
        command = ["run" "smp-process-scale"];
        root = "source";
        iso = true;
        baselines = true;
        description = "Run the smp-process-scale proof (worker processes at -smp 1/2/4) beside the Linux guest and native baselines";
      };
      smp2-smokes = {
        command = ["smokes" "--smp" "2"];
        root = "source";
        iso = true;
        description = "Run every smoke test under -smp 2";
      };
      verify = {
        command = ["verify"];
        root = "source";
        iso = false;
        description = "Audit an evidence bundle offline: digests, signature, recomputed figures";
      };
      report = {
        command = ["report"];
        root = "source";
        iso = false;
        description = "Render the proof-contract report from a verified bundle";
      };
      reproduce = {
        command = ["reproduce"];
        root = "source";
        iso = true;
        description = "Re-run a bundle's recorded configuration with this flake's ISO and compare";
      };
      build-iso = {
        command = ["build" "iso"];
        root = "checkout";
        iso = false;
        description = "Build target/iso/capos.iso in the current checkout with the pinned tools";
      };
    };
  in {
    packages.${system} = {
      inherit (build) capos iso baseline;
      default = build.capos;
    };

    apps.${system} = import ./nix/apps.nix {
      inherit pkgs build appTable;
      provenance = {
        flakeLockSha256 = builtins.hashFile "sha256" ./flake.lock;
        flakeRev = self.rev or self.dirtyRev or "unknown";
        flakeNarHash = self.narHash or "unknown";
        flakeLastModified = toString self.lastModified;
      };
    };

    checks.${system} = import ./nix/checks.nix {inherit pkgs build;};

    devShells.${system}.default = pkgs.mkShell {
      packages = build.buildTools ++ build.runtimeTools;
      # Same compiler-wrapper behaviour as the sandboxed ISO build.
      hardeningDisable = ["all"];
      CAPOS_GRUB_PLATFORM_DIR = build.grubPlatformDir;
    };

    formatter.${system} = pkgs.alejandra;
  };
}
