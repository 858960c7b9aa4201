//! The run log of an evidence store: every `capos run`, passed, failed or
//! broken off, as one entry of an append-only, hash-chained log whose head
//! is signed, so a published bundle can show it was not picked from many.
//!
//! Files in the store:
//! - `runlog.jsonl`: one entry per line, compact JSON with its fields in a
//!   fixed order (the only text an entry has): its place in the chain, where
//!   the runs of its commit began, and the run; entry `k` records the sha256
//!   of entry `k-1`'s line (64 zeros for entry 1);
//! - `runlog.head.dsse.json`: a DSSE envelope, signed like provenance, over
//!   `{"format", "entries", "head", "signed"}`: how many entries the log
//!   holds, the sha256 of the last line and when the head was signed;
//! - `runlog.lock`: taken while appending.
//!
//! Invariants:
//! - Appending first verifies the whole log with the signing key's public
//!   half and refuses to extend a log that does not verify; it writes the
//!   new line, then signs the new head.
//! - Editing, reordering or removing an entry breaks the chain; cutting
//!   entries off the end or adding some disagrees with the signed head;
//!   re-signing needs the key.
//! - A log segment (the entries from some point to the head, as `capos pack
//!   --with-log` ships them) proves where it must start: every entry names
//!   the sequence number of its commit's first run (`first_of_commit`), and
//!   that number is inside the chain the head signs. A segment that does not
//!   reach back to the first run of the bundle's commit is refused
//!   ([`VerifiedLog::covering`]); entries of the older format (v1) do not
//!   name it, so their bundles are only vouched for by a log from entry 1.
//! - Nothing is read before it is bounded: the head is read (at most
//!   [`MAX_HEAD_BYTES`], regular files only) and its signature checked
//!   before the log, and the log may be no longer than the signed entry
//!   count allows ([`MAX_LINE_BYTES`] per entry).
//! - Every string from a log shown on a terminal is escaped.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::provenance::{self, EnvelopeError};
use crate::digest::sha256_hex;
use crate::terminal::untrusted;

/// The log, in the store.
pub const LOG_FILE: &str = "runlog.jsonl";
/// The signed head, in the store.
pub const HEAD_FILE: &str = "runlog.head.dsse.json";
/// Held while appending.
pub const LOCK_FILE: &str = "runlog.lock";
/// `format` of every entry written now (names `first_of_commit`).
pub const ENTRY_FORMAT: &str = "capos-runlog/v2";
/// `format` of entries written before `first_of_commit` existed; still read.
pub const ENTRY_FORMAT_V1: &str = "capos-runlog/v1";
/// `format` of the signed head written now (carries the signing time).
pub const HEAD_FORMAT: &str = "capos-runlog-head/v2";
/// `format` of heads written before they carried a time; still read.
pub const HEAD_FORMAT_V1: &str = "capos-runlog-head/v1";
/// Largest signed head file read (a real one is under 1 KiB).
pub const MAX_HEAD_BYTES: u64 = 16 * 1024;
/// Longest entry line, newline excluded; [`append`] shortens a long error
/// detail to stay well below it.
pub const MAX_LINE_BYTES: u64 = 16 * 1024;
/// Longest error detail [`append`] records, in bytes.
pub const MAX_DETAIL_BYTES: usize = 4 * 1024;
/// DSSE payload type of the signed head.
pub const HEAD_PAYLOAD_TYPE: &str = "application/vnd.capos.runlog-head+json";
/// `previous` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How a run ended.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Sealed; every run and gate passed.
    Pass,
    /// Sealed; a run or a gate failed.
    Fail,
    /// Stopped with an error before a bundle was sealed.
    Error,
    /// Sealed; nothing failed, but a required gate was inconclusive
    /// (bundle format v2 onward).
    Inconclusive,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Error => "error",
            Self::Inconclusive => "inconclusive",
        })
    }
}

/// One line of the log: its place in the chain and the run it records.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Always [`ENTRY_FORMAT`].
    pub format: String,
    /// 1 for the first entry of the store, then consecutive.
    pub sequence: u64,
    /// sha256 of the previous entry's line ([`GENESIS`] for entry 1).
    pub previous: String,
    /// Sequence number of the first entry of the log with this run's commit
    /// (this entry's own when it is the first). Absent only in v1 entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_of_commit: Option<u64>,
    /// The `capos` that ran (`<version> (commit <sha>)`).
    pub tool: String,
    /// The run.
    pub run: Run,
}

/// What a run tells the log about itself.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// Proof contract run.
    pub contract: String,
    /// Commit of the checkout the run used, when it was a git checkout.
    pub commit: Option<String>,
    /// Whether that checkout had uncommitted changes.
    pub dirty: Option<bool>,
    /// The sealed bundle's name; none for a run that ended in an error.
    pub bundle: Option<String>,
    /// How the run ended.
    pub verdict: Verdict,
    /// RFC 3339 start time.
    pub started: String,
    /// RFC 3339 end time.
    pub finished: String,
    /// The error, for a run that ended in one.
    pub detail: Option<String>,
}

/// The signed head's payload.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// Always [`HEAD_FORMAT`].
    pub format: String,
    /// Sequence number of the last entry (the number of entries in the store's log).
    pub entries: u64,
    /// sha256 of the last entry's line.
    pub head: String,
    /// RFC 3339 time the head was signed. Absent only in v1 heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<String>,
}

