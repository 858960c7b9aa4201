//! `capos`: the one host CLI that builds, runs, verifies, reports and reproduces capOS evidence.
//!
//! Make targets and Nix apps call these subcommands; nothing else implements them.
//! Invariant: only commands that build or boot look for a capOS checkout;
//! auditing (`verify`, `report`, `pack`, `reproduce --check-only`, `log
//! verify`) needs nothing but this binary, the bundle and a public key.

use anyhow::Result;
use clap::{Parser, Subcommand};

use capos_evidence::cli;
use capos_evidence::guest::qemu;
use capos_evidence::paths;
use capos_evidence::proof::run;

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
    Build(cli::build::BuildCommand),
    /// Boot the ISO once under QEMU and report pass/fail from isa-debug-exit.
    Qemu(cli::qemu::QemuArgs),
    /// Decide which accelerator `--accel auto` would use here, and say why.
    Accel,
    /// Run a proof contract (e.g. smp-boot): every case and repetition, then a signed bundle.
    Run(cli::run::RunArgs),
    /// Audit a bundle or packed archive offline against a trusted public key.
    Verify(cli::verify::VerifyArgs),
    /// Render the proof-contract report (Markdown and HTML) from a verified bundle.
    Report(cli::report::ReportArgs),
    /// Pack a bundle directory into a deterministic tar archive.
    Pack(cli::pack::PackArgs),
    /// Generate an Ed25519 key pair for signing provenance.
    Keygen(cli::keygen::KeygenArgs),
    /// Rebuild and re-run a bundle's recorded configuration, and compare medians.
    Reproduce(cli::reproduce::ReproduceArgs),
    /// Validate YAML boot manifests and pack them for the kernel.
    #[command(subcommand)]
    Manifest(cli::manifest::ManifestCommand),
    /// Sign a reproduction attestation about a bundle for an existing reproduction bundle.
    Attest(cli::attest::AttestArgs),
    /// Push a bundle (or a reproduction attestation) to an OCI registry.
    Push(cli::push::PushArgs),
    /// Pull a bundle from an OCI registry as its packed tar.
    Pull(cli::pull::PullArgs),
    /// List the reproduction attestations attached to a bundle in an OCI registry.
    Reproductions(cli::reproductions::ReproductionsArgs),
    /// Audit an evidence archive (store or OCI repository) and index its claims over time.
    #[command(subcommand)]
    Archive(cli::archive::ArchiveCommand),
    /// Audit a store's signed run log and every bundle it names.
    #[command(subcommand)]
    Log(cli::log::LogCommand),
    /// Run the in-QEMU smoke suite (userland/smokes.yaml); ends with `N passed, N failed`.
    Smokes(cli::smokes::SmokeArgs),
    /// Boot the random submission fuzzer once per seed; ends with `N passed, N failed`.
    Fuzz(cli::fuzz::FuzzArgs),
    /// Boot the whole smoke suite N times, counting failures and keeping failing logs.
    Soak(cli::soak::SoakArgs),
    /// Pack --copies extra programs and manifests into the boot archive, boot
    /// the last one, and check that a damaged archive is refused at boot.
    ArchiveTest(cli::archive_test::ArchiveTestArgs),
}

fn main() {
    let cli = Cli::parse();
    if let Err(error) = dispatch(cli) {
        // Messages escape what they quote from bundles (terminal::untrusted);
        // this is the last line of defence against control sequences, and
        // keeps every line after the first indented.
        let message = format!("{error:#}");
        let shown = capos_evidence::terminal::error_message(&message);
        if error.downcast_ref::<run::Inconclusive>().is_some() {
            eprintln!("capos: {shown}");
            std::process::exit(run::Inconclusive::EXIT_STATUS);
        }
        eprintln!("capos: error: {shown}");
        std::process::exit(1);
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    let explicit_root = cli.root;
    let workspace = || paths::workspace_root(explicit_root.as_deref());
    match cli.command {
        Command::Build(command) => cli::build::run_command(&workspace()?, command),
        Command::Qemu(args) => cli::qemu::run_command(&workspace()?, args),
        Command::Accel => {
            let choice = qemu::detect_accel(&workspace()?, qemu::AccelRequest::Auto)?;
            println!("accel={} reason={}", choice.accel, choice.reason);
            Ok(())
        }
        Command::Run(args) => cli::run::run_command(&workspace()?, args),
        Command::Verify(args) => cli::verify::run_command(args),
        Command::Report(args) => cli::report::run_command(args),
        Command::Pack(args) => cli::pack::run_command(args),
        Command::Keygen(args) => cli::keygen::run_command(args, workspace),
        Command::Reproduce(args) => cli::reproduce::run_command(args, workspace),
        Command::Manifest(command) => cli::manifest::run_command(&workspace()?, command),
        Command::Smokes(args) => cli::smokes::run_command(&workspace()?, args),
        Command::Fuzz(args) => cli::fuzz::run_command(&workspace()?, args),
        Command::Soak(args) => cli::soak::run_command(&workspace()?, args),
        Command::ArchiveTest(args) => cli::archive_test::run_command(&workspace()?, args),
        Command::Log(command) => cli::log::log_command(command),
        Command::Archive(command) => cli::archive::run_command(command),
        Command::Attest(args) => cli::attest::run_command(args),
        Command::Push(args) => cli::push::run_command(args),
        Command::Pull(args) => cli::pull::run_command(args),
        Command::Reproductions(args) => cli::reproductions::run_command(args),
    }
}
