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

use anyhow::{Context as _, Result};
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
pub const MANIFEST_DIRECTORY: &str = "userland/manifests";

/// `path` relative to the current directory when it lies below it, for
/// shorter messages.
pub fn relative_to_current_directory(path: PathBuf) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|current| path.strip_prefix(current).ok().map(Path::to_path_buf))
        .unwrap_or(path)
}

/// Write `bytes` to a temporary file beside `output`, then rename it over
/// `output`, so readers see the old file or the whole new one.
pub fn write_atomically(output: &Path, bytes: &[u8]) -> Result<()> {
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
