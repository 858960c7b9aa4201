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

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use capos_abi::limits;
use capos_abi::manifest::spec::{GrantSpec, ManifestSpec, ObjectSpec, ProcessSpec};
use capos_abi::manifest::{Manifest, MAX_OBJECTS, MAX_PROCESSES};
use capos_abi::CapabilityKind;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

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
    let bytes = capos_abi::manifest::spec::encode(&spec);
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

/// A 1-based position in a manifest file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, in characters.
    pub column: usize,
}

/// A manifest that was rejected: the file and every problem found in it.
#[derive(Debug)]
pub struct ManifestError {
    /// The manifest file as the caller named it.
    pub file: PathBuf,
    /// The problems, in document order (problems without a location last).
    pub diagnostics: Vec<Diagnostic>,
}

impl std::error::Error for ManifestError {}

impl fmt::Display for ManifestError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.diagnostics.iter().enumerate() {
            if index > 0 {
                writeln!(formatter)?;
            }
            write!(formatter, "{}:", self.file.display())?;
            if let Some(location) = diagnostic.location {
                write!(formatter, "{}:{}:", location.line, location.column)?;
            }
            write!(formatter, " ")?;
            if !diagnostic.path.is_empty() {
                write!(formatter, "{}: ", diagnostic.path)?;
            }
            write!(formatter, "{}", diagnostic.problem)?;
            if let (Some(location), Some(source_line)) =
                (diagnostic.location, &diagnostic.source_line)
            {
                let gutter = location.line.to_string().len();
                write!(
                    formatter,
                    "\n {:>gutter$} | {source_line}\n {:>gutter$} | {:>column$}",
                    location.line,
                    "",
                    "^",
                    column = location.column
                )?;
            }
        }
        Ok(())
    }
}

