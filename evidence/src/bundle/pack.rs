//! `capos pack`: a bundle directory as one deterministic, uncompressed tar
//! archive (read back, never extracted, by `bundle::archive`).
//!
//! Invariants:
//! - Packing the same bundle twice gives the same bytes on any machine:
//!   ustar headers, entries sorted by path segments, one top directory named
//!   after the bundle, mtime 0, uid/gid 0, empty user and group names, mode
//!   0644 for files and 0755 for directories.
//! - With `--with-log`, the run-log segment for the bundle's commit follows
//!   the bundle's entries under a second top directory, `runlog/`.
//! - The archive is written beside its final path and renamed into place.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use crate::bundle::archive::{RUNLOG_HEAD, RUNLOG_SEGMENT, RUNLOG_TOP};
use crate::bundle::manifest::{self, BundleError};
use crate::bundle::runlog::{self, LogBytes};
use crate::terminal::untrusted;

/// Why a bundle directory cannot be packed.
#[derive(thiserror::Error, Debug)]
pub enum PackError {
    /// The directory holds something a bundle may not hold.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// Reading or writing failed.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error (shown in the message, so not chained as a source).
        cause: io::Error,
    },
    /// The bundle directory has no usable name for the top directory.
    #[error("{}: the bundle directory needs a UTF-8 name", path.display())]
    BadName {
        /// The bundle directory.
        path: PathBuf,
    },
}

/// One entry of the archive, before it is written.
struct PackEntry {
    /// Path segments below the top directory (empty for the top itself).
    segments: Vec<String>,
    /// Whether this is a directory.
    is_directory: bool,
}

/// Write the deterministic archive of `bundle_dir` into `writer`.
pub fn pack_to_writer<W: Write>(bundle_dir: &Path, writer: W) -> Result<W, PackError> {
    pack_with_log_to_writer(bundle_dir, None, writer)
}

/// Write the deterministic archive of `bundle_dir`, then the run-log
/// segment (if any) under `runlog/`, into `writer`.
pub fn pack_with_log_to_writer<W: Write>(
    bundle_dir: &Path,
    log: Option<&LogBytes>,
    writer: W,
) -> Result<W, PackError> {
    let top = top_name(bundle_dir)?;
    let tree = manifest::walk(bundle_dir)?;
    let mut entries = vec![PackEntry {
        segments: Vec::new(),
        is_directory: true,
    }];
    let split = |path: &String| path.split('/').map(str::to_owned).collect::<Vec<_>>();
    entries.extend(tree.directories.iter().map(|path| PackEntry {
        segments: split(path),
        is_directory: true,
    }));
    entries.extend(tree.files.iter().map(|path| PackEntry {
        segments: split(path),
        is_directory: false,
    }));
    // Segment order puts every directory right before its contents.
    entries.sort_by(|left, right| left.segments.cmp(&right.segments));

    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| PackError::Io { path, cause }
    };
    let mut builder = tar::Builder::new(writer);
    for entry in &entries {
        let relative = entry.segments.join("/");
        if entry.is_directory {
            let path = if relative.is_empty() {
                format!("{top}/")
            } else {
                format!("{top}/{relative}/")
            };
            append_entry(&mut builder, &path, None)?;
        } else {
            let source = bundle_dir.join(&relative);
            // Read whole so the header size and the data cannot disagree.
            let data = fs::read(&source).map_err(io_error(&source))?;
            append_entry(&mut builder, &format!("{top}/{relative}"), Some(&data))?;
        }
    }
    if let Some(log) = log {
        append_entry(&mut builder, &format!("{RUNLOG_TOP}/"), None)?;
        append_entry(
            &mut builder,
            &format!("{RUNLOG_TOP}/{RUNLOG_HEAD}"),
            Some(&log.head),
        )?;
        append_entry(
            &mut builder,
            &format!("{RUNLOG_TOP}/{RUNLOG_SEGMENT}"),
            Some(&log.lines),
        )?;
    }
    builder.into_inner().map_err(io_error(bundle_dir))
}

/// Append one entry with the fixed metadata every entry has: a directory
/// (`data` None, mode 0755) or a regular file (mode 0644).
fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    data: Option<&[u8]>,
) -> Result<(), PackError> {
    let io_error = |cause| PackError::Io {
        path: PathBuf::from(path),
        cause,
    };
    let mut header = tar::Header::new_ustar();
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
        .set_username("")
        .and_then(|()| header.set_groupname(""))
        .map_err(io_error)?;
    let bytes = match data {
        None => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            &[][..]
        }
        Some(bytes) => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            bytes
        }
    };
    header.set_size(bytes.len() as u64);
    builder
        .append_data(&mut header, path, bytes)
        .map_err(io_error)
}

fn top_name(bundle_dir: &Path) -> Result<String, PackError> {
    let resolved = bundle_dir.canonicalize().map_err(|cause| PackError::Io {
        path: bundle_dir.to_path_buf(),
        cause,
    })?;
    resolved
        .file_name()
        .and_then(|name| name.to_str())
        .filter(|name| manifest::relative_path_problem(name).is_none())
        .map(str::to_owned)
        .ok_or_else(|| PackError::BadName {
            path: bundle_dir.to_path_buf(),
        })
}

/// Pack `bundle_dir` into the archive `out`, replacing it atomically.
pub fn pack_to(bundle_dir: &Path, out: &Path) -> Result<(), PackError> {
    pack_with_log_to(bundle_dir, None, out)
}

