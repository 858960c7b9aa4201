//! The packed boot manifest: the binary form of a validated `system-*.yaml`
//! that the host tool writes as a multiboot2 module and the kernel reads.
//! The kernel never parses YAML; it only decodes this, checking every
//! offset, length, kind and index, so a corrupt module is an error, not a
//! crash.
//!
//! Layout (little-endian, offsets from the start of the module):
//! - header (32 bytes): magic `CAPOSMF1`, version, object count, process
//!   count, grant count, init process index, string-table length;
//! - objects (16 bytes each): kind, reserved, name;
//! - processes (40 bytes each): name, binary (boot module name), arguments,
//!   first grant, grant count, flags, reserved;
//! - grants (16 bytes each): kind, object index (or [`NO_OBJECT`]), name;
//! - the string table.
//!
//! Strings are (offset, length) pairs into the string table, UTF-8.
//! A process's grants become its capability slots 0, 1, ... in order.

use crate::CapabilityKind;

/// First bytes of a packed manifest.
pub const MAGIC: [u8; 8] = *b"CAPOSMF1";
/// Format version.
pub const VERSION: u32 = 1;
/// Grant object index meaning "the kernel's singleton of this kind".
pub const NO_OBJECT: u32 = u32::MAX;
/// Process flag: started by init at boot.
pub const FLAG_AUTOSTART: u32 = 1;
/// Most objects, processes and grants a manifest may hold.
pub const MAX_OBJECTS: u32 = 64;
pub const MAX_PROCESSES: u32 = 64;
pub const MAX_GRANTS: u32 = 1024;

const HEADER_SIZE: usize = 32;
const OBJECT_SIZE: usize = 16;
const PROCESS_SIZE: usize = 40;
const GRANT_SIZE: usize = 16;

/// Why a packed manifest was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestError {
    TooShort,
    BadMagic,
    UnsupportedVersion(u32),
    TooMany { what: &'static str, count: u32 },
    Truncated,
    StringOutOfRange { offset: u32, length: u32 },
    NotUtf8,
    UnknownKind(u32),
    ObjectOutOfRange(u32),
    ObjectKindMismatch { grant: u32 },
    GrantsOutOfRange { process: u32 },
    InitOutOfRange(u32),
}

impl core::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShort => f.write_str("shorter than the manifest header"),
            Self::BadMagic => f.write_str("bad magic (not a packed capOS manifest)"),
            Self::UnsupportedVersion(version) => write!(f, "unsupported version {version}"),
            Self::TooMany { what, count } => write!(f, "too many {what}: {count}"),
            Self::Truncated => f.write_str("tables run past the end of the module"),
            Self::StringOutOfRange { offset, length } => {
                write!(f, "string ({offset}, {length}) outside the string table")
            }
            Self::NotUtf8 => f.write_str("a string is not UTF-8"),
            Self::UnknownKind(kind) => write!(f, "unknown capability kind {kind}"),
            Self::ObjectOutOfRange(index) => write!(f, "object index {index} out of range"),
            Self::ObjectKindMismatch { grant } => {
                write!(f, "grant {grant} names an object of another kind")
            }
            Self::GrantsOutOfRange { process } => {
                write!(f, "process {process} grants run past the grant table")
            }
            Self::InitOutOfRange(index) => write!(f, "init process index {index} out of range"),
        }
    }
}

/// A decoded, fully validated manifest borrowing the module bytes.
#[derive(Clone, Copy, Debug)]
pub struct Manifest<'a> {
    bytes: &'a [u8],
    object_count: u32,
    process_count: u32,
    grant_count: u32,
    init: u32,
    objects_at: usize,
    processes_at: usize,
    grants_at: usize,
    strings: &'a [u8],
}

/// A named kernel object the manifest asks for (e.g. an endpoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Object<'a> {
    pub kind: CapabilityKind,
    pub name: &'a str,
}

/// One program to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Process<'a> {
    pub name: &'a str,
    /// Name of the boot module holding its ELF image.
    pub binary: &'a str,
    pub arguments: &'a str,
    pub autostart: bool,
    pub first_grant: u32,
    pub grant_count: u32,
}

