//! `capos verify`: audit a bundle (directory or packed archive) offline with
//! nothing but a trusted public key.
//!
//! The checks run in a fixed order and stop at the first failure, whose
//! message names the file and what differs:
//! 1. `MANIFEST.sha256` is present and canonical;
//! 2. every listed file exists with the listed size and sha256;
//! 3. nothing else is on disk (no unlisted file, symlink, special file or
//!    empty directory);
//! 4. the directory (or archive top directory) is named sha256(MANIFEST);
//! 5. `provenance.dsse.json` verifies against the trusted key;
//! 6. the statement's subjects are exactly the bundle files (all but the
//!    provenance and the manifest) with equal digests, and its byproducts
//!    exactly the files under `logs/`;
//!
//! Step 7, recomputing the figures from the raw logs, needs to know what the
//! files mean; it is `proof::audit`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Result;
use ed25519_dalek::VerifyingKey;

use crate::bundle::manifest::{self, BundleError, ManifestEntry};
use crate::bundle::pack::{self, UnpackError};
use crate::bundle::provenance::{self, EnvelopeError, ResourceDescriptor, Statement};
use crate::bundle::{self, MANIFEST_FILE, PROVENANCE_FILE};

/// A bundle that passed verification.
#[derive(Debug)]
pub struct VerifiedBundle {
    /// The bundle directory (for an archive, inside a temporary extraction
    /// that lives as long as this value).
    pub dir: PathBuf,
    /// The bundle name: sha256 of its manifest.
    pub name: String,
    /// Key id of the trusted key that signed it.
    pub key_id: String,
    /// Number of files the manifest lists (every file but the manifest).
    pub files: usize,
    /// The verified provenance statement.
    pub statement: Statement,
    /// Keeps an archive's extraction alive; `None` for a directory.
    _extraction: Option<tempfile::TempDir>,
}

