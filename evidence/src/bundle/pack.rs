//! `capos pack`: a bundle directory as one deterministic, uncompressed tar
//! archive, and the strict unpacker `capos verify` uses on such archives.
//!
//! Invariants:
//! - Packing the same bundle twice gives the same bytes on any machine:
//!   ustar headers, entries sorted by path segments, one top directory named
//!   after the bundle, mtime 0, uid/gid 0, empty user and group names, mode
//!   0644 for files and 0755 for directories.
//! - Unpacking writes only inside the destination: it refuses absolute
//!   paths, `..`, links, devices, duplicates, more than one top directory,
//!   and an archive that stops before its end-of-archive marker.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read as _, Seek as _, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use crate::bundle::manifest::{self, BundleError};

/// Size of a tar block.
const BLOCK: u64 = 512;

/// Arguments of `capos pack`.
#[derive(clap::Args, Debug)]
pub struct PackArgs {
    /// The bundle directory to pack.
    pub bundle: PathBuf,
    /// Where to write the archive (default: `<bundle-dir>.tar`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

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

/// Why an archive cannot be unpacked.
#[derive(thiserror::Error, Debug)]
pub enum UnpackError {
    /// Reading the archive or writing the extraction failed.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error (shown in the message, so not chained as a source).
        cause: io::Error,
    },
    /// The archive ends before its end-of-archive marker.
    #[error("archive truncated at byte {at}")]
    Truncated {
        /// The archive's length: where it stops.
        at: u64,
    },
    /// The tar structure itself is damaged (bad checksum, bad number field).
    #[error("archive damaged: {reason}")]
    Corrupt {
        /// What the tar reader said.
        reason: String,
    },
    /// An entry's path would escape or is not clean.
    #[error("archive entry {entry:?}: path {problem}")]
    BadPath {
        /// The entry's path as stored.
        entry: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// An entry is neither a regular file nor a directory.
    #[error("archive entry {entry:?}: {kind} entries are not allowed")]
    UnsupportedType {
        /// The entry's path as stored.
        entry: String,
        /// The kind of entry (`symlink`, `hard link`, `device`, ...).
        kind: String,
    },
    /// Two entries have the same path.
    #[error("archive entry {entry:?} appears twice")]
    Duplicate {
        /// The repeated path.
        entry: String,
    },
    /// Entries sit under more than one top directory, or a file sits at the top.
    #[error("archive has more than one top directory ({first:?} and {second:?})")]
    MultipleTopDirectories {
        /// The first top directory seen.
        first: String,
        /// Another one.
        second: String,
    },
    /// A file sits at the top instead of inside the top directory.
    #[error("archive entry {entry:?} is a file outside the top directory")]
    FileAtTop {
        /// The entry's path.
        entry: String,
    },
    /// The archive holds no entries.
    #[error("archive holds no entries")]
    Empty,
    /// Non-zero bytes follow the end-of-archive marker.
    #[error("archive has data after its end at byte {at}")]
    TrailingData {
        /// Offset of the first non-zero byte after the end.
        at: u64,
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
        let mut header = tar::Header::new_ustar();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header
            .set_username("")
            .and_then(|()| header.set_groupname(""))
            .map_err(io_error(bundle_dir))?;
        let (archive_path, data) = if entry.is_directory {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            let path = if relative.is_empty() {
                format!("{top}/")
            } else {
                format!("{top}/{relative}/")
            };
            (path, Vec::new())
        } else {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            let source = bundle_dir.join(&relative);
            // Read whole so the header size and the data cannot disagree.
            let data = fs::read(&source).map_err(io_error(&source))?;
            (format!("{top}/{relative}"), data)
        };
        header.set_size(data.len() as u64);
        builder
            .append_data(&mut header, &archive_path, data.as_slice())
            .map_err(io_error(Path::new(&archive_path)))?;
    }
    builder.into_inner().map_err(io_error(bundle_dir))
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
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| PackError::Io { path, cause }
    };
    let parent = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let staging = tempfile::NamedTempFile::new_in(parent).map_err(io_error(parent))?;
    let mut writer = pack_to_writer(bundle_dir, io::BufWriter::new(staging))?;
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

/// Pack a bundle directory into a deterministic tar archive.
pub fn run_command(_root: &Path, args: PackArgs) -> Result<()> {
    if !args.bundle.is_dir() {
        bail!("{} is not a bundle directory", args.bundle.display());
    }
    let out = args
        .out
        .unwrap_or_else(|| default_archive_path(&args.bundle));
    let bundle_dir = args
        .bundle
        .canonicalize()
        .with_context(|| format!("resolving {}", args.bundle.display()))?;
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
    pack_to(&args.bundle, &out)
        .with_context(|| format!("packing {} into {}", args.bundle.display(), out.display()))?;
    println!("{}", out.display());
    Ok(())
}

/// Unpack a bundle archive into `dest` and return the extracted top directory.
///
/// `dest` is created if missing and should be empty; nothing existing is
/// overwritten. Entries are checked before anything is written for them.
pub fn unpack_to(archive: &Path, dest: &Path) -> Result<PathBuf, UnpackError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| UnpackError::Io { path, cause }
    };
    let length = fs::metadata(archive).map_err(io_error(archive))?.len();
    if length == 0 || length % BLOCK != 0 {
        return Err(UnpackError::Truncated { at: length });
    }
    fs::create_dir_all(dest).map_err(io_error(dest))?;
    let file = fs::File::open(archive).map_err(io_error(archive))?;
    let mut reader = tar::Archive::new(io::BufReader::new(file));
    let entries = reader.entries().map_err(io_error(archive))?;
    let read_error = |error: io::Error| {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            UnpackError::Truncated { at: length }
        } else {
            UnpackError::Corrupt {
                reason: error.to_string(),
            }
        }
    };

    let mut seen = BTreeSet::new();
    let mut top: Option<String> = None;
    let mut end = 0;
    for entry in entries {
        let mut entry = entry.map_err(read_error)?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let entry_type = entry.header().entry_type();
        let is_directory = match entry_type {
            tar::EntryType::Regular => false,
            tar::EntryType::Directory => true,
            other => {
                return Err(UnpackError::UnsupportedType {
                    entry: raw_path,
                    kind: entry_kind(other),
                })
            }
        };
        let path = checked_entry_path(&entry.path_bytes(), is_directory, &raw_path)?;
        let first = path.split('/').next().unwrap_or_default().to_owned();
        match &top {
            Some(existing) if *existing != first => {
                return Err(UnpackError::MultipleTopDirectories {
                    first: existing.clone(),
                    second: first,
                })
            }
            _ => top = Some(first),
        }
        if !is_directory && !path.contains('/') {
            return Err(UnpackError::FileAtTop { entry: path });
        }
        if !seen.insert(path.clone()) {
            return Err(UnpackError::Duplicate { entry: path });
        }
        let target = dest.join(&path);
        let size = entry.size();
        end = entry.raw_file_position() + size.div_ceil(BLOCK) * BLOCK;
        if is_directory {
            fs::create_dir_all(&target).map_err(io_error(&target))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        let mut output = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(io_error(&target))?;
        let copied = io::copy(&mut entry, &mut output).map_err(read_error)?;
        if copied != size {
            return Err(UnpackError::Truncated { at: length });
        }
    }
    let Some(top) = top else {
        return Err(if length < 2 * BLOCK {
            UnpackError::Truncated { at: length }
        } else {
            UnpackError::Empty
        });
    };
    check_end_marker(archive, end, length)?;
    Ok(dest.join(top))
}

