//! Boot-manifest validation: every class of mistake is rejected with a
//! message that names the file, the line and column, and what to fix.

use std::path::{Path, PathBuf};

use capos_abi::manifest::spec::{GrantSpec, ManifestSpec};
use capos_abi::manifest::Manifest;
use capos_abi::CapabilityKind;
use capos_evidence::guest::manifest::{self, Location, ManifestError};

/// The boot modules the tests treat as known.
fn binaries() -> Vec<String> {
    [
        "init",
        "hello",
        "endpoint-server",
        "endpoint-client",
        "exit-smoke",
    ]
    .map(String::from)
    .to_vec()
}

/// A manifest file in its own temporary directory.
struct TestFile {
    _directory: tempfile::TempDir,
    path: PathBuf,
}

fn write(text: &str) -> TestFile {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("system-test.yaml");
    std::fs::write(&path, text).unwrap();
    TestFile {
        _directory: directory,
        path,
    }
}

/// Load `text`, expecting a rejection; return the full message and the error.
fn reject(text: &str) -> (String, ManifestError) {
    let file = write(text);
    let error = match manifest::load(&file.path, &binaries()) {
        Ok(spec) => panic!("expected a rejection, got {spec:#?}"),
        Err(error) => error,
    };
    let message = format!("{error:#}");
    let error = error
        .downcast::<ManifestError>()
        .expect("the error is a ManifestError");
    assert_eq!(error.file, file.path);
    (message, error)
}

/// `<file>:<line>:<column>: ` as the message prints it.
fn at(line: usize, column: usize) -> String {
    format!("system-test.yaml:{line}:{column}: ")
}

fn assert_contains(message: &str, expected: &str) {
    assert!(
        message.contains(expected),
        "message does not contain {expected:?}:\n{message}"
    );
}

/// The init process every valid test manifest starts with.
const INIT: &str = "\
init: init
processes:
  - name: init
    binary: init
    capabilities:
      - { kind: console }
      - { kind: process-spawner }
      - { kind: boot-manifest }
";

fn accept(text: &str) -> ManifestSpec {
    let file = write(text);
    match manifest::load(&file.path, &binaries()) {
        Ok(spec) => spec,
        Err(error) => panic!("expected acceptance, got:\n{error:#}"),
    }
}

#[test]
fn a_valid_manifest_maps_to_slots_in_order() {
    let spec = accept(
        "\
init: init
objects:
  - { kind: endpoint, name: ping }
  - { kind: endpoint, name: pong }
processes:
  - name: server
    binary: endpoint-server
    args: rounds=3
    autostart: true
    capabilities:
      - { kind: endpoint, object: pong }
      - { kind: timer, name: clock }
  - name: init
    binary: init
    capabilities:
      - { kind: console }
      - { kind: process-spawner }
",
    );
    assert_eq!(spec.init, 1);
    assert_eq!(spec.objects.len(), 2);
    assert_eq!(spec.objects[1].name, "pong");
    let server = &spec.processes[0];
    assert_eq!(
        (server.binary.as_str(), server.arguments.as_str()),
        ("endpoint-server", "rounds=3")
    );
    assert!(server.autostart);
    assert_eq!(
        server.grants,
        [
            GrantSpec {
                kind: CapabilityKind::Endpoint,
                object: Some(1),
                name: "pong".into()
            },
            GrantSpec {
                kind: CapabilityKind::Timer,
                object: None,
                name: "clock".into()
            },
        ]
    );
    let init = &spec.processes[1];
    assert!(!init.autostart);
    assert_eq!(init.arguments, "");
    assert_eq!(init.grants[1].name, "process-spawner");
}

#[test]
fn packing_round_trips_through_the_kernel_decoder() {
    let file = write(
        "\
init: init
objects:
  - { kind: endpoint, name: ping }
processes:
  - name: init
    binary: init
    capabilities: [ { kind: console }, { kind: process-spawner }, { kind: boot-manifest } ]
  - name: client
    binary: endpoint-client
    args: \"calls=5 verbose\"
    autostart: true
    capabilities:
      - { kind: endpoint, object: ping, name: server }
      - { kind: timer }
",
    );
    let spec = manifest::load(&file.path, &binaries()).unwrap();
    let bytes = manifest::pack(&file.path, &binaries()).unwrap();
    assert_eq!(bytes, capos_abi::manifest::spec::encode(&spec));
    let packed = Manifest::parse(&bytes).unwrap();
    assert_eq!(packed.init(), 0);
    assert_eq!(packed.object_count(), 1);
    assert_eq!(packed.object(0).unwrap().name, "ping");
    let (index, client) = packed.find_process("client").unwrap();
    assert_eq!(index, 1);
    assert_eq!(client.arguments, "calls=5 verbose");
    assert!(client.autostart);
    let grants: Vec<_> = packed
        .grants(&client)
        .map(|grant| (grant.kind, grant.object, grant.name.to_string()))
        .collect();
    assert_eq!(
        grants,
        [
            (CapabilityKind::Endpoint, Some(0), "server".to_string()),
            (CapabilityKind::Timer, None, "timer".to_string()),
        ]
    );
}

