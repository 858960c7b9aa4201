//! Tampering with a sealed bundle, as a directory and as a packed archive:
//! every change must fail verification with the file named.
//!
//! The bundles are synthetic (made through `BundleWriter`), so these tests
//! cover the integrity and signature checks; recomputation from raw logs is
//! tested with the summary code.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use capos_evidence::bundle::archive::ArchiveError;
use capos_evidence::bundle::manifest::{self as bundle, BundleError};
use capos_evidence::bundle::pack;
use capos_evidence::bundle::provenance::{self, BuildFacts, EnvelopeError, ResourceDescriptor};
use capos_evidence::bundle::verify::{verify_integrity, Limits, VerifiedBundle, VerifyError};
use capos_evidence::bundle::writer::BundleWriter;
use capos_evidence::bundle::{MANIFEST_FILE, PROVENANCE_FILE};
use capos_evidence::proof::audit::{verify_bundle, AuditError};
use ed25519_dalek::{SigningKey, VerifyingKey};
use tempfile::TempDir;

const FILES: &[(&str, &str)] = &[
    ("contract.yaml", "name: smp-boot\ngates: []\n"),
    ("inputs.json", "{\"iso_sha256\":\"00\"}\n"),
    (
        "results.csv",
        "case,repetition,value\nsmp-1,1,100\nsmp-2,1,55\n",
    ),
    ("summary.json", "{\"speedup\":1.8}\n"),
    ("logs/smp-1/1/serial.log", "CAPOS RESULT cpus=1 ns=100\n"),
    (
        "logs/smp-1/1/serial.timed.log",
        "0.001 CAPOS RESULT cpus=1 ns=100\n",
    ),
    ("logs/smp-1/1/stderr.log", ""),
    ("logs/smp-1/1/command.txt", "qemu-system-x86_64 -smp 1\n"),
    ("logs/smp-2/1/serial.log", "CAPOS RESULT cpus=2 ns=55\n"),
    (
        "logs/smp-2/1/serial.timed.log",
        "0.001 CAPOS RESULT cpus=2 ns=55\n",
    ),
    ("logs/smp-2/1/stderr.log", "warning: something\n"),
    ("logs/smp-2/1/command.txt", "qemu-system-x86_64 -smp 2\n"),
];

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

fn trusted() -> VerifyingKey {
    signing_key().verifying_key()
}

fn attacker_key() -> SigningKey {
    SigningKey::from_bytes(&[2; 32])
}

fn facts(invocation: &str) -> BuildFacts {
    BuildFacts {
        build_type: "https://capos.example/evidence/run/v1".into(),
        external_parameters: serde_json::json!({"contract": "smp-boot", "repetitions": 1}),
        internal_parameters: serde_json::json!({"accel": "tcg"}),
        resolved_dependencies: vec![ResourceDescriptor::sha256("capos.iso", "11".repeat(32))],
        builder_id: "https://capos.example/builder/test".into(),
        builder_version: Default::default(),
        invocation_id: invocation.into(),
        started_on: "2025-01-01T00:00:00Z".into(),
        finished_on: "2025-01-01T00:05:00Z".into(),
    }
}

/// A sealed bundle in a fresh store.
fn sealed() -> (TempDir, PathBuf) {
    sealed_with(FILES, "run-1")
}

fn sealed_with(files: &[(&str, &str)], invocation: &str) -> (TempDir, PathBuf) {
    let store = tempfile::tempdir().unwrap();
    let writer = BundleWriter::create(store.path()).unwrap();
    for (path, contents) in files {
        let target = writer.root().join(path);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::write(target, contents).unwrap();
    }
    let bundle = writer.seal(&signing_key(), &facts(invocation)).unwrap();
    (store, bundle)
}

/// Pack `bundle` into an archive in its own temp dir.
fn packed(bundle: &Path) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("bundle.tar");
    pack::pack_to(bundle, &archive).unwrap();
    (dir, archive)
}