/// A log, or a segment of one, and its signed head, as bytes (unverified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBytes {
    /// Lines of `runlog.jsonl`.
    pub lines: Vec<u8>,
    /// The signed head.
    pub head: Vec<u8>,
}

/// A log (or segment) that verified: its entries, each line's sha256 and
/// the signed head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLog {
    /// Entries in order.
    pub entries: Vec<Entry>,
    /// sha256 of each entry's line, in the same order.
    pub hashes: Vec<String>,
    /// The signed head (entry count, last hash, signing time).
    pub head: Head,
}

impl VerifiedLog {
    /// The entry that sealed bundle `name`, if any.
    #[must_use]
    pub fn entry_for(&self, name: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|entry| entry.run.bundle.as_deref() == Some(name))
    }

    /// Sequence number of the first entry shown (1 for a whole log).
    #[must_use]
    pub fn start(&self) -> u64 {
        self.entries.first().map_or(1, |entry| entry.sequence)
    }

    /// `entry`, once it is known that this log shows every run of its
    /// commit: the log starts at entry 1, or at or before the entry the
    /// (signed) `first_of_commit` names. A segment with its beginning cut
    /// off fails here.
    pub fn covering<'a>(&self, entry: &'a Entry) -> Result<&'a Entry, LogError> {
        let start = self.start();
        if start == 1 {
            return Ok(entry);
        }
        match entry.first_of_commit {
            Some(first) if first >= start => Ok(entry),
            Some(first) => Err(LogError::Trimmed {
                start,
                first,
                sequence: entry.sequence,
            }),
            None => Err(LogError::UnprovableStart {
                start,
                sequence: entry.sequence,
            }),
        }
    }
}

/// Why a log does not verify, or cannot be written.
#[derive(thiserror::Error, Debug)]
pub enum LogError {
    /// Reading or writing failed.
    #[error("{}: {cause}", untrusted(&path.to_string_lossy()))]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error (shown in the message, so not chained as a source).
        cause: io::Error,
    },
    /// One of the two files is there without the other.
    #[error("{present} is there but {missing} is not; the run log is incomplete")]
    Incomplete {
        /// The file found.
        present: &'static str,
        /// The file missing.
        missing: &'static str,
    },
    /// A line is not an entry, or not in its one canonical form.
    #[error("{LOG_FILE} line {line}: {}", untrusted(problem))]
    Malformed {
        /// 1-based line number in the file.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// Sequence numbers are not consecutive (an entry was removed, repeated or moved).
    #[error("{LOG_FILE} line {line}: sequence is {found}, expected {expected} (entries removed, repeated or reordered)")]
    Sequence {
        /// 1-based line number.
        line: usize,
        /// The sequence number that should be there.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// An entry does not name its predecessor's hash.
    #[error("{LOG_FILE} line {line}: entry {sequence} does not follow the entry before it (its previous hash differs: the log was edited or reordered)")]
    BrokenChain {
        /// 1-based line number.
        line: usize,
        /// Its sequence number.
        sequence: u64,
    },
    /// The store's log does not begin with entry 1.
    #[error("{LOG_FILE} begins at entry {first}, not 1: its beginning was cut off")]
    Beheaded {
        /// The first sequence number found.
        first: u64,
    },
    /// The log has no entries.
    #[error("{LOG_FILE} holds no entries")]
    Empty,
    /// The signed head does not verify.
    #[error("{HEAD_FILE}: {0}")]
    Head(EnvelopeError),
    /// The signed head is not a head.
    #[error("{HEAD_FILE}: the signed payload is not a run-log head: {}", untrusted(.0))]
    HeadMalformed(String),
    /// The signed head covers another number of entries.
    #[error("the signed head covers {signed} entries but {LOG_FILE} ends at entry {found} (entries cut off the end, or added without the key)")]
    LengthMismatch {
        /// Entries the head covers.
        signed: u64,
        /// Sequence number of the log's last entry.
        found: u64,
    },
    /// The last entry is not the one signed.
    #[error(
        "the last entry's sha256 is {found}, the signed head says {}",
        untrusted(signed)
    )]
    HeadMismatch {
        /// sha256 in the head.
        signed: String,
        /// sha256 of the last line.
        found: String,
    },
    /// A segment begins after the first run of the bundle's commit.
    #[error("the run-log segment begins at entry {start}, but entry {sequence} says the runs of its commit began at entry {first}: entries were cut from the segment's beginning, so runs (failed ones, perhaps) are hidden")]
    Trimmed {
        /// First sequence number in the segment.
        start: u64,
        /// Where the commit's runs began, as the signed entry says.
        first: u64,
        /// The entry stated.
        sequence: u64,
    },
    /// A segment of v1 entries cannot show where its commit's runs began.
    #[error("the run-log segment begins at entry {start} and entry {sequence} is in the v1 format, which does not record where its commit's runs began; only a log from entry 1 can vouch for it (pack the bundle again with this capos)")]
    UnprovableStart {
        /// First sequence number in the segment.
        start: u64,
        /// The entry stated.
        sequence: u64,
    },
    /// An entry's `first_of_commit` disagrees with the log.
    #[error("{LOG_FILE} line {line}: entry {sequence} says its commit's runs began at entry {claimed}, but the log shows {shown}")]
    WrongFirstOfCommit {
        /// 1-based line number.
        line: usize,
        /// Its sequence number.
        sequence: u64,
        /// What it says.
        claimed: u64,
        /// What the log shows.
        shown: String,
    },
    /// A file is not a regular file (a FIFO, device, directory, ...).
    #[error("{}: not a regular file; a run log and its head are plain files", untrusted(&path.to_string_lossy()))]
    NotRegular {
        /// The file.
        path: PathBuf,
    },
    /// A file is larger than what may be read of it.
    #[error("{}: {size} bytes, more than the {limit} bytes {why}", untrusted(&what.to_string_lossy()))]
    TooLarge {
        /// The file (or archive member).
        what: PathBuf,
        /// Its size.
        size: u64,
        /// The most that is read.
        limit: u64,
        /// Where the limit comes from.
        why: &'static str,
    },
    /// Appending refused: the log there does not verify.
    #[error("refusing to append to a run log that does not verify ({0}); move {LOG_FILE} and {HEAD_FILE} aside to start a new one")]
    Damaged(Box<LogError>),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |cause| LogError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// Most bytes of log [`segment_for_bundle`] reads when packing, where no
