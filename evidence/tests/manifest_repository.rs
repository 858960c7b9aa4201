//! The boot manifests under `userland/manifests/` that the kernel smoke
//! suite boots: all validate, pack into what the kernel decoder reads, and
//! hold the processes and grants the smoke programs expect.

use std::path::{Path, PathBuf};

use capos_abi::manifest::spec::{GrantSpec, ManifestSpec, ProcessSpec};
use capos_abi::manifest::Manifest;
use capos_abi::CapabilityKind;
use capos_evidence::guest::manifest;

/// The user programs the ISO packs (`cargo metadata` of capos-programs).
fn binaries() -> Vec<String> {
    manifest::known_binaries(&workspace_root()).unwrap()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn manifest_path(name: &str) -> PathBuf {
    workspace_root()
        .join("userland/manifests")
        .join(format!("system-{name}.yaml"))
}

fn load(name: &str) -> ManifestSpec {
    let path = manifest_path(name);
    match manifest::load(&path, &binaries()) {
        Ok(spec) => spec,
        Err(error) => panic!("{error:#}"),
    }
}

fn process<'a>(spec: &'a ManifestSpec, name: &str) -> &'a ProcessSpec {
    spec.processes
        .iter()
        .find(|process| process.name == name)
        .unwrap_or_else(|| panic!("no process {name}"))
}

fn kinds(process: &ProcessSpec) -> Vec<CapabilityKind> {
    process.grants.iter().map(|grant| grant.kind).collect()
}

/// Processes init starts, in order.
fn autostarted(spec: &ManifestSpec) -> Vec<&str> {
    spec.processes
        .iter()
        .filter(|process| process.autostart)
        .map(|process| process.name.as_str())
        .collect()
}

#[test]
fn discover_finds_exactly_the_smoke_manifests_sorted() {
    let found: Vec<String> = manifest::discover(&workspace_root())
        .unwrap()
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        found,
        [
            "system-bad-input.yaml",
            "system-bench.yaml",
            "system-endpoint.yaml",
            "system-exit.yaml",
            "system-fault.yaml",
            "system-fpu-state.yaml",
            "system-fuzz.yaml",
            "system-hello.yaml",
            "system-hostile-console.yaml",
            "system-hostile-endpoint.yaml",
            "system-hostile-exhaust.yaml",
            "system-hostile-flags.yaml",
            "system-hostile-spawn.yaml",
            "system-hostile-timed-wait.yaml",
            "system-lifetime-hostile.yaml",
            "system-measure-marks.yaml",
            "system-mem-routines.yaml",
            "system-park.yaml",
            "system-peer-gone.yaml",
            "system-ring.yaml",
            "system-smp-process-scale.yaml",
            "system-thread-hostile.yaml",
            "system-thread-lifecycle.yaml",
            "system-thread-scale.yaml",
            "system-timer.yaml",
            "system-tlb.yaml",
        ]
    );
}

/// measure-marks finds its capabilities in the slots its program names
/// (0 console, 1 thread-spawner, 2 boot-manifest, 3 diagnostics).
#[test]
fn measure_marks_gets_the_slots_its_program_names() {
    let spec = load("measure-marks");
    assert_eq!(autostarted(&spec), ["measure-marks"]);
    assert_eq!(
        kinds(process(&spec, "measure-marks")),
        [
            CapabilityKind::Console,
            CapabilityKind::ThreadSpawner,
            CapabilityKind::BootManifest,
            CapabilityKind::Diagnostics
        ]
    );
}

#[test]
fn every_manifest_validates_and_round_trips() {
    let known = binaries();
    for path in manifest::discover(&workspace_root()).unwrap() {
        let spec = manifest::load(&path, &known).unwrap_or_else(|error| panic!("{error:#}"));
        let bytes = manifest::pack(&path, &known).unwrap();
        assert_round_trip(&spec, &bytes);
    }
}

/// The kernel's decoder sees exactly the entries of `spec`.
fn assert_round_trip(spec: &ManifestSpec, bytes: &[u8]) {
    let packed = Manifest::parse(bytes).unwrap();
    assert_eq!(packed.init(), spec.init);
    assert_eq!(packed.object_count() as usize, spec.objects.len());
    for (index, object) in spec.objects.iter().enumerate() {
        let decoded = packed.object(index as u32).unwrap();
        assert_eq!(
            (decoded.kind, decoded.name),
            (object.kind, object.name.as_str())
        );
    }
    assert_eq!(packed.process_count() as usize, spec.processes.len());
    for (index, process) in spec.processes.iter().enumerate() {
        let decoded = packed.process(index as u32).unwrap();
        assert_eq!(decoded.name, process.name);
        assert_eq!(decoded.binary, process.binary);
        assert_eq!(decoded.arguments, process.arguments);
        assert_eq!(decoded.autostart, process.autostart);
        let grants: Vec<GrantSpec> = packed
            .grants(&decoded)
            .map(|grant| GrantSpec {
                kind: grant.kind,
                object: grant.object,
                name: grant.name.to_string(),
            })
            .collect();
        assert_eq!(grants, process.grants);
    }
}