#[test]
fn bad_yaml_syntax_points_at_the_line() {
    let (message, error) = reject(
        "\
init: init
processes:
  - name: init
    binary: init
    capabilities: [ { kind: console }
  - name: hello
",
    );
    assert_contains(&message, "did not find expected ',' or ']'");
    assert_contains(
        &message,
        "while parsing a flow sequence at line 5 column 19",
    );
    assert_eq!(error.diagnostics.len(), 1);
    assert!(error.diagnostics[0].location.is_some());
}

#[test]
fn bad_indentation_points_at_the_line() {
    let (message, _) = reject(
        "\
init: init
processes:
  - name: init
    binary: init
   args: x
",
    );
    assert_contains(&message, &at(5, 4));
    assert_contains(&message, "did not find expected '-' indicator");
    // The caret display shows the offending line.
    assert_contains(&message, " 5 |    args: x\n   |    ^");
}

#[test]
fn tabs_are_rejected_with_their_line() {
    let (message, _) = reject("init: init\nprocesses:\n  - name: init\n\tbinary: init\n");
    assert_contains(&message, &at(4, 1));
    assert_contains(&message, "tab character");
}

#[test]
fn an_empty_file_is_named_as_such() {
    let (message, _) = reject("# nothing yet\n");
    assert_contains(&message, "system-test.yaml: the manifest is empty");
}

#[test]
fn a_missing_file_names_the_file() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("system-absent.yaml");
    let message = format!("{:#}", manifest::load(&path, &binaries()).unwrap_err());
    assert_contains(&message, "system-absent.yaml: cannot read the manifest");
}

#[test]
fn unknown_fields_are_rejected_at_every_level() {
    let (message, _) = reject(&format!("{INIT}color: red\n"));
    assert_contains(&message, &at(9, 1));
    assert_contains(
        &message,
        "unknown field `color`, expected one of `init`, `objects`, `processes`",
    );

    let (message, _) =
        reject(&INIT.replace("    binary: init\n", "    binary: init\n    argv: x\n"));
    assert_contains(&message, &at(5, 5));
    assert_contains(&message, "processes[0]: unknown field `argv`, expected one of `name`, `binary`, `args`, `autostart`, `capabilities`");

    let (message, _) = reject(&INIT.replace("{ kind: console }", "{ kind: console, slot: 3 }"));
    assert_contains(&message, &at(6, 26));
    assert_contains(&message, "processes[0].capabilities[0]: unknown field `slot`, expected one of `kind`, `object`, `name`");
}

#[test]
fn missing_required_fields_are_named() {
    let (message, _) = reject("init: init\nprocesses:\n  - name: init\n");
    assert_contains(&message, &at(3, 5));
    assert_contains(&message, "processes[0]: missing field `binary`");
}

#[test]
fn unknown_capability_kinds_list_the_valid_ones() {
    let (message, _) = reject(&INIT.replace("{ kind: console }", "{ kind: consol }"));
    assert_contains(&message, &at(6, 17));
    assert_contains(
        &message,
        "processes[0].capabilities[0].kind: unknown capability kind `consol`; \
         valid kinds: console, process-spawner, endpoint, timer, boot-manifest",
    );
}

#[test]
fn object_kinds_are_limited_to_endpoints() {
    let (message, _) = reject(&INIT.replace(
        "processes:\n",
        "objects:\n  - { kind: mailbox, name: box }\nprocesses:\n",
    ));
    assert_contains(&message, &at(3, 13));
    assert_contains(
        &message,
        "objects[0].kind: unknown object kind `mailbox`; valid object kinds: endpoint",
    );

    let (message, _) = reject(&INIT.replace(
        "processes:\n",
        "objects:\n  - { kind: timer, name: clock }\nprocesses:\n",
    ));
    assert_contains(&message, &at(3, 13));
    assert_contains(
        &message,
        "`timer` is a kernel singleton, not a named object",
    );
}