/// What an attacker without the key does next: rewrite the manifest and
/// rename the directory so the digests and the name agree again.
fn remanifest(bundle: &Path) -> PathBuf {
    let text = bundle::write_manifest_text(bundle).unwrap();
    fs::write(bundle.join(MANIFEST_FILE), &text).unwrap();
    let renamed = bundle.with_file_name(bundle::bundle_name(text.as_bytes()));
    fs::rename(bundle, &renamed).unwrap();
    renamed
}

/// Verify the directory and its packed archive; both must fail the same way.
fn fails_both_ways(bundle: &Path, check: impl Fn(&VerifyError) -> bool) {
    let error = verify_integrity(bundle, &trusted(), Limits::default()).unwrap_err();
    assert!(check(&error), "directory: unexpected {error:?}");
    let (_dir, archive) = packed(bundle);
    let error = verify_integrity(&archive, &trusted(), Limits::default()).unwrap_err();
    assert!(check(&error), "archive: unexpected {error:?}");
}

fn flip_byte(path: &Path, index: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[index] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

/// The signed statement of a bundle, as the payload bytes.
fn statement_of(bundle: &Path) -> provenance::Statement {
    let envelope =
        provenance::parse_envelope(&fs::read(bundle.join(PROVENANCE_FILE)).unwrap()).unwrap();
    provenance::verify_envelope(&envelope, &trusted()).unwrap()
}

fn write_envelope(bundle: &Path, envelope: &provenance::Envelope) {
    fs::write(
        bundle.join(PROVENANCE_FILE),
        provenance::envelope_file_bytes(envelope).unwrap(),
    )
    .unwrap();
}

fn check_verified(verified: &VerifiedBundle, bundle: &Path) {
    assert_eq!(verified.name, bundle.file_name().unwrap().to_str().unwrap());
    assert_eq!(verified.file_count, FILES.len() + 1);
    assert_eq!(verified.key_id, provenance::key_id(&trusted()));
    assert_eq!(verified.statement.subject.len(), FILES.len());
    assert_eq!(
        verified.files.read("results.csv").unwrap(),
        fs::read(bundle.join("results.csv")).unwrap()
    );
}

#[test]
fn honest_bundle_verifies_as_directory_and_archive() {
    let (_store, bundle) = sealed();
    let verified = verify_integrity(&bundle, &trusted(), Limits::default()).unwrap();
    check_verified(&verified, &bundle);
    assert_eq!(
        verified.files.directory(),
        Some(bundle.canonicalize().unwrap().as_path())
    );

    let (dir, archive) = packed(&bundle);
    let verified = verify_integrity(&archive, &trusted(), Limits::default()).unwrap();
    check_verified(&verified, &bundle);
    assert_eq!(verified.files.directory(), None);
    // Read in place: nothing was extracted next to the archive or anywhere else.
    let beside: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(beside.len(), 1);
}

#[test]
fn sealing_is_reproducible() {
    let (_first_store, first) = sealed();
    let (_second_store, second) = sealed();
    assert_eq!(first.file_name(), second.file_name());
    assert_eq!(packed_bytes(&first), packed_bytes(&second));
}

fn packed_bytes(bundle: &Path) -> Vec<u8> {
    pack::pack_to_writer(bundle, Vec::new()).unwrap()
}

#[test]
fn flipping_one_byte_in_any_file_names_that_file() {
    let (_store, original) = sealed();
    let listed = bundle::parse_manifest(&fs::read(original.join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(listed.len(), FILES.len() + 1);
    for entry in listed.iter().filter(|entry| entry.size > 0) {
        let (_copy_dir, bundle) = copy_of(&original);
        let path = bundle.join(&entry.path);
        flip_byte(&path, entry.size as usize / 2);
        let actual = bundle::digest_file(&path).unwrap().0;
        fails_both_ways(&bundle, |error| {
            matches!(error, VerifyError::DigestMismatch { path, expected, actual: found }
                if *path == entry.path && *expected == entry.sha256 && *found == actual)
        });
    }
}

#[test]
fn growing_an_empty_file_is_a_size_mismatch() {
    let (_store, bundle) = sealed();
    fs::write(bundle.join("logs/smp-1/1/stderr.log"), "x").unwrap();
    fails_both_ways(&bundle, |error| {
        matches!(error, VerifyError::SizeMismatch { path, expected: 0, actual: 1 }
            if path == "logs/smp-1/1/stderr.log")
    });
}

#[test]
fn editing_a_digest_in_the_manifest_names_the_file() {
    let (_store, bundle) = sealed();
    let text = fs::read_to_string(bundle.join(MANIFEST_FILE)).unwrap();
    let first_line = text.lines().next().unwrap();
    let path = first_line.rsplit("  ").next().unwrap().to_owned();
    let replacement = if first_line.starts_with('0') {
        "1"
    } else {
        "0"
    };
    let edited = format!("{replacement}{}", &text[1..]);
    fs::write(bundle.join(MANIFEST_FILE), &edited).unwrap();
    // The manifest no longer names the bundle...
    fails_both_ways(&bundle, |error| {
        matches!(error, VerifyError::NameMismatch { .. })
    });
    // ...and renamed to match, its listed digest is not the signed one:
    // caught before a single file is hashed.
    let renamed = bundle.with_file_name(bundle::bundle_name(edited.as_bytes()));
    fs::rename(&bundle, &renamed).unwrap();
    fails_both_ways(&renamed, |error| {
        matches!(error, VerifyError::SubjectDigestMismatch { path: p, listed, .. }
            if *p == path && listed.starts_with(replacement))
    });
}

#[test]
fn a_non_canonical_manifest_is_rejected() {
    let (_store, bundle) = sealed();
    let text = fs::read_to_string(bundle.join(MANIFEST_FILE)).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(0, 1);
    fs::write(bundle.join(MANIFEST_FILE), lines.join("\n") + "\n").unwrap();
    fails_both_ways(&bundle, |error| {
        matches!(
            error,
            VerifyError::Bundle(BundleError::Manifest {
                line: 2,
                problem: bundle::ManifestProblem::NotSorted { .. }
            })
        )
    });
}

#[test]
fn deleting_a_file_names_it() {
    let (_store, bundle) = sealed();
    fs::remove_file(bundle.join("logs/smp-2/1/serial.log")).unwrap();
    fails_both_ways(
        &bundle,
        |error| matches!(error, VerifyError::FileMissing { path } if path == "logs/smp-2/1/serial.log"),
    );
}

#[test]
fn deleting_the_manifest_is_reported() {
    let (_store, bundle) = sealed();
    fs::remove_file(bundle.join(MANIFEST_FILE)).unwrap();
    fails_both_ways(&bundle, |error| {
        matches!(error, VerifyError::ManifestMissing)
    });
}

#[test]
fn adding_a_file_names_it() {
    let (_store, bundle) = sealed();
    fs::write(bundle.join("logs/smp-2/1/extra.log"), "injected\n").unwrap();
    fails_both_ways(
        &bundle,
        |error| matches!(error, VerifyError::UnlistedFile { path } if path == "logs/smp-2/1/extra.log"),
    );
}

#[test]
fn adding_a_symlink_or_an_empty_directory_is_rejected() {
    let (_store, bundle) = sealed();
    std::os::unix::fs::symlink("/etc/passwd", bundle.join("logs/link")).unwrap();
    let error = verify_integrity(&bundle, &trusted(), Limits::default()).unwrap_err();
    assert!(
        matches!(&error, VerifyError::Bundle(BundleError::Symlink { path }) if path == "logs/link"),
        "{error:?}"
    );
    fs::remove_file(bundle.join("logs/link")).unwrap();
    fs::create_dir(bundle.join("logs/empty")).unwrap();
    let error = verify_integrity(&bundle, &trusted(), Limits::default()).unwrap_err();
    assert!(
        matches!(&error, VerifyError::Bundle(BundleError::EmptyDirectory { path }) if path == "logs/empty"),
        "{error:?}"
    );
}

#[test]
fn replacing_a_listed_file_by_a_symlink_is_rejected() {
    let (_store, bundle) = sealed();
    let target = bundle.join("results.csv");
    let copy = bundle.parent().unwrap().join("results-copy.csv");
    fs::rename(&target, &copy).unwrap();
    std::os::unix::fs::symlink(&copy, &target).unwrap();
    let error = verify_integrity(&bundle, &trusted(), Limits::default()).unwrap_err();
    assert!(
        matches!(&error, VerifyError::Bundle(BundleError::Symlink { path }) if path == "results.csv"),
        "{error:?}"
    );
}

#[test]
fn renaming_the_bundle_is_detected() {
    let (_store, bundle) = sealed();
    let expected = bundle.file_name().unwrap().to_str().unwrap().to_owned();
    let renamed = bundle.with_file_name(format!("{}0", &expected[..63]));
    let renamed = if renamed == bundle {
        bundle.with_file_name(format!("{}1", &expected[..63]))
    } else {
        renamed
    };
    fs::rename(&bundle, &renamed).unwrap();
    let found = renamed.file_name().unwrap().to_str().unwrap().to_owned();
    fails_both_ways(&renamed, |error| {
        matches!(error, VerifyError::NameMismatch { found: f, expected: e }
            if *f == found && *e == expected)
    });
}

#[test]
fn an_edited_file_with_a_rewritten_manifest_fails_the_signed_digests() {
    let (_store, bundle) = sealed();
    fs::write(
        bundle.join("results.csv"),
        "case,repetition,value\nsmp-1,1,100\nsmp-2,1,40\n",
    )
    .unwrap();
    let bundle = remanifest(&bundle);
    let actual = bundle::digest_file(&bundle.join("results.csv")).unwrap().0;
    fails_both_ways(&bundle, |error| {
        matches!(error, VerifyError::SubjectDigestMismatch { path, listed: a, .. }
            if path == "results.csv" && *a == actual)
    });
}

#[test]
fn an_added_file_with_a_rewritten_manifest_is_not_a_subject() {
    let (_store, bundle) = sealed();
    fs::write(bundle.join("logs/smp-2/1/extra.log"), "injected\n").unwrap();
    let bundle = remanifest(&bundle);
    fails_both_ways(
        &bundle,
        |error| matches!(error, VerifyError::SubjectMissing { path } if path == "logs/smp-2/1/extra.log"),
    );
}

#[test]
fn a_deleted_file_with_a_rewritten_manifest_is_a_dangling_subject() {
    let (_store, bundle) = sealed();
    fs::remove_file(bundle.join("logs/smp-2/1/stderr.log")).unwrap();
    let bundle = remanifest(&bundle);
    fails_both_ways(
        &bundle,
        |error| matches!(error, VerifyError::SubjectUnexpected { name } if name == "logs/smp-2/1/stderr.log"),
    );
}

#[test]
fn swapping_the_payload_for_another_statement_fails_the_signature() {
    let (_store, bundle) = sealed();
    fs::write(bundle.join("summary.json"), "{\"speedup\":3.0}\n").unwrap();
    let mut statement = statement_of(&bundle);
    let digest = bundle::digest_file(&bundle.join("summary.json")).unwrap().0;
    for subject in &mut statement.subject {
        if subject.name == "summary.json" {
            subject.digest.insert("sha256".into(), digest.clone());
        }
    }
    let mut envelope =
        provenance::parse_envelope(&fs::read(bundle.join(PROVENANCE_FILE)).unwrap()).unwrap();
    envelope.payload =
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&statement).unwrap());
    write_envelope(&bundle, &envelope);
    let bundle = remanifest(&bundle);
    let trusted_id = provenance::key_id(&trusted());
    fails_both_ways(&bundle, |error| {
        matches!(error, VerifyError::Provenance(EnvelopeError::BadSignature { trusted })
            if *trusted == trusted_id)
    });
}

#[test]
fn a_statement_resigned_with_another_key_names_both_keys() {
    let (_store, bundle) = sealed();
    fs::write(bundle.join("summary.json"), "{\"speedup\":3.0}\n").unwrap();
    let mut statement = statement_of(&bundle);
    let digest = bundle::digest_file(&bundle.join("summary.json")).unwrap().0;
    for subject in &mut statement.subject {
        if subject.name == "summary.json" {
            subject.digest.insert("sha256".into(), digest.clone());
        }
    }
    write_envelope(
        &bundle,
        &provenance::sign_statement(&statement, &attacker_key()).unwrap(),
    );
    let bundle = remanifest(&bundle);
    let attacker_id = provenance::key_id(&attacker_key().verifying_key());
    let trusted_id = provenance::key_id(&trusted());
    fails_both_ways(&bundle, |error| {
        matches!(error, VerifyError::Provenance(EnvelopeError::UntrustedSigner { signed_by, trusted })
            if *signed_by == vec![attacker_id.clone()] && *trusted == trusted_id)
    });
    let error = verify_integrity(&bundle, &trusted(), Limits::default()).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{PROVENANCE_FILE}: signed by key {attacker_id}, not the trusted key {trusted_id}")
    );
}

