//! YAML boot manifests (`userland/manifests/system-*.yaml`): the schema,
//! validation with `file:line:column` diagnostics, and packing into the
//! binary form the kernel reads (`capos_abi::manifest`).
//!
//! Invariants:
//! - A manifest that [`load`] accepts encodes into bytes that
//!   `capos_abi::manifest::Manifest::parse` accepts; [`pack`] checks this on
//!   every call, so a packer bug is an error, not a module the kernel rejects.
//! - Every rejection names the file and, when the problem belongs to a node
//!   of the YAML document, its line and column. Semantic problems are found
//!   on typed data and then located by walking the document again to the
//!   node's path (`locate`).
//! - A process's `capabilities` become its slots 0, 1, 2, ... in order.
//! - The YAML never decides a binary exists: the caller passes the known
//!   boot-module names ([`known_binaries`] lists the programs of the
//!   `capos-programs` package through `cargo metadata`).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use capos_abi::limits;
use capos_abi::manifest::spec::ManifestSpec;
use capos_abi::manifest::Manifest;
mod diagnostic;
mod locate;
mod schema;
mod validate;

pub use diagnostic::{Diagnostic, LineNumber, Location, ManifestError, Problem};
pub use validate::validate_text;

/// Longest `args` string, in bytes.
pub const ARGUMENTS_MAX: usize = 256;
/// Most capabilities one manifest process may be granted
/// (`capos_abi::limits::GRANTS_MAX`; a process has more slots than that, but
/// the rest are for handles it receives at run time).
pub const CAPABILITIES_MAX: usize = limits::GRANTS_MAX as usize;
/// Longest process, object, binary or handle name, in bytes
/// (`capos_abi::limits::NAME_MAX`).
pub const NAME_MAX: usize = limits::NAME_MAX as usize;

/// Where the manifests live, relative to the workspace root.
const MANIFEST_DIRECTORY: &str = "userland/manifests";

/// Manifest subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum ManifestCommand {
    /// Validate manifests; print `ok <file> (N processes, M objects)` or every problem found.
    Check(CheckArgs),
    /// Validate one manifest and write its packed binary form (atomically).
    Pack(PackArgs),
}

/// Arguments of `capos manifest check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Manifests to check (default: every userland/manifests/system-*.yaml).
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub binaries: BinariesArgs,
}

/// Arguments of `capos manifest pack`.
#[derive(clap::Args, Debug)]
pub struct PackArgs {
    /// The manifest to pack.
    pub file: PathBuf,
    /// Where to write the packed manifest (parent directories are created).
    #[arg(long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub binaries: BinariesArgs,
}

/// Which boot-module names a manifest may use as `binary`.
#[derive(clap::Args, Debug)]
pub struct BinariesArgs {
    /// Known binaries, comma-separated (default: the programs of userland/programs, from cargo metadata).
    #[arg(long, value_delimiter = ',')]
    pub binaries: Option<Vec<String>>,
}

impl BinariesArgs {
    /// The names given with `--binaries`, else those of the workspace's user programs.
    fn resolve(&self, root: &Path) -> Result<Vec<String>> {
        match &self.binaries {
            Some(names) => Ok(names.clone()),
            None => known_binaries(root),
        }
    }
}

/// `capos manifest ...`
pub fn run_command(root: &Path, command: ManifestCommand) -> Result<()> {
    match command {
        ManifestCommand::Check(args) => check_command(root, &args),
        ManifestCommand::Pack(args) => pack_command(root, &args),
    }
}

/// Validate each file, reporting on all of them before failing.
fn check_command(root: &Path, args: &CheckArgs) -> Result<()> {
    let known = args.binaries.resolve(root)?;
    let files = if args.files.is_empty() {
        discover(root)?
            .into_iter()
            .map(relative_to_current_directory)
            .collect()
    } else {
        args.files.clone()
    };
    if files.is_empty() {
        bail!("no manifests to check (none under {MANIFEST_DIRECTORY}/ and none given)");
    }
    let mut failed = 0usize;
    for file in &files {
        match load(file, &known) {
            Ok(spec) => println!(
                "ok {} ({} processes, {} objects)",
                file.display(),
                spec.processes.len(),
                spec.objects.len()
            ),
            Err(error) => {
                failed += 1;
                eprintln!("{error:#}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} manifests failed validation", files.len());
    }
    Ok(())
}

/// `path` relative to the current directory when it lies below it, for
/// shorter messages.
fn relative_to_current_directory(path: PathBuf) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|current| path.strip_prefix(current).ok().map(Path::to_path_buf))
        .unwrap_or(path)
}