#[test]
fn duplicate_process_names_point_at_both_definitions() {
    let (message, error) = reject(&format!(
        "{INIT}  - name: hello\n    binary: hello\n  - name: hello\n    binary: init\n"
    ));
    assert_contains(&message, &at(11, 11));
    assert_contains(
        &message,
        "processes[2].name: duplicate process name `hello` (first defined at line 9)",
    );
    assert_eq!(
        error.diagnostics[0].location,
        Some(Location {
            line: 11,
            column: 11
        })
    );
}

#[test]
fn duplicate_object_names_point_at_both_definitions() {
    let (message, _) = reject(&INIT.replace(
        "processes:\n",
        "objects:\n  - { kind: endpoint, name: ping }\n  - kind: endpoint\n    name: ping\nprocesses:\n",
    ));
    assert_contains(&message, &at(5, 11));
    assert_contains(
        &message,
        "objects[1].name: duplicate object name `ping` (first defined at line 3)",
    );
}

#[test]
fn unknown_binaries_list_the_known_ones() {
    let (message, _) = reject(&format!("{INIT}  - name: hello\n    binary: helo\n"));
    assert_contains(&message, &at(10, 13));
    assert_contains(
        &message,
        "processes[1].binary: unknown binary `helo`; known binaries: init, hello, endpoint-server, endpoint-client, exit-smoke",
    );
}

#[test]
fn endpoint_grants_need_an_object() {
    let with_ping = INIT.replace(
        "processes:\n",
        "objects:\n  - { kind: endpoint, name: ping }\nprocesses:\n",
    );
    let (message, _) = reject(&format!(
        "{with_ping}  - name: client\n    binary: endpoint-client\n    capabilities:\n      - kind: endpoint\n"
    ));
    assert_contains(&message, &at(14, 9));
    assert_contains(
        &message,
        "processes[1].capabilities[0]: an `endpoint` or `endpoint-server` grant needs `object: <name>` naming an endpoint object; objects of that kind: ping",
    );
}

#[test]
fn endpoint_grants_must_name_an_existing_object() {
    let with_ping = INIT.replace(
        "processes:\n",
        "objects:\n  - { kind: endpoint, name: ping }\nprocesses:\n",
    );
    let (message, _) = reject(&format!(
        "{with_ping}  - name: client\n    binary: endpoint-client\n    capabilities:\n      - {{ kind: endpoint, object: pnig }}\n"
    ));
    assert_contains(&message, &at(14, 35));
    assert_contains(
        &message,
        "processes[1].capabilities[0].object: no object named `pnig`; objects of that kind: ping",
    );

    let (message, _) = reject(&format!(
        "{INIT}  - name: client\n    binary: endpoint-client\n    capabilities:\n      - {{ kind: endpoint, object: ping }}\n"
    ));
    assert_contains(&message, &at(12, 35));
    assert_contains(
        &message,
        "no object named `ping`; the manifest declares no such object (add one under `objects:`)",
    );
}

#[test]
fn singletons_take_no_object() {
    let with_ping = INIT.replace(
        "processes:\n",
        "objects:\n  - { kind: endpoint, name: ping }\nprocesses:\n",
    );
    let (message, _) = reject(&with_ping.replace(
        "{ kind: process-spawner }",
        "{ kind: process-spawner, object: ping }",
    ));
    assert_contains(&message, &at(9, 42));
    assert_contains(
        &message,
        "processes[0].capabilities[1].object: `process-spawner` is a kernel singleton; remove `object`",
    );
}

#[test]
fn process_handles_cannot_be_granted() {
    let (message, _) = reject(&INIT.replace("{ kind: boot-manifest }", "{ kind: process-handle }"));
    assert_contains(&message, &at(8, 17));
    assert_contains(
        &message,
        "processes[0].capabilities[2].kind: `process-handle` cannot be granted in a manifest: process handles come from spawning",
    );
}

#[test]
fn init_must_name_a_process() {
    let (message, _) = reject(&INIT.replace("init: init", "init: boss"));
    assert_contains(&message, &at(1, 7));
    assert_contains(
        &message,
        "init: init names `boss`, but no process has that name; processes: init",
    );
}

#[test]
fn init_is_not_autostarted() {
    let (message, _) = reject(&INIT.replace(
        "    binary: init\n",
        "    binary: init\n    autostart: true\n",
    ));
    assert_contains(&message, &at(5, 16));
    assert_contains(
        &message,
        "processes[0].autostart: the init process `init` is started by the kernel",
    );
}

#[test]
fn an_empty_process_list_is_rejected() {
    let (message, _) = reject("init: init\nobjects: []\nprocesses: []\n");
    assert_contains(&message, &at(3, 12));
    assert_contains(
        &message,
        "processes: no processes; a manifest needs at least its init process",
    );
    assert_contains(&message, "processes: (none)");
}