#[test]
fn a_trusted_key_that_did_not_sign_is_rejected() {
    let (_store, bundle) = sealed();
    let other = attacker_key().verifying_key();
    let signer_id = provenance::key_id(&trusted());
    let other_id = provenance::key_id(&other);
    for path in [bundle.clone(), packed(&bundle).1] {
        let error = verify_integrity(&path, &other, Limits::default()).unwrap_err();
        assert!(
            matches!(&error, VerifyError::Provenance(EnvelopeError::UntrustedSigner { signed_by, trusted })
                if *signed_by == vec![signer_id.clone()] && *trusted == other_id),
            "{error:?}"
        );
    }
}

#[test]
fn a_genuine_envelope_from_another_bundle_does_not_fit() {
    let (_store, bundle) = sealed();
    let mut other_files = FILES.to_vec();
    other_files[3] = ("summary.json", "{\"speedup\":3.0}\n");
    let (_other_store, other) = sealed_with(&other_files, "run-2");
    fs::copy(other.join(PROVENANCE_FILE), bundle.join(PROVENANCE_FILE)).unwrap();
    let bundle = remanifest(&bundle);
    fails_both_ways(
        &bundle,
        |error| matches!(error, VerifyError::SubjectDigestMismatch { path, .. } if path == "summary.json"),
    );
}

