//! Reading a packed bundle (`capos pack`'s tar archive) in place: an index of
//! its entries from the headers alone, then each file read or hashed as a
//! stream straight from the archive. Nothing is ever extracted to disk.
//!
//! Invariants:
//! - Indexing reads headers only: file data is skipped by offset, so an
//!   archive costs one pass over its headers before anything is trusted.
//!   Its length is checked against the size cap before the first read.
//! - The format read is the one `capos pack` writes: ustar (or GNU) headers,
//!   GNU long-name entries for long paths, regular files and directories
//!   under one top directory, the two-zero-block end marker and nothing but
//!   zeros after it. Everything else is refused with the entry named: absolute
//!   paths, `.`/`..`/empty segments, links, devices, fifos, pax headers,
//!   sparse files, duplicates, several tops, files at the top, empty
//!   directories, and an archive that stops early (`archive truncated at byte N`).
//! - Indexing is bounded and linear: at most [`MAX_ENTRIES`] entries and
//!   [`MAX_TOTAL_PATH_BYTES`] of paths, and one sorted-map lookup per
//!   directory to find a file below it.
//! - Besides the bundle's top directory, an archive may carry a run-log
//!   segment (`capos pack --with-log`): a top directory `runlog` holding
//!   exactly `segment.jsonl` and `head.dsse.json`. It is not part of the
//!   bundle and is verified on its own.
//! - Every name shown in an error is escaped for the terminal.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use super::manifest;
use crate::terminal::untrusted;

/// Size of a tar block.
pub const BLOCK: u64 = 512;

/// Top directory of a packed run-log segment.
pub const RUNLOG_TOP: &str = "runlog";
/// The segment's entries, inside [`RUNLOG_TOP`].
pub const RUNLOG_SEGMENT: &str = "segment.jsonl";
/// The segment's signed head, inside [`RUNLOG_TOP`].
pub const RUNLOG_HEAD: &str = "head.dsse.json";

/// Longest path a GNU long-name entry may carry (the data is read into
/// memory before anything is trusted, so it is bounded).
pub const MAX_PATH_BYTES: u64 = 4096;

/// Most entries (files and directories) an archive may hold: the index is
/// built before anything is trusted, so its size is bounded. A bundle of
/// 100 repetitions of 20 cases holds about 12,000.
pub const MAX_ENTRIES: usize = 100_000;

/// Most bytes of entry paths an archive may hold, summed (the index keeps
/// them in memory before anything is trusted).
pub const MAX_TOTAL_PATH_BYTES: usize = 16 * 1024 * 1024;