/// Validate, pack, and write the result atomically.
fn pack_command(root: &Path, args: &PackArgs) -> Result<()> {
    let known = args.binaries.resolve(root)?;
    let bytes = pack(&args.file, &known)?;
    write_atomically(&args.output, &bytes).with_context(|| {
        format!(
            "cannot write the packed manifest to {}",
            args.output.display()
        )
    })?;
    println!(
        "packed {} -> {} ({} bytes)",
        args.file.display(),
        args.output.display(),
        bytes.len()
    );
    Ok(())
}

/// Write `bytes` to a temporary file beside `output`, then rename it over
/// `output`, so readers see the old file or the whole new one.
fn write_atomically(output: &Path, bytes: &[u8]) -> Result<()> {
    let parent = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent)
        .with_context(|| format!("creating the directory {}", parent.display()))?;
    let mut temporary = tempfile::NamedTempFile::new_in(parent)
        .with_context(|| format!("creating a temporary file in {}", parent.display()))?;
    temporary
        .write_all(bytes)
        .and_then(|()| temporary.as_file().sync_all())
        .with_context(|| format!("writing {}", temporary.path().display()))?;
    temporary
        .persist(output)
        .map_err(|error| error.error)
        .with_context(|| format!("renaming the temporary file to {}", output.display()))?;
    Ok(())
}

/// Read and validate the manifest at `path`. `known_binaries` are the boot
/// modules a process's `binary` may name. On failure the error is a
/// [`ManifestError`] (downcast it to inspect the diagnostics).
pub fn load(path: &Path, known_binaries: &[String]) -> Result<ManifestSpec> {
    let text = fs::read_to_string(path).map_err(|source| ManifestError {
        file: path.to_path_buf(),
        diagnostics: vec![Diagnostic {
            path: String::new(),
            location: None,
            source_line: None,
            problem: Problem::Read(source),
        }],
    })?;
    Ok(validate_text(path, &text, known_binaries)?)
}

/// Validate the manifest at `path` and encode it into the packed form the
/// kernel reads.
pub fn pack(path: &Path, known_binaries: &[String]) -> Result<Vec<u8>> {
    let spec = load(path, known_binaries)?;
    encode_checked(path, &spec)
}

/// Validate manifest `text` (`file` only names it in messages) and encode
/// it like [`pack`].
pub fn pack_text(file: &Path, text: &str, known_binaries: &[String]) -> Result<Vec<u8>> {
    let spec = validate_text(file, text, known_binaries)?;
    encode_checked(file, &spec)
}

/// The packed bytes of `spec`, decoded once by the kernel's reader.
fn encode_checked(path: &Path, spec: &ManifestSpec) -> Result<Vec<u8>> {
    let bytes = capos_abi::manifest::spec::encode(spec);
    Manifest::parse(&bytes).map_err(|error| {
        anyhow::anyhow!(
            "{}: internal error: the packed manifest does not decode ({error})",
            path.display()
        )
    })?;
    Ok(bytes)
}

/// Every `userland/manifests/system-*.yaml` under `root`, sorted by name.
pub fn discover(root: &Path) -> Result<Vec<PathBuf>> {
    let directory = root.join(MANIFEST_DIRECTORY);
    let entries = fs::read_dir(&directory)
        .with_context(|| format!("listing manifests in {}", directory.display()))?;
    let mut manifests = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", directory.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("system-") && name.ends_with(".yaml") && entry.path().is_file() {
            manifests.push(entry.path());
        }
    }
    manifests.sort();
    Ok(manifests)
}

/// The boot-module names a manifest may use: the programs of the
/// `capos-programs` package, as `cargo metadata` lists them (the same list
/// the ISO build packs).
pub fn known_binaries(root: &Path) -> Result<Vec<String>> {
    crate::guest::userland::program_names(root).context(
        "listing the user programs for the known binaries (or name them with --binaries a,b,c)",
    )
}