/// The archive must continue with the two zero blocks of the end marker
/// (and nothing but zero padding after them).
fn check_end_marker(archive: &Path, end: u64, length: u64) -> Result<(), UnpackError> {
    if length < end + 2 * BLOCK {
        return Err(UnpackError::Truncated { at: length });
    }
    let io_error = |cause| UnpackError::Io {
        path: archive.to_path_buf(),
        cause,
    };
    let mut file = fs::File::open(archive).map_err(io_error)?;
    file.seek(io::SeekFrom::Start(end)).map_err(io_error)?;
    let mut reader = io::BufReader::new(file);
    let mut buffer = [0u8; 8192];
    let mut offset = end;
    loop {
        let read = reader.read(&mut buffer).map_err(io_error)?;
        if read == 0 {
            return Ok(());
        }
        if let Some(position) = buffer[..read].iter().position(|byte| *byte != 0) {
            return Err(UnpackError::TrailingData {
                at: offset + position as u64,
            });
        }
        offset += read as u64;
    }
}

/// The entry's path, checked: UTF-8, relative, no `.`/`..`/empty segment,
/// a trailing `/` only on directories.
fn checked_entry_path(
    bytes: &[u8],
    is_directory: bool,
    raw_path: &str,
) -> Result<String, UnpackError> {
    let bad = |problem| UnpackError::BadPath {
        entry: raw_path.to_owned(),
        problem,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| bad("is not UTF-8"))?;
    let path = match text.strip_suffix('/') {
        Some(stripped) if is_directory => stripped,
        Some(_) => return Err(bad("ends with `/` but the entry is a file")),
        None => text,
    };
    if let Some(problem) = manifest::relative_path_problem(path) {
        return Err(bad(problem));
    }
    Ok(path.to_owned())
}