/// Why an archive cannot be read as a bundle.
#[derive(thiserror::Error, Debug)]
pub enum ArchiveError {
    /// Reading the archive failed.
    #[error("{}: {cause}", untrusted(&path.to_string_lossy()))]
    Io {
        /// The archive.
        path: PathBuf,
        /// The underlying error (shown in the message, so not chained as a source).
        cause: io::Error,
    },
    /// The archive is larger than the size cap.
    #[error("archive is {length} bytes, more than the {limit}-byte cap (raise it with --max-bundle-size)")]
    TooLarge {
        /// The archive's length.
        length: u64,
        /// The cap.
        limit: u64,
    },
    /// The archive ends before its end-of-archive marker.
    #[error("archive truncated at byte {at}")]
    Truncated {
        /// The archive's length: where it stops.
        at: u64,
    },
    /// A header is damaged (bad checksum, magic or number field).
    #[error("archive damaged at byte {at}: {reason}")]
    Corrupt {
        /// Offset of the header.
        at: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// An entry's path would escape or is not clean.
    #[error("archive entry \"{}\": path {problem}", untrusted(entry))]
    BadPath {
        /// The entry's path as stored (lossily decoded).
        entry: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// An entry is neither a regular file nor a directory.
    #[error(
        "archive entry \"{}\": {kind} entries are not allowed",
        untrusted(entry)
    )]
    UnsupportedType {
        /// The entry's path as stored.
        entry: String,
        /// The kind of entry (`symlink`, `hard link`, `device`, ...).
        kind: String,
    },
    /// Two entries have the same path.
    #[error("archive entry \"{}\" appears twice", untrusted(entry))]
    Duplicate {
        /// The repeated path.
        entry: String,
    },
    /// Entries sit under more than one top directory.
    #[error(
        "archive has more than one top directory (\"{}\" and \"{}\")",
        untrusted(first),
        untrusted(second)
    )]
    MultipleTopDirectories {
        /// The first top directory seen.
        first: String,
        /// Another one.
        second: String,
    },
    /// A file sits at the top instead of inside the top directory.
    #[error(
        "archive entry \"{}\" is a file outside the top directory",
        untrusted(entry)
    )]
    FileAtTop {
        /// The entry's path.
        entry: String,
    },
    /// Something under `runlog/` that is not one of the segment's two files.
    #[error("archive entry \"{}\" is not part of a packed run log ({RUNLOG_TOP}/{RUNLOG_SEGMENT}, {RUNLOG_TOP}/{RUNLOG_HEAD})", untrusted(entry))]
    NotRunlog {
        /// The entry's path.
        entry: String,
    },
    /// A directory entry with no file below it.
    #[error(
        "archive entry \"{}\": empty directory; a bundle holds files only",
        untrusted(entry)
    )]
    EmptyDirectory {
        /// The directory's path.
        entry: String,
    },
    /// The archive holds no entries.
    #[error("archive holds no entries")]
    Empty,
    /// The archive holds more entries, or longer paths, than an index may keep.
    #[error("archive holds more than {limit} {what}; a bundle archive holds far fewer, so it is refused before anything is checked")]
    TooManyEntries {
        /// The cap passed.
        limit: usize,
        /// `entries` or `bytes of entry paths`.
        what: &'static str,
    },
    /// Non-zero bytes follow the end-of-archive marker.
    #[error("archive has data after its end at byte {at}")]
    TrailingData {
        /// Offset of the first non-zero byte after the end.
        at: u64,
    },
}

/// Where one file's bytes lie in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Offset of the first data byte.
    pub offset: u64,
    /// Number of data bytes.
    pub size: u64,
}

/// The entries of a bundle archive, from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveIndex {
    /// The archive file.
    pub path: PathBuf,
    /// Name of the one top directory (the bundle's name, if it is honest).
    pub top: String,
    /// Every regular file, by path below the top directory.
    pub files: BTreeMap<String, Span>,
    /// The packed run-log segment and its head, when the archive carries one.
    pub runlog: Option<RunlogSpans>,
}

/// Where a packed run-log segment lies in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunlogSpans {
    /// `runlog/segment.jsonl`.
    pub segment: Span,
    /// `runlog/head.dsse.json`.
    pub head: Span,
}

impl ArchiveIndex {
    /// A reader over exactly the bytes of `span`.
    pub fn open(&self, span: Span) -> io::Result<impl io::Read> {
        let mut file = fs::File::open(&self.path)?;
        file.seek(SeekFrom::Start(span.offset))?;
        Ok(io::BufReader::new(file).take(span.size))
    }

    /// The bytes of `span`, read whole.
    pub fn read(&self, span: Span) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(usize::try_from(span.size).unwrap_or(0));
        self.open(span)?.read_to_end(&mut bytes)?;
        if bytes.len() as u64 != span.size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive changed while it was read",
            ));
        }
        Ok(bytes)
    }
}