/// The first check a bundle fails.
#[derive(thiserror::Error, Debug)]
pub enum VerifyError {
    /// The path is neither a directory nor a file.
    #[error("{}: no such bundle directory or archive", path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The archive cannot be unpacked safely.
    #[error(transparent)]
    Archive(#[from] UnpackError),
    /// Reading failed.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error (shown in the message, so not chained as a source).
        cause: io::Error,
    },
    /// There is no manifest.
    #[error("{MANIFEST_FILE} is missing")]
    ManifestMissing,
    /// The manifest is not canonical, or the tree holds a symlink, special
    /// file or empty directory.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// A listed file is absent.
    #[error("{path}: listed in {MANIFEST_FILE} but missing")]
    FileMissing {
        /// Relative path.
        path: String,
    },
    /// A listed path is not a regular file.
    #[error("{path}: listed in {MANIFEST_FILE} but not a regular file")]
    NotAFile {
        /// Relative path.
        path: String,
    },
    /// A file's size differs from the manifest.
    #[error("{path}: size is {actual} bytes, {MANIFEST_FILE} says {expected}")]
    SizeMismatch {
        /// Relative path.
        path: String,
        /// Size in the manifest.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// A file's sha256 differs from the manifest.
    #[error("{path}: sha256 is {actual}, {MANIFEST_FILE} says {expected}")]
    DigestMismatch {
        /// Relative path.
        path: String,
        /// Digest in the manifest.
        expected: String,
        /// Digest of the file.
        actual: String,
    },
    /// A file on disk is not in the manifest.
    #[error("{path}: present but not listed in {MANIFEST_FILE}")]
    UnlistedFile {
        /// Relative path.
        path: String,
    },
    /// The bundle's name is not the digest of its manifest.
    #[error("bundle is named {found:?} but sha256({MANIFEST_FILE}) is {expected}")]
    NameMismatch {
        /// Directory (or archive top directory) name.
        found: String,
        /// sha256 of the manifest.
        expected: String,
    },
    /// The manifest does not list the provenance.
    #[error("{PROVENANCE_FILE} is missing")]
    ProvenanceMissing,
    /// The envelope does not verify against the trusted key.
    /// (Not marked as the error's source: the message already includes it,
    /// and chained reports would print it twice.)
    #[error("{PROVENANCE_FILE}: {0}")]
    Provenance(EnvelopeError),
    /// A bundle file is not a subject of the signed statement.
    #[error("{path}: in the bundle but not a subject of the signed statement")]
    SubjectMissing {
        /// Relative path.
        path: String,
    },
    /// A subject of the signed statement is not a bundle file.
    #[error("{name}: a subject of the signed statement but not in the bundle")]
    SubjectUnexpected {
        /// Subject name.
        name: String,
    },
    /// The signed statement names a subject twice.
    #[error("{name}: a subject of the signed statement twice")]
    SubjectDuplicate {
        /// Subject name.
        name: String,
    },
    /// A file's digest differs from the one signed.
    #[error("{path}: sha256 is {actual}, the signed statement says {signed}")]
    SubjectDigestMismatch {
        /// Relative path.
        path: String,
        /// sha256 in the statement (`none` if it has none).
        signed: String,
        /// sha256 of the file.
        actual: String,
    },
    /// The byproducts are not exactly the raw logs.
    #[error("{name}: {problem} (byproducts must be exactly the files under logs/)")]
    ByproductMismatch {
        /// File or byproduct name.
        name: String,
        /// What differs.
        problem: &'static str,
    },
}

/// Verify everything but the recomputation (steps 1-6): digests, layout,
/// name, signature against `trusted`, and the statement's subjects.
pub fn verify_integrity(
    path: &Path,
    trusted: &VerifyingKey,
) -> Result<VerifiedBundle, VerifyError> {
    let (dir, extraction) = if path.is_dir() {
        let dir = path.canonicalize().map_err(|cause| VerifyError::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        (dir, None)
    } else if path.is_file() {
        let extraction = tempfile::tempdir().map_err(|cause| VerifyError::Io {
            path: std::env::temp_dir(),
            cause,
        })?;
        let dir = pack::unpack_to(path, extraction.path())?;
        (dir, Some(extraction))
    } else {
        return Err(VerifyError::NotFound {
            path: path.to_path_buf(),
        });
    };

    let manifest_bytes = read_manifest(&dir)?;
    let entries = manifest::parse_manifest(&manifest_bytes)?;
    check_listed_files(&dir, &entries)?;
    check_nothing_unlisted(&dir, &entries)?;
    let name = check_name(&dir, &manifest_bytes)?;
    let statement = check_provenance(&dir, &entries, trusted)?;
    check_subjects(&statement, &entries)?;
    check_byproducts(&statement, &entries)?;
    Ok(VerifiedBundle {
        dir,
        name,
        key_id: provenance::key_id(trusted),
        files: entries.len(),
        statement,
        _extraction: extraction,
    })
}

fn read_manifest(dir: &Path) -> Result<Vec<u8>, VerifyError> {
    let path = dir.join(MANIFEST_FILE);
    match fs::symlink_metadata(&path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(VerifyError::ManifestMissing)
        }
        Ok(metadata) if metadata.file_type().is_symlink() => {
            return Err(BundleError::Symlink {
                path: MANIFEST_FILE.to_owned(),
            }
            .into())
        }
        Ok(metadata) if !metadata.is_file() => {
            return Err(VerifyError::NotAFile {
                path: MANIFEST_FILE.to_owned(),
            })
        }
        _ => {}
    }
    fs::read(&path).map_err(|cause| VerifyError::Io {
        path: PathBuf::from(MANIFEST_FILE),
        cause,
    })
}

/// Step 2: every listed file exists with the listed size and digest.
fn check_listed_files(dir: &Path, entries: &[ManifestEntry]) -> Result<(), VerifyError> {
    for entry in entries {
        let path = dir.join(&entry.path);
        let metadata = match fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(VerifyError::FileMissing {
                    path: entry.path.clone(),
                })
            }
            // A file where a directory should be is a missing file too.
            Err(error) if error.kind() == io::ErrorKind::NotADirectory => {
                return Err(VerifyError::FileMissing {
                    path: entry.path.clone(),
                })
            }
            Err(cause) => return Err(VerifyError::Io { path, cause }),
        };
        if metadata.file_type().is_symlink() {
            return Err(BundleError::Symlink {
                path: entry.path.clone(),
            }
            .into());
        }
        if !metadata.is_file() {
            return Err(VerifyError::NotAFile {
                path: entry.path.clone(),
            });
        }
        if metadata.len() != entry.size {
            return Err(VerifyError::SizeMismatch {
                path: entry.path.clone(),
                expected: entry.size,
                actual: metadata.len(),
            });
        }
        let (actual, _) = manifest::digest_file(&path)?;
        if actual != entry.sha256 {
            return Err(VerifyError::DigestMismatch {
                path: entry.path.clone(),
                expected: entry.sha256.clone(),
                actual,
            });
        }
    }
    Ok(())
}

/// Step 3: the tree holds the listed files and the manifest, nothing else.
fn check_nothing_unlisted(dir: &Path, entries: &[ManifestEntry]) -> Result<(), VerifyError> {
    let tree = manifest::walk(dir)?;
    let listed: std::collections::BTreeSet<&str> =
        entries.iter().map(|entry| entry.path.as_str()).collect();
    match tree
        .files
        .iter()
        .find(|path| path.as_str() != MANIFEST_FILE && !listed.contains(path.as_str()))
    {
        Some(path) => Err(VerifyError::UnlistedFile { path: path.clone() }),
        None => Ok(()),
    }
}

/// Step 4: the directory is named by the digest of its manifest.
fn check_name(dir: &Path, manifest_bytes: &[u8]) -> Result<String, VerifyError> {
    let expected = manifest::bundle_name(manifest_bytes);
    let found = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if found != expected {
        return Err(VerifyError::NameMismatch { found, expected });
    }
    Ok(expected)
}