/// One problem in a manifest.
#[derive(Debug)]
pub struct Diagnostic {
    /// The node's path in the document (`processes[1].capabilities[0].kind`), or empty.
    pub path: String,
    /// Where the node is, when known.
    pub location: Option<Location>,
    /// The text of the line at `location`, for the caret display.
    pub source_line: Option<String>,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong with a manifest.
#[derive(thiserror::Error, Debug)]
pub enum Problem {
    /// The file cannot be read.
    #[error("cannot read the manifest: {0}")]
    Read(std::io::Error),
    /// The YAML does not parse or does not fit the schema (syntax, unknown
    /// field, missing field, wrong type, unknown kind).
    #[error("{0}")]
    Schema(String),
    /// The file holds no YAML document (or only `null`).
    #[error("the manifest is empty; it needs at least `init` and `processes`")]
    Empty,
    /// `processes` has no entries.
    #[error("no processes; a manifest needs at least its init process")]
    NoProcesses,
    /// More entries than the packed format holds.
    #[error("too many {what}: {count} (at most {max}); this is the first one over the limit")]
    TooMany {
        /// `processes` or `objects`.
        what: &'static str,
        /// How many the manifest has.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A process name, object name, binary or handle name is unusable.
    #[error("{what} `{name}` {reason}")]
    BadName {
        /// What the name names.
        what: &'static str,
        /// The name, escaped for display.
        name: String,
        /// Why it is rejected.
        reason: String,
    },
    /// Two processes share a name.
    #[error("duplicate process name `{name}` (first defined at line {first_line})")]
    DuplicateProcess {
        /// The name.
        name: String,
        /// Line of the first definition.
        first_line: LineNumber,
    },
    /// Two objects share a name.
    #[error("duplicate object name `{name}` (first defined at line {first_line})")]
    DuplicateObject {
        /// The name.
        name: String,
        /// Line of the first definition.
        first_line: LineNumber,
    },
    /// `binary` names no known boot module.
    #[error("unknown binary `{binary}`; known binaries: {}", known.join(", "))]
    UnknownBinary {
        /// The name given.
        binary: String,
        /// The names that would be accepted.
        known: Vec<String>,
    },
    /// `args` is longer than [`ARGUMENTS_MAX`].
    #[error("args is {length} bytes long (at most {ARGUMENTS_MAX})")]
    ArgumentsTooLong {
        /// Its length in bytes.
        length: usize,
    },
    /// `args` contains a NUL byte.
    #[error("args contains a NUL character (the kernel hands args over as a length-counted string without NULs)")]
    ArgumentsContainNul,
    /// More grants than [`CAPABILITIES_MAX`].
    #[error("process `{process}` is granted {count} capabilities (at most {CAPABILITIES_MAX}); this is the first one over the limit")]
    TooManyCapabilities {
        /// The process.
        process: String,
        /// How many it is granted.
        count: usize,
    },
    /// An endpoint grant without `object`.
    #[error(
        "an `endpoint` or `endpoint-server` grant needs `object: <name>` naming an endpoint object{}",
        object_choices(known)
    )]
    EndpointWithoutObject {
        /// The objects of that kind that exist.
        known: Vec<String>,
    },
    /// `object` names no object.
    #[error("no object named `{object}`{}", object_choices(known))]
    MissingObject {
        /// The name given.
        object: String,
        /// The objects of the grant's kind that exist.
        known: Vec<String>,
    },
    /// `object` names an object of another kind than the grant.
    #[error("object `{object}` is a {} but this grant is a {}", object_kind.name(), grant_kind.name())]
    ObjectKindMismatch {
        /// The object's name.
        object: String,
        /// The object's kind.
        object_kind: CapabilityKind,
        /// The grant's kind.
        grant_kind: CapabilityKind,
    },
    /// `object` on a kind that has one kernel-wide instance.
    #[error("`{}` is a kernel singleton; remove `object` (only endpoint grants name an object)", kind.name())]
    ObjectOnSingleton {
        /// The grant's kind.
        kind: CapabilityKind,
    },
    /// Two grants of one process share a handle name.
    #[error("process `{process}` already has a handle named `{name}` (slot {first_slot}); give this one a distinct `name`")]
    DuplicateHandleName {
        /// The process.
        process: String,
        /// The handle name.
        name: String,
        /// The slot of the first grant with that name.
        first_slot: usize,
    },
    /// `init` names no process.
    #[error(
        "init names `{init}`, but no process has that name; processes: {}",
        list_or_none(processes)
    )]
    InitNotFound {
        /// The name given.
        init: String,
        /// The process names.
        processes: Vec<String>,
    },
    /// The init process is marked autostart.
    #[error("the init process `{process}` is started by the kernel; it cannot also be `autostart: true`")]
    InitAutostart {
        /// The init process.
        process: String,
    },
}

/// A line number that may be unknown (printed as `?`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineNumber(pub Option<usize>);

impl fmt::Display for LineNumber {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(line) => write!(formatter, "{line}"),
            None => formatter.write_str("?"),
        }
    }
}

/// `a, b, c`, or `(none)` for an empty list.
fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    }
}

/// `; objects of that kind: a, b`, or a hint that there are none.
fn object_choices(known: &[String]) -> String {
    if known.is_empty() {
        "; the manifest declares no such object (add one under `objects:`)".to_string()
    } else {
        format!("; objects of that kind: {}", known.join(", "))
    }
}

/// Kinds that name one kernel-wide object; grants of these take no `object`.
fn is_singleton(kind: CapabilityKind) -> bool {
    matches!(
        kind,
        CapabilityKind::Console
            | CapabilityKind::Timer
            | CapabilityKind::BootManifest
            | CapabilityKind::ProcessSpawner
            | CapabilityKind::Diagnostics
            | CapabilityKind::ThreadSpawner
            | CapabilityKind::ParkSpace
            | CapabilityKind::Memory
    )
}

/// Kinds a manifest may create under `objects:`.
const OBJECT_KINDS: [CapabilityKind; 1] = [CapabilityKind::Endpoint];

/// The top level of `system-<name>.yaml`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    init: String,
    #[serde(default)]
    objects: Vec<ObjectEntry>,
    processes: Vec<ProcessEntry>,
}