/// Index the bundle archive at `path` from its headers, refusing anything a
/// bundle archive may not hold and any archive longer than `limit` bytes.
pub fn index(path: &Path, limit: u64) -> Result<ArchiveIndex, ArchiveError> {
    let io_error = |cause| ArchiveError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let length = fs::metadata(path).map_err(io_error)?.len();
    if length > limit {
        return Err(ArchiveError::TooLarge { length, limit });
    }
    if length == 0 || !length.is_multiple_of(BLOCK) {
        return Err(ArchiveError::Truncated { at: length });
    }
    let mut file = io::BufReader::new(fs::File::open(path).map_err(io_error)?);
    let mut scanner = Scanner {
        length,
        top: None,
        files: BTreeMap::new(),
        directories: BTreeSet::new(),
        runlog: BTreeMap::new(),
        entries: 0,
        path_bytes: 0,
    };
    let mut position = 0;
    // Where the reader stands: skipping forward within the buffer costs no
    // system call (an absolute seek would drop the buffer at every header).
    let mut at: u64 = 0;
    let mut long_name: Option<Vec<u8>> = None;
    loop {
        if position + BLOCK > length {
            return Err(ArchiveError::Truncated { at: length });
        }
        let mut header = [0u8; BLOCK as usize];
        let skip = i64::try_from(position - at)
            .map_err(|_| corrupt(position, "entry data too large to skip"))?;
        file.seek_relative(skip).map_err(io_error)?;
        file.read_exact(&mut header).map_err(io_error)?;
        at = position + BLOCK;
        if header.iter().all(|byte| *byte == 0) {
            if long_name.is_some() {
                return Err(corrupt(position, "a long-name entry names nothing"));
            }
            check_end(&mut file, position, length).map_err(|error| match error {
                EndError::Io(cause) => io_error(cause),
                EndError::Archive(error) => error,
            })?;
            break;
        }
        let entry = parse_header(&header, position)?;
        let data = position + BLOCK;
        let next = data + entry.size.div_ceil(BLOCK) * BLOCK;
        if next > length {
            return Err(ArchiveError::Truncated { at: length });
        }
        if entry.kind == b'L' {
            if long_name.is_some() {
                return Err(corrupt(position, "two long-name entries in a row"));
            }
            if entry.size > MAX_PATH_BYTES {
                return Err(ArchiveError::BadPath {
                    entry: String::from_utf8_lossy(&entry.name).into_owned(),
                    problem: "is longer than 4096 bytes",
                });
            }
            let mut name = vec![0u8; entry.size as usize];
            file.read_exact(&mut name).map_err(io_error)?;
            at += entry.size;
            while name.last() == Some(&0) {
                name.pop();
            }
            long_name = Some(name);
        } else {
            let name = long_name.take().unwrap_or(entry.name);
            scanner.add(
                &name,
                entry.kind,
                Span {
                    offset: data,
                    size: entry.size,
                },
            )?;
        }
        position = next;
    }
    scanner.finish(path)
}

/// One header, decoded.
struct Header {
    /// The path (ustar prefix and name joined), or the long-name entry's own name.
    name: Vec<u8>,
    /// The type flag.
    kind: u8,
    /// The data size in bytes.
    size: u64,
}

fn corrupt(at: u64, reason: &'static str) -> ArchiveError {
    ArchiveError::Corrupt { at, reason }
}

/// Decode a ustar or GNU header block at offset `at`.
fn parse_header(block: &[u8; BLOCK as usize], at: u64) -> Result<Header, ArchiveError> {
    let recorded = octal(&block[148..156]).ok_or(corrupt(at, "unreadable header checksum"))?;
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(index, byte)| {
            if (148..156).contains(&index) {
                u64::from(b' ')
            } else {
                u64::from(*byte)
            }
        })
        .sum();
    if sum != recorded {
        return Err(corrupt(at, "header checksum mismatch"));
    }
    let magic = &block[257..265];
    if magic != b"ustar\x0000" && magic != b"ustar  \x00" {
        return Err(corrupt(at, "not a ustar header"));
    }
    let size = octal(&block[124..136]).ok_or(corrupt(at, "unreadable size field"))?;
    let field = |range: std::ops::Range<usize>| {
        let bytes = &block[range];
        let end = bytes
            .iter()
            .position(|byte| *byte == 0)
            .unwrap_or(bytes.len());
        bytes[..end].to_vec()
    };
    let mut name = field(0..100);
    let prefix = field(345..500);
    if magic == b"ustar\x0000" && !prefix.is_empty() {
        let mut joined = prefix;
        joined.push(b'/');
        joined.extend_from_slice(&name);
        name = joined;
    }
    Ok(Header {
        name,
        kind: block[156],
        size,
    })
}

/// An octal number field: optional leading spaces, digits, then NULs or spaces.
fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_start_matches(' ').trim_end_matches(['\0', ' ']);
    if digits.is_empty() || !digits.bytes().all(|byte| (b'0'..=b'7').contains(&byte)) {
        return None;
    }
    u64::from_str_radix(digits, 8).ok()
}

