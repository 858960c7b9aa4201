//! The YAML shape of a boot manifest (serde types, unknown fields refused),
//! and which capability kinds a manifest may grant or create.

use capos_abi::CapabilityKind;
use serde::de::{self, Visitor};
use serde::Deserialize;
use std::fmt;

/// Kinds that name one kernel-wide object; grants of these take no `object`.
pub(super) fn is_singleton(kind: CapabilityKind) -> bool {
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
pub(super) const OBJECT_KINDS: [CapabilityKind; 1] = [CapabilityKind::Endpoint];

/// The top level of `system-<name>.yaml`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct ManifestFile {
    pub(super) init: String,
    #[serde(default)]
    pub(super) objects: Vec<ObjectEntry>,
    pub(super) processes: Vec<ProcessEntry>,
}

/// One entry of `objects:`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct ObjectEntry {
    pub(super) kind: ObjectKind,
    pub(super) name: String,
}

/// One entry of `processes:`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct ProcessEntry {
    pub(super) name: String,
    pub(super) binary: String,
    #[serde(default)]
    pub(super) args: String,
    #[serde(default)]
    pub(super) autostart: bool,
    #[serde(default)]
    pub(super) capabilities: Vec<CapabilityEntry>,
}

/// One entry of a process's `capabilities:`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(super) struct CapabilityEntry {
    pub(super) kind: GrantKind,
    #[serde(default)]
    pub(super) object: Option<String>,
    #[serde(default)]
    pub(super) name: Option<String>,
}

/// A capability kind a manifest may grant (every kind but `process-handle`).
#[derive(Clone, Copy, Debug)]
pub(super) struct GrantKind(pub(super) CapabilityKind);

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
pub(super) fn grantable_kind_names() -> String {
    CapabilityKind::ALL
        .into_iter()
        .filter(|kind| *kind != CapabilityKind::ProcessHandle)
        .map(CapabilityKind::name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A kind of named object a manifest may create ([`OBJECT_KINDS`]).
#[derive(Clone, Copy, Debug)]
pub(super) struct ObjectKind(pub(super) CapabilityKind);

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