#[test]
fn more_than_64_processes_are_rejected_at_the_65th() {
    let mut text = INIT.to_string();
    for index in 1..65 {
        text.push_str(&format!("  - {{ name: p{index}, binary: hello }}\n"));
    }
    let (message, _) = reject(&text);
    // INIT is 8 lines; process 64 (the 65th) is on line 8 + 64.
    assert_contains(&message, &at(72, 5));
    assert_contains(
        &message,
        "processes[64]: too many processes: 65 (at most 64)",
    );
}

#[test]
fn more_than_64_objects_are_rejected_at_the_65th() {
    let mut objects = String::from("objects:\n");
    for index in 0..65 {
        objects.push_str(&format!("  - {{ kind: endpoint, name: e{index} }}\n"));
    }
    let (message, _) = reject(&INIT.replace("processes:\n", &format!("{objects}processes:\n")));
    assert_contains(&message, &at(67, 5));
    assert_contains(&message, "objects[64]: too many objects: 65 (at most 64)");
}

#[test]
fn more_than_16_capabilities_are_rejected_at_the_17th() {
    let mut objects = String::from("objects:\n");
    let mut grants = String::new();
    for index in 0..17 {
        objects.push_str(&format!("  - {{ kind: endpoint, name: e{index} }}\n"));
        grants.push_str(&format!("      - {{ kind: endpoint, object: e{index} }}\n"));
    }
    let (message, _) = reject(&format!(
        "{}  - name: server\n    binary: endpoint-server\n    capabilities:\n{grants}",
        INIT.replace("processes:\n", &format!("{objects}processes:\n"))
    ));
    // 1 init line + 18 object lines + 7 process lines + 3 server lines + 16 grants.
    assert_contains(&message, &at(46, 9));
    assert_contains(
        &message,
        "processes[1].capabilities[16]: process `server` is granted 17 capabilities (at most 16)",
    );
}

#[test]
fn arguments_are_bounded_and_nul_free() {
    let long = "x".repeat(257);
    let (message, _) = reject(&format!(
        "{INIT}  - name: hello\n    binary: hello\n    args: {long}\n"
    ));
    assert_contains(&message, &at(11, 11));
    assert_contains(
        &message,
        "processes[1].args: args is 257 bytes long (at most 256)",
    );

    accept(&format!(
        "{INIT}  - name: hello\n    binary: hello\n    args: {}\n",
        "x".repeat(256)
    ));

    let (message, _) = reject(&format!(
        "{INIT}  - name: hello\n    binary: hello\n    args: \"a\\0b\"\n"
    ));
    assert_contains(&message, &at(11, 11));
    assert_contains(&message, "processes[1].args: args contains a NUL character");
}

#[test]
fn names_must_be_non_empty_and_short() {
    let (message, _) = reject(&format!("{INIT}  - name: \"\"\n    binary: hello\n"));
    assert_contains(&message, &at(9, 11));
    assert_contains(&message, "processes[1].name: process name `` is empty");

    let long = "n".repeat(65);
    let (message, _) = reject(&INIT.replace(
        "{ kind: console }",
        &format!("{{ kind: console, name: {long} }}"),
    ));
    assert_contains(&message, &at(6, 32));
    assert_contains(&message, "handle name `nnn");
    assert_contains(&message, "` is 65 bytes long (at most 64)");
}

#[test]
fn handle_names_are_unique_per_process() {
    let (message, _) = reject(&INIT.replace(
        "{ kind: boot-manifest }",
        "{ kind: boot-manifest, name: console }",
    ));
    assert_contains(&message, &at(8, 38));
    assert_contains(
        &message,
        "processes[0].capabilities[2].name: process `init` already has a handle named `console` (slot 0)",
    );
}

#[test]
fn every_problem_is_reported_in_document_order() {
    let (message, error) = reject(
        "\
init: boss
processes:
  - name: init
    binary: helo
    capabilities:
      - { kind: endpoint, object: ping }
",
    );
    let lines: Vec<Option<usize>> = error
        .diagnostics
        .iter()
        .map(|diagnostic| diagnostic.location.map(|location| location.line))
        .collect();
    assert_eq!(lines, [Some(1), Some(4), Some(6)], "{message}");
    let first = message.find(&at(1, 7)).unwrap();
    let second = message.find(&at(4, 13)).unwrap();
    let third = message.find(&at(6, 35)).unwrap();
    assert!(first < second && second < third, "{message}");
}

#[test]
fn the_file_is_named_as_given() {
    let file = write("init: [");
    let error = manifest::load(&file.path, &binaries()).unwrap_err();
    let expected: &Path = &file.path;
    assert!(format!("{error:#}").starts_with(&format!("{}:", expected.display())));
}