enum EndError {
    Io(io::Error),
    Archive(ArchiveError),
}

/// At `position` a zero block starts the end marker: the next block must be
/// zero too, and nothing but zero padding may follow.
fn check_end(
    file: &mut io::BufReader<fs::File>,
    position: u64,
    length: u64,
) -> Result<(), EndError> {
    if position + 2 * BLOCK > length {
        return Err(EndError::Archive(ArchiveError::Truncated { at: length }));
    }
    let mut buffer = [0u8; 8192];
    let mut offset = position + BLOCK;
    loop {
        let read = file.read(&mut buffer).map_err(EndError::Io)?;
        if read == 0 {
            return Ok(());
        }
        if let Some(index) = buffer[..read].iter().position(|byte| *byte != 0) {
            return Err(EndError::Archive(ArchiveError::TrailingData {
                at: offset + index as u64,
            }));
        }
        offset += read as u64;
    }
}

/// The entries seen so far, and the rules that span entries.
struct Scanner {
    length: u64,
    top: Option<String>,
    files: BTreeMap<String, Span>,
    directories: BTreeSet<String>,
    /// Entries under [`RUNLOG_TOP`], by path (directories have no span).
    runlog: BTreeMap<String, Option<Span>>,
    /// Entries added so far.
    entries: usize,
    /// Bytes of their paths, summed.
    path_bytes: usize,
}

impl Scanner {
    /// Check one entry and record it.
    fn add(&mut self, raw: &[u8], kind: u8, span: Span) -> Result<(), ArchiveError> {
        self.entries += 1;
        self.path_bytes += raw.len();
        if self.entries > MAX_ENTRIES {
            return Err(ArchiveError::TooManyEntries {
                limit: MAX_ENTRIES,
                what: "entries",
            });
        }
        if self.path_bytes > MAX_TOTAL_PATH_BYTES {
            return Err(ArchiveError::TooManyEntries {
                limit: MAX_TOTAL_PATH_BYTES,
                what: "bytes of entry paths",
            });
        }
        let shown = String::from_utf8_lossy(raw).into_owned();
        let is_directory = match kind {
            b'0' | 0 => false,
            b'5' => true,
            other => {
                return Err(ArchiveError::UnsupportedType {
                    entry: shown,
                    kind: entry_kind(other),
                })
            }
        };
        let path = checked_entry_path(raw, is_directory, &shown)?;
        let first = path.split('/').next().unwrap_or_default().to_owned();
        if first == RUNLOG_TOP {
            return self.add_runlog(path, is_directory, span);
        }
        match &self.top {
            Some(existing) if *existing != first => {
                return Err(ArchiveError::MultipleTopDirectories {
                    first: existing.clone(),
                    second: first,
                })
            }
            _ => self.top = Some(first),
        }
        if !is_directory && !path.contains('/') {
            return Err(ArchiveError::FileAtTop { entry: path });
        }
        let fresh = if is_directory {
            !self.files.contains_key(&path) && self.directories.insert(path.clone())
        } else {
            !self.directories.contains(&path) && self.files.insert(path.clone(), span).is_none()
        };
        if !fresh {
            return Err(ArchiveError::Duplicate { entry: path });
        }
        Ok(())
    }

    /// Record an entry of the packed run-log segment.
    fn add_runlog(
        &mut self,
        path: String,
        is_directory: bool,
        span: Span,
    ) -> Result<(), ArchiveError> {
        let allowed = if is_directory {
            path == RUNLOG_TOP
        } else {
            path == format!("{RUNLOG_TOP}/{RUNLOG_SEGMENT}")
                || path == format!("{RUNLOG_TOP}/{RUNLOG_HEAD}")
        };
        if !allowed {
            return Err(ArchiveError::NotRunlog { entry: path });
        }
        let span = (!is_directory).then_some(span);
        if self.runlog.insert(path.clone(), span).is_some() {
            return Err(ArchiveError::Duplicate { entry: path });
        }
        Ok(())
    }