/// One entry of `objects:`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ObjectEntry {
    kind: ObjectKind,
    name: String,
}

/// One entry of `processes:`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ProcessEntry {
    name: String,
    binary: String,
    #[serde(default)]
    args: String,
    #[serde(default)]
    autostart: bool,
    #[serde(default)]
    capabilities: Vec<CapabilityEntry>,
}

/// One entry of a process's `capabilities:`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct CapabilityEntry {
    kind: GrantKind,
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// A capability kind a manifest may grant (every kind but `process-handle`).
#[derive(Clone, Copy, Debug)]
struct GrantKind(CapabilityKind);

impl<'de> Deserialize<'de> for GrantKind {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Rejecting inside the visitor lets serde_yaml attach the scalar's location.
        struct GrantKindVisitor;
        impl Visitor<'_> for GrantKindVisitor {
            type Value = GrantKind;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a capability kind")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<GrantKind, E> {
                match CapabilityKind::from_name(name) {
                    Some(CapabilityKind::ProcessHandle) => Err(E::custom(
                        "`process-handle` cannot be granted in a manifest: process handles \
                         come from spawning (grant `process-spawner` and spawn the process)",
                    )),
                    Some(kind) => Ok(GrantKind(kind)),
                    None => Err(E::custom(format!(
                        "unknown capability kind `{name}`; valid kinds: {}",
                        grantable_kind_names()
                    ))),
                }
            }
        }
        deserializer.deserialize_str(GrantKindVisitor)
    }
}

/// The kinds a grant may have, comma-separated.
fn grantable_kind_names() -> String {
    CapabilityKind::ALL
        .into_iter()
        .filter(|kind| *kind != CapabilityKind::ProcessHandle)
        .map(CapabilityKind::name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A kind of named object a manifest may create ([`OBJECT_KINDS`]).
#[derive(Clone, Copy, Debug)]
struct ObjectKind(CapabilityKind);

impl<'de> Deserialize<'de> for ObjectKind {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectKindVisitor;
        impl Visitor<'_> for ObjectKindVisitor {
            type Value = ObjectKind;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an object kind")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<ObjectKind, E> {
                let valid = OBJECT_KINDS.map(CapabilityKind::name).join(", ");
                match CapabilityKind::from_name(name) {
                    Some(kind) if OBJECT_KINDS.contains(&kind) => Ok(ObjectKind(kind)),
                    Some(kind) if is_singleton(kind) => Err(E::custom(format!(
                        "`{name}` is a kernel singleton, not a named object; grant it with \
                         `{{ kind: {} }}` (valid object kinds: {valid})",
                        kind.name()
                    ))),
                    _ => Err(E::custom(format!(
                        "unknown object kind `{name}`; valid object kinds: {valid}"
                    ))),
                }
            }
        }
        deserializer.deserialize_str(ObjectKindVisitor)
    }
}

/// One step of a path into the YAML document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Segment {
    /// A mapping key.
    Key(&'static str),
    /// A sequence index.
    Index(usize),
}

/// A path from the document root to a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct NodePath(Vec<Segment>);

impl NodePath {
    /// This path extended by one step.
    fn with(&self, segment: Segment) -> Self {
        let mut segments = self.0.clone();
        segments.push(segment);
        Self(segments)
    }

    /// `processes[1].capabilities[0].kind`, the form serde_yaml uses.
    fn render(&self) -> String {
        let mut text = String::new();
        for segment in &self.0 {
            match segment {
                Segment::Key(key) if text.is_empty() => text.push_str(key),
                Segment::Key(key) => {
                    text.push('.');
                    text.push_str(key);
                }
                Segment::Index(index) => text.push_str(&format!("[{index}]")),
            }
        }
        text
    }
}

/// Shorthand for a key step of a node path.
fn key(name: &'static str) -> Segment {
    Segment::Key(name)
}

