//! The runs behind a bundle: every `capos run` recorded in its store's run
//! log (`bundle::runlog`), and the statement "run k of n for this contract
//! and commit; runs that did not pass: ..." that `capos verify` and `capos report` make
//! from the log when it is at hand.
//!
//! Invariants:
//! - A run that reaches the boot stage is recorded whatever its outcome:
//!   sealed and passing, sealed and failing, or broken off by an error.
//! - A log at hand is verified (chain and signed head, with the same trusted
//!   key as the bundle) before anything is said from it, and its entry for
//!   the bundle must agree with the bundle's own contract, commit and
//!   verdict; a log that does not verify is an error, never ignored.
//! - Everything quoted from a log is escaped for the terminal.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::bundle::files::BundleFiles;
use crate::bundle::runlog::{self, Entry, Run, Verdict, VerifiedLog};
use crate::proof::summary::{self, SummaryDocument};
use crate::terminal::untrusted;

/// The run-log verdict a sealed bundle's summary amounts to.
#[must_use]
pub fn verdict_of(summary: &SummaryDocument) -> Verdict {
    if summary.all_passed() {
        Verdict::Pass
    } else if summary.claim.level == summary::ClaimLevel::Inconclusive {
        Verdict::Inconclusive
    } else {
        Verdict::Fail
    }
}

/// What `capos run` knows about one run when it ends.
pub struct RunEnd<'a> {
    /// The contract's name.
    pub contract: &'a str,
    /// Commit and dirtiness of the checkout.
    pub commit: (Option<String>, Option<bool>),
    /// RFC 3339 start and end.
    pub started: String,
    /// See `started`.
    pub finished: String,
    /// The sealed bundle and its summary, or the error that stopped the run.
    pub outcome: std::result::Result<(&'a Path, &'a SummaryDocument), String>,
}

/// Append the run to `store`'s log and sign the new head with `key`;
/// returns the new entry (its `sequence` is the run's number in the log).
pub fn record(store: &Path, key: &SigningKey, run: RunEnd<'_>) -> Result<Entry> {
    let (bundle, verdict, detail) = match run.outcome {
        Ok((bundle, summary)) => (
            bundle
                .file_name()
                .map(|name| name.to_string_lossy().into_owned()),
            verdict_of(summary),
            None,
        ),
        Err(error) => (None, Verdict::Error, Some(error)),
    };
    let entry = runlog::append(
        store,
        Run {
            contract: run.contract.to_owned(),
            commit: run.commit.0,
            dirty: run.commit.1,
            bundle,
            verdict,
            started: run.started,
            finished: run.finished,
            detail,
        },
        key,
    )
    .with_context(|| format!("recording the run in the run log of {}", store.display()))?;
    Ok(entry)
}

/// Check that `entry` says of the bundle in `files` what the bundle says of
/// itself: the contract, the commit and the verdict.
pub fn check_entry(entry: &Entry, files: &BundleFiles) -> Result<()> {
    let (contract, inputs, summary) = summary::read_bundle(files)?;
    let sequence = entry.sequence;
    if entry.run.contract != contract.spec.name {
        bail!(
            "run-log entry {sequence} records contract {:?}, the bundle ran {:?}",
            untrusted(&entry.run.contract),
            untrusted(&contract.spec.name)
        );
    }
    if entry.run.commit != inputs.source.git_commit {
        bail!(
            "run-log entry {sequence} records commit {}, the bundle was built from {}",
            shown_commit(entry.run.commit.as_deref()),
            shown_commit(inputs.source.git_commit.as_deref())
        );
    }
    let verdict = verdict_of(&summary);
    if entry.run.verdict != verdict {
        bail!(
            "run-log entry {sequence} records verdict {}, the bundle's summary says {verdict}",
            entry.run.verdict
        );
    }
    Ok(())
}

/// "run k of n for contract C at commit X (...as signed at T); runs that did not pass:
/// ..." for `entry`, counting the log's runs of the same contract and
/// commit. The caller made sure the log shows all of them
/// ([`VerifiedLog::covering`]).
#[must_use]
pub fn statement(log: &VerifiedLog, entry: &Entry) -> String {
    let siblings: Vec<&Entry> = log
        .entries
        .iter()
        .filter(|other| {
            other.run.contract == entry.run.contract && other.run.commit == entry.run.commit
        })
        .collect();
    let position = siblings
        .iter()
        .position(|other| other.sequence == entry.sequence)
        .map_or(0, |index| index + 1);
    let failed: Vec<String> = siblings
        .iter()
        .enumerate()
        .filter(|(_, other)| other.run.verdict != Verdict::Pass)
        // Inconclusive runs are listed too: a reader must see every run
        // that did not pass.
        .map(|(index, other)| match &other.run.bundle {
            Some(bundle) => format!(
                "run {} ({}, bundle {})",
                index + 1,
                other.run.verdict,
                untrusted(bundle.get(..12).unwrap_or(bundle))
            ),
            None => format!(
                "run {} (error: {})",
                index + 1,
                untrusted(other.run.detail.as_deref().unwrap_or("no detail"))
            ),
        })
        .collect();
    let dirty = if entry.run.dirty == Some(true) {
        " with uncommitted changes"
    } else {
        ""
    };
    format!(
        "run {position} of {} for contract {} at commit {}{dirty}; runs that did not pass: {} (signed run log: entry {} of entries {}..{} {})",
        siblings.len(),
        untrusted(&entry.run.contract),
        shown_commit(entry.run.commit.as_deref()),
        if failed.is_empty() {
            "none".to_owned()
        } else {
            failed.join(", ")
        },
        entry.sequence,
        log.start(),
        log.head.entries,
        as_of(log),
    )
}