#[test]
fn a_missing_provenance_is_reported() {
    let (_store, bundle) = sealed();
    fs::remove_file(bundle.join(PROVENANCE_FILE)).unwrap();
    let bundle = remanifest(&bundle);
    fails_both_ways(&bundle, |error| {
        matches!(error, VerifyError::ProvenanceMissing)
    });
}

#[test]
fn truncating_the_archive_is_reported() {
    let (_store, bundle) = sealed();
    let (dir, archive) = packed(&bundle);
    let bytes = fs::read(&archive).unwrap();
    let cut_archive = dir.path().join("cut.tar");
    for cut in [
        0,
        100,
        512,
        bytes.len() / 2,
        bytes.len() - 1024,
        bytes.len() - 1,
    ] {
        fs::write(&cut_archive, &bytes[..cut]).unwrap();
        let error = verify_integrity(&cut_archive, &trusted(), Limits::default()).unwrap_err();
        assert!(
            matches!(error, VerifyError::Archive(ArchiveError::Truncated { at }) if at == cut as u64),
            "cut at {cut}: {error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("archive truncated at byte {cut}")
        );
    }
}

#[test]
fn integrity_failures_come_before_recomputation() {
    let (_store, bundle) = sealed();
    flip_byte(&bundle.join("results.csv"), 3);
    let error = verify_bundle(&bundle, &trusted(), Limits::default()).unwrap_err();
    assert!(
        matches!(&error, AuditError::Integrity(VerifyError::DigestMismatch { path, .. }) if path == "results.csv"),
        "{error:?}"
    );
}

