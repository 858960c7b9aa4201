//! The `capos` command line: every subcommand explains itself, and bad
//! arguments are refused with a message naming the problem (exit status 2
//! from argument parsing, 1 from a failed command), before anything runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn capos(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capos"))
        .args(arguments)
        .current_dir(workspace_root())
        .output()
        .expect("running capos")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn every_subcommand_has_help() {
    for subcommand in [
        &["build", "iso"][..],
        &["build", "kernel"],
        &["qemu"],
        &["accel"],
        &["run"],
        &["verify"],
        &["report"],
        &["pack"],
        &["keygen"],
        &["reproduce"],
        &["manifest", "check"],
        &["manifest", "pack"],
        &["smokes"],
        &["fuzz"],
        &["soak"],
        &["log", "verify"],
    ] {
        let mut arguments = subcommand.to_vec();
        arguments.push("--help");
        let output = capos(&arguments);
        assert!(
            output.status.success(),
            "{subcommand:?} --help: {}",
            stderr(&output)
        );
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("Usage: capos"), "{subcommand:?}: {text}");
    }
}

#[test]
fn unknown_options_and_subcommands_are_named() {
    let output = capos(&["qemu", "--bogus"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("unexpected argument '--bogus'"),
        "{}",
        stderr(&output)
    );
    let output = capos(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("unrecognized subcommand 'frobnicate'"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn out_of_range_values_are_refused_before_anything_runs() {
    for (arguments, expected) in [
        (&["qemu", "--smp", "0"][..], "0 is not in 1..=64"),
        (&["qemu", "--smp", "65"], "65 is not in 1..=64"),
        (&["qemu", "--timeout", "0"], "0 is not in 1..=86400"),
        (&["qemu", "--memory", "8"], "8 is not in 32..=65536"),
        (
            &["qemu", "--accel", "warp"],
            "invalid value 'warp' for '--accel",
        ),
        (
            &["smokes", "--smp", "many"],
            "invalid value 'many' for '--smp",
        ),
        (
            &["fuzz", "--seeds", "1,x"],
            "invalid value 'x' for '--seeds",
        ),
        (&["soak", "--boots", "0"], "invalid value '0' for '--boots"),
    ] {
        let output = capos(arguments);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}");
        assert!(
            stderr(&output).contains(expected),
            "{arguments:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn bad_inputs_to_commands_get_one_line_errors() {
    let directory = tempfile::tempdir().unwrap();
    let not_an_iso = directory.path().join("not.iso");
    std::fs::write(&not_an_iso, b"hello").unwrap();
    let output = capos(&["qemu", "--iso", not_an_iso.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("is not an ISO 9660 image"),
        "{}",
        stderr(&output)
    );

    let output = capos(&["run", "no-such-proof"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("smp-boot"),
        "lists the available proofs: {}",
        stderr(&output)
    );

    let output = capos(&["smokes", "--only", "no-such-smoke"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no smoke named \"no-such-smoke\""),
        "{}",
        stderr(&output)
    );

    let output = capos(&["--root", directory.path().to_str().unwrap(), "accel"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("is not a capOS checkout"),
        "{}",
        stderr(&output)
    );
}
