//! How a rejected manifest is reported: `file:line:column: path: problem`,
//! with the source line and a caret under the column.

use std::fmt;
use std::path::PathBuf;

use capos_abi::CapabilityKind;

use super::{ARGUMENTS_MAX, CAPABILITIES_MAX};

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
pub(super) fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    }
}

/// `; objects of that kind: a, b`, or a hint that there are none.
pub(super) fn object_choices(known: &[String]) -> String {
    if known.is_empty() {
        "; the manifest declares no such object (add one under `objects:`)".to_string()
    } else {
        format!("; objects of that kind: {}", known.join(", "))
    }
}