/// A copy of a bundle directory (same name) under a fresh temp dir.
fn copy_of(bundle: &Path) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(bundle.file_name().unwrap());
    copy_tree(bundle, &copy);
    (dir, copy)
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn byproducts_must_be_exactly_the_raw_logs() {
    // A signer that records the wrong byproducts is caught even though the
    // signature is genuine.
    let (_store, bundle) = sealed();
    let mut statement = statement_of(&bundle);
    let dropped = statement.predicate.run_details.byproducts.remove(0);
    write_envelope(
        &bundle,
        &provenance::sign_statement(&statement, &signing_key()).unwrap(),
    );
    let bundle = remanifest(&bundle);
    fails_both_ways(&bundle, |error| {
        matches!(error, VerifyError::ByproductMismatch { name, problem: "a raw log missing from the byproducts" }
            if *name == dropped.name)
    });

    let mut statement = statement_of(&bundle);
    statement
        .predicate
        .run_details
        .byproducts
        .insert(0, dropped.clone());
    statement
        .predicate
        .run_details
        .byproducts
        .push(ResourceDescriptor::sha256("results.csv", "22".repeat(32)));
    write_envelope(
        &bundle,
        &provenance::sign_statement(&statement, &signing_key()).unwrap(),
    );
    let bundle = remanifest(&bundle);
    fails_both_ways(&bundle, |error| {
        matches!(error, VerifyError::ByproductMismatch { name, problem: "a byproduct that is not a raw log of the bundle" }
            if name == "results.csv")
    });
}