/// The node path made of `segments`.
fn path(segments: &[Segment]) -> NodePath {
    NodePath(segments.to_vec())
}

/// A semantic problem and the node it belongs to.
struct Finding {
    path: NodePath,
    problem: Problem,
}

/// Validate manifest `text` (read from `file`, which only names it in
/// messages) and map it to the form the packer encodes.
pub fn validate_text(
    file: &Path,
    text: &str,
    known_binaries: &[String],
) -> Result<ManifestSpec, ManifestError> {
    if matches!(serde_yaml::from_str(text), Ok(serde_yaml::Value::Null)) {
        return Err(ManifestError {
            file: file.to_path_buf(),
            diagnostics: vec![Diagnostic {
                path: String::new(),
                location: None,
                source_line: None,
                problem: Problem::Empty,
            }],
        });
    }
    let parsed: ManifestFile =
        serde_yaml::from_str(text).map_err(|error| schema_error(file, text, &error))?;
    let mut findings = Vec::new();
    let spec = check(&parsed, known_binaries, text, &mut findings);
    if findings.is_empty() {
        return Ok(spec);
    }
    let mut diagnostics: Vec<Diagnostic> = findings
        .into_iter()
        .map(|finding| {
            let location = locate(text, &finding.path);
            Diagnostic {
                path: finding.path.render(),
                location,
                source_line: location.and_then(|location| source_line(text, location)),
                problem: finding.problem,
            }
        })
        .collect();
    diagnostics.sort_by_key(|diagnostic| (diagnostic.location.is_none(), diagnostic.location));
    Err(ManifestError {
        file: file.to_path_buf(),
        diagnostics,
    })
}

/// Turn a serde_yaml error into a diagnostic at the location it carries.
fn schema_error(file: &Path, text: &str, error: &serde_yaml::Error) -> ManifestError {
    let location = error.location().map(|location| Location {
        line: location.line(),
        column: location.column(),
    });
    let mut message = error.to_string();
    if let Some(location) = location {
        // The location is printed in front; drop serde_yaml's own copy of it.
        let suffix = format!(" at line {} column {}", location.line, location.column);
        if let Some(position) = message.find(&suffix) {
            message.replace_range(position..position + suffix.len(), "");
        }
    }
    ManifestError {
        file: file.to_path_buf(),
        diagnostics: vec![Diagnostic {
            path: String::new(),
            location,
            source_line: location.and_then(|location| source_line(text, location)),
            problem: Problem::Schema(message),
        }],
    }
}

/// The text of the line at `location`, if the file has it.
fn source_line(text: &str, location: Location) -> Option<String> {
    text.lines()
        .nth(location.line.checked_sub(1)?)
        .map(|line| line.trim_end().to_string())
}

/// Apply every semantic rule to `parsed`, pushing each violation onto
/// `findings`, and build the spec (meaningful only if `findings` stays empty).
fn check(
    parsed: &ManifestFile,
    known_binaries: &[String],
    text: &str,
    findings: &mut Vec<Finding>,
) -> ManifestSpec {
    let mut checker = Checker {
        parsed,
        known_binaries,
        text,
        findings,
        object_indices: HashMap::new(),
    };
    checker.check_counts();
    let objects = checker.check_objects();
    let processes = checker.check_processes();
    let init = checker.check_init();
    ManifestSpec {
        objects,
        processes,
        init,
    }
}

/// The state of one semantic pass over a parsed manifest.
struct Checker<'a> {
    parsed: &'a ManifestFile,
    known_binaries: &'a [String],
    /// The YAML text, to name the line of a first definition.
    text: &'a str,
    findings: &'a mut Vec<Finding>,
    /// Object name to the index of its first definition.
    object_indices: HashMap<&'a str, usize>,
}

impl<'a> Checker<'a> {
    /// Record a problem at `path`.
    fn report(&mut self, path: NodePath, problem: Problem) {
        self.findings.push(Finding { path, problem });
    }

