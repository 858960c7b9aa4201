//! The runs behind a bundle: every `capos run` recorded in its store's run
//! log (`bundle::runlog`), and the statement "run k of n for this contract
//! and commit; failed runs: ..." that `capos verify` and `capos report` make
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

use std::path::Path;

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

/// Append the run to `store`'s log and sign the new head with `key`.
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
    eprintln!(
        "capos: [{}] recorded as entry {} of {}",
        untrusted(run.contract),
        entry.sequence,
        store.join(runlog::LOG_FILE).display()
    );
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

/// "run k of n for contract C at commit X; failed runs: ..." for `entry`,
/// counting the log's runs of the same contract and commit.
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
        "run {position} of {} for contract {} at commit {}{dirty} (signed run log, entry {}); failed runs: {}",
        siblings.len(),
        untrusted(&entry.run.contract),
        shown_commit(entry.run.commit.as_deref()),
        entry.sequence,
        if failed.is_empty() {
            "none".to_owned()
        } else {
            failed.join(", ")
        }
    )
}

fn shown_commit(commit: Option<&str>) -> String {
    commit.map_or_else(
        || "none".to_owned(),
        |commit| untrusted(commit).into_owned(),
    )
}

/// What the run log at hand says about the verified bundle `name`: the log
/// packed in its archive, or its store's log (the bundle directory's
/// parent). None when no log is at hand.
pub fn history(name: &str, files: &BundleFiles, trusted: &VerifyingKey) -> Result<Option<String>> {
    if let Some(packed) = files.packed_runlog()? {
        let log = runlog::verify(&packed.lines, &packed.head, trusted)
            .context("the run log packed with the bundle does not verify")?;
        let Some(entry) = log.entry_for(name) else {
            bail!("the run log packed with the bundle does not name it");
        };
        check_entry(entry, files)?;
        return Ok(Some(statement(&log, entry)));
    }
    let Some(dir) = files.directory() else {
        return Ok(None);
    };
    let Some(store) = dir.parent() else {
        return Ok(None);
    };
    let Some(log) = runlog::verify_store(store, trusted)
        .with_context(|| format!("the run log of {} does not verify", store.display()))?
    else {
        return Ok(None);
    };
    match log.entry_for(name) {
        Some(entry) => {
            check_entry(entry, files)?;
            Ok(Some(statement(&log, entry)))
        }
        None => Ok(Some(format!(
            "not recorded in the run log of its store ({} runs recorded)",
            log.entries.len()
        ))),
    }
}
