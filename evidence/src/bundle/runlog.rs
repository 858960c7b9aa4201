//! The run log of an evidence store: every `capos run`, passed, failed or
//! broken off, as one entry of an append-only, hash-chained log whose head
//! is signed, so a published bundle can show it was not picked from many.
//!
//! Files in the store:
//! - `runlog.jsonl`: one entry per line, compact JSON with its fields in a
//!   fixed order (the only text an entry has): its place in the chain and
//!   the run; entry `k` records the sha256 of entry `k-1`'s line (64 zeros
//!   for entry 1);
//! - `runlog.head.dsse.json`: a DSSE envelope, signed like provenance, over
//!   `{"format", "entries", "head"}`: how many entries the log holds and the
//!   sha256 of the last line;
//! - `runlog.lock`: taken while appending.
//!
//! Invariants:
//! - Appending first verifies the whole log with the signing key's public
//!   half and refuses to extend a log that does not verify; it writes the
//!   new line, then signs the new head.
//! - Editing, reordering or removing an entry breaks the chain; cutting
//!   entries off the end or adding some disagrees with the signed head;
//!   re-signing needs the key. A log segment (the entries from some point
//!   to the head, as `capos pack --with-log` ships them) verifies the same
//!   way except that its first entry's predecessor is not shown.
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
/// `format` of every entry.
pub const ENTRY_FORMAT: &str = "capos-runlog/v1";
/// `format` of the signed head.
pub const HEAD_FORMAT: &str = "capos-runlog-head/v1";
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
}

/// A log, or a segment of one, and its signed head, as bytes (unverified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBytes {
    /// Lines of `runlog.jsonl`.
    pub lines: Vec<u8>,
    /// The signed head.
    pub head: Vec<u8>,
}

/// A log (or segment) that verified: its entries and each line's sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLog {
    /// Entries in order.
    pub entries: Vec<Entry>,
    /// sha256 of each entry's line, in the same order.
    pub hashes: Vec<String>,
}

impl VerifiedLog {
    /// The entry that sealed bundle `name`, if any.
    #[must_use]
    pub fn entry_for(&self, name: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|entry| entry.run.bundle.as_deref() == Some(name))
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

/// Read a file, or None when it does not exist.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, LogError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(cause) => Err(LogError::Io {
            path: path.to_path_buf(),
            cause,
        }),
    }
}

/// The store's log and head bytes, or None when the store has no log.
pub fn read_files(store: &Path) -> Result<Option<LogBytes>, LogError> {
    let log = read_optional(&store.join(LOG_FILE))?;
    let head = read_optional(&store.join(HEAD_FILE))?;
    match (log, head) {
        (None, None) => Ok(None),
        (Some(lines), Some(head)) => Ok(Some(LogBytes { lines, head })),
        (Some(_), None) => Err(LogError::Incomplete {
            present: LOG_FILE,
            missing: HEAD_FILE,
        }),
        (None, Some(_)) => Err(LogError::Incomplete {
            present: HEAD_FILE,
            missing: LOG_FILE,
        }),
    }
}

/// Verify a store's whole log against `trusted`; None when it has none.
pub fn verify_store(store: &Path, trusted: &VerifyingKey) -> Result<Option<VerifiedLog>, LogError> {
    let Some(bytes) = read_files(store)? else {
        return Ok(None);
    };
    let verified = verify(&bytes.lines, &bytes.head, trusted)?;
    match verified.entries.first().map(|entry| entry.sequence) {
        Some(1) => Ok(Some(verified)),
        Some(first) => Err(LogError::Beheaded { first }),
        None => Err(LogError::Empty),
    }
}