/// Step 5: the envelope verifies against the trusted key.
fn check_provenance(
    dir: &Path,
    entries: &[ManifestEntry],
    trusted: &VerifyingKey,
) -> Result<Statement, VerifyError> {
    if !entries.iter().any(|entry| entry.path == PROVENANCE_FILE) {
        return Err(VerifyError::ProvenanceMissing);
    }
    let bytes = fs::read(dir.join(PROVENANCE_FILE)).map_err(|cause| VerifyError::Io {
        path: PathBuf::from(PROVENANCE_FILE),
        cause,
    })?;
    let envelope = provenance::parse_envelope(&bytes)?;
    Ok(provenance::verify_envelope(&envelope, trusted)?)
}

/// How a signed descriptor list fails to match the bundle files it covers.
enum DescriptorMismatch<'a> {
    /// A name listed more than once.
    Duplicate(&'a str),
    /// A file with no descriptor.
    Missing(&'a ManifestEntry),
    /// A file whose descriptor carries another (or no) sha256.
    Digest {
        entry: &'a ManifestEntry,
        signed: Option<&'a str>,
    },
    /// A descriptor naming no covered file (the first by name).
    Unexpected(&'a str),
}

/// Check that `signed` names each of `files` exactly once with its sha256,
/// and nothing else.
fn match_descriptors<'a>(
    signed: &'a [ResourceDescriptor],
    files: impl IntoIterator<Item = &'a ManifestEntry>,
) -> Result<(), DescriptorMismatch<'a>> {
    let mut by_name = BTreeMap::new();
    for descriptor in signed {
        let digest = descriptor.digest.get("sha256").map(String::as_str);
        if by_name.insert(descriptor.name.as_str(), digest).is_some() {
            return Err(DescriptorMismatch::Duplicate(&descriptor.name));
        }
    }
    for entry in files {
        match by_name.remove(entry.path.as_str()) {
            None => return Err(DescriptorMismatch::Missing(entry)),
            Some(digest) if digest != Some(entry.sha256.as_str()) => {
                return Err(DescriptorMismatch::Digest {
                    entry,
                    signed: digest,
                })
            }
            Some(_) => {}
        }
    }
    match by_name.keys().next() {
        Some(name) => Err(DescriptorMismatch::Unexpected(name)),
        None => Ok(()),
    }
}

/// Step 6a: subjects are exactly the bundle files but the provenance, with equal digests.
fn check_subjects(statement: &Statement, entries: &[ManifestEntry]) -> Result<(), VerifyError> {
    let files = entries.iter().filter(|entry| entry.path != PROVENANCE_FILE);
    match_descriptors(&statement.subject, files).map_err(|mismatch| match mismatch {
        DescriptorMismatch::Duplicate(name) => VerifyError::SubjectDuplicate {
            name: name.to_owned(),
        },
        DescriptorMismatch::Missing(entry) => VerifyError::SubjectMissing {
            path: entry.path.clone(),
        },
        DescriptorMismatch::Digest { entry, signed } => VerifyError::SubjectDigestMismatch {
            path: entry.path.clone(),
            signed: signed.unwrap_or("none").to_owned(),
            actual: entry.sha256.clone(),
        },
        DescriptorMismatch::Unexpected(name) => VerifyError::SubjectUnexpected {
            name: name.to_owned(),
        },
    })
}

/// Step 6b: byproducts are exactly the files under `logs/`, with equal digests.
fn check_byproducts(statement: &Statement, entries: &[ManifestEntry]) -> Result<(), VerifyError> {
    let files = entries
        .iter()
        .filter(|entry| bundle::is_byproduct(&entry.path));
    let byproducts = &statement.predicate.run_details.byproducts;
    match_descriptors(byproducts, files).map_err(|mismatch| {
        let (name, problem) = match mismatch {
            DescriptorMismatch::Duplicate(name) => (name, "listed twice as a byproduct"),
            DescriptorMismatch::Missing(entry) => {
                (entry.path.as_str(), "a raw log missing from the byproducts")
            }
            DescriptorMismatch::Digest { entry, .. } => (
                entry.path.as_str(),
                "its byproduct digest differs from the file",
            ),
            DescriptorMismatch::Unexpected(name) => {
                (name, "a byproduct that is not a raw log of the bundle")
            }
        };
        VerifyError::ByproductMismatch {
            name: name.to_owned(),
            problem,
        }
    })
}

impl From<EnvelopeError> for VerifyError {
    fn from(error: EnvelopeError) -> Self {
        VerifyError::Provenance(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_path_is_not_found() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
        let error = verify_integrity(Path::new("/nonexistent/bundle"), &key).unwrap_err();
        assert!(matches!(error, VerifyError::NotFound { .. }), "{error:?}");
    }
}
