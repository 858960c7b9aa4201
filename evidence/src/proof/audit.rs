//! `capos verify`: a full audit — the bundle's integrity and signature
//! ([`crate::bundle::verify`], steps 1-6), then step 7: `results.csv` and
//! `summary.json` must equal, byte for byte, what [`summary::recompute`]
//! derives from the contract copy and the raw logs, and step 8: the host
//! records (`host.json`) parse strictly and their noise figures follow
//! from their `/proc` samples ([`crate::proof::host::check_bundle`]).
//!
//! `capos log verify`: a store's run log (chain and signed head) and every
//! bundle it names, each audited in full and matched against its entry; a
//! bundle the log names but the store lacks is an error, so runs cannot be
//! dropped to leave only the good ones.
//!
//! Invariants: no report or reproduction starts from a bundle that has not
//! passed [`verify_bundle`]; auditing needs only the bundle and the trusted
//! public key, never a capOS checkout.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use ed25519_dalek::VerifyingKey;

use crate::bundle::files::FileError;
use crate::bundle::runlog::{self, Verdict};
use crate::bundle::verify::{verify_integrity, Limits, VerifiedBundle, VerifyError};
use crate::proof::{history, summary};
use crate::terminal::untrusted;

/// The recomputed files, in the order they are compared.
pub const RECOMPUTED_FILES: [&str; 2] = ["results.csv", "summary.json"];