    /// The line of the node at `path`, for "first defined at line N".
    fn line_of(&self, path: &NodePath) -> LineNumber {
        LineNumber(locate(self.text, path).map(|location| location.line))
    }

    /// At least one process; no more processes or objects than the packed
    /// format holds (reported at the first entry over the limit).
    fn check_counts(&mut self) {
        let parsed = self.parsed;
        if parsed.processes.is_empty() {
            self.report(path(&[key("processes")]), Problem::NoProcesses);
        }
        for (what, count, max) in [
            ("processes", parsed.processes.len(), MAX_PROCESSES as usize),
            ("objects", parsed.objects.len(), MAX_OBJECTS as usize),
        ] {
            if count > max {
                self.report(
                    path(&[key(what), Segment::Index(max)]),
                    Problem::TooMany { what, count, max },
                );
            }
        }
    }

    /// Object names are valid and unique; remembers their indices for grants.
    fn check_objects(&mut self) -> Vec<ObjectSpec> {
        let parsed = self.parsed;
        let mut objects = Vec::new();
        for (index, object) in parsed.objects.iter().enumerate() {
            let name_path = path(&[key("objects"), Segment::Index(index), key("name")]);
            self.check_name("object name", &object.name, &name_path);
            if let Some(&first) = self.object_indices.get(object.name.as_str()) {
                let first_line =
                    self.line_of(&path(&[key("objects"), Segment::Index(first), key("name")]));
                let name = object.name.clone();
                self.report(name_path, Problem::DuplicateObject { name, first_line });
            } else {
                self.object_indices.insert(&object.name, index);
            }
            objects.push(ObjectSpec {
                kind: object.kind.0,
                name: object.name.clone(),
            });
        }
        objects
    }

    /// Process names are unique; each process passes [`Self::check_process`].
    fn check_processes(&mut self) -> Vec<ProcessSpec> {
        let parsed = self.parsed;
        let mut first_definitions: HashMap<&str, usize> = HashMap::new();
        let mut processes = Vec::new();
        for (index, process) in parsed.processes.iter().enumerate() {
            let process_path = path(&[key("processes"), Segment::Index(index)]);
            if let Some(&first) = first_definitions.get(process.name.as_str()) {
                let first_line = self.line_of(&path(&[
                    key("processes"),
                    Segment::Index(first),
                    key("name"),
                ]));
                let name = process.name.clone();
                self.report(
                    process_path.with(key("name")),
                    Problem::DuplicateProcess { name, first_line },
                );
            } else {
                first_definitions.insert(&process.name, index);
            }
            processes.push(self.check_process(process, &process_path));
        }
        processes
    }

    /// `init` names a process, which is not also autostarted. Returns its
    /// index (0 when there is none; a finding is recorded then).
    fn check_init(&mut self) -> u32 {
        let parsed = self.parsed;
        let Some(index) = parsed
            .processes
            .iter()
            .position(|process| process.name == parsed.init)
        else {
            let processes = parsed
                .processes
                .iter()
                .map(|process| process.name.clone())
                .collect();
            let init = escape(&parsed.init);
            self.report(
                path(&[key("init")]),
                Problem::InitNotFound { init, processes },
            );
            return 0;
        };
        if parsed.processes[index].autostart {
            let process = parsed.init.clone();
            self.report(
                path(&[key("processes"), Segment::Index(index), key("autostart")]),
                Problem::InitAutostart { process },
            );
        }
        // Bounded by MAX_PROCESSES when the manifest is valid.
        u32::try_from(index).unwrap_or(u32::MAX)
    }

