//! Manifest validation: the schema pass (serde), then every semantic rule on
//! typed data, each finding located in the document afterwards.
//!
//! Invariant: a manifest [`validate_text`] accepts maps to a `ManifestSpec`
//! the packer can encode; every rejection carries all findings, not the first.

use std::collections::HashMap;
use std::path::Path;

use capos_abi::manifest::spec::{GrantSpec, ManifestSpec, ObjectSpec, ProcessSpec};
use capos_abi::manifest::{MAX_OBJECTS, MAX_PROCESSES};
use capos_abi::CapabilityKind;

use super::diagnostic::*;
use super::locate::{key, locate, path, NodePath, Segment};
use super::schema::*;
use super::{ARGUMENTS_MAX, CAPABILITIES_MAX, NAME_MAX};

/// A semantic problem and the node it belongs to.
pub(super) struct Finding {
    pub(super) path: NodePath,
    pub(super) problem: Problem,
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
pub(super) fn schema_error(file: &Path, text: &str, error: &serde_yaml::Error) -> ManifestError {
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
pub(super) fn source_line(text: &str, location: Location) -> Option<String> {
    text.lines()
        .nth(location.line.checked_sub(1)?)
        .map(|line| line.trim_end().to_string())
}

/// Apply every semantic rule to `parsed`, pushing each violation onto
/// `findings`, and build the spec (meaningful only if `findings` stays empty).
pub(super) fn check(
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
pub(super) struct Checker<'a> {
    pub(super) parsed: &'a ManifestFile,
    pub(super) known_binaries: &'a [String],
    /// The YAML text, to name the line of a first definition.
    pub(super) text: &'a str,
    pub(super) findings: &'a mut Vec<Finding>,
    /// Object name to the index of its first definition.
    pub(super) object_indices: HashMap<&'a str, usize>,
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
pub(super) fn escape(text: &str) -> String {
    text.chars().flat_map(char::escape_debug).collect()
}