fn entry_kind(entry_type: tar::EntryType) -> String {
    match entry_type {
        tar::EntryType::Symlink => "symlink".to_owned(),
        tar::EntryType::Link => "hard link".to_owned(),
        tar::EntryType::Char | tar::EntryType::Block => "device".to_owned(),
        tar::EntryType::Fifo => "fifo".to_owned(),
        other => format!("type {:?}", char::from(other.as_byte())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small bundle-shaped directory named `name` under a fresh temp dir.
    fn sample(name: &str) -> (tempfile::TempDir, PathBuf) {
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

    /// Raw header with any path and type, bypassing the tar crate's path checks.
    fn raw_entry(path: &[u8], entry_type: tar::EntryType, data: &[u8]) -> Vec<u8> {
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..path.len()].copy_from_slice(path);
        header.set_entry_type(entry_type);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        header.set_cksum();
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(data);
        bytes.resize(bytes.len().div_ceil(512) * 512, 0);
        bytes
    }

    fn archive_of(entries: &[Vec<u8>]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        for entry in entries {
            file.write_all(entry).unwrap();
        }
        file.write_all(&[0; 1024]).unwrap();
        file
    }

    fn unpack_error(entries: &[Vec<u8>]) -> UnpackError {
        let archive = archive_of(entries);
        let dest = tempfile::tempdir().unwrap();
        unpack_to(archive.path(), dest.path()).unwrap_err()
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
    fn long_paths_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("b".repeat(64));
        let deep = bundle.join(format!("logs/{}/1", "c".repeat(150)));
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("serial.timed.log"), "x").unwrap();
        let archive = dir.path().join("out.tar");
        pack_to(&bundle, &archive).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let top = unpack_to(&archive, dest.path()).unwrap();
        assert_eq!(
            fs::read_to_string(top.join(format!("logs/{}/1/serial.timed.log", "c".repeat(150))))
                .unwrap(),
            "x"
        );
    }

    #[test]
    fn unpack_restores_the_files() {
        let (dir, bundle) = sample("abc");
        let archive = dir.path().join("abc.tar");
        pack_to(&bundle, &archive).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let top = unpack_to(&archive, dest.path()).unwrap();
        assert_eq!(top, dest.path().join("abc"));
        assert_eq!(
            manifest::walk(&top).unwrap(),
            manifest::walk(&bundle).unwrap()
        );
        assert_eq!(
            fs::read_to_string(top.join("logs/smp-1/1/serial.log")).unwrap(),
            "one\n"
        );
    }

    #[test]
    fn unpack_rejects_parent_segments() {
        let error = unpack_error(&[raw_entry(b"abc/../evil", tar::EntryType::Regular, b"x")]);
        assert!(
            matches!(&error, UnpackError::BadPath { entry, problem: "has a `.` or `..` segment" } if entry == "abc/../evil"),
            "{error:?}"
        );
    }

    #[test]
    fn unpack_rejects_absolute_paths() {
        let error = unpack_error(&[raw_entry(b"/tmp/evil", tar::EntryType::Regular, b"x")]);
        assert!(
            matches!(&error, UnpackError::BadPath { entry, problem: "is absolute" } if entry == "/tmp/evil"),
            "{error:?}"
        );
    }

    #[test]
    fn unpack_rejects_links_and_devices() {
        for (entry_type, kind) in [
            (tar::EntryType::Symlink, "symlink"),
            (tar::EntryType::Link, "hard link"),
            (tar::EntryType::Char, "device"),
            (tar::EntryType::Block, "device"),
            (tar::EntryType::Fifo, "fifo"),
        ] {
            let error = unpack_error(&[raw_entry(b"abc/link", entry_type, b"")]);
            assert!(
                matches!(&error, UnpackError::UnsupportedType { entry, kind: k } if entry == "abc/link" && k == kind),
                "{error:?}"
            );
        }
    }

    #[test]
    fn unpack_rejects_duplicates_and_several_tops() {
        let file = raw_entry(b"abc/x", tar::EntryType::Regular, b"1");
        let error = unpack_error(&[file.clone(), file.clone()]);
        assert!(
            matches!(&error, UnpackError::Duplicate { entry } if entry == "abc/x"),
            "{error:?}"
        );
        let other = raw_entry(b"def/x", tar::EntryType::Regular, b"1");
        let error = unpack_error(&[file, other]);
        assert!(
            matches!(&error, UnpackError::MultipleTopDirectories { first, second } if first == "abc" && second == "def"),
            "{error:?}"
        );
        let error = unpack_error(&[raw_entry(b"loose", tar::EntryType::Regular, b"1")]);
        assert!(
            matches!(&error, UnpackError::FileAtTop { entry } if entry == "loose"),
            "{error:?}"
        );
    }

    #[test]
    fn unpack_rejects_trailing_data() {
        let mut archive = archive_of(&[raw_entry(b"abc/x", tar::EntryType::Regular, b"1")]);
        let mut junk = vec![0u8; 512];
        junk[7] = 1;
        archive.write_all(&junk).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let error = unpack_to(archive.path(), dest.path()).unwrap_err();
        assert!(
            matches!(error, UnpackError::TrailingData { at: 2055 }),
            "{error:?}"
        );
    }

    #[test]
    fn every_truncation_is_reported_as_truncated() {
        let (dir, bundle) = sample("abc");
        let bytes = packed(&bundle);
        let archive = dir.path().join("cut.tar");
        for cut in (0..bytes.len())
            .step_by(97)
            .chain((0..bytes.len()).step_by(512))
        {
            fs::write(&archive, &bytes[..cut]).unwrap();
            let dest = tempfile::tempdir().unwrap();
            let error = unpack_to(&archive, dest.path()).unwrap_err();
            assert!(
                matches!(error, UnpackError::Truncated { at } if at == cut as u64),
                "cut at {cut}: {error:?}"
            );
            assert_eq!(
                error.to_string(),
                format!("archive truncated at byte {cut}")
            );
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