    /// Check one process entry and map it to its spec.
    fn check_process(&mut self, process: &ProcessEntry, process_path: &NodePath) -> ProcessSpec {
        self.check_name(
            "process name",
            &process.name,
            &process_path.with(key("name")),
        );
        if !self.known_binaries.contains(&process.binary) {
            let problem = Problem::UnknownBinary {
                binary: escape(&process.binary),
                known: self.known_binaries.to_vec(),
            };
            self.report(process_path.with(key("binary")), problem);
        }
        let arguments_path = process_path.with(key("args"));
        if process.args.len() > ARGUMENTS_MAX {
            let length = process.args.len();
            self.report(arguments_path.clone(), Problem::ArgumentsTooLong { length });
        }
        if process.args.contains('\0') {
            self.report(arguments_path, Problem::ArgumentsContainNul);
        }
        let capabilities_path = process_path.with(key("capabilities"));
        if process.capabilities.len() > CAPABILITIES_MAX {
            let problem = Problem::TooManyCapabilities {
                process: process.name.clone(),
                count: process.capabilities.len(),
            };
            self.report(
                capabilities_path.with(Segment::Index(CAPABILITIES_MAX)),
                problem,
            );
        }
        let mut grants: Vec<GrantSpec> = Vec::new();
        for (slot, capability) in process.capabilities.iter().enumerate() {
            let grant_path = capabilities_path.with(Segment::Index(slot));
            let grant = self.check_grant(capability, &grant_path);
            let name_path = if capability.name.is_some() {
                grant_path.with(key("name"))
            } else {
                grant_path
            };
            self.check_name("handle name", &grant.name, &name_path);
            if let Some(first_slot) = grants.iter().position(|other| other.name == grant.name) {
                let problem = Problem::DuplicateHandleName {
                    process: process.name.clone(),
                    name: escape(&grant.name),
                    first_slot,
                };
                self.report(name_path, problem);
            }
            grants.push(grant);
        }
        ProcessSpec {
            name: process.name.clone(),
            binary: process.binary.clone(),
            arguments: process.args.clone(),
            autostart: process.autostart,
            grants,
        }
    }

    /// Check one capability entry and map it to its grant: singletons take
    /// no `object`; other kinds must name an existing object of their kind.
    fn check_grant(&mut self, capability: &CapabilityEntry, grant_path: &NodePath) -> GrantSpec {
        let kind = capability.kind.0;
        let object_path = grant_path.with(key("object"));
        let object = match (&capability.object, is_singleton(kind)) {
            (None, true) => None,
            (Some(_), true) => {
                self.report(object_path, Problem::ObjectOnSingleton { kind });
                None
            }
            (None, false) => {
                let known = self.object_names(kind);
                self.report(grant_path.clone(), Problem::EndpointWithoutObject { known });
                None
            }
            (Some(object), false) => self.resolve_object(object, kind, object_path),
        };
        let name = match (&capability.name, &capability.object) {
            (Some(name), _) => name.clone(),
            (None, Some(object)) if !is_singleton(kind) => object.clone(),
            _ => kind.name().to_string(),
        };
        GrantSpec { kind, object, name }
    }

    /// The index of the object named `object`, if it exists and is of `kind`.
    fn resolve_object(
        &mut self,
        object: &str,
        kind: CapabilityKind,
        object_path: NodePath,
    ) -> Option<u32> {
        let Some(&index) = self.object_indices.get(object) else {
            let problem = Problem::MissingObject {
                object: escape(object),
                known: self.object_names(kind),
            };
            self.report(object_path, problem);
            return None;
        };
        let object_kind = self.parsed.objects[index].kind.0;
        if Some(object_kind) != kind.object_kind() {
            let problem = Problem::ObjectKindMismatch {
                object: escape(object),
                object_kind,
                grant_kind: kind,
            };
            self.report(object_path, problem);
            return None;
        }
        // Bounded by MAX_OBJECTS when the manifest is valid.
        Some(u32::try_from(index).unwrap_or(u32::MAX))
    }

    /// The distinct names of the objects of `kind`, in document order.
    fn object_names(&self, kind: CapabilityKind) -> Vec<String> {
        let kind = kind.object_kind().unwrap_or(kind);
        let mut names: Vec<String> = Vec::new();
        for object in &self.parsed.objects {
            if object.kind.0 == kind && !names.contains(&object.name) {
                names.push(object.name.clone());
            }
        }
        names
    }

