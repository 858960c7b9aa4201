//! The signed run log, end to end through the `capos` binary: runs are
//! recorded whatever their outcome, `capos log verify` checks the chain and
//! every bundle, reports and verification name the failed sibling runs (from
//! the store, or from the segment packed with `--with-log`), and tampering
//! with, reordering, truncating or thinning out the log is detected.

mod contract_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use capos_evidence::bundle::runlog::{self, Run, Verdict};
use capos_evidence::bundle::{keys, writer};
use capos_evidence::guest::qemu::Accel;
use capos_evidence::proof::history::{self, RunEnd};
use capos_evidence::proof::summary::ExitRecord;
use contract_support::*;
use ed25519_dalek::SigningKey;

const COMMIT: &str = "2222222222222222222222222222222222222222";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[21; 32])
}

/// A store with four runs of smp-boot at one commit: a pass, an error, a
/// failure and a pass, recorded as `capos run` records them. Returns the
/// store, the bundles (first pass, failure, last pass) and the public key.
struct Store {
    _dir: tempfile::TempDir,
    store: PathBuf,
    first: PathBuf,
    failed: PathBuf,
    last: PathBuf,
    public_key: PathBuf,
}

fn seal(store: &Path, invocation: &str, fail_one: bool) -> PathBuf {
    let writer = writer::BundleWriter::create(store).unwrap();
    smp_boot_bundle(writer.root(), Accel::Tcg);
    if fail_one {
        let failing = ExitRecord {
            exit_code: Some(35),
            timed_out: false,
            wall_ms: 900,
            pinned_cpus: None,
        };
        write_run(
            writer.root(),
            "cpus2",
            1,
            &timed(310_000, &smp_boot_lines(2)),
            &failing,
        );
        finish_bundle(writer.root());
    }
    writer.seal(&key(), &run_facts(invocation)).unwrap()
}

fn record(store: &Path, outcome: Result<&Path, &str>) {
    let summary = outcome.map(read_summary);
    let run = RunEnd {
        contract: "smp-boot",
        commit: (Some(COMMIT.to_owned()), Some(false)),
        started: "2026-11-28T10:00:00Z".into(),
        finished: "2026-11-28T10:01:00Z".into(),
        outcome: match (&outcome, &summary) {
            (Ok(bundle), Ok(summary)) => Ok((bundle, summary)),
            _ => Err("QEMU exited before the first boot".to_owned()),
        },
    };
    history::record(store, &key(), run).unwrap();
}

fn setup() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let first = seal(&store, "run-1", false);
    record(&store, Ok(&first));
    record(&store, Err("error"));
    let failed = seal(&store, "run-3", true);
    record(&store, Ok(&failed));
    let last = seal(&store, "run-4", false);
    record(&store, Ok(&last));
    let key_path = dir.path().join("keys/signing.pem");
    keys::write_key_pair(&key_path, &key(), false).unwrap();
    Store {
        store,
        first,
        failed,
        last,
        public_key: keys::public_key_path(&key_path),
        _dir: dir,
    }
}

fn short(bundle: &Path) -> String {
    bundle.file_name().unwrap().to_str().unwrap()[..12].to_owned()
}

fn log_verify(store: &Store) -> Output {
    capos_in(
        &store.store,
        &[
            "log".as_ref(),
            "verify".as_ref(),
            store.store.as_os_str(),
            "--trusted-key".as_ref(),
            store.public_key.as_os_str(),
        ],
    )
}

/// `capos verify <bundle>` against the store's key, run from the store.
fn verify_cli(store: &Store, bundle: &Path) -> Output {
    capos_in(
        &store.store,
        &[
            "verify".as_ref(),
            bundle.as_os_str(),
            "--trusted-key".as_ref(),
            store.public_key.as_os_str(),
        ],
    )
}