/// "as of <time>, later runs not shown" for the log's signed head.
fn as_of(log: &VerifiedLog) -> String {
    match &log.head.signed {
        Some(time) => format!("as of {}; runs after that are not shown", untrusted(time)),
        None => "as of an unrecorded time (a v1 head); runs after it are not shown".to_owned(),
    }
}

fn shown_commit(commit: Option<&str>) -> String {
    commit.map_or_else(
        || "none".to_owned(),
        |commit| untrusted(commit).into_owned(),
    )
}

/// Where the run history of a bundle comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    /// The segment packed in its archive.
    Packed,
    /// The log of the store the bundle directory sits in.
    Store(PathBuf),
}

impl LogSource {
    /// What to do about a log from here that does not verify.
    fn remedy(&self) -> &'static str {
        match self {
            Self::Packed => "ask the builder for an archive packed from its store with --with-log",
            Self::Store(_) => {
                "move a foreign or damaged log aside, or verify the bundle where its own log is"
            }
        }
    }
}

impl std::fmt::Display for LogSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Packed => formatter.write_str("the run log packed with the bundle"),
            Self::Store(store) => write!(
                formatter,
                "the run log of {}",
                untrusted(&store.to_string_lossy())
            ),
        }
    }
}

/// Why the run history of a bundle that verified cannot be told.
#[derive(thiserror::Error, Debug)]
pub enum HistoryError {
    /// The log at hand does not verify, or says something else about the bundle.
    #[error("the bundle itself verified (signature, file digests, figures recomputed from its raw logs), but {source_name} does not verify: {problem:#}. Its run history cannot be shown, so nothing tells whether this run was picked from others; {}", source_name.remedy())]
    Log {
        /// Where the log came from.
        source_name: LogSource,
        /// What is wrong with it.
        problem: anyhow::Error,
    },
}

/// What the run log at hand says about the verified bundle `name`: the log
/// packed in its archive, or its store's log (the bundle directory's
/// parent); when there is none, a sentence saying the history is unknown.
pub fn history(
    name: &str,
    files: &BundleFiles,
    trusted: &VerifyingKey,
) -> Result<String, HistoryError> {
    if let Some(statement) =
        packed_history(name, files, trusted).map_err(|problem| HistoryError::Log {
            source_name: LogSource::Packed,
            problem,
        })?
    {
        return Ok(statement);
    }
    let Some(store) = files.directory().and_then(Path::parent).map(|store| {
        if store.as_os_str().is_empty() {
            Path::new(".")
        } else {
            store
        }
    }) else {
        return Ok(UNKNOWN_ARCHIVE.to_owned());
    };
    store_history(name, files, store, trusted).map_err(|problem| HistoryError::Log {
        source_name: LogSource::Store(store.to_path_buf()),
        problem,
    })
}

/// Said of a packed bundle that carries no run log.
pub const UNKNOWN_ARCHIVE: &str = "unknown: the archive carries no run log (pack it with --with-log); nothing shows whether other runs of this commit failed";

/// The statement from the segment packed in an archive, if it carries one:
/// its head is bounded and verified before the segment is read.
fn packed_history(
    name: &str,
    files: &BundleFiles,
    trusted: &VerifyingKey,
) -> Result<Option<String>> {
    let Some(head) = files.packed_runlog_head(runlog::MAX_HEAD_BYTES)? else {
        return Ok(None);
    };
    let head = runlog::verify_head(&head, trusted)?;
    let lines = files.packed_runlog_segment(runlog::log_budget(head.entries))?;
    let log = runlog::verify_lines(&lines, head)?;
    let Some(entry) = log.entry_for(name) else {
        bail!("it does not name the bundle");
    };
    let entry = log.covering(entry)?;
    check_entry(entry, files)?;
    Ok(Some(statement(&log, entry)))
}

/// The statement from the log of `store`, the directory the bundle sits in.
fn store_history(
    name: &str,
    files: &BundleFiles,
    store: &Path,
    trusted: &VerifyingKey,
) -> Result<String> {
    let Some(log) = runlog::verify_store(store, trusted)? else {
        return Ok(format!(
            "unknown: no run log beside the bundle in {} ({} and {}); nothing shows whether other runs of this commit failed",
            untrusted(&store.to_string_lossy()),
            runlog::LOG_FILE,
            runlog::HEAD_FILE
        ));
    };
    match log.entry_for(name) {
        Some(entry) => {
            let entry = log.covering(entry)?;
            check_entry(entry, files)?;
            Ok(statement(&log, entry))
        }
        None => Ok(format!(
            "unknown: not recorded in the run log of its store (entries 1..{} {})",
            log.head.entries,
            as_of(&log)
        )),
    }
}