/// Run the `capos` binary from inside the checkout.
fn capos(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_capos"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("CAPOS_TRUSTED_KEY")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_keygen_pack_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("keys/signing.pem");
    let output = capos(&["keygen".as_ref(), "--out".as_ref(), key_path.as_os_str()]);
    assert!(output.status.success(), "{output:?}");
    let key = capos_evidence::bundle::keys::load_signing_key(&key_path).unwrap();
    let public_path = capos_evidence::bundle::keys::public_key_path(&key_path);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout,
        format!(
            "public key: {}\nkey id: {}\n",
            public_path.display(),
            provenance::key_id(&key.verifying_key())
        )
    );

    let output = capos(&["keygen".as_ref(), "--out".as_ref(), key_path.as_os_str()]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("already exists; pass --force to replace it"),
        "{output:?}"
    );

    let store = dir.path().join("store");
    let writer = BundleWriter::create(&store).unwrap();
    for (path, contents) in FILES {
        let target = writer.root().join(path);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::write(target, contents).unwrap();
    }
    let bundle = writer.seal(&key, &facts("cli")).unwrap();

    let output = capos(&["pack".as_ref(), bundle.as_os_str()]);
    assert!(output.status.success(), "{output:?}");
    let archive = pack::default_archive_path(&bundle);
    assert_eq!(fs::read(&archive).unwrap(), packed_bytes(&bundle));

    flip_byte(&bundle.join("results.csv"), 0);
    for path in [&bundle, &archive] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_capos"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CAPOS_TRUSTED_KEY", &public_path)
            .arg("verify")
            .arg(path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        if path == &bundle {
            assert!(stderr.contains("results.csv: sha256 is"), "{stderr}");
        } else {
            // The archive was packed before the flip: integrity holds, and
            // verification reaches the recomputation step.
            assert!(!stderr.contains("sha256 is"), "{stderr}");
        }
        assert!(output.stdout.is_empty());
    }

    let output = capos(&[
        "verify".as_ref(),
        bundle.as_os_str(),
        "--trusted-key".as_ref(),
        key_path.as_os_str(),
    ]);
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("this is a private key; pass its .pub file"),
        "{output:?}"
    );
}