fn lines(store: &Path) -> Vec<String> {
    fs::read_to_string(store.join(runlog::LOG_FILE))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(store: &Path, lines: &[String]) {
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    fs::write(store.join(runlog::LOG_FILE), text).unwrap();
}

#[test]
fn every_run_is_recorded_and_the_whole_store_verifies() {
    let store = setup();
    let output = log_verify(&store);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout)
            .starts_with("run log verified: 4 runs (2 passed, 1 failed, 1 broken off by an error)"),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn verify_and_report_name_the_failed_sibling_runs() {
    let store = setup();
    let expected = format!(
        "run 4 of 4 for contract smp-boot at commit {COMMIT}; runs that did not pass: run 2 (error: QEMU exited before the first boot), run 3 (fail, bundle {}) (signed run log: entry 4 of entries 1..4 as of ",
        short(&store.failed)
    );
    let output = verify_cli(&store, &store.last);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains(&format!("run history: {expected}")),
        "{}",
        text(&output.stdout)
    );
    let out = store.store.join("report-last");
    let output = capos_in(
        &store.store,
        &[
            "report".as_ref(),
            store.last.as_os_str(),
            "--trusted-key".as_ref(),
            store.public_key.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let markdown = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        markdown.contains(&format!("Run history: {expected}")),
        "{markdown}"
    );
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Run history: run 4 of 4"), "{html}");

    // The first bundle is run 1 of the same four.
    let output = verify_cli(&store, &store.first);
    assert!(
        text(&output.stdout).contains("run history: run 1 of 4"),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn a_packed_log_segment_travels_with_the_bundle() {
    let store = setup();
    let archive = store.store.parent().unwrap().join("last.tar");
    let output = capos_in(
        &store.store,
        &[
            "pack".as_ref(),
            store.last.as_os_str(),
            "--with-log".as_ref(),
            "--out".as_ref(),
            archive.as_os_str(),
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let empty = tempfile::tempdir().unwrap();
    let output = capos_in(
        empty.path(),
        &[
            "verify".as_ref(),
            archive.as_os_str(),
            "--trusted-key".as_ref(),
            store.public_key.as_os_str(),
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("run history: run 4 of 4 for contract smp-boot"),
        "{}",
        text(&output.stdout)
    );
    assert!(
        text(&output.stdout).contains("run 3 (fail"),
        "{}",
        text(&output.stdout)
    );

    // Drop the failed run from the packed segment: the chain breaks.
    let mut bytes = fs::read(&archive).unwrap();
    let failed_name = store.failed.file_name().unwrap().to_str().unwrap();
    let needle = format!("\"bundle\":\"{failed_name}\"");
    let at = bytes
        .windows(needle.len())
        .position(|window| window == needle.as_bytes())
        .unwrap();
    bytes[at + 11] ^= 1;
    let tampered = empty.path().join("tampered.tar");
    fs::write(&tampered, &bytes).unwrap();
    let output = capos_in(
        empty.path(),
        &[
            "verify".as_ref(),
            tampered.as_os_str(),
            "--trusted-key".as_ref(),
            store.public_key.as_os_str(),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("the run log packed with the bundle does not verify"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn deleting_a_failed_bundle_from_the_store_is_detected() {
    let store = setup();
    fs::remove_dir_all(&store.failed).unwrap();
    let output = log_verify(&store);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains(&format!(
            "run-log entry 3 names bundle {}, which is missing from the store",
            store.failed.file_name().unwrap().to_str().unwrap()
        )),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn tampering_reordering_and_truncating_the_log_are_detected() {
    let store = setup();
    let original = lines(&store.store);
    for (what, edited, expected) in [
        (
            "relabel the failure a pass",
            {
                let mut edited = original.clone();
                edited[2] = edited[2].replace("\"verdict\":\"fail\"", "\"verdict\":\"pass\"");
                edited
            },
            "entry 4 does not follow the entry before it",
        ),
        (
            "swap two runs",
            {
                let mut edited = original.clone();
                edited.swap(1, 2);
                edited
            },
            "sequence is 3, expected 2",
        ),
        (
            "cut the last run",
            original[..3].to_vec(),
            "the signed head covers 4 entries but runlog.jsonl ends at entry 3",
        ),
        (
            "cut the first run",
            original[1..].to_vec(),
            "begins at entry 2, not 1",
        ),
    ] {
        write_lines(&store.store, &edited);
        let output = log_verify(&store);
        assert_eq!(output.status.code(), Some(1), "{what}");
        assert!(
            text(&output.stderr).contains(expected),
            "{what}: {}",
            text(&output.stderr)
        );
        // The bundles' own verification names the broken log too.
        let output = verify_cli(&store, &store.last);
        assert_eq!(output.status.code(), Some(1), "{what}");
        assert!(
            text(&output.stderr).contains("does not verify"),
            "{what}: {}",
            text(&output.stderr)
        );
    }
}

/// A genuine, signed entry that lies about its bundle is caught by the
/// bundle itself.
#[test]
fn an_entry_that_misstates_its_bundle_is_detected() {
    let store = setup();
    runlog::append(
        &store.store,
        Run {
            contract: "smp-boot".into(),
            commit: Some(COMMIT.into()),
            dirty: Some(false),
            bundle: Some(store.failed.file_name().unwrap().to_str().unwrap().into()),
            verdict: Verdict::Pass,
            started: "2026-11-28T11:00:00Z".into(),
            finished: "2026-11-28T11:01:00Z".into(),
            detail: None,
        },
        &key(),
    )
    .unwrap();
    let output = log_verify(&store);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr)
            .contains("run-log entry 5 records verdict pass, the bundle's summary says fail"),
        "{}",
        text(&output.stderr)
    );
}

/// `capos verify <archive>` from an empty directory.
fn verify_archive(store: &Store, archive: &Path) -> Output {
    let empty = tempfile::tempdir().unwrap();
    capos_in(
        empty.path(),
        &[
            "verify".as_ref(),
            archive.as_os_str(),
            "--trusted-key".as_ref(),
            store.public_key.as_os_str(),
        ],
    )
}

/// Pack `bundle` with `lines` as its run-log segment and the store's
/// signed head, as anyone without the key can.
fn pack_with_segment(store: &Store, bundle: &Path, lines: &[String], name: &str) -> PathBuf {
    let head = fs::read(store.store.join(runlog::HEAD_FILE)).unwrap();
    let segment = runlog::LogBytes {
        lines: lines
            .iter()
            .flat_map(|line| format!("{line}\n").into_bytes())
            .collect(),
        head,
    };
    let archive = store.store.parent().unwrap().join(name);
    capos_evidence::bundle::pack::pack_with_log_to(bundle, Some(&segment), &archive).unwrap();
    archive
}

/// Finding 1 of issue 20: a packed segment with its first entries cut off
/// used to verify as "run 1 of 1 ... failed runs: none".
#[test]
fn a_trimmed_reordered_or_spliced_packed_segment_is_refused() {
    let store = setup();
    let original = lines(&store.store);
    // The honest segment verifies and names the failures.
    let honest = pack_with_segment(&store, &store.last, &original, "honest.tar");
    let output = verify_archive(&store, &honest);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("run 4 of 4"),
        "{}",
        text(&output.stdout)
    );

    // Another store, same key and commit, whose first run passed.
    let other_dir = tempfile::tempdir().unwrap();
    let other = other_dir.path().join("store");
    let other_bundle = seal(&other, "other-1", false);
    record(&other, Ok(&other_bundle));
    let foreign_first = lines(&other)[0].clone();

    for (what, segment, expected) in [
        (
            "trimmed to the last run",
            original[3..].to_vec(),
            "the run-log segment begins at entry 4, but entry 4 says the runs of its commit began at entry 1: entries were cut from the segment's beginning",
        ),
        (
            "trimmed to the last two runs",
            original[2..].to_vec(),
            "begins at entry 3, but entry 4 says the runs of its commit began at entry 1",
        ),
        (
            "reordered",
            {
                let mut edited = original.clone();
                edited.swap(1, 2);
                edited
            },
            "sequence is 3, expected 2",
        ),
        (
            "spliced: another store's passing first run in place of this one's",
            {
                let mut edited = original.clone();
                edited[0] = foreign_first.clone();
                edited
            },
            "entry 2 does not follow the entry before it",
        ),
    ] {
        let archive = pack_with_segment(&store, &store.last, &segment, "forged.tar");
        let output = verify_archive(&store, &archive);
        assert_eq!(output.status.code(), Some(1), "{what}");
        assert!(
            text(&output.stdout).is_empty(),
            "{what}: nothing may be printed on stdout: {}",
            text(&output.stdout)
        );
        assert!(
            text(&output.stderr).contains(expected),
            "{what}: {}",
            text(&output.stderr)
        );
    }
}

/// Finding 2: a valid bundle beside another builder's log fails, says the
/// bundle verified but its history did not, and prints nothing on stdout.
#[test]
fn a_foreign_log_fails_without_a_success_line_and_says_what_failed() {
    let store = setup();
    let other_key = SigningKey::from_bytes(&[22; 32]);
    fs::remove_file(store.store.join(runlog::LOG_FILE)).unwrap();
    fs::remove_file(store.store.join(runlog::HEAD_FILE)).unwrap();
    runlog::append(
        &store.store,
        Run {
            contract: "smp-boot".into(),
            commit: Some(COMMIT.into()),
            dirty: Some(false),
            bundle: None,
            verdict: Verdict::Error,
            started: "2026-11-28T11:00:00Z".into(),
            finished: "2026-11-28T11:01:00Z".into(),
            detail: Some("elsewhere".into()),
        },
        &other_key,
    )
    .unwrap();
    let output = verify_cli(&store, &store.last);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(text(&output.stdout), "");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("the bundle itself verified")
            && stderr.contains("but the run log of")
            && stderr.contains("not the trusted key")
            && stderr.contains("nothing tells whether this run was picked from others"),
        "{stderr}"
    );
}

/// Finding 7: no log beside the bundle or in the archive: the history is "unknown".
#[test]
fn a_missing_run_log_is_said_to_leave_the_history_unknown() {
    let store = setup();
    fs::remove_file(store.store.join(runlog::LOG_FILE)).unwrap();
    fs::remove_file(store.store.join(runlog::HEAD_FILE)).unwrap();
    let output = verify_cli(&store, &store.last);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("run history: unknown: no run log beside the bundle"),
        "{}",
        text(&output.stdout)
    );
    let archive = store.store.parent().unwrap().join("plain.tar");
    capos_evidence::bundle::pack::pack_to(&store.last, &archive).unwrap();
    let output = verify_archive(&store, &archive);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("run history: unknown: the archive carries no run log"),
        "{}",
        text(&output.stdout)
    );
}

/// Finding 3: a log that is not a regular file, or far longer than its
/// signed head allows, is refused before it is read.
#[test]
fn a_hostile_log_file_is_refused_unread() {
    let store = setup();
    let log = store.store.join(runlog::LOG_FILE);
    // A sparse file of 3 GiB.
    fs::remove_file(&log).unwrap();
    fs::File::create(&log).unwrap().set_len(3 << 30).unwrap();
    for output in [log_verify(&store), verify_cli(&store, &store.last)] {
        assert_eq!(output.status.code(), Some(1));
        assert!(
            text(&output.stderr).contains(
                "3221225472 bytes, more than the 65540 bytes the signed head's entry count allows"
            ),
            "{}",
            text(&output.stderr)
        );
    }
    // A symlink to /dev/zero, and a FIFO nobody writes to.
    fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &log).unwrap();
    let output = log_verify(&store);
    assert!(
        text(&output.stderr).contains("not a regular file"),
        "{}",
        text(&output.stderr)
    );
    fs::remove_file(&log).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&log)
        .status()
        .unwrap();
    assert!(status.success());
    let output = verify_cli(&store, &store.last);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(text(&output.stdout), "");
    assert!(
        text(&output.stderr).contains("not a regular file"),
        "{}",
        text(&output.stderr)
    );
}

/// Findings 8 and 9: `log verify` takes a packed archive, says as of when,
/// and names the bundles the log does not.
#[test]
fn log_verify_reads_archives_and_names_unlogged_bundles() {
    let store = setup();
    let archive = pack_with_segment(&store, &store.last, &lines(&store.store), "last.tar");
    let empty = tempfile::tempdir().unwrap();
    let output = capos_in(
        empty.path(),
        &[
            "log".as_ref(),
            "verify".as_ref(),
            archive.as_os_str(),
            "--trusted-key".as_ref(),
            store.public_key.as_os_str(),
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).starts_with("run log segment verified: entries 1..4 as of 20")
            && text(&output.stdout)
                .contains("(4 runs: 2 passed, 1 failed, 1 broken off by an error); bundle "),
        "{}",
        text(&output.stdout)
    );
    let unlogged = seal(&store.store, "unlogged", false);
    let output = log_verify(&store);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains(&format!(
            "not in the run log: 1 bundle(s) in the store that no entry names, so the log says nothing about the runs behind them: {}",
            unlogged.file_name().unwrap().to_str().unwrap()
        )),
        "{}",
        text(&output.stdout)
    );
}

/// Issue 20, finding 5: an unknown envelope field whose name holds a line
/// break used to put a real-looking `verified:` line on stderr.
#[test]
fn a_line_break_in_an_envelope_field_name_stays_escaped() {
    let store = setup();
    // The run log's head is read by any verify of a bundle in the store.
    fs::write(
        store.store.join(runlog::HEAD_FILE),
        "{\"x\\nverified: forged (20 files, key trusted)\\n\": 1}",
    )
    .unwrap();
    let output = verify_cli(&store, &store.last);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("unknown field `x\\u{a}verified: forged (20 files, key trusted)\\u{a}`"),
        "{stderr}"
    );
    assert!(
        !stderr.lines().any(|line| line.starts_with("verified")),
        "{stderr}"
    );
}
