//! Offline verification of a bundle's integrity and signature, directory or
//! packed archive, with nothing but a trusted public key.
//!
//! Nothing is trusted before it is checked, and nothing expensive is done
//! before the signature: the checks run in this order and stop at the first
//! failure, whose message names the file and what differs:
//! 1. `MANIFEST.sha256` is present, at most [`MAX_METADATA_BYTES`], and canonical;
//! 2. every listed file exists as a regular file of the listed size, nothing
//!    else is there (no unlisted file, symlink, special file or empty
//!    directory), and the sizes add up to at most the bundle size cap; an
//!    archive is indexed from its headers alone, never extracted;
//! 3. the directory (or archive top directory) is named sha256(MANIFEST);
//! 4. `provenance.dsse.json` has its listed digest, is the canonical envelope
//!    and its signature verifies against the trusted key;
//! 5. the statement's subjects are exactly the listed files (all but the
//!    provenance and the manifest) with the listed digests, and its
//!    byproducts exactly the files under `logs/`;
//! 6. only now is every file hashed, as a stream, and compared with the
//!    manifest (which step 5 tied to the signature).
//!
//! Recomputing the figures from the raw logs needs to know what the files
//! mean; it is `proof::audit`. Every name from the bundle that an error shows
//! is escaped for the terminal.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;

use crate::bundle::archive::{self, ArchiveError, ArchiveIndex};
use crate::bundle::files::BundleFiles;
use crate::bundle::manifest::{self, BundleError, ManifestEntry};
use crate::bundle::provenance::{self, EnvelopeError, ResourceDescriptor, Statement};
use crate::bundle::{self, MANIFEST_FILE, PROVENANCE_FILE};
use crate::terminal::untrusted;

/// Default cap on a bundle's size (sum of its files, or an archive's length).
pub const DEFAULT_MAX_BUNDLE_BYTES: u64 = 512 << 20;

/// Largest `MANIFEST.sha256` or `provenance.dsse.json` read into memory
/// before the signature is checked.
pub const MAX_METADATA_BYTES: u64 = 16 << 20;

/// How much a verification may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bundle accepted: the sum of its files' sizes, or an archive's length.
    pub max_bundle_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bundle_bytes: DEFAULT_MAX_BUNDLE_BYTES,
        }
    }
}

/// Parse `1048576`, `64K`, `512M` or `2G` (binary multiples) into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let (digits, multiplier) = match trimmed.char_indices().last() {
        Some((index, 'K' | 'k')) => (&trimmed[..index], 1u64 << 10),
        Some((index, 'M' | 'm')) => (&trimmed[..index], 1 << 20),
        Some((index, 'G' | 'g')) => (&trimmed[..index], 1 << 30),
        _ => (trimmed, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|count| count.checked_mul(multiplier))
        .filter(|bytes| *bytes > 0)
        .ok_or_else(|| format!("{text:?} is not a size: give a positive number of bytes, optionally with K, M or G"))
}

/// A bundle that passed verification.
#[derive(Debug)]
pub struct VerifiedBundle {
    /// The bundle name: sha256 of its manifest.
    pub name: String,
    /// Key id of the trusted key that signed it.
    pub key_id: String,
    /// Number of files the manifest lists (every file but the manifest).
    pub file_count: usize,
    /// The verified provenance statement.
    pub statement: Statement,
    /// The verified files, read in place and re-checked on every read.
    pub files: BundleFiles,
}