/// Every re-wrapping of the genuine signed statement that would give the
/// bundle a new name is refused: one statement, one bundle.
#[test]
fn one_signed_statement_has_exactly_one_bundle() {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
    let (_store, original) = sealed();
    let genuine =
        provenance::parse_envelope(&fs::read(original.join(PROVENANCE_FILE)).unwrap()).unwrap();
    let payload = STANDARD.decode(&genuine.payload).unwrap();
    let mut variants: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut envelope = genuine.clone();
    envelope.payload = STANDARD_NO_PAD.encode(&payload);
    if envelope.payload != genuine.payload {
        variants.push((
            "unpadded payload",
            provenance::envelope_file_bytes(&envelope).unwrap(),
        ));
    }
    let mut envelope = genuine.clone();
    envelope.payload = URL_SAFE.encode(&payload);
    if envelope.payload != genuine.payload {
        variants.push((
            "url-safe payload",
            provenance::envelope_file_bytes(&envelope).unwrap(),
        ));
    }
    let mut envelope = genuine.clone();
    envelope.signatures[0].keyid = "a-keyid-the-attacker-chose".into();
    variants.push((
        "other keyid",
        provenance::envelope_file_bytes(&envelope).unwrap(),
    ));
    let mut envelope = genuine.clone();
    envelope.signatures.push(genuine.signatures[0].clone());
    variants.push((
        "duplicated signature",
        provenance::envelope_file_bytes(&envelope).unwrap(),
    ));
    let compact = format!("{}\n", serde_json::to_string(&genuine).unwrap());
    variants.push(("compact JSON", compact.into_bytes()));
    // The payload either has padding or a `+`/`/` (or both), so at least one
    // base64 re-spelling exists besides the three other changes.
    assert!(variants.len() >= 4, "{}", variants.len());
    for (what, bytes) in variants {
        let (_copy_dir, copy) = copy_of(&original);
        fs::write(copy.join(PROVENANCE_FILE), bytes).unwrap();
        let renamed = remanifest(&copy);
        assert_ne!(renamed.file_name(), original.file_name(), "{what}");
        let error = verify_integrity(&renamed, &trusted(), Limits::default()).unwrap_err();
        assert!(
            matches!(error, VerifyError::Provenance(_)),
            "{what}: unexpected {error:?}"
        );
    }
}

/// Rewrite the manifest line of `path` to `bytes`' digest and size, write the
/// bytes, and rename the bundle to match: what an attacker does to one file.
fn replace_listed_file(bundle: &Path, path: &str, bytes: &[u8]) -> PathBuf {
    fs::write(bundle.join(path), bytes).unwrap();
    let text = fs::read_to_string(bundle.join(MANIFEST_FILE)).unwrap();
    let mut entries = bundle::parse_manifest(text.as_bytes()).unwrap();
    for entry in &mut entries {
        if entry.path == path {
            entry.sha256 = capos_evidence::digest::sha256_hex(bytes);
            entry.size = bytes.len() as u64;
        }
    }
    let text = bundle::render_manifest(&entries);
    fs::write(bundle.join(MANIFEST_FILE), &text).unwrap();
    let renamed = bundle.with_file_name(bundle::bundle_name(text.as_bytes()));
    fs::rename(bundle, &renamed).unwrap();
    renamed
}

/// A bundle whose files were altered and whose envelope is not the trusted
/// key's fails on the signature: no file is hashed before it is checked.
#[test]
fn the_signature_is_checked_before_any_file_is_hashed() {
    let (_store, bundle) = sealed();
    flip_byte(&bundle.join("results.csv"), 3);
    let statement = statement_of(&bundle);
    let forged = provenance::envelope_file_bytes(
        &provenance::sign_statement(&statement, &attacker_key()).unwrap(),
    )
    .unwrap();
    let bundle = replace_listed_file(&bundle, PROVENANCE_FILE, &forged);
    fails_both_ways(&bundle, |error| {
        matches!(
            error,
            VerifyError::Provenance(EnvelopeError::UntrustedSigner { .. })
        )
    });
}