/// key is at hand to verify the head's entry count first.
pub const MAX_UNVERIFIED_LOG_BYTES: u64 = 256 * 1024 * 1024;

/// The most bytes a log with `entries` signed entries can hold.
#[must_use]
pub fn log_budget(entries: u64) -> u64 {
    entries.saturating_mul(MAX_LINE_BYTES + 1)
}

/// Read the regular file at `path`, at most `limit` bytes, or None when it
/// does not exist. Anything but a regular file (FIFO, device, directory,
/// a symlink to one) is refused before it is opened for reading, and again
/// after (the open does not block, so a FIFO swapped in meanwhile cannot
/// hang it); a file longer than `limit` is refused before its first byte
/// is read.
pub fn read_bounded(
    path: &Path,
    limit: u64,
    why: &'static str,
) -> Result<Option<Vec<u8>>, LogError> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(cause) => return Err(io_error(path)(cause)),
    };
    let regular = |metadata: &fs::Metadata| {
        if metadata.is_file() {
            Ok(())
        } else {
            Err(LogError::NotRegular {
                path: path.to_path_buf(),
            })
        }
    };
    regular(&metadata)?;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io_error(path))?;
    let metadata = file.metadata().map_err(io_error(path))?;
    regular(&metadata)?;
    let too_large = |size| LogError::TooLarge {
        what: path.to_path_buf(),
        size,
        limit,
        why,
    };
    if metadata.len() > limit {
        return Err(too_large(metadata.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error(path))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(Some(bytes))
}

/// Whether the store has a run log at all (either of its files is there).
#[must_use]
pub fn present(store: &Path) -> bool {
    [LOG_FILE, HEAD_FILE]
        .iter()
        .any(|name| fs::symlink_metadata(store.join(name)).is_ok())
}

/// Verify a store's whole log against `trusted`; None when it has none.
/// The head is read and its signature checked first; the log is then read
/// only up to what the signed entry count allows.
pub fn verify_store(store: &Path, trusted: &VerifyingKey) -> Result<Option<VerifiedLog>, LogError> {
    let head_path = store.join(HEAD_FILE);
    let log_path = store.join(LOG_FILE);
    let head = read_bounded(&head_path, MAX_HEAD_BYTES, "a run-log head may have")?;
    let Some(head) = head else {
        return match fs::symlink_metadata(&log_path) {
            Ok(_) => Err(LogError::Incomplete {
                present: LOG_FILE,
                missing: HEAD_FILE,
            }),
            Err(_) => Ok(None),
        };
    };
    let head = verify_head(&head, trusted)?;
    let Some(lines) = read_bounded(
        &log_path,
        log_budget(head.entries),
        "the signed head's entry count allows",
    )?
    else {
        return Err(LogError::Incomplete {
            present: HEAD_FILE,
            missing: LOG_FILE,
        });
    };
    let verified = verify_lines(&lines, head)?;
    match verified.entries.first().map(|entry| entry.sequence) {
        Some(1) => Ok(Some(verified)),
        Some(first) => Err(LogError::Beheaded { first }),
        None => Err(LogError::Empty),
    }
}

/// Verify log (or segment) bytes and their signed head against `trusted`:
/// the head first ([`verify_head`]), then the lines ([`verify_lines`]).
pub fn verify(log: &[u8], head: &[u8], trusted: &VerifyingKey) -> Result<VerifiedLog, LogError> {
    let head = verify_head(head, trusted)?;
    if log.len() as u64 > log_budget(head.entries) {
        return Err(LogError::TooLarge {
            what: PathBuf::from(LOG_FILE),
            size: log.len() as u64,
            limit: log_budget(head.entries),
            why: "the signed head's entry count allows",
        });
    }
    verify_lines(log, head)
}

/// The signed head's payload, once its signature verifies with `trusted`.
pub fn verify_head(head: &[u8], trusted: &VerifyingKey) -> Result<Head, LogError> {
    if head.len() as u64 > MAX_HEAD_BYTES {
        return Err(LogError::TooLarge {
            what: PathBuf::from(HEAD_FILE),
            size: head.len() as u64,
            limit: MAX_HEAD_BYTES,
            why: "a run-log head may have",
        });
    }
    let envelope = provenance::parse_envelope(head).map_err(LogError::Head)?;
    let payload = provenance::verify_payload(&envelope, HEAD_PAYLOAD_TYPE, trusted)
        .map_err(LogError::Head)?;
    let head: Head = serde_json::from_slice(&payload)
        .map_err(|error| LogError::HeadMalformed(error.to_string()))?;
    let time_agrees = match head.format.as_str() {
        HEAD_FORMAT => head.signed.is_some(),
        HEAD_FORMAT_V1 => head.signed.is_none(),
        _ => {
            return Err(LogError::HeadMalformed(format!(
                "format is {:?}, expected {HEAD_FORMAT:?}",
                head.format
            )))
        }
    };
    if !time_agrees {
        return Err(LogError::HeadMalformed(format!(
            "a {} head {} its signing time",
            head.format,
            if head.signed.is_some() {
                "may not carry"
            } else {
                "must carry"
            }
        )));
    }
    Ok(head)
}

/// Verify log (or segment) lines against a head whose signature verified:
/// canonical lines, consecutive sequence numbers, an unbroken chain (from
/// [`GENESIS`] when the first entry is entry 1), `first_of_commit` as the
/// lines show it, and the head signing the last entry and the count.
pub fn verify_lines(log: &[u8], head: Head) -> Result<VerifiedLog, LogError> {
    let verified = parse_chain(log, head)?;
    let (Some(last), Some(last_hash)) = (verified.entries.last(), verified.hashes.last()) else {
        return Err(LogError::Empty);
    };
    if last.sequence != verified.head.entries {
        return Err(LogError::LengthMismatch {
            signed: verified.head.entries,
            found: last.sequence,
        });
    }
    if *last_hash != verified.head.head {
        return Err(LogError::HeadMismatch {
            signed: verified.head.head.clone(),
            found: last_hash.clone(),
        });
    }
    Ok(verified)
}

/// Parse every line and check the chain between them; `head` is kept, not checked.
fn parse_chain(log: &[u8], head: Head) -> Result<VerifiedLog, LogError> {
    let mut verified = VerifiedLog {
        entries: Vec::new(),
        hashes: Vec::new(),
        head,
    };
    if log.is_empty() {
        return Ok(verified);
    }
    let Some(body) = log.strip_suffix(b"\n") else {
        return Err(LogError::Malformed {
            line: log.split(|byte| *byte == b'\n').count(),
            problem: "the last line does not end with a newline (truncated?)".into(),
        });
    };
    for (index, line) in body.split(|byte| *byte == b'\n').enumerate() {
        let number = index + 1;
        let entry = parse_entry(line, number)?;
        match (verified.entries.last(), verified.hashes.last()) {
            (Some(previous), Some(previous_hash)) => {
                if entry.sequence != previous.sequence + 1 {
                    return Err(LogError::Sequence {
                        line: number,
                        expected: previous.sequence + 1,
                        found: entry.sequence,
                    });
                }
                if entry.previous != *previous_hash {
                    return Err(LogError::BrokenChain {
                        line: number,
                        sequence: entry.sequence,
                    });
                }
            }
            _ if entry.sequence == 0 => {
                return Err(LogError::Malformed {
                    line: number,
                    problem: "sequence numbers start at 1".into(),
                });
            }
            _ if entry.sequence == 1 && entry.previous != GENESIS => {
                return Err(LogError::BrokenChain {
                    line: number,
                    sequence: 1,
                });
            }
            _ => {}
        }
        check_first_of_commit(&verified.entries, &entry, number)?;
        verified.hashes.push(sha256_hex(line));
        verified.entries.push(entry);
    }
    Ok(verified)
}

/// One line as an entry in its canonical form and a known format.
fn parse_entry(line: &[u8], number: usize) -> Result<Entry, LogError> {
    let malformed = |problem: String| LogError::Malformed {
        line: number,
        problem,
    };
    if line.len() as u64 > MAX_LINE_BYTES {
        return Err(malformed(format!(
            "{} bytes long, more than the {MAX_LINE_BYTES} an entry may have",
            line.len()
        )));
    }
    let entry: Entry = serde_json::from_slice(line)
        .map_err(|error| malformed(format!("not a run-log entry: {error}")))?;
    let canonical = serde_json::to_vec(&entry).map_err(|error| malformed(error.to_string()))?;
    if canonical != line {
        return Err(malformed(
            "not in the canonical form capos writes (compact JSON, fields in order)".into(),
        ));
    }
    let names_first = match entry.format.as_str() {
        ENTRY_FORMAT => entry.first_of_commit.is_some(),
        ENTRY_FORMAT_V1 => entry.first_of_commit.is_none(),
        _ => {
            return Err(malformed(format!(
                "format is {:?}, expected {ENTRY_FORMAT:?}",
                entry.format
            )))
        }
    };
    if !names_first {
        return Err(malformed(format!(
            "a {} entry {} first_of_commit",
            entry.format,
            if entry.first_of_commit.is_some() {
                "may not carry"
            } else {
                "must carry"
            }
        )));
    }
    if (entry.run.bundle.is_some()) == (entry.run.verdict == Verdict::Error) {
        return Err(malformed(
            "a sealed run names its bundle, and a run that ended in an error names none".into(),
        ));
    }
    Ok(entry)
}

/// `entry.first_of_commit` against the entries before it in the same log
/// or segment (`earlier`): when it lies inside what is shown it must be
/// the first entry shown with the same commit; when it lies before, every
/// earlier entry shown with that commit must say the same.
fn check_first_of_commit(earlier: &[Entry], entry: &Entry, line: usize) -> Result<(), LogError> {
    let Some(claimed) = entry.first_of_commit else {
        return Ok(());
    };
    let start = earlier
        .first()
        .map_or(entry.sequence, |first| first.sequence);
    let first_shown = earlier
        .iter()
        .find(|other| other.run.commit == entry.run.commit)
        .unwrap_or(entry);
    let agrees = if claimed > entry.sequence || claimed == 0 {
        false
    } else if claimed >= start {
        first_shown.sequence == claimed
    } else {
        // An earlier entry of the older format does not say; any other must agree.
        first_shown.sequence == entry.sequence
            || first_shown
                .first_of_commit
                .is_none_or(|first| first == claimed)
    };
    if agrees {
        return Ok(());
    }
    Err(LogError::WrongFirstOfCommit {
        line,
        sequence: entry.sequence,
        claimed,
        shown: if claimed > entry.sequence || claimed == 0 {
            "no such earlier entry".to_owned()
        } else {
            format!("entry {} first", first_shown.sequence)
        },
    })
}

/// Append `run` to the store's log and sign the new head with `key`, after
/// verifying the log there with `key`'s public half. An error detail longer
/// than [`MAX_DETAIL_BYTES`] is shortened. Returns the entry.
pub fn append(store: &Path, mut run: Run, key: &SigningKey) -> Result<Entry, LogError> {
    fs::create_dir_all(store).map_err(io_error(store))?;
    let lock_path = store.join(LOCK_FILE);
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_error(&lock_path))?;
    lock.lock().map_err(io_error(&lock_path))?;
    let existing = verify_store(store, &key.verifying_key())
        .map_err(|error| LogError::Damaged(Box::new(error)))?;
    let (entries, hashes) = existing
        .map(|log| (log.entries, log.hashes))
        .unwrap_or_default();
    let sequence = entries.len() as u64 + 1;
    let previous = hashes.last().cloned().unwrap_or_else(|| GENESIS.to_owned());
    let first_of_commit = entries
        .iter()
        .find(|entry| entry.run.commit == run.commit)
        .map_or(sequence, |entry| entry.sequence);
    if let Some(detail) = &mut run.detail {
        shorten(detail, MAX_DETAIL_BYTES);
    }
    let entry = Entry {
        format: ENTRY_FORMAT.to_owned(),
        sequence,
        previous,
        first_of_commit: Some(first_of_commit),
        tool: crate::tool::LONG_VERSION.to_owned(),
        run,
    };
    let line = serde_json::to_vec(&entry).map_err(|error| LogError::Malformed {
        line: sequence as usize,
        problem: error.to_string(),
    })?;
    if line.len() as u64 > MAX_LINE_BYTES {
        return Err(LogError::Malformed {
            line: sequence as usize,
            problem: format!(
                "the new entry would be {} bytes long, more than the {MAX_LINE_BYTES} an entry may have",
                line.len()
            ),
        });
    }
    let log_path = store.join(LOG_FILE);
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_error(&log_path))?;
    log.write_all(&[line.as_slice(), b"\n"].concat())
        .and_then(|()| log.sync_all())
        .map_err(io_error(&log_path))?;
    write_head(
        store,
        &Head {
            format: HEAD_FORMAT.to_owned(),
            entries: sequence,
            head: sha256_hex(&line),
            signed: Some(crate::time::rfc3339(std::time::SystemTime::now())),
        },
        key,
    )?;
    Ok(entry)
}