    /// The run-log spans, when the archive carries both files (or none at all).
    fn runlog_spans(&self) -> Result<Option<RunlogSpans>, ArchiveError> {
        if self.runlog.is_empty() {
            return Ok(None);
        }
        let span = |name: &str| {
            let path = format!("{RUNLOG_TOP}/{name}");
            self.runlog
                .get(&path)
                .copied()
                .flatten()
                .ok_or(ArchiveError::NotRunlog {
                    entry: format!("{path} (missing)"),
                })
        };
        Ok(Some(RunlogSpans {
            segment: span(RUNLOG_SEGMENT)?,
            head: span(RUNLOG_HEAD)?,
        }))
    }

    /// The index, once every directory is known to hold a file: the files
    /// below `d/` form one run of the sorted file map starting at `d/`, so
    /// one lookup per directory settles it (linear in the entries, up to a
    /// logarithm).
    fn finish(self, path: &Path) -> Result<ArchiveIndex, ArchiveError> {
        let runlog = self.runlog_spans()?;
        let Some(top) = self.top else {
            return Err(if self.length < 2 * BLOCK {
                ArchiveError::Truncated { at: self.length }
            } else {
                ArchiveError::Empty
            });
        };
        for directory in &self.directories {
            let below = format!("{directory}/");
            let first_at_or_after = self
                .files
                .range::<str, _>((
                    std::ops::Bound::Included(below.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .next();
            if !first_at_or_after.is_some_and(|(file, _)| file.starts_with(&below)) {
                return Err(ArchiveError::EmptyDirectory {
                    entry: directory.clone(),
                });
            }
        }
        let prefix = format!("{top}/");
        let files = self
            .files
            .into_iter()
            .map(|(file, span)| (file[prefix.len()..].to_owned(), span))
            .collect();
        Ok(ArchiveIndex {
            path: path.to_path_buf(),
            top,
            files,
            runlog,
        })
    }
}

/// The entry's path, checked: UTF-8, relative, no `.`/`..`/empty segment,
/// a trailing `/` only on directories.
fn checked_entry_path(
    bytes: &[u8],
    is_directory: bool,
    shown: &str,
) -> Result<String, ArchiveError> {
    let bad = |problem| ArchiveError::BadPath {
        entry: shown.to_owned(),
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

/// A name for a tar type flag.
fn entry_kind(kind: u8) -> String {
    match kind {
        b'1' => "hard link".to_owned(),
        b'2' => "symlink".to_owned(),
        b'3' | b'4' => "device".to_owned(),
        b'6' => "fifo".to_owned(),
        b'x' | b'g' => "pax header".to_owned(),
        b'S' => "sparse file".to_owned(),
        b'K' => "long link name".to_owned(),
        other => format!("type {:?}", char::from(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::pack::tests::sample;
    use std::io::Write as _;

    /// Raw header with any path, type and declared size, bypassing the tar crate's checks.
    fn raw_header(path: &[u8], kind: u8, size: u64) -> Vec<u8> {
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..path.len()].copy_from_slice(path);
        header.set_entry_type(tar::EntryType::new(kind));
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_size(size);
        header.set_cksum();
        header.as_bytes().to_vec()
    }

    fn raw_entry(path: &[u8], kind: u8, data: &[u8]) -> Vec<u8> {
        let mut bytes = raw_header(path, kind, data.len() as u64);
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

    fn index_error(entries: &[Vec<u8>]) -> ArchiveError {
        index(archive_of(entries).path(), u64::MAX).unwrap_err()
    }

    #[test]
    fn the_index_reads_every_file_in_place() {
        let (dir, bundle) = sample("abc");
        let archive = dir.path().join("abc.tar");
        crate::bundle::pack::pack_to(&bundle, &archive).unwrap();
        let index = index(&archive, u64::MAX).unwrap();
        assert_eq!(index.top, "abc");
        let files: Vec<&str> = index.files.keys().map(String::as_str).collect();
        assert_eq!(
            files,
            [
                "logs/smp-1/1/serial.log",
                "logs/smp-1/1/stderr.log",
                "logs/smp-2/1/serial.log",
                "results.csv"
            ]
        );
        for (path, span) in &index.files {
            assert_eq!(
                index.read(*span).unwrap(),
                fs::read(bundle.join(path)).unwrap()
            );
        }
    }

    #[test]
    fn long_paths_are_read_from_gnu_long_name_entries() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("b".repeat(64));
        let long = format!("logs/{}/1/serial.timed.log", "c".repeat(250));
        fs::create_dir_all(bundle.join(&long).parent().unwrap()).unwrap();
        fs::write(bundle.join(&long), "x").unwrap();
        let archive = dir.path().join("out.tar");
        crate::bundle::pack::pack_to(&bundle, &archive).unwrap();
        let index = index(&archive, u64::MAX).unwrap();
        assert_eq!(index.read(index.files[&long]).unwrap(), b"x");
    }

    /// GNU tar's own archive of a bundle directory reads the same way.
    #[test]
    fn an_archive_made_by_gnu_tar_is_read() {
        let (dir, _bundle) = sample("abc");
        let archive = dir.path().join("gnu.tar");
        let Ok(status) = std::process::Command::new("tar")
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(dir.path())
            .arg("abc")
            .status()
        else {
            eprintln!("skipped: tar is not installed");
            return;
        };
        assert!(status.success());
        let index = index(&archive, u64::MAX).unwrap();
        assert_eq!(index.files.len(), 4);
    }

    #[test]
    fn parent_segments_and_absolute_paths_are_refused() {
        let error = index_error(&[raw_entry(b"abc/../evil", b'0', b"x")]);
        assert!(
            matches!(&error, ArchiveError::BadPath { entry, problem: "has a `.` or `..` segment" } if entry == "abc/../evil"),
            "{error:?}"
        );
        let error = index_error(&[raw_entry(b"/tmp/evil", b'0', b"x")]);
        assert!(
            matches!(&error, ArchiveError::BadPath { entry, problem: "is absolute" } if entry == "/tmp/evil"),
            "{error:?}"
        );
    }

    #[test]
    fn links_devices_pax_and_sparse_entries_are_refused() {
        for (kind, name) in [
            (b'2', "symlink"),
            (b'1', "hard link"),
            (b'3', "device"),
            (b'4', "device"),
            (b'6', "fifo"),
            (b'x', "pax header"),
            (b'S', "sparse file"),
        ] {
            let error = index_error(&[raw_entry(b"abc/link", kind, b"")]);
            assert!(
                matches!(&error, ArchiveError::UnsupportedType { entry, kind: k } if entry == "abc/link" && k == name),
                "{error:?}"
            );
        }
    }

    #[test]
    fn duplicates_several_tops_loose_files_and_empty_directories_are_refused() {
        let file = raw_entry(b"abc/x", b'0', b"1");
        let error = index_error(&[file.clone(), file.clone()]);
        assert!(
            matches!(&error, ArchiveError::Duplicate { entry } if entry == "abc/x"),
            "{error:?}"
        );
        let error = index_error(&[file.clone(), raw_entry(b"def/x", b'0', b"1")]);
        assert!(
            matches!(&error, ArchiveError::MultipleTopDirectories { first, second } if first == "abc" && second == "def"),
            "{error:?}"
        );
        let error = index_error(&[raw_entry(b"loose", b'0', b"1")]);
        assert!(
            matches!(&error, ArchiveError::FileAtTop { entry } if entry == "loose"),
            "{error:?}"
        );
        let error = index_error(&[file, raw_entry(b"abc/empty/", b'5', b"")]);
        assert!(
            matches!(&error, ArchiveError::EmptyDirectory { entry } if entry == "abc/empty"),
            "{error:?}"
        );
    }

    #[test]
    fn trailing_data_and_damaged_headers_are_refused() {
        let mut archive = archive_of(&[raw_entry(b"abc/x", b'0', b"1")]);
        let mut junk = vec![0u8; 512];
        junk[7] = 1;
        archive.write_all(&junk).unwrap();
        let error = index(archive.path(), u64::MAX).unwrap_err();
        assert!(
            matches!(error, ArchiveError::TrailingData { at: 2055 }),
            "{error:?}"
        );
        let mut entry = raw_entry(b"abc/x", b'0', b"1");
        entry[0] ^= 1;
        let error = index_error(&[entry]);
        assert!(
            matches!(
                error,
                ArchiveError::Corrupt {
                    at: 0,
                    reason: "header checksum mismatch"
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn every_truncation_is_reported_as_truncated() {
        let (dir, bundle) = sample("abc");
        let bytes = crate::bundle::pack::pack_to_writer(&bundle, Vec::new()).unwrap();
        let archive = dir.path().join("cut.tar");
        for cut in (0..bytes.len())
            .step_by(97)
            .chain((0..bytes.len()).step_by(512))
        {
            fs::write(&archive, &bytes[..cut]).unwrap();
            let error = index(&archive, u64::MAX).unwrap_err();
            assert!(
                matches!(error, ArchiveError::Truncated { at } if at == cut as u64),
                "cut at {cut}: {error:?}"
            );
            assert_eq!(
                error.to_string(),
                format!("archive truncated at byte {cut}")
            );
        }
    }

    /// A 2 GiB entry in a sparse file: refused by its length under the cap
    /// without a byte read, and indexed (not read, not written anywhere) in
    /// one header hop when the cap allows it.
    #[test]
    fn a_huge_sparse_archive_costs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse.tar");
        let huge = 2u64 << 30;
        let mut file = fs::File::create(&path).unwrap();
        file.write_all(&raw_header(b"abc/big", b'0', huge)).unwrap();
        file.set_len(BLOCK + huge + 2 * BLOCK).unwrap();
        drop(file);
        let started = std::time::Instant::now();
        let error = index(&path, 512 << 20).unwrap_err();
        assert!(
            matches!(error, ArchiveError::TooLarge { limit, .. } if limit == 512 << 20),
            "{error:?}"
        );
        let index = index(&path, u64::MAX).unwrap();
        assert_eq!(
            index.files["big"],
            Span {
                offset: BLOCK,
                size: huge
            }
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn an_overlong_long_name_is_refused_before_it_is_read() {
        let mut long = raw_header(b"././@LongLink", b'L', MAX_PATH_BYTES + 1);
        long.resize(
            512 + (MAX_PATH_BYTES as usize + 1).div_ceil(512) * 512,
            b'a',
        );
        let error = index_error(&[long]);
        assert!(
            matches!(
                error,
                ArchiveError::BadPath {
                    problem: "is longer than 4096 bytes",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn names_with_terminal_escapes_are_shown_escaped() {
        let error = index_error(&[raw_entry(b"abc/\x1b[2Kx/../y", b'0', b"1")]);
        let message = error.to_string();
        assert!(!message.contains('\u{1b}'), "{message}");
        assert!(message.contains("\\u{1b}[2K"), "{message}");
    }

    #[test]
    fn a_directory_holds_a_file_only_below_itself() {
        // Files in `a0/` and `a-b/` sort near `a/` but are not below it.
        let error = index_error(&[
            raw_entry(b"t/a/", b'5', b""),
            raw_entry(b"t/a-b/x", b'0', b"x"),
            raw_entry(b"t/a0/x", b'0', b"x"),
            raw_entry(b"t/a.b", b'0', b"x"),
        ]);
        assert!(
            matches!(&error, ArchiveError::EmptyDirectory { entry } if entry == "t/a"),
            "{error:?}"
        );
        let archive = archive_of(&[
            raw_entry(b"t/a/", b'5', b""),
            raw_entry(b"t/a/b/", b'5', b""),
            raw_entry(b"t/a/b/c", b'0', b"x"),
        ]);
        assert_eq!(index(archive.path(), u64::MAX).unwrap().files.len(), 1);
    }

    /// Issue 20, finding 4: an unsigned archive of very many entries was
    /// scanned quadratically before anything was checked.
    #[test]
    fn an_archive_of_too_many_entries_is_refused_while_indexing() {
        let entries: Vec<Vec<u8>> = (0..=MAX_ENTRIES)
            .map(|number| raw_header(format!("t/{number}/").as_bytes(), b'5', 0))
            .collect();
        let error = index_error(&entries);
        assert!(
            matches!(
                error,
                ArchiveError::TooManyEntries {
                    limit: MAX_ENTRIES,
                    what: "entries"
                }
            ),
            "{error:?}"
        );
    }
}
