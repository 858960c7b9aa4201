//! The auditor's trust policy: which keys it accepts as builders (whose
//! bundles it reads) and which as independent reproducers (whose
//! reproduction attestations it counts).
//!
//! The file is YAML:
//!
//! ```yaml
//! builders:
//!   - name: ci
//!     public_key_file: keys/ci.pem.pub      # relative to the policy file
//! reproducers:
//!   - name: alice
//!     public_key: |
//!       -----BEGIN PUBLIC KEY-----
//!       ...
//!       -----END PUBLIC KEY-----
//! ```
//!
//! Invariants: unknown fields are refused; every entry has a name and
//! exactly one of `public_key` (SPKI PEM) or `public_key_file`; no key is
//! both a builder and a reproducer (a builder's own reproduction is never
//! independent), and no key or name is listed twice.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::DecodePublicKey as _;
use ed25519_dalek::VerifyingKey;
use serde::Deserialize;

use crate::bundle::keys;
use crate::bundle::provenance::key_id;

/// Largest policy file read.
const MAX_POLICY_BYTES: u64 = 1 << 20;

/// Why a policy file is refused.
#[derive(thiserror::Error, Debug)]
pub enum PolicyError {
    /// Reading failed.
    #[error("reading trust policy {}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// Too large to be a policy.
    #[error("trust policy {} is {size} bytes, over the {MAX_POLICY_BYTES}-byte limit", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// Not the YAML schema.
    #[error("trust policy {}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    builders: Vec<KeyEntry>,
    #[serde(default)]
    reproducers: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    #[serde(default)]
    public_key: Option<String>,
    #[serde(default)]
    public_key_file: Option<PathBuf>,
}

/// A key the policy names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedKey {
    /// The policy's name for it.
    pub name: String,
    /// Its key id (hex sha256 of the raw public key).
    pub key_id: String,
    /// The key.
    pub key: VerifyingKey,
}

/// A loaded trust policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// Keys whose bundles the auditor accepts.
    pub builders: Vec<NamedKey>,
    /// Keys whose reproductions count as independent.
    pub reproducers: Vec<NamedKey>,
}

impl Policy {
    /// The builder with key id `key_id`.
    #[must_use]
    pub fn builder(&self, key_id: &str) -> Option<&NamedKey> {
        self.builders.iter().find(|key| key.key_id == key_id)
    }

    /// The reproducer with key id `key_id`.
    #[must_use]
    pub fn reproducer(&self, key_id: &str) -> Option<&NamedKey> {
        self.reproducers.iter().find(|key| key.key_id == key_id)
    }
}

/// Load and check a policy file; key files are relative to its directory.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    let io = |cause| PolicyError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base).map_err(|reason| PolicyError::Malformed {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parse policy `text`, reading key files relative to `base`.
pub fn parse(text: &str, base: &Path) -> Result<Policy, String> {
    let file: PolicyFile = serde_yaml::from_str(text).map_err(|error| error.to_string())?;
    let builders = named_keys(&file.builders, base, "builders")?;
    let reproducers = named_keys(&file.reproducers, base, "reproducers")?;
    if builders.is_empty() {
        return Err("names no builder key (`builders:`)".to_owned());
    }
    let mut names = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for key in builders.iter().chain(&reproducers) {
        if !names.insert(key.name.as_str()) {
            return Err(format!("the name {:?} is listed twice", key.name));
        }
        if !ids.insert(key.key_id.as_str()) {
            let role = if builders.iter().any(|b| b.key_id == key.key_id)
                && reproducers.iter().any(|r| r.key_id == key.key_id)
            {
                " as both a builder and a reproducer (a builder's own reproduction is never independent)"
            } else {
                " twice"
            };
            return Err(format!(
                "key {} ({:?}) is listed{role}",
                key.key_id, key.name
            ));
        }
    }
    Ok(Policy {
        builders,
        reproducers,
    })
}

fn named_keys(entries: &[KeyEntry], base: &Path, list: &str) -> Result<Vec<NamedKey>, String> {
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let place = format!("{list}[{index}] ({:?})", entry.name);
            if entry.name.trim().is_empty() {
                return Err(format!("{list}[{index}] has an empty name"));
            }
            let key = match (&entry.public_key, &entry.public_key_file) {
                (Some(pem), None) => VerifyingKey::from_public_key_pem(pem).map_err(|error| {
                    format!("{place}: public_key is not an Ed25519 SPKI PEM public key: {error}")
                })?,
                (None, Some(file)) => keys::load_verifying_key(&base.join(file))
                    .map_err(|error| format!("{place}: {error}"))?,
                _ => {
                    return Err(format!(
                        "{place}: give exactly one of public_key (PEM) or public_key_file"
                    ))
                }
            };
            Ok(NamedKey {
                name: entry.name.clone(),
                key_id: key_id(&key),
                key,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePublicKey as _};
    use ed25519_dalek::SigningKey;

    fn pem(seed: u8) -> String {
        SigningKey::from_bytes(&[seed; 32])
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem")
    }

    fn policy(builders: &[(&str, u8)], reproducers: &[(&str, u8)]) -> String {
        let list = |entries: &[(&str, u8)]| {
            entries
                .iter()
                .map(|(name, seed)| {
                    let key = pem(*seed).replace('\n', "\n      ");
                    format!("  - name: {name}\n    public_key: |\n      {key}\n")
                })
                .collect::<String>()
        };
        format!(
            "builders:\n{}reproducers:\n{}",
            list(builders),
            list(reproducers)
        )
    }

    #[test]
    fn loads_builders_and_reproducers() {
        let text = policy(&[("ci", 1)], &[("alice", 2), ("bob", 3)]);
        let loaded = parse(&text, Path::new(".")).expect("policy");
        assert_eq!(loaded.builders.len(), 1);
        assert_eq!(loaded.reproducers.len(), 2);
        let alice = SigningKey::from_bytes(&[2; 32]).verifying_key();
        assert_eq!(
            loaded.reproducer(&key_id(&alice)).map(|k| k.name.as_str()),
            Some("alice")
        );
        assert!(loaded.builder(&key_id(&alice)).is_none());
    }

    #[test]
    fn a_builder_key_listed_as_reproducer_is_refused() {
        let text = policy(&[("ci", 1)], &[("ci-again", 1)]);
        let error = parse(&text, Path::new(".")).expect_err("must refuse");
        assert!(error.contains("both a builder and a reproducer"), "{error}");
    }

    #[test]
    fn unknown_fields_and_missing_keys_are_refused() {
        assert!(parse("builders: []\nextra: 1\n", Path::new(".")).is_err());
        assert!(parse("builders:\n  - name: ci\n", Path::new("."))
            .expect_err("no key")
            .contains("exactly one of"));
        assert!(parse("reproducers: []\n", Path::new("."))
            .expect_err("no builder")
            .contains("no builder"));
    }
}
