//! `capos log verify`: the clap arguments and printing of the audit of a
//! store's signed run log and every bundle it names
//! ([`crate::proof::audit::verify_store`]), or of a packed archive's bundle
//! and the run-log segment packed with it
//! ([`crate::proof::audit::verify_packed_log`]).
//!
//! Invariant: a line saying "verified" is printed only after the library
//! call returned without error.

use std::path::PathBuf;

use anyhow::Result;
use ed25519_dalek::VerifyingKey;

use crate::bundle::runlog::Verdict;
use crate::cli::limits::LimitArgs;
use crate::proof::audit;
use crate::terminal::untrusted;

/// Run-log subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum LogCommand {
    /// Verify a store's run log (chain, signed head) and audit every bundle it names.
    Verify(LogVerifyArgs),
}

/// Arguments of `capos log verify`.
#[derive(clap::Args, Debug)]
pub struct LogVerifyArgs {
    /// The evidence store (the directory holding runlog.jsonl and the
    /// bundles), or an archive packed with `capos pack --with-log`.
    pub store: PathBuf,
    /// Public key (SPKI PEM) the log's head and every bundle must be signed with.
    #[arg(long, env = "CAPOS_TRUSTED_KEY")]
    pub trusted_key: PathBuf,
    /// Size cap, per bundle.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `capos log verify`.
pub fn log_command(command: LogCommand) -> Result<()> {
    let LogCommand::Verify(args) = command;
    let trusted = crate::bundle::keys::load_verifying_key(&args.trusted_key)?;
    if args.store.is_file() {
        return log_verify_archive(&args, &trusted);
    }
    let audit = audit::verify_store(&args.store, &trusted, args.limits.limits())?;
    println!(
        "run log verified: {} runs ({} passed, {} failed, {} broken off by an error{}) as of {}, every bundle present and verified, key {}",
        audit.entries,
        audit.passed,
        audit.failed,
        audit.errors,
        if audit.inconclusive > 0 {
            format!(", {} inconclusive", audit.inconclusive)
        } else {
            String::new()
        },
        audit
            .signed
            .as_deref()
            .map_or_else(|| "an unrecorded time (v1 head)".into(), untrusted),
        crate::bundle::provenance::key_id(&trusted)
    );
    if !audit.unlogged.is_empty() {
        println!(
            "not in the run log: {} bundle(s) in the store that no entry names, so the log says nothing about the runs behind them: {}",
            audit.unlogged.len(),
            crate::terminal::untrusted_list(&audit.unlogged)
        );
    }
    Ok(())
}

/// `capos log verify <archive>`: the bundle in full, then the segment packed
/// with it (which must reach back to the first run of the bundle's commit).
fn log_verify_archive(args: &LogVerifyArgs, trusted: &VerifyingKey) -> Result<()> {
    let audit::PackedLogAudit {
        bundle,
        log,
        sequence,
    } = audit::verify_packed_log(&args.store, trusted, args.limits.limits())?;
    let count = |verdict: Option<Verdict>| {
        log.entries
            .iter()
            .filter(|entry| verdict.is_none_or(|verdict| entry.run.verdict == verdict))
            .count()
    };
    println!(
        "run log segment verified: entries {}..{} as of {} ({} runs: {} passed, {} failed, {} broken off by an error); bundle {} is entry {}, the other entries' bundles are not in the archive; key {}",
        log.start(),
        log.head.entries,
        log.head
            .signed
            .as_deref()
            .map_or_else(|| "an unrecorded time (v1 head)".into(), untrusted),
        count(None),
        count(Some(Verdict::Pass)),
        count(Some(Verdict::Fail)),
        count(Some(Verdict::Error)),
        bundle.name,
        sequence,
        crate::bundle::provenance::key_id(trusted)
    );
    Ok(())
}