/// Why a bundle fails the full audit.
#[derive(thiserror::Error, Debug)]
pub enum AuditError {
    /// Steps 1-6: integrity and signature.
    #[error(transparent)]
    Integrity(#[from] VerifyError),
    /// Reading a stored figure file failed.
    #[error(transparent)]
    Read(#[from] FileError),
    /// Recomputing the figures from the raw logs failed.
    #[error("recomputing results from the raw logs failed: {0:#}")]
    Recompute(anyhow::Error),
    /// The host records (host.json) are malformed or contradict the run.
    #[error("host record: {0}")]
    Host(#[from] crate::proof::host::HostError),
    /// A stored figure differs from the recomputed one.
    #[error("{path}: line {line} differs from the value recomputed from the raw logs\n  stored:     {stored}\n  recomputed: {recomputed}")]
    RecomputedMismatch {
        /// `results.csv` or `summary.json`.
        path: String,
        /// 1-based line number of the first difference.
        line: usize,
        /// That line as stored (`<end of file>` if absent).
        stored: String,
        /// That line as recomputed (`<end of file>` if absent).
        recomputed: String,
    },
}

/// Verify a bundle fully: [`verify_integrity`], then recompute
/// `results.csv` and `summary.json` from the raw logs and compare bytes.
pub fn verify_bundle(
    path: &Path,
    trusted: &VerifyingKey,
    limits: Limits,
) -> Result<VerifiedBundle, AuditError> {
    let verified = verify_integrity(path, trusted, limits)?;
    let recomputed = summary::recompute(&verified.files).map_err(AuditError::Recompute)?;
    for (file, expected) in RECOMPUTED_FILES.iter().zip([
        recomputed.results_csv.as_bytes(),
        recomputed.summary_json.as_bytes(),
    ]) {
        let stored = verified.files.read(file)?;
        if let Some(mismatch) = first_difference(file, &stored, expected) {
            return Err(mismatch);
        }
    }
    let (contract, inputs) = summary::read_bundle_basics(&verified.files)
        .map_err(|error| AuditError::Recompute(error.into()))?;
    crate::proof::host::check_bundle(&verified.files, &contract, &inputs)?;
    Ok(verified)
}

/// The first line where `stored` and `recomputed` differ, as an error naming `file`.
fn first_difference(file: &str, stored: &[u8], recomputed: &[u8]) -> Option<AuditError> {
    if stored == recomputed {
        return None;
    }
    const END: &str = "<end of file>";
    let show = |line: Option<&[u8]>| {
        line.map_or_else(
            || END.to_owned(),
            |bytes| {
                let text = String::from_utf8_lossy(bytes);
                let mut shown: String = text.chars().take(200).collect();
                if text.chars().count() > 200 {
                    shown.push_str("...");
                }
                format!("{shown:?}")
            },
        )
    };
    let mut stored_lines = stored.split_inclusive(|byte| *byte == b'\n');
    let mut recomputed_lines = recomputed.split_inclusive(|byte| *byte == b'\n');
    let mut line = 0;
    loop {
        line += 1;
        let (left, right) = (stored_lines.next(), recomputed_lines.next());
        if left != right {
            return Some(AuditError::RecomputedMismatch {
                path: file.to_owned(),
                line,
                stored: show(left),
                recomputed: show(right),
            });
        }
    }
}

/// What a full audit of one bundle found: the bundle and what its run log says.
#[derive(Debug)]
pub struct Audit {
    /// The bundle, verified in full.
    pub bundle: VerifiedBundle,
    /// The run-history statement ([`history::history`]), "unknown: ..." when no log is at hand.
    pub history: String,
}

/// Verify a bundle fully, then its run history; nothing is returned (so
/// nothing can be printed) unless both pass.
pub fn audit(path: &Path, trusted: &VerifyingKey, limits: Limits) -> Result<Audit> {
    let bundle = match verify_bundle(path, trusted, limits) {
        Ok(verified) => verified,
        Err(error @ AuditError::Integrity(VerifyError::NotFound { .. })) => {
            return Err(error.into())
        }
        Err(error) => {
            return Err(anyhow::Error::new(error)
                .context(format!("{} failed verification", path.display())))
        }
    };
    let history = history::history(&bundle.name, &bundle.files, trusted)
        .with_context(|| format!("{}: run history", path.display()))?;
    Ok(Audit { bundle, history })
}

/// Counts of a verified store's runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreAudit {
    /// Entries in the log.
    pub entries: usize,
    /// Sealed runs that passed.
    pub passed: usize,
    /// Sealed runs that failed.
    pub failed: usize,
    /// Runs broken off by an error (no bundle).
    pub errors: usize,
    /// Sealed runs whose claim was inconclusive (format v2 onward).
    pub inconclusive: usize,
    /// When the head was signed (None for a v1 head).
    pub signed: Option<String>,
    /// Bundle directories in the store that no entry names.
    pub unlogged: Vec<String>,
}

/// Verify `store`'s run log against `trusted`, then every bundle it names:
/// present, fully verified, and saying of itself what its entry says; and
/// list the bundles in the store the log does not name.
pub fn verify_store(store: &Path, trusted: &VerifyingKey, limits: Limits) -> Result<StoreAudit> {
    let log = runlog::verify_store(store, trusted)
        .with_context(|| format!("the run log of {} does not verify", store.display()))?
        .with_context(|| {
            format!(
                "{} has no run log ({} and {})",
                store.display(),
                runlog::LOG_FILE,
                runlog::HEAD_FILE
            )
        })?;
    let mut audit = StoreAudit {
        entries: log.entries.len(),
        signed: log.head.signed.clone(),
        ..StoreAudit::default()
    };
    for entry in &log.entries {
        let Some(name) = &entry.run.bundle else {
            audit.errors += 1;
            continue;
        };
        let bundle = store.join(name);
        if !bundle.is_dir() {
            bail!(
                "run-log entry {} names bundle {}, which is missing from the store",
                entry.sequence,
                untrusted(name)
            );
        }
        let verified = verify_bundle(&bundle, trusted, limits).with_context(|| {
            format!(
                "run-log entry {}: bundle {} failed verification",
                entry.sequence,
                untrusted(name)
            )
        })?;
        history::check_entry(entry, &verified.files)?;
        match entry.run.verdict {
            Verdict::Pass => audit.passed += 1,
            Verdict::Inconclusive => audit.inconclusive += 1,
            _ => audit.failed += 1,
        }
    }
    audit.unlogged = unlogged_bundles(store, &log)?;
    Ok(audit)
}

/// Directories of `store` that hold a bundle (a `MANIFEST.sha256`) but that
/// no entry of `log` names, sorted.
fn unlogged_bundles(store: &Path, log: &runlog::VerifiedLog) -> Result<Vec<String>> {
    let named: std::collections::BTreeSet<&str> = log
        .entries
        .iter()
        .filter_map(|entry| entry.run.bundle.as_deref())
        .collect();
    let mut unlogged = Vec::new();
    for item in std::fs::read_dir(store).with_context(|| format!("listing {}", store.display()))? {
        let item = item.with_context(|| format!("listing {}", store.display()))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if !named.contains(name.as_str())
            && item.path().join(crate::bundle::MANIFEST_FILE).is_file()
        {
            unlogged.push(name);
        }
    }
    unlogged.sort();
    Ok(unlogged)
}

/// What `capos log verify <archive>` found: the bundle, verified in full,
/// and the run-log segment packed with it.
#[derive(Debug)]
pub struct PackedLogAudit {
    /// The bundle, verified in full.
    pub bundle: VerifiedBundle,
    /// The packed segment, chain and signed head verified.
    pub log: runlog::VerifiedLog,
    /// The sequence number of the bundle's entry in the segment.
    pub sequence: u64,
}

/// Verify the bundle packed at `path` in full, then the run-log segment
/// packed with it (which must reach back to the first run of the bundle's
/// commit and name the bundle).
pub fn verify_packed_log(
    path: &Path,
    trusted: &VerifyingKey,
    limits: Limits,
) -> Result<PackedLogAudit> {
    let bundle = verify_bundle(path, trusted, limits)
        .with_context(|| format!("{} failed verification", path.display()))?;
    let Some(head) = bundle.files.packed_runlog_head(runlog::MAX_HEAD_BYTES)? else {
        bail!(
            "{} carries no run log; pack the bundle with `capos pack --with-log`",
            path.display()
        );
    };
    let segment = (|| -> Result<(runlog::VerifiedLog, u64)> {
        let head = runlog::verify_head(&head, trusted)?;
        let lines = bundle
            .files
            .packed_runlog_segment(runlog::log_budget(head.entries))?;
        let log = runlog::verify_lines(&lines, head)?;
        let entry = log
            .entry_for(&bundle.name)
            .context("the segment does not name the bundle packed with it")?;
        let sequence = log.covering(entry)?.sequence;
        history::check_entry(entry, &bundle.files)?;
        Ok((log, sequence))
    })()
    .with_context(|| format!("the run log packed in {} does not verify", path.display()))?;
    let (log, sequence) = segment;
    Ok(PackedLogAudit {
        bundle,
        log,
        sequence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn difference(stored: &str, recomputed: &str) -> Option<(usize, String, String)> {
        match first_difference("results.csv", stored.as_bytes(), recomputed.as_bytes()) {
            None => None,
            Some(AuditError::RecomputedMismatch {
                path,
                line,
                stored,
                recomputed,
            }) => {
                assert_eq!(path, "results.csv");
                Some((line, stored, recomputed))
            }
            Some(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn equal_files_have_no_difference() {
        assert_eq!(difference("a\nb\n", "a\nb\n"), None);
    }

    #[test]
    fn first_differing_line_is_named() {
        assert_eq!(
            difference("a\nb\nc\n", "a\nB\nc\n"),
            Some((2, "\"b\\n\"".into(), "\"B\\n\"".into()))
        );
    }

    #[test]
    fn missing_lines_and_final_newlines_count() {
        assert_eq!(
            difference("a\n", "a\nb\n"),
            Some((2, "<end of file>".into(), "\"b\\n\"".into()))
        );
        assert_eq!(
            difference("a\nb", "a\nb\n"),
            Some((2, "\"b\"".into(), "\"b\\n\"".into()))
        );
    }
}