/// One capability a process starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant<'a> {
    pub kind: CapabilityKind,
    /// Index into the objects, or None for the kind's singleton.
    pub object: Option<u32>,
    pub name: &'a str,
}

fn u32_at(bytes: &[u8], offset: usize) -> Result<u32, ManifestError> {
    let slice = bytes
        .get(offset..offset + 4)
        .ok_or(ManifestError::Truncated)?;
    Ok(u32::from_le_bytes([slice[0], slice[1], slice[2], slice[3]]))
}

impl<'a> Manifest<'a> {
    /// Decode and validate every table entry.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ManifestError> {
        if bytes.len() < HEADER_SIZE {
            return Err(ManifestError::TooShort);
        }
        if bytes[..8] != MAGIC {
            return Err(ManifestError::BadMagic);
        }
        let version = u32_at(bytes, 8)?;
        if version != VERSION {
            return Err(ManifestError::UnsupportedVersion(version));
        }
        let object_count = u32_at(bytes, 12)?;
        let process_count = u32_at(bytes, 16)?;
        let grant_count = u32_at(bytes, 20)?;
        let init = u32_at(bytes, 24)?;
        let strings_length = u32_at(bytes, 28)? as usize;
        for (what, count, max) in [
            ("objects", object_count, MAX_OBJECTS),
            ("processes", process_count, MAX_PROCESSES),
            ("grants", grant_count, MAX_GRANTS),
        ] {
            if count > max {
                return Err(ManifestError::TooMany { what, count });
            }
        }
        let objects_at = HEADER_SIZE;
        let processes_at = objects_at + object_count as usize * OBJECT_SIZE;
        let grants_at = processes_at + process_count as usize * PROCESS_SIZE;
        let strings_at = grants_at + grant_count as usize * GRANT_SIZE;
        let strings = bytes
            .get(strings_at..strings_at + strings_length)
            .ok_or(ManifestError::Truncated)?;
        let manifest = Self {
            bytes,
            object_count,
            process_count,
            grant_count,
            init,
            objects_at,
            processes_at,
            grants_at,
            strings,
        };
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        if self.init >= self.process_count {
            return Err(ManifestError::InitOutOfRange(self.init));
        }
        for index in 0..self.object_count {
            self.read_object(index)?;
        }
        for index in 0..self.grant_count {
            let grant = self.read_grant(index)?;
            if let Some(object) = grant.object {
                if Some(self.read_object(object)?.kind) != grant.kind.object_kind() {
                    return Err(ManifestError::ObjectKindMismatch { grant: index });
                }
            }
        }
        for index in 0..self.process_count {
            let process = self.read_process(index)?;
            let end = process.first_grant.checked_add(process.grant_count);
            if end.is_none_or(|end| end > self.grant_count) {
                return Err(ManifestError::GrantsOutOfRange { process: index });
            }
        }
        Ok(())
    }

    fn string(&self, offset_at: usize) -> Result<&'a str, ManifestError> {
        let offset = u32_at(self.bytes, offset_at)?;
        let length = u32_at(self.bytes, offset_at + 4)?;
        let start = offset as usize;
        let bytes = start
            .checked_add(length as usize)
            .and_then(|end| self.strings.get(start..end))
            .ok_or(ManifestError::StringOutOfRange { offset, length })?;
        core::str::from_utf8(bytes).map_err(|_| ManifestError::NotUtf8)
    }

    fn kind(number: u32) -> Result<CapabilityKind, ManifestError> {
        CapabilityKind::from_number(number).ok_or(ManifestError::UnknownKind(number))
    }

    fn read_object(&self, index: u32) -> Result<Object<'a>, ManifestError> {
        if index >= self.object_count {
            return Err(ManifestError::ObjectOutOfRange(index));
        }
        let at = self.objects_at + index as usize * OBJECT_SIZE;
        Ok(Object {
            kind: Self::kind(u32_at(self.bytes, at)?)?,
            name: self.string(at + 8)?,
        })
    }

    fn read_process(&self, index: u32) -> Result<Process<'a>, ManifestError> {
        let at = self.processes_at + index as usize * PROCESS_SIZE;
        Ok(Process {
            name: self.string(at)?,
            binary: self.string(at + 8)?,
            arguments: self.string(at + 16)?,
            first_grant: u32_at(self.bytes, at + 24)?,
            grant_count: u32_at(self.bytes, at + 28)?,
            autostart: u32_at(self.bytes, at + 32)? & FLAG_AUTOSTART != 0,
        })
    }

    fn read_grant(&self, index: u32) -> Result<Grant<'a>, ManifestError> {
        let at = self.grants_at + index as usize * GRANT_SIZE;
        let object = u32_at(self.bytes, at + 4)?;
        Ok(Grant {
            kind: Self::kind(u32_at(self.bytes, at)?)?,
            object: (object != NO_OBJECT).then_some(object),
            name: self.string(at + 8)?,
        })
    }

    /// Number of objects.
    pub fn object_count(&self) -> u32 {
        self.object_count
    }

    /// Number of processes.
    pub fn process_count(&self) -> u32 {
        self.process_count
    }

    /// Index of the process the kernel starts first.
    pub fn init(&self) -> u32 {
        self.init
    }

    /// Object `index` (validated at parse time).
    pub fn object(&self, index: u32) -> Option<Object<'a>> {
        self.read_object(index).ok()
    }

    /// Process `index` (validated at parse time).
    pub fn process(&self, index: u32) -> Option<Process<'a>> {
        (index < self.process_count).then(|| self.read_process(index).ok())?
    }

    /// The grants of `process`, in slot order.
    pub fn grants(&self, process: &Process<'a>) -> impl Iterator<Item = Grant<'a>> + '_ {
        let first = process.first_grant;
        (first..first + process.grant_count).filter_map(|index| self.read_grant(index).ok())
    }

    /// Find a process by name.
    pub fn find_process(&self, name: &str) -> Option<(u32, Process<'a>)> {
        (0..self.process_count)
            .filter_map(|index| Some((index, self.process(index)?)))
            .find(|(_, process)| process.name == name)
    }
}