#[test]
fn init_is_the_same_in_every_manifest() {
    for path in manifest::discover(&workspace_root()).unwrap() {
        let spec = manifest::load(&path, &binaries()).unwrap();
        let init = &spec.processes[spec.init as usize];
        let context = path.display();
        assert_eq!(init.name, "init", "{context}");
        assert_eq!(init.binary, "init", "{context}");
        assert!(!init.autostart, "{context}");
        assert_eq!(
            kinds(init),
            [
                CapabilityKind::Console,
                CapabilityKind::ProcessSpawner,
                CapabilityKind::BootManifest
            ],
            "{context}"
        );
    }
}

#[test]
fn hello_starts_hello_with_a_console() {
    let spec = load("hello");
    assert_eq!(autostarted(&spec), ["hello"]);
    assert_eq!(process(&spec, "hello").binary, "hello");
    assert_eq!(kinds(process(&spec, "hello")), [CapabilityKind::Console]);
}

#[test]
fn ring_starts_ring_smoke_with_a_console() {
    let spec = load("ring");
    assert_eq!(autostarted(&spec), ["ring-smoke"]);
    assert_eq!(
        kinds(process(&spec, "ring-smoke")),
        [CapabilityKind::Console]
    );
}

#[test]
fn endpoint_connects_client_and_server_over_ping() {
    let spec = load("endpoint");
    assert_eq!(spec.objects.len(), 1);
    assert_eq!(
        (spec.objects[0].kind, spec.objects[0].name.as_str()),
        (CapabilityKind::Endpoint, "ping")
    );
    assert_eq!(autostarted(&spec), ["endpoint-server", "endpoint-client"]);
    let ping = GrantSpec {
        kind: CapabilityKind::Endpoint,
        object: Some(0),
        name: "ping".into(),
    };
    let server = process(&spec, "endpoint-server");
    assert_eq!(server.binary, "endpoint-server");
    assert_eq!(
        kinds(server),
        [CapabilityKind::Console, CapabilityKind::EndpointServer]
    );
    // The server holds the receive right on the same object; the client
    // only the call right.
    assert_eq!(
        server.grants[1],
        GrantSpec {
            kind: CapabilityKind::EndpointServer,
            ..ping.clone()
        }
    );
    let client = process(&spec, "endpoint-client");
    assert_eq!(client.binary, "endpoint-client");
    assert_eq!(
        kinds(client),
        [
            CapabilityKind::Console,
            CapabilityKind::Endpoint,
            CapabilityKind::Timer
        ]
    );
    assert_eq!(client.grants[1], ping);
}

#[test]
fn timer_gives_timer_smoke_a_console_and_the_timer() {
    let spec = load("timer");
    assert_eq!(autostarted(&spec), ["timer-smoke"]);
    assert_eq!(
        kinds(process(&spec, "timer-smoke")),
        [CapabilityKind::Console, CapabilityKind::Timer]
    );
}

#[test]
fn exit_lets_exit_smoke_spawn_its_child() {
    let spec = load("exit");
    assert_eq!(autostarted(&spec), ["exit-smoke"]);
    assert_eq!(
        kinds(process(&spec, "exit-smoke")),
        [CapabilityKind::Console, CapabilityKind::ProcessSpawner]
    );
    let child = process(&spec, "exit-child");
    assert_eq!(child.binary, "exit-smoke");
    assert_eq!(child.arguments, "child");
    assert!(!child.autostart);
}

#[test]
fn fault_runs_a_faulting_and_a_healthy_process() {
    let spec = load("fault");
    assert_eq!(autostarted(&spec), ["fault-smoke", "hello"]);
    assert_eq!(
        kinds(process(&spec, "fault-smoke")),
        [CapabilityKind::Console]
    );
    assert_eq!(kinds(process(&spec, "hello")), [CapabilityKind::Console]);
}

#[test]
fn bad_input_gets_console_timer_manifest_and_memory() {
    let spec = load("bad-input");
    assert_eq!(autostarted(&spec), ["bad-input-smoke"]);
    assert_eq!(
        kinds(process(&spec, "bad-input-smoke")),
        [
            CapabilityKind::Console,
            CapabilityKind::Timer,
            CapabilityKind::BootManifest,
            CapabilityKind::Memory
        ]
    );
}

#[test]
fn known_binaries_are_the_programs_the_iso_packs() {
    let names = manifest::known_binaries(&workspace_root()).unwrap();
    assert_eq!(
        names,
        capos_evidence::guest::userland::program_names(&workspace_root()).unwrap()
    );
    for expected in ["init", "hello", "bad-input-smoke"] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[test]
fn known_binaries_without_a_programs_crate_says_how_to_name_them() {
    let root = tempfile::tempdir().unwrap();
    let message = format!("{:#}", manifest::known_binaries(root.path()).unwrap_err());
    assert!(message.contains("--binaries"), "{message}");
}