    /// Reject empty, over-long or control-character names.
    fn check_name(&mut self, what: &'static str, name: &str, name_path: &NodePath) {
        let reason = if name.is_empty() {
            "is empty".to_string()
        } else if name.len() > NAME_MAX {
            format!("is {} bytes long (at most {NAME_MAX})", name.len())
        } else if name.chars().any(char::is_control) {
            "contains a control character".to_string()
        } else {
            return;
        };
        let name = escape(name);
        self.report(name_path.clone(), Problem::BadName { what, name, reason });
    }
}

/// `text` with control characters escaped, for messages.
fn escape(text: &str) -> String {
    text.chars().flat_map(char::escape_debug).collect()
}

/// The location of the node at `path` in the YAML `text`, or of the nearest
/// existing ancestor when the node itself is absent (a missing key).
///
/// serde_yaml keeps no spans, but it stamps every error raised while a node
/// is being deserialized with that node's position. So this walks the
/// document with a visitor that follows `path` and raises an error on
/// arrival, then reads the position off the error.
fn locate(text: &str, path: &NodePath) -> Option<Location> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let error = Locator { path: &path.0 }.deserialize(deserializer).err()?;
    error.location().map(|location| Location {
        line: location.line(),
        column: location.column(),
    })
}

/// A seed that descends along `path` and fails at its end.
struct Locator<'path> {
    path: &'path [Segment],
}

/// The error the locator raises; only its position matters.
const LOCATOR_STOP: &str = "locator stop";

impl<'de> DeserializeSeed<'de> for Locator<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Locator<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Segment::Key(wanted), rest)) = self.path.split_first() else {
            return Err(de::Error::custom(LOCATOR_STOP));
        };
        while let Some(key) = map.next_key::<serde_yaml::Value>()? {
            if key.as_str() == Some(*wanted) {
                return map.next_value_seed(Locator { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom(LOCATOR_STOP))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<(), A::Error> {
        let Some((Segment::Index(wanted), rest)) = self.path.split_first() else {
            return Err(de::Error::custom(LOCATOR_STOP));
        };
        for _ in 0..*wanted {
            if sequence.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(LOCATOR_STOP));
            }
        }
        match sequence.next_element_seed(Locator { path: rest })? {
            Some(()) | None => Err(de::Error::custom(LOCATOR_STOP)),
        }
    }

    // Every scalar is a leaf: stop here whatever remains of the path.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(LOCATOR_STOP))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(LOCATOR_STOP))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(LOCATOR_STOP))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(LOCATOR_STOP))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(LOCATOR_STOP))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(LOCATOR_STOP))
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(LOCATOR_STOP))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_block_and_flow_nodes() {
        let text = "init: a\nprocesses:\n  - name: a\n    capabilities:\n      - { kind: console }\n      - { kind: timer, name: clock }\n";
        let at = |segments: Vec<Segment>| locate(text, &NodePath(segments));
        assert_eq!(at(vec![key("init")]), Some(Location { line: 1, column: 7 }));
        assert_eq!(
            at(vec![key("processes"), Segment::Index(0), key("name")]),
            Some(Location {
                line: 3,
                column: 11
            })
        );
        assert_eq!(
            at(vec![
                key("processes"),
                Segment::Index(0),
                key("capabilities"),
                Segment::Index(1),
                key("name"),
            ]),
            Some(Location {
                line: 6,
                column: 30
            })
        );
        // A missing key points at the mapping that lacks it.
        assert_eq!(
            at(vec![
                key("processes"),
                Segment::Index(0),
                key("capabilities"),
                Segment::Index(0),
                key("object"),
            ])
            .map(|location| location.line),
            Some(5)
        );
    }

    #[test]
    fn node_paths_render_like_serde_yaml() {
        let path = NodePath(vec![
            key("processes"),
            Segment::Index(2),
            key("capabilities"),
            Segment::Index(0),
            key("kind"),
        ]);
        assert_eq!(path.render(), "processes[2].capabilities[0].kind");
    }
}