/// Cut `text` to at most `limit` bytes at a character boundary, saying so.
fn shorten(text: &mut String, limit: usize) {
    const MARK: &str = " [...]";
    if text.len() <= limit {
        return;
    }
    let mut end = limit - MARK.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(MARK);
}

/// Sign `head` and replace the store's head file with it in one rename.
fn write_head(store: &Path, head: &Head, key: &SigningKey) -> Result<(), LogError> {
    let payload =
        serde_json::to_vec(head).map_err(|error| LogError::HeadMalformed(error.to_string()))?;
    let envelope = provenance::sign_payload(HEAD_PAYLOAD_TYPE, &payload, key);
    let bytes = provenance::envelope_file_bytes(&envelope)
        .map_err(|error| LogError::HeadMalformed(error.to_string()))?;
    let path = store.join(HEAD_FILE);
    let mut staging = tempfile::NamedTempFile::new_in(store).map_err(io_error(store))?;
    staging
        .write_all(&bytes)
        .and_then(|()| staging.as_file().sync_all())
        .map_err(io_error(&path))?;
    staging.persist(&path).map_err(|error| LogError::Io {
        path: path.clone(),
        cause: error.error,
    })?;
    Ok(())
}

/// The segment of the store's log for the commit that sealed bundle `name`:
/// every line from the first entry with that commit (as the entry's
/// `first_of_commit` names it; entry 1 for a v1 entry, which does not)
/// through the last, and the signed head. Not verified here (packing needs
/// no key); whoever reads it verifies it with [`verify`].
pub fn segment_for_bundle(store: &Path, name: &str) -> Result<LogBytes, LogError> {
    let head = read_bounded(
        &store.join(HEAD_FILE),
        MAX_HEAD_BYTES,
        "a run-log head may have",
    )?;
    let log = read_bounded(
        &store.join(LOG_FILE),
        MAX_UNVERIFIED_LOG_BYTES,
        "packing reads of a log",
    )?;
    let (log, head) = match (log, head) {
        (Some(log), Some(head)) => (log, head),
        (None, None) => {
            return Err(LogError::Io {
                path: store.join(LOG_FILE),
                cause: io::Error::new(io::ErrorKind::NotFound, "the store has no run log"),
            })
        }
        (Some(_), None) => {
            return Err(LogError::Incomplete {
                present: LOG_FILE,
                missing: HEAD_FILE,
            })
        }
        (None, Some(_)) => {
            return Err(LogError::Incomplete {
                present: HEAD_FILE,
                missing: LOG_FILE,
            })
        }
    };
    let unsigned = Head {
        format: String::new(),
        entries: 0,
        head: String::new(),
        signed: None,
    };
    let chain = parse_chain(&log, unsigned)?;
    let Some(entry) = chain.entry_for(name) else {
        return Err(LogError::Malformed {
            line: chain.entries.len(),
            problem: format!("no entry names bundle {name}"),
        });
    };
    let first = entry.first_of_commit.unwrap_or(1);
    let skip = chain
        .entries
        .iter()
        .position(|candidate| candidate.sequence == first)
        .unwrap_or(0);
    let segment: Vec<u8> = log
        .split_inclusive(|byte| *byte == b'\n')
        .skip(skip)
        .flatten()
        .copied()
        .collect();
    Ok(LogBytes {
        lines: segment,
        head,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[11; 32])
    }

    fn run(contract: &str, commit: &str, verdict: Verdict, bundle: Option<&str>) -> Run {
        Run {
            contract: contract.into(),
            commit: Some(commit.into()),
            dirty: Some(false),
            bundle: bundle.map(str::to_owned),
            verdict,
            started: "2026-11-28T10:00:00Z".into(),
            finished: "2026-11-28T10:01:00Z".into(),
            detail: (verdict == Verdict::Error).then(|| "QEMU not found".to_owned()),
        }
    }

    /// A store with four runs: pass, error, fail (commit a), pass (commit b).
    fn store() -> tempfile::TempDir {
        let store = tempfile::tempdir().unwrap();
        let entries = [
            run("smp-boot", "a", Verdict::Pass, Some(&"1".repeat(64))),
            run("smp-boot", "a", Verdict::Error, None),
            run("smp-boot", "a", Verdict::Fail, Some(&"2".repeat(64))),
            run("smp-boot", "b", Verdict::Pass, Some(&"3".repeat(64))),
        ];
        for entry in entries {
            append(store.path(), entry, &key()).unwrap();
        }
        store
    }

    fn lines(store: &Path) -> Vec<String> {
        fs::read_to_string(store.join(LOG_FILE))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(store: &Path, lines: &[String]) {
        let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
        fs::write(store.join(LOG_FILE), text).unwrap();
    }

    fn verify_error(store: &Path) -> LogError {
        verify_store(store, &key().verifying_key()).unwrap_err()
    }

    #[test]
    fn appended_entries_chain_and_verify() {
        let store = store();
        let log = verify_store(store.path(), &key().verifying_key())
            .unwrap()
            .unwrap();
        let sequences: Vec<u64> = log.entries.iter().map(|entry| entry.sequence).collect();
        assert_eq!(sequences, [1, 2, 3, 4]);
        assert_eq!(log.entries[0].previous, GENESIS);
        for (entry, previous) in log.entries[1..].iter().zip(&log.hashes) {
            assert_eq!(&entry.previous, previous);
        }
        assert_eq!(log.entries[1].run.bundle, None);
        assert_eq!(log.entries[0].tool, crate::tool::LONG_VERSION);
        assert!(
            verify_store(tempfile::tempdir().unwrap().path(), &key().verifying_key())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn editing_an_entry_breaks_the_chain() {
        let store = store();
        let mut edited = lines(store.path());
        edited[2] = edited[2].replace("\"fail\"", "\"pass\"");
        write_lines(store.path(), &edited);
        let error = verify_error(store.path());
        assert!(
            matches!(
                error,
                LogError::BrokenChain {
                    line: 4,
                    sequence: 4
                }
            ),
            "{error:?}"
        );
        // Editing the last entry: no successor to notice, but the signed head does.
        let mut edited = lines(store.path());
        edited[2] = lines(store.path())[2].replace("\"pass\"", "\"fail\"");
        edited[3] = edited[3].replace("\"b\"", "\"c\"");
        write_lines(store.path(), &edited);
        let error = verify_error(store.path());
        assert!(matches!(error, LogError::HeadMismatch { .. }), "{error:?}");
    }

    #[test]
    fn reordering_or_dropping_entries_is_detected() {
        let store = store();
        let mut reordered = lines(store.path());
        reordered.swap(1, 2);
        write_lines(store.path(), &reordered);
        let error = verify_error(store.path());
        assert!(
            matches!(
                error,
                LogError::Sequence {
                    line: 2,
                    expected: 2,
                    found: 3
                }
            ),
            "{error:?}"
        );
        // Dropping the failed run and renumbering still breaks the chain.
        let mut dropped = lines(store.path());
        dropped.swap(1, 2);
        dropped.remove(2);
        dropped[2] = dropped[2].replace("\"sequence\":4", "\"sequence\":3");
        write_lines(store.path(), &dropped);
        let error = verify_error(store.path());
        assert!(
            matches!(error, LogError::BrokenChain { line: 3, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn truncating_or_extending_the_log_disagrees_with_the_signed_head() {
        let store = store();
        let all = lines(store.path());
        write_lines(store.path(), &all[..3]);
        let error = verify_error(store.path());
        assert!(
            matches!(
                error,
                LogError::LengthMismatch {
                    signed: 4,
                    found: 3
                }
            ),
            "{error:?}"
        );
        write_lines(store.path(), &all[1..]);
        let error = verify_error(store.path());
        assert!(
            matches!(error, LogError::Beheaded { first: 2 }),
            "{error:?}"
        );
        write_lines(store.path(), &all);
        let mut cut = fs::read(store.path().join(LOG_FILE)).unwrap();
        cut.pop();
        fs::write(store.path().join(LOG_FILE), cut).unwrap();
        let error = verify_error(store.path());
        assert!(matches!(error, LogError::Malformed { line: 4, .. }));
        fs::remove_file(store.path().join(LOG_FILE)).unwrap();
        assert!(matches!(
            verify_error(store.path()),
            LogError::Incomplete { .. }
        ));
    }
    #[test]
    fn a_head_signed_by_another_key_or_rewritten_is_refused() {
        let store = store();
        let other = SigningKey::from_bytes(&[12; 32]);
        let all = lines(store.path());
        write_lines(store.path(), &all[..3]);
        let forged = Head {
            format: HEAD_FORMAT.into(),
            entries: 3,
            head: sha256_hex(all[2].as_bytes()),
            signed: Some("2026-11-28T10:02:00Z".into()),
        };
        write_head(store.path(), &forged, &other).unwrap();
        let error = verify_error(store.path());
        assert!(
            matches!(error, LogError::Head(EnvelopeError::UntrustedSigner { .. })),
            "{error:?}"
        );
        // Appending to a log that does not verify is refused, and leaves it as it was.
        let before = fs::read(store.path().join(LOG_FILE)).unwrap();
        let error = append(
            store.path(),
            run("smp-boot", "c", Verdict::Pass, Some(&"4".repeat(64))),
            &key(),
        )
        .unwrap_err();
        assert!(matches!(error, LogError::Damaged(_)), "{error:?}");
        assert_eq!(fs::read(store.path().join(LOG_FILE)).unwrap(), before);
    }

    #[test]
    fn non_canonical_lines_are_refused() {
        let store = store();
        let mut spaced = lines(store.path());
        spaced[0] = spaced[0].replace(",", ", ");
        write_lines(store.path(), &spaced);
        let error = verify_error(store.path());
        assert!(
            matches!(error, LogError::Malformed { line: 1, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn the_segment_for_a_bundle_starts_at_its_commits_first_run_and_verifies() {
        let store = store();
        let segment = segment_for_bundle(store.path(), &"2".repeat(64)).unwrap();
        let verified = verify(&segment.lines, &segment.head, &key().verifying_key()).unwrap();
        let sequences: Vec<u64> = verified
            .entries
            .iter()
            .map(|entry| entry.sequence)
            .collect();
        assert_eq!(sequences, [1, 2, 3, 4]);
        let segment = segment_for_bundle(store.path(), &"3".repeat(64)).unwrap();
        let verified = verify(&segment.lines, &segment.head, &key().verifying_key()).unwrap();
        assert_eq!(verified.entries.len(), 1);
        assert_eq!(verified.entries[0].sequence, 4);
        // A segment with an entry cut from its middle no longer chains.
        let segment = segment_for_bundle(store.path(), &"1".repeat(64)).unwrap();
        let kept: Vec<&[u8]> = segment
            .lines
            .split_inclusive(|byte| *byte == b'\n')
            .enumerate()
            .filter(|(index, _)| *index != 2)
            .map(|(_, line)| line)
            .collect();
        let error = verify(&kept.concat(), &segment.head, &key().verifying_key()).unwrap_err();
        assert!(matches!(error, LogError::Sequence { .. }), "{error:?}");
    }

    #[test]
    fn entries_name_their_commits_first_run_and_heads_their_time() {
        let store = store();
        let log = verify_store(store.path(), &key().verifying_key())
            .unwrap()
            .unwrap();
        let firsts: Vec<Option<u64>> = log
            .entries
            .iter()
            .map(|entry| entry.first_of_commit)
            .collect();
        assert_eq!(firsts, [Some(1), Some(1), Some(1), Some(4)]);
        assert!(log
            .head
            .signed
            .as_deref()
            .is_some_and(|time| time.ends_with('Z')));
        assert_eq!(log.head.format, HEAD_FORMAT);
    }

    #[test]
    fn a_segment_cut_after_its_commits_first_run_is_refused() {
        let store = store();
        let segment = segment_for_bundle(store.path(), &"2".repeat(64)).unwrap();
        let all: Vec<&[u8]> = segment
            .lines
            .split_inclusive(|byte| *byte == b'\n')
            .collect();
        for cut in 1..3 {
            let trimmed = all[cut..].concat();
            // The chain from there to the head still holds ...
            let log = verify(&trimmed, &segment.head, &key().verifying_key()).unwrap();
            // ... but the bundle's entry says where its commit's runs began.
            let entry = log.entry_for(&"2".repeat(64)).unwrap();
            let error = log.covering(entry).unwrap_err();
            assert!(
                matches!(
                    error,
                    LogError::Trimmed {
                        first: 1,
                        sequence: 3,
                        ..
                    }
                ),
                "{error:?}"
            );
        }
        // Commit b's own segment starts at its first run, and covers it.
        let segment = segment_for_bundle(store.path(), &"3".repeat(64)).unwrap();
        let log = verify(&segment.lines, &segment.head, &key().verifying_key()).unwrap();
        let entry = log.entry_for(&"3".repeat(64)).unwrap();
        assert_eq!(log.covering(entry).unwrap().sequence, 4);
    }

    #[test]
    fn a_false_first_of_commit_is_refused_even_when_signed() {
        // A log whose second run of commit a claims to be its first.
        let store = tempfile::tempdir().unwrap();
        append(
            store.path(),
            run("smp-boot", "a", Verdict::Fail, Some(&"1".repeat(64))),
            &key(),
        )
        .unwrap();
        let mut lines = lines(store.path());
        let entry: Entry = serde_json::from_str(&lines[0]).unwrap();
        let forged = Entry {
            sequence: 2,
            previous: sha256_hex(lines[0].as_bytes()),
            first_of_commit: Some(2),
            run: run("smp-boot", "a", Verdict::Pass, Some(&"2".repeat(64))),
            ..entry
        };
        let line = serde_json::to_string(&forged).unwrap();
        lines.push(line.clone());
        write_lines(store.path(), &lines);
        write_head(
            store.path(),
            &Head {
                format: HEAD_FORMAT.into(),
                entries: 2,
                head: sha256_hex(line.as_bytes()),
                signed: Some("2026-11-28T10:02:00Z".into()),
            },
            &key(),
        )
        .unwrap();
        let error = verify_error(store.path());
        assert!(
            matches!(
                error,
                LogError::WrongFirstOfCommit {
                    line: 2,
                    claimed: 2,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn v1_entries_still_verify_but_their_segments_cannot_prove_a_start() {
        let store = store();
        let v1: Vec<String> = lines(store.path())
            .iter()
            .map(|line| {
                let mut entry: Entry = serde_json::from_str(line).unwrap();
                entry.format = ENTRY_FORMAT_V1.into();
                entry.first_of_commit = None;
                entry
            })
            .scan(GENESIS.to_owned(), |previous, mut entry| {
                entry.previous = previous.clone();
                let line = serde_json::to_string(&entry).unwrap();
                *previous = sha256_hex(line.as_bytes());
                Some(line)
            })
            .collect();
        write_lines(store.path(), &v1);
        write_head(
            store.path(),
            &Head {
                format: HEAD_FORMAT_V1.into(),
                entries: 4,
                head: sha256_hex(v1[3].as_bytes()),
                signed: None,
            },
            &key(),
        )
        .unwrap();
        let log = verify_store(store.path(), &key().verifying_key())
            .unwrap()
            .unwrap();
        assert_eq!(log.entries.len(), 4);
        // Packing a v1 entry ships the log from entry 1.
        let segment = segment_for_bundle(store.path(), &"3".repeat(64)).unwrap();
        let log = verify(&segment.lines, &segment.head, &key().verifying_key()).unwrap();
        assert_eq!(log.start(), 1);
        let trimmed: Vec<u8> = v1[3..]
            .iter()
            .flat_map(|line| format!("{line}\n").into_bytes())
            .collect();
        let log = verify(&trimmed, &segment.head, &key().verifying_key()).unwrap();
        let entry = log.entry_for(&"3".repeat(64)).unwrap();
        assert!(matches!(
            log.covering(entry),
            Err(LogError::UnprovableStart {
                start: 4,
                sequence: 4
            })
        ));
    }

    #[test]
    fn reads_are_bounded_and_of_regular_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        assert!(read_bounded(&path, 10, "test").unwrap().is_none());
        fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_bounded(&path, 10, "test").unwrap().unwrap().len(), 10);
        assert!(matches!(
            read_bounded(&path, 9, "test"),
            Err(LogError::TooLarge {
                size: 10,
                limit: 9,
                ..
            })
        ));
        assert!(matches!(
            read_bounded(dir.path(), 9, "test"),
            Err(LogError::NotRegular { .. })
        ));
        let long = "x".repeat(MAX_DETAIL_BYTES * 3);
        let mut detail = format!("é{long}");
        shorten(&mut detail, MAX_DETAIL_BYTES);
        assert!(detail.len() <= MAX_DETAIL_BYTES && detail.ends_with(" [...]"));
    }
}
