//! Auditing needs nothing but the `capos` binary, a bundle and a public key:
//! every audit command runs from an empty directory far from any checkout,
//! with `CAPOS_ROOT` unset, while the commands that build or boot say they
//! need a checkout.

mod contract_support;

use std::fs;
use std::path::PathBuf;

use capos_evidence::bundle::{keys, pack, writer};
use capos_evidence::guest::qemu::Accel;
use contract_support::*;

/// An empty working directory, a sealed bundle, its archive and the public key.
struct Audit {
    _root: tempfile::TempDir,
    empty: PathBuf,
    bundle: PathBuf,
    archive: PathBuf,
    public_key: PathBuf,
}

fn setup() -> Audit {
    let root = tempfile::tempdir().unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let key_path = root.path().join("keys/signing.pem");
    keys::write_key_pair(&key_path, &key, false).unwrap();
    let writer = writer::BundleWriter::create(&root.path().join("store")).unwrap();
    smp_boot_bundle(writer.root(), Accel::Tcg);
    let bundle = writer
        .seal(
            &key,
            &run_facts("urn:uuid:00000000-0000-4000-8000-000000000001"),
        )
        .unwrap();
    let archive = root.path().join("bundle.tar");
    pack::pack_to(&bundle, &archive).unwrap();
    let empty = root.path().join("empty");
    fs::create_dir(&empty).unwrap();
    Audit {
        empty,
        bundle,
        archive,
        public_key: keys::public_key_path(&key_path),
        _root: root,
    }
}

#[test]
fn verify_report_pack_and_reproduce_check_only_need_no_checkout() {
    let audit = setup();
    let key = audit.public_key.as_os_str();
    for bundle in [&audit.bundle, &audit.archive] {
        let output = capos_in(
            &audit.empty,
            &[
                "verify".as_ref(),
                bundle.as_os_str(),
                "--trusted-key".as_ref(),
                key,
            ],
        );
        assert!(
            output.status.success(),
            "verify {bundle:?}: {}",
            text(&output.stderr)
        );
        assert!(
            text(&output.stdout).starts_with("verified: "),
            "{}",
            text(&output.stdout)
        );
    }

    let out = audit.empty.join("report");
    let output = capos_in(
        &audit.empty,
        &[
            "report".as_ref(),
            audit.archive.as_os_str(),
            "--trusted-key".as_ref(),
            key,
            "--out".as_ref(),
            out.as_os_str(),
        ],
    );
    assert!(output.status.success(), "report: {}", text(&output.stderr));
    let markdown = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        markdown.starts_with("# Proof report: smp-boot\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains(&format!("capos {}", capos_evidence::tool::VERSION)),
        "the report names the tool that made the bundle: {markdown}"
    );

    let packed = audit.empty.join("again.tar");
    let output = capos_in(
        &audit.empty,
        &[
            "pack".as_ref(),
            audit.bundle.as_os_str(),
            "--out".as_ref(),
            packed.as_os_str(),
        ],
    );
    assert!(output.status.success(), "pack: {}", text(&output.stderr));
    assert_eq!(
        fs::read(&packed).unwrap(),
        fs::read(&audit.archive).unwrap()
    );

    let output = capos_in(
        &audit.empty,
        &[
            "reproduce".as_ref(),
            audit.archive.as_os_str(),
            "--trusted-key".as_ref(),
            key,
            "--check-only".as_ref(),
        ],
    );
    assert!(
        output.status.success(),
        "reproduce: {}",
        text(&output.stderr)
    );
    assert!(
        text(&output.stdout).contains("check only: nothing was built or run"),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn building_and_booting_still_say_they_need_a_checkout() {
    let audit = setup();
    for arguments in [
        &["build", "iso"][..],
        &["accel"],
        &["run", "smp-boot"],
        &["keygen"],
    ] {
        let arguments: Vec<&std::ffi::OsStr> = arguments.iter().map(|word| word.as_ref()).collect();
        let output = capos_in(&audit.empty, &arguments);
        assert_eq!(output.status.code(), Some(1), "{arguments:?}");
        assert!(
            text(&output.stderr).contains("not inside a capOS checkout"),
            "{arguments:?}: {}",
            text(&output.stderr)
        );
    }
    let key = audit.empty.join("mine.pem");
    let output = capos_in(
        &audit.empty,
        &["keygen".as_ref(), "--out".as_ref(), key.as_os_str()],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn a_missing_key_file_is_reported_once() {
    let audit = setup();
    let missing = audit.empty.join("nope.pub");
    let output = capos_in(
        &audit.empty,
        &[
            "verify".as_ref(),
            audit.bundle.as_os_str(),
            "--trusted-key".as_ref(),
            missing.as_os_str(),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("nope.pub"), "{stderr}");
}
