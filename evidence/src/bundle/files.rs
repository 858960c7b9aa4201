//! Reading a bundle's files by relative path: from a directory, or in place
//! from a packed archive.
//!
//! Invariants:
//! - A verified bundle ([`BundleFiles::verified`]) only serves files its
//!   manifest lists, and re-checks each one's size and sha256 as it is read,
//!   so what recomputation and reports see is exactly what was verified even
//!   if the files change on disk afterwards.
//! - A staging directory ([`BundleFiles::staging`]) is the run's own output
//!   before sealing: read as it is, since nothing has signed it yet.
//! - Paths are relative, `/`-separated; every path shown in an error is
//!   escaped for the terminal.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use super::archive::ArchiveIndex;
use super::manifest::ManifestEntry;
use crate::terminal::untrusted;

/// Why a bundle file cannot be read.
#[derive(thiserror::Error, Debug)]
pub enum FileError {
    /// The path is not a file of the (verified) bundle.
    #[error("{}: not a file of the bundle", untrusted(path))]
    NotListed {
        /// Relative path.
        path: String,
    },
    /// Reading failed.
    #[error("{}: {cause}", untrusted(path))]
    Io {
        /// Relative path.
        path: String,
        /// The underlying error (shown in the message, so not chained as a source).
        cause: io::Error,
    },
    /// A packed run-log member is longer than may be read of it.
    #[error(
        "{}: {size} bytes, more than the {limit} bytes that may be read of it",
        untrusted(path)
    )]
    TooLarge {
        /// Relative path in the archive.
        path: String,
        /// Its size.
        size: u64,
        /// The most that is read.
        limit: u64,
    },
    /// The file no longer has the size and digest it was verified with.
    #[error("{}: changed since it was verified", untrusted(path))]
    Changed {
        /// Relative path.
        path: String,
    },
}

/// Where the bytes are, and what they were verified against.
#[derive(Debug)]
enum Source {
    /// A run's staging directory, read as it is.
    Staging(PathBuf),
    /// A verified bundle directory.
    Directory {
        dir: PathBuf,
        listed: BTreeMap<String, ManifestEntry>,
    },
    /// A verified packed archive, read in place.
    Archive {
        index: ArchiveIndex,
        listed: BTreeMap<String, ManifestEntry>,
    },
}

/// Read access to one bundle's files.
#[derive(Debug)]
pub struct BundleFiles {
    source: Source,
}

impl BundleFiles {
    /// The files of a run's staging directory, read as they are.
    #[must_use]
    pub fn staging(dir: &Path) -> Self {
        Self {
            source: Source::Staging(dir.to_path_buf()),
        }
    }

    /// A verified bundle directory: reads are limited to `entries` and checked against them.
    #[must_use]
    pub(super) fn verified_directory(dir: &Path, entries: &[ManifestEntry]) -> Self {
        Self {
            source: Source::Directory {
                dir: dir.to_path_buf(),
                listed: by_path(entries),
            },
        }
    }

    /// A verified archive: reads are limited to `entries` and checked against them.
    #[must_use]
    pub(super) fn verified_archive(index: ArchiveIndex, entries: &[ManifestEntry]) -> Self {
        Self {
            source: Source::Archive {
                index,
                listed: by_path(entries),
            },
        }
    }

    /// The bundle directory, when the bundle is one (not an archive).
    #[must_use]
    pub fn directory(&self) -> Option<&Path> {
        match &self.source {
            Source::Staging(dir) | Source::Directory { dir, .. } => Some(dir),
            Source::Archive { .. } => None,
        }
    }

    /// The bytes of the file at relative `path`.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, FileError> {
        let io_error = |cause| FileError::Io {
            path: path.to_owned(),
            cause,
        };
        let not_listed = || FileError::NotListed {
            path: path.to_owned(),
        };
        let (bytes, entry) = match &self.source {
            Source::Staging(dir) => return fs::read(dir.join(path)).map_err(io_error),
            Source::Directory { dir, listed } => {
                let entry = listed.get(path).ok_or_else(not_listed)?;
                // One byte more than listed shows a file that grew.
                let mut bytes = Vec::new();
                fs::File::open(dir.join(path))
                    .and_then(|file| {
                        file.take(entry.size.saturating_add(1))
                            .read_to_end(&mut bytes)
                    })
                    .map_err(io_error)?;
                (bytes, entry)
            }
            Source::Archive { index, listed } => {
                let entry = listed.get(path).ok_or_else(not_listed)?;
                let span = index.files.get(path).ok_or_else(not_listed)?;
                (index.read(*span).map_err(io_error)?, entry)
            }
        };
        if bytes.len() as u64 != entry.size || crate::digest::sha256_hex(&bytes) != entry.sha256 {
            return Err(FileError::Changed {
                path: path.to_owned(),
            });
        }
        Ok(bytes)
    }

    /// The signed head of the run-log segment packed in the archive, if it
    /// carries one; refused unread when it is longer than `limit`.
    pub fn packed_runlog_head(&self, limit: u64) -> Result<Option<Vec<u8>>, FileError> {
        let Source::Archive { index, .. } = &self.source else {
            return Ok(None);
        };
        let Some(spans) = index.runlog else {
            return Ok(None);
        };
        self.read_runlog_member(index, spans.head, super::archive::RUNLOG_HEAD, limit)
            .map(Some)
    }

    /// The packed run-log segment's lines (none when the archive carries
    /// none); refused unread when longer than `limit`, which the caller
    /// takes from the head it verified.
    pub fn packed_runlog_segment(&self, limit: u64) -> Result<Vec<u8>, FileError> {
        let Source::Archive { index, .. } = &self.source else {
            return Ok(Vec::new());
        };
        let Some(spans) = index.runlog else {
            return Ok(Vec::new());
        };
        self.read_runlog_member(index, spans.segment, super::archive::RUNLOG_SEGMENT, limit)
    }

    fn read_runlog_member(
        &self,
        index: &super::archive::ArchiveIndex,
        span: super::archive::Span,
        name: &str,
        limit: u64,
    ) -> Result<Vec<u8>, FileError> {
        let path = format!("{}/{name}", super::archive::RUNLOG_TOP);
        if span.size > limit {
            return Err(FileError::TooLarge {
                path,
                size: span.size,
                limit,
            });
        }
        index
            .read(span)
            .map_err(|cause| FileError::Io { path, cause })
    }

    /// Names of the entries directly inside directory `dir` (relative), sorted.
    pub fn list(&self, dir: &str) -> Result<Vec<String>, FileError> {
        let listed = match &self.source {
            Source::Staging(root) => return list_directory(&root.join(dir), dir),
            Source::Directory { listed, .. } | Source::Archive { listed, .. } => listed,
        };
        let prefix = format!("{dir}/");
        let names: BTreeSet<String> = listed
            .keys()
            .filter_map(|path| path.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('/').next())
            .map(str::to_owned)
            .collect();
        if names.is_empty() {
            return Err(FileError::Io {
                path: dir.to_owned(),
                cause: io::Error::new(io::ErrorKind::NotFound, "no such directory in the bundle"),
            });
        }
        Ok(names.into_iter().collect())
    }
}

/// Sorted entry names of a directory on disk.
fn list_directory(path: &Path, shown: &str) -> Result<Vec<String>, FileError> {
    let io_error = |cause| FileError::Io {
        path: shown.to_owned(),
        cause,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(path).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

fn by_path(entries: &[ManifestEntry]) -> BTreeMap<String, ManifestEntry> {
    entries
        .iter()
        .map(|entry| (entry.path.clone(), entry.clone()))
        .collect()
}