/// The first check a bundle fails.
#[derive(thiserror::Error, Debug)]
pub enum VerifyError {
    /// The path is neither a directory nor a file.
    #[error("{}: no such bundle directory or archive", untrusted(&path.to_string_lossy()))]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The archive is not a well-formed bundle archive.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Reading failed.
    #[error("{}: {cause}", untrusted(&path.to_string_lossy()))]
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
    #[error("{}: listed in {MANIFEST_FILE} but missing", untrusted(path))]
    FileMissing {
        /// Relative path.
        path: String,
    },
    /// A listed path is not a regular file.
    #[error(
        "{}: listed in {MANIFEST_FILE} but not a regular file",
        untrusted(path)
    )]
    NotAFile {
        /// Relative path.
        path: String,
    },
    /// A file's size differs from the manifest.
    #[error(
        "{}: size is {actual} bytes, {MANIFEST_FILE} says {expected}",
        untrusted(path)
    )]
    SizeMismatch {
        /// Relative path.
        path: String,
        /// Size in the manifest.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// Something is larger than its cap.
    #[error("{what} is {size} bytes, more than the {limit}-byte cap{hint}")]
    TooLarge {
        /// What (`MANIFEST.sha256`, `the bundle`, ...).
        what: String,
        /// Its size.
        size: u64,
        /// The cap.
        limit: u64,
        /// How to raise the cap, when it can be raised.
        hint: &'static str,
    },
    /// A file's sha256 differs from the manifest.
    #[error(
        "{}: sha256 is {actual}, {MANIFEST_FILE} says {expected}",
        untrusted(path)
    )]
    DigestMismatch {
        /// Relative path.
        path: String,
        /// Digest in the manifest.
        expected: String,
        /// Digest of the file.
        actual: String,
    },
    /// A file is not in the manifest.
    #[error("{}: present but not listed in {MANIFEST_FILE}", untrusted(path))]
    UnlistedFile {
        /// Relative path.
        path: String,
    },
    /// The bundle's name is not the digest of its manifest.
    #[error(
        "bundle is named \"{}\" but sha256({MANIFEST_FILE}) is {expected}",
        untrusted(found)
    )]
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
    #[error(
        "{}: in the bundle but not a subject of the signed statement",
        untrusted(path)
    )]
    SubjectMissing {
        /// Relative path.
        path: String,
    },
    /// A subject of the signed statement is not a bundle file.
    #[error(
        "{}: a subject of the signed statement but not in the bundle",
        untrusted(name)
    )]
    SubjectUnexpected {
        /// Subject name.
        name: String,
    },
    /// The signed statement names a subject twice.
    #[error("{}: a subject of the signed statement twice", untrusted(name))]
    SubjectDuplicate {
        /// Subject name.
        name: String,
    },
    /// The digest the manifest lists differs from the one signed.
    #[error(
        "{}: {MANIFEST_FILE} lists sha256 {listed}, the signed statement says {}",
        untrusted(path),
        untrusted(signed)
    )]
    SubjectDigestMismatch {
        /// Relative path.
        path: String,
        /// sha256 in the statement (`none` if it has none).
        signed: String,
        /// sha256 in the manifest.
        listed: String,
    },
    /// The byproducts are not exactly the raw logs.
    #[error(
        "{}: {problem} (byproducts must be exactly the files under logs/)",
        untrusted(name)
    )]
    ByproductMismatch {
        /// File or byproduct name.
        name: String,
        /// What differs.
        problem: &'static str,
    },
}

impl From<EnvelopeError> for VerifyError {
    fn from(error: EnvelopeError) -> Self {
        VerifyError::Provenance(error)
    }
}

/// Verify a bundle's integrity and signature against `trusted` (steps 1-6),
/// reading at most what `limits` allows.
pub fn verify_integrity(
    path: &Path,
    trusted: &VerifyingKey,
    limits: Limits,
) -> Result<VerifiedBundle, VerifyError> {
    let opened = Opened::open(path, limits)?;
    let manifest_bytes = opened.read_metadata(MANIFEST_FILE, None)?;
    let entries = manifest::parse_manifest(&manifest_bytes)?;
    opened.check_listed(&entries)?;
    opened.check_nothing_unlisted(&entries)?;
    check_total_size(&entries, manifest_bytes.len() as u64, limits)?;
    let name = check_name(&opened.name(), &manifest_bytes)?;
    let statement = check_provenance(&opened, &entries, trusted)?;
    check_subjects(&statement, &entries)?;
    check_byproducts(&statement, &entries)?;
    check_digests(&opened, &entries)?;
    Ok(VerifiedBundle {
        name,
        key_id: provenance::key_id(trusted),
        file_count: entries.len(),
        statement,
        files: opened.into_files(&entries),
    })
}

/// A bundle opened for verification: a directory, or an archive's index.
enum Opened {
    Directory(PathBuf),
    Archive(ArchiveIndex),
}

impl Opened {
    fn open(path: &Path, limits: Limits) -> Result<Self, VerifyError> {
        if path.is_dir() {
            let dir = path.canonicalize().map_err(|cause| VerifyError::Io {
                path: path.to_path_buf(),
                cause,
            })?;
            Ok(Self::Directory(dir))
        } else if path.is_file() {
            Ok(Self::Archive(archive::index(
                path,
                limits.max_bundle_bytes,
            )?))
        } else {
            Err(VerifyError::NotFound {
                path: path.to_path_buf(),
            })
        }
    }

