//! `capos manifest check` and `capos manifest pack` as a user runs them:
//! output lines, exit codes, atomic writes and clear write errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use capos_abi::manifest::Manifest;
use capos_evidence::guest::manifest;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Run `capos --root <root> manifest <arguments>`.
fn capos(root: &Path, arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capos"))
        .arg("--root")
        .arg(root)
        .arg("manifest")
        .args(arguments)
        .env_remove("CAPOS_ROOT")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A throwaway checkout: enough for `--root` (Cargo.toml and kernel/).
fn fake_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("Cargo.toml"), "[workspace]\n").unwrap();
    std::fs::create_dir_all(root.path().join("kernel")).unwrap();
    std::fs::create_dir_all(root.path().join("userland/manifests")).unwrap();
    root
}

const VALID: &str = "\
init: init
processes:
  - name: init
    binary: init
    capabilities: [ { kind: console }, { kind: process-spawner }, { kind: boot-manifest } ]
  - { name: hello, binary: hello, autostart: true, capabilities: [ { kind: console } ] }
";

#[test]
fn check_without_files_checks_every_repository_manifest() {
    // No --binaries: the known programs come from the workspace itself.
    let output = capos(&workspace_root(), &["check"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    let ok_lines: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("ok "))
        .collect();
    let manifests = manifest::discover(&workspace_root()).unwrap();
    assert_eq!(ok_lines.len(), manifests.len(), "{stdout}");
    assert!(
        stdout.contains("system-endpoint.yaml (3 processes, 1 objects)"),
        "{stdout}"
    );
}

#[test]
fn check_reports_each_file_and_fails_if_any_failed() {
    let root = fake_root();
    let good = root.path().join("system-good.yaml");
    let bad = root.path().join("system-bad.yaml");
    std::fs::write(&good, VALID).unwrap();
    std::fs::write(&bad, VALID.replace("binary: hello", "binary: helo")).unwrap();
    let output = capos(
        root.path(),
        &[
            "check",
            "--binaries",
            "init,hello",
            good.to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("ok {} (2 processes, 0 objects)", good.display())),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "{}:6:28: processes[1].binary: unknown binary `helo`; known binaries: init, hello",
            bad.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 of 2 manifests failed validation"),
        "{stderr}"
    );
}

#[test]
fn check_without_known_binaries_says_how_to_name_them() {
    // A root that is not a cargo workspace: the program list cannot be read.
    let root = fake_root();
    std::fs::write(
        root.path().join("userland/manifests/system-small.yaml"),
        VALID,
    )
    .unwrap();
    let output = capos(root.path(), &["check"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("--binaries"), "{stderr}");
}
#[test]
fn pack_writes_the_packed_manifest_atomically() {
    let root = fake_root();
    let source = root.path().join("system-small.yaml");
    std::fs::write(&source, VALID).unwrap();
    let output_directory = root.path().join("out/manifests");
    let packed = output_directory.join("system-small.bin");
    let output = capos(
        root.path(),
        &[
            "pack",
            source.to_str().unwrap(),
            "--output",
            packed.to_str().unwrap(),
            "--binaries",
            "init,hello",
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let bytes = std::fs::read(&packed).unwrap();
    let names = vec!["init".to_string(), "hello".to_string()];
    assert_eq!(bytes, manifest::pack(&source, &names).unwrap());
    let decoded = Manifest::parse(&bytes).unwrap();
    assert_eq!(decoded.process_count(), 2);
    assert!(text(&output.stdout).contains(&format!("({} bytes)", bytes.len())));
    // Nothing but the result is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&output_directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("system-small.bin")]);
}

#[test]
fn pack_to_an_unwritable_path_says_so() {
    let root = fake_root();
    let source = root.path().join("system-small.yaml");
    std::fs::write(&source, VALID).unwrap();
    // A regular file where a directory should be: unwritable even for root.
    let blocker = root.path().join("blocker");
    std::fs::write(&blocker, "").unwrap();
    let target = blocker.join("system-small.bin");
    let output = capos(
        root.path(),
        &[
            "pack",
            source.to_str().unwrap(),
            "--output",
            target.to_str().unwrap(),
            "--binaries",
            "init,hello",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot write the packed manifest to {}",
            target.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("creating the directory"), "{stderr}");
}

#[test]
fn pack_of_an_invalid_manifest_writes_nothing() {
    let root = fake_root();
    let source = root.path().join("system-small.yaml");
    std::fs::write(&source, VALID.replace("init: init", "init: boss")).unwrap();
    let packed = root.path().join("system-small.bin");
    let output = capos(
        root.path(),
        &[
            "pack",
            source.to_str().unwrap(),
            "--output",
            packed.to_str().unwrap(),
            "--binaries",
            "init,hello",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:1:7: init: init names `boss`",
            source.display()
        )),
        "{stderr}"
    );
    assert!(!packed.exists());
}