/// A listed file swapped for a huge sparse one is caught by its size, from
/// metadata alone: the 2 GiB are never read.
#[test]
fn sizes_are_checked_before_hashing() {
    let (_store, bundle) = sealed();
    let target = bundle.join("logs/smp-2/1/stderr.log");
    let file = fs::OpenOptions::new().write(true).open(&target).unwrap();
    file.set_len(2 << 30).unwrap();
    drop(file);
    let started = std::time::Instant::now();
    let error = verify_integrity(&bundle, &trusted(), Limits::default()).unwrap_err();
    assert!(
        matches!(&error, VerifyError::SizeMismatch { path, actual, .. }
            if path == "logs/smp-2/1/stderr.log" && *actual == 2 << 30),
        "{error:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// The size cap applies to the files a manifest lists, before any is read,
/// and to an archive's length before its first header; it can be raised.
#[test]
fn bundles_over_the_size_cap_are_refused() {
    let (_store, bundle) = sealed();
    let small = Limits {
        max_bundle_bytes: 1024,
    };
    let error = verify_integrity(&bundle, &trusted(), small).unwrap_err();
    assert!(
        matches!(&error, VerifyError::TooLarge { what, limit: 1024, .. } if what == "the bundle"),
        "{error:?}"
    );
    assert!(error.to_string().contains("--max-bundle-size"), "{error}");
    let (_dir, archive) = packed(&bundle);
    let error = verify_integrity(&archive, &trusted(), small).unwrap_err();
    assert!(
        matches!(
            error,
            VerifyError::Archive(ArchiveError::TooLarge { limit: 1024, .. })
        ),
        "{error:?}"
    );
    let roomy = Limits {
        max_bundle_bytes: 1 << 20,
    };
    verify_integrity(&bundle, &trusted(), roomy).unwrap();
    verify_integrity(&archive, &trusted(), roomy).unwrap();
}

/// A verified bundle serves exactly the verified bytes: a file changed
/// after verification is refused when read, not silently used.
#[test]
fn files_changed_after_verification_are_refused_when_read() {
    let (_store, bundle) = sealed();
    let verified = verify_integrity(&bundle, &trusted(), Limits::default()).unwrap();
    flip_byte(&bundle.join("summary.json"), 2);
    let error = verified.files.read("summary.json").unwrap_err();
    assert_eq!(
        error.to_string(),
        "summary.json: changed since it was verified"
    );
    assert!(verified.files.read("not-listed").is_err());
}

/// Names from a hostile bundle never reach the terminal raw: a forged file
/// name carrying escape sequences is shown escaped in the error.
#[test]
fn hostile_names_are_escaped_in_errors() {
    let (_store, bundle) = sealed();
    let evil = "logs/smp-2/1/\u{1b}[1A\u{1b}[2K\rverified: forged";
    fs::write(bundle.join(evil), "x").unwrap();
    let error = verify_integrity(&bundle, &trusted(), Limits::default()).unwrap_err();
    assert!(
        matches!(&error, VerifyError::UnlistedFile { path } if path == evil),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        !message.contains('\u{1b}') && !message.contains('\r'),
        "{message:?}"
    );
    assert!(
        message.contains("\\u{1b}[1A\\u{1b}[2K\\u{d}verified: forged"),
        "{message}"
    );

    // The whole CLI: nothing but escaped text on stderr.
    let key_dir = tempfile::tempdir().unwrap();
    let public = key_dir.path().join("trusted.pub");
    fs::write(
        &public,
        ed25519_dalek::pkcs8::EncodePublicKey::to_public_key_pem(
            &trusted(),
            ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF,
        )
        .unwrap(),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_capos"))
        .current_dir(key_dir.path())
        .args([
            "verify".as_ref(),
            bundle.as_os_str(),
            "--trusted-key".as_ref(),
            public.as_os_str(),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(
        !output.stderr.contains(&0x1b) && !output.stderr.contains(&b'\r'),
        "{output:?}"
    );
}