    /// The directory's (or the archive's top directory's) name.
    fn name(&self) -> String {
        match self {
            Self::Directory(dir) => dir
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Self::Archive(index) => index.top.clone(),
        }
    }

    /// Read a small top-level file whole (the manifest, the provenance),
    /// refusing one over [`MAX_METADATA_BYTES`] before reading it. `listed`
    /// is its manifest entry, once there is a manifest.
    fn read_metadata(
        &self,
        file: &str,
        listed: Option<&ManifestEntry>,
    ) -> Result<Vec<u8>, VerifyError> {
        let missing = || match file {
            MANIFEST_FILE => VerifyError::ManifestMissing,
            _ => VerifyError::FileMissing {
                path: file.to_owned(),
            },
        };
        let too_large = |size| VerifyError::TooLarge {
            what: file.to_owned(),
            size,
            limit: MAX_METADATA_BYTES,
            hint: "",
        };
        let io_error = |cause| VerifyError::Io {
            path: PathBuf::from(file),
            cause,
        };
        match self {
            Self::Directory(dir) => {
                let path = dir.join(file);
                let metadata = match fs::symlink_metadata(&path) {
                    Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(missing()),
                    Err(cause) => return Err(io_error(cause)),
                    Ok(metadata) => metadata,
                };
                if metadata.file_type().is_symlink() {
                    return Err(BundleError::Symlink {
                        path: file.to_owned(),
                    }
                    .into());
                }
                if !metadata.is_file() {
                    return Err(VerifyError::NotAFile {
                        path: file.to_owned(),
                    });
                }
                let size = listed.map_or(metadata.len(), |entry| entry.size);
                if size > MAX_METADATA_BYTES {
                    return Err(too_large(size));
                }
                let bytes = fs::read(&path).map_err(io_error)?;
                if bytes.len() as u64 != size {
                    return Err(io_error(io::Error::other(
                        "the file changed while it was read",
                    )));
                }
                Ok(bytes)
            }
            Self::Archive(index) => {
                let span = *index.files.get(file).ok_or_else(missing)?;
                if span.size > MAX_METADATA_BYTES {
                    return Err(too_large(span.size));
                }
                index.read(span).map_err(io_error)
            }
        }
    }

    /// Every listed file exists as a regular file of the listed size (no hashing).
    fn check_listed(&self, entries: &[ManifestEntry]) -> Result<(), VerifyError> {
        for entry in entries {
            let actual = match self {
                Self::Directory(dir) => directory_file_size(dir, &entry.path)?,
                Self::Archive(index) => match index.files.get(&entry.path) {
                    Some(span) => span.size,
                    None => {
                        return Err(VerifyError::FileMissing {
                            path: entry.path.clone(),
                        })
                    }
                },
            };
            if actual != entry.size {
                return Err(VerifyError::SizeMismatch {
                    path: entry.path.clone(),
                    expected: entry.size,
                    actual,
                });
            }
        }
        Ok(())
    }

    /// The bundle holds the listed files and the manifest, nothing else.
    fn check_nothing_unlisted(&self, entries: &[ManifestEntry]) -> Result<(), VerifyError> {
        let listed: BTreeSet<&str> = entries.iter().map(|entry| entry.path.as_str()).collect();
        let present: Vec<String> = match self {
            Self::Directory(dir) => manifest::walk(dir)?.files,
            // The index already refused links, special entries and empty directories.
            Self::Archive(index) => index.files.keys().cloned().collect(),
        };
        match present
            .into_iter()
            .find(|path| path != MANIFEST_FILE && !listed.contains(path.as_str()))
        {
            Some(path) => Err(VerifyError::UnlistedFile { path }),
            None => Ok(()),
        }
    }

    /// sha256 of one listed file, read as a stream.
    fn hash(&self, path: &str) -> Result<String, VerifyError> {
        let io_error = |cause| VerifyError::Io {
            path: PathBuf::from(path),
            cause,
        };
        let (digest, _) = match self {
            Self::Directory(dir) => {
                crate::digest::file_sha256(&dir.join(path)).map_err(io_error)?
            }
            Self::Archive(index) => {
                let span = *index
                    .files
                    .get(path)
                    .ok_or_else(|| VerifyError::FileMissing {
                        path: path.to_owned(),
                    })?;
                crate::digest::reader_sha256(&mut index.open(span).map_err(io_error)?)
                    .map_err(io_error)?
            }
        };
        Ok(digest)
    }