/// Owned description of a manifest, for the host packer.
#[cfg(feature = "alloc")]
pub mod spec {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    /// An object to create.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ObjectSpec {
        pub kind: CapabilityKind,
        pub name: String,
    }

    /// A capability to grant.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct GrantSpec {
        pub kind: CapabilityKind,
        pub object: Option<u32>,
        pub name: String,
    }

    /// A process entry.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ProcessSpec {
        pub name: String,
        pub binary: String,
        pub arguments: String,
        pub autostart: bool,
        pub grants: Vec<GrantSpec>,
    }

    /// A whole manifest.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ManifestSpec {
        pub objects: Vec<ObjectSpec>,
        pub processes: Vec<ProcessSpec>,
        pub init: u32,
    }

    struct Strings(Vec<u8>);

    impl Strings {
        fn add(&mut self, text: &str, out: &mut Vec<u8>) {
            out.extend_from_slice(&(self.0.len() as u32).to_le_bytes());
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            self.0.extend_from_slice(text.as_bytes());
        }
    }

    /// Encode `spec` (assumed validated by the caller) into the packed form.
    pub fn encode(spec: &ManifestSpec) -> Vec<u8> {
        let grant_count: usize = spec.processes.iter().map(|p| p.grants.len()).sum();
        let mut strings = Strings(Vec::new());
        let mut tables = Vec::new();
        for object in &spec.objects {
            tables.extend_from_slice(&(object.kind as u32).to_le_bytes());
            tables.extend_from_slice(&0u32.to_le_bytes());
            strings.add(&object.name, &mut tables);
        }
        let mut first_grant = 0u32;
        for process in &spec.processes {
            strings.add(&process.name, &mut tables);
            strings.add(&process.binary, &mut tables);
            strings.add(&process.arguments, &mut tables);
            tables.extend_from_slice(&first_grant.to_le_bytes());
            tables.extend_from_slice(&(process.grants.len() as u32).to_le_bytes());
            let flags = if process.autostart { FLAG_AUTOSTART } else { 0 };
            tables.extend_from_slice(&flags.to_le_bytes());
            tables.extend_from_slice(&0u32.to_le_bytes());
            first_grant += process.grants.len() as u32;
        }
        for grant in spec.processes.iter().flat_map(|p| &p.grants) {
            tables.extend_from_slice(&(grant.kind as u32).to_le_bytes());
            tables.extend_from_slice(&grant.object.unwrap_or(NO_OBJECT).to_le_bytes());
            strings.add(&grant.name, &mut tables);
        }
        let mut bytes = Vec::with_capacity(HEADER_SIZE + tables.len() + strings.0.len());
        bytes.extend_from_slice(&MAGIC);
        for value in [
            VERSION,
            spec.objects.len() as u32,
            spec.processes.len() as u32,
            grant_count as u32,
            spec.init,
            strings.0.len() as u32,
        ] {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes.extend_from_slice(&tables);
        bytes.extend_from_slice(&strings.0);
        bytes
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::spec::*;
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn sample() -> ManifestSpec {
        ManifestSpec {
            objects: vec![ObjectSpec {
                kind: CapabilityKind::Endpoint,
                name: "ping".into(),
            }],
            processes: vec![
                ProcessSpec {
                    name: "init".into(),
                    binary: "init".into(),
                    arguments: "".into(),
                    autostart: false,
                    grants: vec![
                        GrantSpec {
                            kind: CapabilityKind::Console,
                            object: None,
                            name: "console".into(),
                        },
                        GrantSpec {
                            kind: CapabilityKind::ProcessSpawner,
                            object: None,
                            name: "spawner".into(),
                        },
                    ],
                },
                ProcessSpec {
                    name: "server".into(),
                    binary: "endpoint-server".into(),
                    arguments: "rounds=3".into(),
                    autostart: true,
                    grants: vec![GrantSpec {
                        kind: CapabilityKind::Endpoint,
                        object: Some(0),
                        name: "ping".into(),
                    }],
                },
            ],
            init: 0,
        }
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let bytes = encode(&sample());
        let manifest = Manifest::parse(&bytes).unwrap();
        assert_eq!(manifest.process_count(), 2);
        let (index, server) = manifest.find_process("server").unwrap();
        assert_eq!(index, 1);
        assert_eq!(server.binary, "endpoint-server");
        assert_eq!(server.arguments, "rounds=3");
        assert!(server.autostart);
        let grants: vec::Vec<_> = manifest.grants(&server).collect();
        assert_eq!(
            grants,
            [Grant {
                kind: CapabilityKind::Endpoint,
                object: Some(0),
                name: "ping"
            }]
        );
        assert_eq!(manifest.object(0).unwrap().name, "ping");
    }

    #[test]
    fn rejects_corruption_precisely() {
        let bytes = encode(&sample());
        assert_eq!(
            Manifest::parse(&bytes[..10]).unwrap_err(),
            ManifestError::TooShort
        );
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert_eq!(Manifest::parse(&bad).unwrap_err(), ManifestError::BadMagic);
        assert_eq!(
            Manifest::parse(&bytes[..bytes.len() - 1]).unwrap_err(),
            ManifestError::Truncated
        );
        let mut bad = bytes.clone();
        bad[24] = 9; // init index
        assert_eq!(
            Manifest::parse(&bad).unwrap_err(),
            ManifestError::InitOutOfRange(9)
        );
        let mut bad = bytes.clone();
        let grant_kind_at = 32 + 16 + 2 * 40 + 2 * 16; // third grant's kind
        bad[grant_kind_at] = 5; // timer, but object 0 is an endpoint
        assert_eq!(
            Manifest::parse(&bad).unwrap_err(),
            ManifestError::ObjectKindMismatch { grant: 2 }
        );
        assert!(ManifestError::BadMagic.to_string().contains("magic"));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = Manifest::parse(&bytes);
        }

        #[test]
        fn corrupting_a_valid_manifest_never_panics(position in 0usize..400, value in proptest::num::u8::ANY) {
            let mut bytes = encode(&sample());
            let index = position % bytes.len();
            bytes[index] = value;
            if let Ok(manifest) = Manifest::parse(&bytes) {
                for index in 0..manifest.process_count() {
                    let process = manifest.process(index).unwrap();
                    let _ = manifest.grants(&process).count();
                }
            }
        }
    }
}