/// Pack `bundle_dir` and a run-log segment into `out`, replacing it atomically.
pub fn pack_with_log_to(
    bundle_dir: &Path,
    log: Option<&LogBytes>,
    out: &Path,
) -> Result<(), PackError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| PackError::Io { path, cause }
    };
    let parent = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let staging = tempfile::NamedTempFile::new_in(parent).map_err(io_error(parent))?;
    let mut writer = pack_with_log_to_writer(bundle_dir, log, io::BufWriter::new(staging))?;
    writer.flush().map_err(io_error(out))?;
    let staging = writer.into_inner().map_err(|error| PackError::Io {
        path: out.to_path_buf(),
        cause: error.into_error(),
    })?;
    staging.persist(out).map_err(|error| PackError::Io {
        path: out.to_path_buf(),
        cause: error.error,
    })?;
    Ok(())
}

/// Default archive path for a bundle directory: `<bundle-dir>.tar`.
#[must_use]
pub fn default_archive_path(bundle_dir: &Path) -> PathBuf {
    let mut path = bundle_dir.components().as_path().as_os_str().to_owned();
    path.push(".tar");
    PathBuf::from(path)
}

/// `capos pack`: pack `bundle` (with the store's run-log segment for its
/// commit when `with_log`) into `out`, default `<bundle-dir>.tar`; returns
/// the archive's path. Refuses an archive path inside the bundle.
pub fn pack_bundle(bundle: &Path, out: Option<&Path>, with_log: bool) -> Result<PathBuf> {
    if !bundle.is_dir() {
        bail!("{} is not a bundle directory", bundle.display());
    }
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_archive_path(bundle));
    let bundle_dir = bundle
        .canonicalize()
        .with_context(|| format!("resolving {}", bundle.display()))?;
    let out_parent = out
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .with_context(|| format!("resolving the directory of {}", out.display()))?;
    if out_parent.starts_with(&bundle_dir) {
        bail!(
            "{} is inside the bundle; write the archive elsewhere",
            out.display()
        );
    }
    let log = if with_log {
        let store = bundle_dir.parent().unwrap_or(Path::new("/"));
        let name = bundle_dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let segment = runlog::segment_for_bundle(store, &name).with_context(|| {
            format!(
                "reading the run log of {} for bundle {}",
                store.display(),
                untrusted(&name)
            )
        })?;
        Some(segment)
    } else {
        None
    };
    pack_with_log_to(bundle, log.as_ref(), &out)
        .with_context(|| format!("packing {} into {}", bundle.display(), out.display()))?;
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small bundle-shaped directory named `name` under a fresh temp dir.
    pub(crate) fn sample(name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join(name);
        fs::create_dir_all(bundle.join("logs/smp-2/1")).unwrap();
        fs::create_dir_all(bundle.join("logs/smp-1/1")).unwrap();
        fs::write(bundle.join("results.csv"), "case,value\n").unwrap();
        fs::write(bundle.join("logs/smp-2/1/serial.log"), "two\n").unwrap();
        fs::write(bundle.join("logs/smp-1/1/serial.log"), "one\n").unwrap();
        fs::write(bundle.join("logs/smp-1/1/stderr.log"), "").unwrap();
        (dir, bundle)
    }

    fn packed(bundle: &Path) -> Vec<u8> {
        pack_to_writer(bundle, Vec::new()).unwrap()
    }

    fn entry_names(bytes: &[u8]) -> Vec<String> {
        tar::Archive::new(bytes)
            .entries()
            .unwrap()
            .map(|entry| String::from_utf8(entry.unwrap().path_bytes().into_owned()).unwrap())
            .collect()
    }

    #[test]
    fn packing_twice_gives_identical_bytes() {
        let (_dir, bundle) = sample("abc");
        let first = packed(&bundle);
        // Touch mtimes and permissions: neither may reach the archive.
        fs::set_permissions(
            bundle.join("results.csv"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        fs::write(bundle.join("logs/smp-2/1/serial.log"), "two\n").unwrap();
        let (_other_dir, other) = sample("abc");
        assert_eq!(first, packed(&bundle));
        assert_eq!(first, packed(&other));
    }

    #[test]
    fn archive_layout_is_sorted_under_one_top_directory() {
        let (_dir, bundle) = sample("abc");
        let bytes = packed(&bundle);
        assert_eq!(
            entry_names(&bytes),
            [
                "abc/",
                "abc/logs/",
                "abc/logs/smp-1/",
                "abc/logs/smp-1/1/",
                "abc/logs/smp-1/1/serial.log",
                "abc/logs/smp-1/1/stderr.log",
                "abc/logs/smp-2/",
                "abc/logs/smp-2/1/",
                "abc/logs/smp-2/1/serial.log",
                "abc/results.csv",
            ]
        );
        for entry in tar::Archive::new(bytes.as_slice()).entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.mtime().unwrap(), 0);
            assert_eq!(header.uid().unwrap(), 0);
            assert_eq!(header.gid().unwrap(), 0);
            assert_eq!(header.username().unwrap(), Some(""));
            assert_eq!(header.groupname().unwrap(), Some(""));
            let expected = if header.entry_type().is_dir() {
                0o755
            } else {
                0o644
            };
            assert_eq!(header.mode().unwrap(), expected);
            assert!(header.as_ustar().is_some());
        }
    }

    #[test]
    fn default_archive_path_appends_tar() {
        assert_eq!(
            default_archive_path(Path::new("store/abc/")),
            PathBuf::from("store/abc.tar")
        );
    }
}