    fn into_files(self, entries: &[ManifestEntry]) -> BundleFiles {
        match self {
            Self::Directory(dir) => BundleFiles::verified_directory(&dir, entries),
            Self::Archive(index) => BundleFiles::verified_archive(index, entries),
        }
    }
}

/// Size of the regular file at relative `path` of a bundle directory,
/// refusing a missing file, a symlink or anything else.
fn directory_file_size(dir: &Path, path: &str) -> Result<u64, VerifyError> {
    let missing = || VerifyError::FileMissing {
        path: path.to_owned(),
    };
    let metadata = match fs::symlink_metadata(dir.join(path)) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(missing()),
        // A file where a directory should be is a missing file too.
        Err(error) if error.kind() == io::ErrorKind::NotADirectory => return Err(missing()),
        Err(cause) => {
            return Err(VerifyError::Io {
                path: PathBuf::from(path),
                cause,
            })
        }
    };
    if metadata.file_type().is_symlink() {
        return Err(BundleError::Symlink {
            path: path.to_owned(),
        }
        .into());
    }
    if !metadata.is_file() {
        return Err(VerifyError::NotAFile {
            path: path.to_owned(),
        });
    }
    Ok(metadata.len())
}

/// The listed sizes and the manifest together stay within the cap.
fn check_total_size(
    entries: &[ManifestEntry],
    manifest_size: u64,
    limits: Limits,
) -> Result<(), VerifyError> {
    let total = entries
        .iter()
        .fold(manifest_size, |sum, entry| sum.saturating_add(entry.size));
    if total > limits.max_bundle_bytes {
        return Err(VerifyError::TooLarge {
            what: "the bundle".to_owned(),
            size: total,
            limit: limits.max_bundle_bytes,
            hint: " (raise it with --max-bundle-size)",
        });
    }
    Ok(())
}

/// Step 3: the bundle is named by the digest of its manifest.
fn check_name(found: &str, manifest_bytes: &[u8]) -> Result<String, VerifyError> {
    let expected = manifest::bundle_name(manifest_bytes);
    if found != expected {
        return Err(VerifyError::NameMismatch {
            found: found.to_owned(),
            expected,
        });
    }
    Ok(expected)
}

/// Step 4: the envelope has its listed digest, is canonical, and verifies against the trusted key.
fn check_provenance(
    opened: &Opened,
    entries: &[ManifestEntry],
    trusted: &VerifyingKey,
) -> Result<Statement, VerifyError> {
    let Some(entry) = entries.iter().find(|entry| entry.path == PROVENANCE_FILE) else {
        return Err(VerifyError::ProvenanceMissing);
    };
    let bytes = opened.read_metadata(PROVENANCE_FILE, Some(entry))?;
    let actual = crate::digest::sha256_hex(&bytes);
    if actual != entry.sha256 {
        return Err(VerifyError::DigestMismatch {
            path: PROVENANCE_FILE.to_owned(),
            expected: entry.sha256.clone(),
            actual,
        });
    }
    let envelope = provenance::parse_envelope(&bytes)?;
    Ok(provenance::verify_envelope(&envelope, trusted)?)
}

/// Step 6: every file but the (already checked) provenance has its listed sha256.
fn check_digests(opened: &Opened, entries: &[ManifestEntry]) -> Result<(), VerifyError> {
    for entry in entries.iter().filter(|entry| entry.path != PROVENANCE_FILE) {
        let actual = opened.hash(&entry.path)?;
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

/// Step 5a: subjects are exactly the bundle files but the provenance, with equal digests.
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
            listed: entry.sha256.clone(),
        },
        DescriptorMismatch::Unexpected(name) => VerifyError::SubjectUnexpected {
            name: name.to_owned(),
        },
    })
}

/// Step 5b: byproducts are exactly the files under `logs/`, with equal digests.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_path_is_not_found() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
        let error = verify_integrity(Path::new("/nonexistent/bundle"), &key, Limits::default())
            .unwrap_err();
        assert!(matches!(error, VerifyError::NotFound { .. }), "{error:?}");
    }
}
