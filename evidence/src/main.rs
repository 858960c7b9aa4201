//! `capos`: the one host CLI that builds, runs, verifies, reports and reproduces capOS evidence.
//!
//! Make targets and Nix apps call these subcommands; nothing else implements them.
//! Invariant: only commands that build or boot look for a capOS checkout;
//! auditing (`verify`, `report`, `pack`, `reproduce --check-only`, `log
//! verify`) needs nothing but this binary, the bundle and a public key.

mod cli;

use anyhow::Result;
use clap::{Parser, Subcommand};

use capos_evidence::bundle::{keys, pack};
use capos_evidence::guest::{build, fuzz, manifest, qemu, smokes, soak};
use capos_evidence::paths;
use capos_evidence::proof::{audit, report, reproduce, run};

/// Build capOS, boot it under QEMU, and turn runs into auditable evidence.
#[derive(Parser, Debug)]
#[command(name = "capos", version = capos_evidence::tool::LONG_VERSION, about, long_about = None)]
struct Cli {
    /// Workspace root for commands that build or boot (default: found by
    /// walking up from the current directory; env CAPOS_ROOT).
    #[arg(long, global = true, env = "CAPOS_ROOT")]
    root: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build the kernel ELF or the bootable ISO.
    #[command(subcommand)]
    Build(build::BuildCommand),
    /// Boot the ISO once under QEMU and report pass/fail from isa-debug-exit.
    Qemu(qemu::QemuArgs),
    /// Decide which accelerator `--accel auto` would use here, and say why.
    Accel,
    /// Run a proof contract (e.g. smp-boot): every case and repetition, then a signed bundle.
    Run(run::RunArgs),
    /// Audit a bundle or packed archive offline against a trusted public key.
    Verify(audit::VerifyArgs),
    /// Render the proof-contract report (Markdown and HTML) from a verified bundle.
    Report(report::ReportArgs),
    /// Pack a bundle directory into a deterministic tar archive.
    Pack(pack::PackArgs),
    /// Generate an Ed25519 key pair for signing provenance.
    Keygen(keys::KeygenArgs),
    /// Rebuild and re-run a bundle's recorded configuration, and compare medians.
    Reproduce(reproduce::ReproduceArgs),
    /// Validate YAML boot manifests and pack them for the kernel.
    #[command(subcommand)]
    Manifest(manifest::ManifestCommand),
    /// Audit a store's signed run log and every bundle it names.
    #[command(subcommand)]
    Log(audit::LogCommand),
    /// Run the in-QEMU smoke suite (userland/smokes.yaml); ends with `N passed, N failed`.
    Smokes(smokes::SmokeArgs),
    /// Boot the random submission fuzzer once per seed; ends with `N passed, N failed`.
    Fuzz(fuzz::FuzzArgs),
    /// Boot the whole smoke suite N times, counting failures and keeping failing logs.
    Soak(soak::SoakArgs),
    /// Pack --copies extra programs and manifests into the boot archive, boot
    /// the last one, and check that a damaged archive is refused at boot.
    ArchiveTest(cli::archive_test::ArchiveTestArgs),
}

fn main() {
    let cli = Cli::parse();
    if let Err(error) = dispatch(cli) {
        // Messages escape what they quote from bundles; this is the last
        // line of defence against terminal control sequences.
        let message = format!("{error:#}");
        let shown = capos_evidence::terminal::controls_escaped(&message);
        eprintln!("capos: error: {shown}");
        std::process::exit(1);
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    let explicit_root = cli.root;
    let workspace = || paths::workspace_root(explicit_root.as_deref());
    match cli.command {
        Command::Build(command) => build::run(&workspace()?, command),
        Command::Qemu(args) => qemu::run_command(&workspace()?, args),
        Command::Accel => {
            let choice = qemu::detect_accel(&workspace()?, qemu::AccelRequest::Auto)?;
            println!("accel={} reason={}", choice.accel, choice.reason);
            Ok(())
        }
        Command::Run(args) => run::run_command(&workspace()?, args),
        Command::Verify(args) => audit::run_command(args),
        Command::Report(args) => report::run_command(args),
        Command::Pack(args) => pack::run_command(args),
        Command::Keygen(args) => keys::run_command(args, workspace),
        Command::Reproduce(args) => reproduce::run_command(args, workspace),
        Command::Manifest(command) => manifest::run_command(&workspace()?, command),
        Command::Smokes(args) => smokes::run_command(&workspace()?, args),
        Command::Fuzz(args) => fuzz::run_command(&workspace()?, args),
        Command::Soak(args) => soak::run_command(&workspace()?, args),
        Command::ArchiveTest(args) => cli::archive_test::run_command(&workspace()?, args),
        Command::Log(command) => audit::log_command(command),
    }
}