/// Verify log (or segment) bytes and their signed head against `trusted`:
/// canonical lines, consecutive sequence numbers, an unbroken chain (from
/// [`GENESIS`] when the first entry is entry 1), and a head that signs the
/// last entry and the count.
pub fn verify(log: &[u8], head: &[u8], trusted: &VerifyingKey) -> Result<VerifiedLog, LogError> {
    let envelope = provenance::parse_envelope(head).map_err(LogError::Head)?;
    let payload = provenance::verify_payload(&envelope, HEAD_PAYLOAD_TYPE, trusted)
        .map_err(LogError::Head)?;
    let head: Head = serde_json::from_slice(&payload)
        .map_err(|error| LogError::HeadMalformed(error.to_string()))?;
    if head.format != HEAD_FORMAT {
        return Err(LogError::HeadMalformed(format!(
            "format is {:?}, expected {HEAD_FORMAT:?}",
            head.format
        )));
    }
    let verified = parse_chain(log)?;
    let (Some(last), Some(last_hash)) = (verified.entries.last(), verified.hashes.last()) else {
        return Err(LogError::Empty);
    };
    if last.sequence != head.entries {
        return Err(LogError::LengthMismatch {
            signed: head.entries,
            found: last.sequence,
        });
    }
    if *last_hash != head.head {
        return Err(LogError::HeadMismatch {
            signed: head.head,
            found: last_hash.clone(),
        });
    }
    Ok(verified)
}

/// Parse every line and check the chain between them.
fn parse_chain(log: &[u8]) -> Result<VerifiedLog, LogError> {
    let mut verified = VerifiedLog {
        entries: Vec::new(),
        hashes: Vec::new(),
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
        let malformed = |problem: String| LogError::Malformed {
            line: number,
            problem,
        };
        let entry: Entry = serde_json::from_slice(line)
            .map_err(|error| malformed(format!("not a run-log entry: {error}")))?;
        let canonical = serde_json::to_vec(&entry).map_err(|error| malformed(error.to_string()))?;
        if canonical != line {
            return Err(malformed(
                "not in the canonical form capos writes (compact JSON, fields in order)".into(),
            ));
        }
        if entry.format != ENTRY_FORMAT {
            return Err(malformed(format!(
                "format is {:?}, expected {ENTRY_FORMAT:?}",
                entry.format
            )));
        }
        if (entry.run.bundle.is_some()) == (entry.run.verdict == Verdict::Error) {
            return Err(malformed(
                "a sealed run names its bundle, and a run that ended in an error names none".into(),
            ));
        }
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
                return Err(malformed("sequence numbers start at 1".into()));
            }
            _ if entry.sequence == 1 && entry.previous != GENESIS => {
                return Err(LogError::BrokenChain {
                    line: number,
                    sequence: 1,
                });
            }
            _ => {}
        }
        verified.hashes.push(sha256_hex(line));
        verified.entries.push(entry);
    }
    Ok(verified)
}

/// Append `run` to the store's log and sign the new head with `key`, after
/// verifying the log there with `key`'s public half. Returns the entry.
pub fn append(store: &Path, run: Run, key: &SigningKey) -> Result<Entry, LogError> {
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
    let (sequence, previous) = match &existing {
        Some(log) => (
            log.entries.len() as u64 + 1,
            log.hashes
                .last()
                .cloned()
                .unwrap_or_else(|| GENESIS.to_owned()),
        ),
        None => (1, GENESIS.to_owned()),
    };
    let entry = Entry {
        format: ENTRY_FORMAT.to_owned(),
        sequence,
        previous,
        tool: crate::tool::LONG_VERSION.to_owned(),
        run,
    };
    let line = serde_json::to_vec(&entry).map_err(|error| LogError::Malformed {
        line: sequence as usize,
        problem: error.to_string(),
    })?;
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
        },
        key,
    )?;
    Ok(entry)
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
/// every line from the first entry with that commit through the last, and
/// the signed head. Not verified here (packing needs no key); whoever reads
/// it verifies it with [`verify`].
pub fn segment_for_bundle(store: &Path, name: &str) -> Result<LogBytes, LogError> {
    let Some(LogBytes { lines: log, head }) = read_files(store)? else {
        return Err(LogError::Io {
            path: store.join(LOG_FILE),
            cause: io::Error::new(io::ErrorKind::NotFound, "the store has no run log"),
        });
    };
    let chain = parse_chain(&log)?;
    let Some(entry) = chain.entry_for(name) else {
        return Err(LogError::Malformed {
            line: chain.entries.len(),
            problem: format!("no entry names bundle {name}"),
        });
    };
    let first = chain
        .entries
        .iter()
        .position(|candidate| candidate.run.commit == entry.run.commit)
        .unwrap_or(0);
    let segment: Vec<u8> = log
        .split_inclusive(|byte| *byte == b'\n')
        .skip(first)
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
}
