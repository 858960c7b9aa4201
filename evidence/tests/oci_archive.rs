//! The shared archive against a real OCI registry on 127.0.0.1: Debian's
//! `docker-registry` (installed by `ci/install-deps`), started on a free
//! port with its storage in a temporary directory and stopped when the test
//! ends. A small proxy in front of it alters blob bytes or refuses access,
//! for the refusals a real registry will not produce on demand.
//!
//! Every test fails (never skips) when `docker-registry` is missing.

mod contract_support;

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use capos_evidence::bundle::verify::Limits;
use capos_evidence::bundle::{keys, pack, writer};
use capos_evidence::guest::qemu::Accel;
use capos_evidence::proof::attestation::{self, AttestedBundle};
use capos_evidence::proof::audit;
use contract_support::*;
use ed25519_dalek::SigningKey;

/// A running `docker-registry serve`, stopped on drop.
struct Registry {
    child: Child,
    port: u16,
    _storage: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port on 127.0.0.1")
}

fn start_registry() -> Registry {
    let storage = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = storage.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot start docker-registry ({error}); install it (ci/install-deps installs Debian's docker-registry)")
        });
    let registry = Registry {
        child,
        port,
        _storage: storage,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return registry;
            }
        }
        assert!(
            Instant::now() < deadline,
            "docker-registry did not answer on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the proxy does to the registry's answers.
#[derive(Clone, Copy)]
enum Mischief {
    /// Flip the last byte of every blob body.
    AlterBlobs,
    /// Answer 401 to everything.
    RefuseAccess,
}

/// A one-request-per-connection HTTP proxy to `upstream`, running until the test ends.
fn start_proxy(upstream: u16, mischief: Mischief) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = proxy_one(client, upstream, mischief);
            });
        }
    });
    port
}

fn proxy_one(mut client: TcpStream, upstream: u16, mischief: Mischief) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 8192];
    let head_end = loop {
        let read = client.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buffer[..read]);
        if let Some(end) = find(&request, b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let length = header(&head, "content-length").unwrap_or(0);
    while request.len() < head_end + length {
        let read = client.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..read]);
    }
    if let Mischief::RefuseAccess = mischief {
        client.write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"test\"\r\nContent-Type: application/json\r\nContent-Length: 67\r\nConnection: close\r\n\r\n{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}")?;
        return Ok(());
    }
    let mut lines: Vec<&str> = head[..head.len() - 4].split("\r\n").collect();
    lines.retain(|line| !line.to_ascii_lowercase().starts_with("connection:"));
    let rewritten = format!("{}\r\nConnection: close\r\n\r\n", lines.join("\r\n"));
    let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
    server.write_all(rewritten.as_bytes())?;
    server.write_all(&request[head_end..])?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
    let is_blob_get = head.starts_with("GET ") && head.contains("/blobs/sha256:");
    if is_blob_get && response.starts_with(b"HTTP/1.1 200") {
        if let Some(body) = find(&response, b"\r\n\r\n") {
            if response.len() > body + 4 {
                let last = response.len() - 1;
                response[last] ^= 0x01;
            }
        }
    }
    client.write_all(&response)?;
    client.shutdown(Shutdown::Both)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn header(head: &str, name: &str) -> Option<usize> {
    head.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim().eq_ignore_ascii_case(name)).then(|| value.trim().parse().ok())?
    })
}

/// Keys, bundles and attestations for the archive tests.
struct World {
    root: tempfile::TempDir,
    builder_public: PathBuf,
    policy: PathBuf,
    original: PathBuf,
    other: PathBuf,
    /// Attestations: alice about the original (counted), mallory (outside
    /// the policy), the builder (not independent), alice about `other`.
    alice: PathBuf,
    mallory: PathBuf,
    builder_own: PathBuf,
    alice_other: PathBuf,
    /// Alice's reproduction bundle, signed with her key.
    alice_bundle: PathBuf,
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn sealed(
    root: &Path,
    store: &str,
    key: &SigningKey,
    one: &[u64],
    two: &[u64],
    id: &str,
) -> PathBuf {
    let writer = writer::BundleWriter::create(&root.join(store)).unwrap();
    scale_bundle(writer.root(), Accel::Tcg, one, two);
    writer
        .seal(
            key,
            &run_facts(&format!("urn:uuid:00000000-0000-4000-8000-{id:0>12}")),
        )
        .unwrap()
}

fn attest(
    root: &Path,
    original: &Path,
    original_key: &SigningKey,
    reproduction: &Path,
    signer: &SigningKey,
    name: &str,
) -> PathBuf {
    let limits = Limits::default();
    let original = audit::verify_bundle(original, &original_key.verifying_key(), limits).unwrap();
    let reproduced = audit::verify_bundle(reproduction, &signer.verifying_key(), limits).unwrap();
    let statement = attestation::build(
        &AttestedBundle::read(&original).unwrap(),
        &AttestedBundle::read(&reproduced).unwrap(),
        25.0,
        "test",
        "2026-12-07T12:00:00Z",
    )
    .unwrap();
    let path = root
        .join("attestations")
        .join(format!("{name}{}", attestation::FILE_SUFFIX));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, attestation::sign(&statement, signer).unwrap()).unwrap();
    path
}

fn world() -> World {
    let root = tempfile::tempdir().unwrap();
    let (builder, alice, mallory) = (key(1), key(2), key(3));
    let keys_dir = root.path().join("keys");
    for (name, key) in [
        ("builder", &builder),
        ("alice", &alice),
        ("mallory", &mallory),
    ] {
        keys::write_key_pair(&keys_dir.join(format!("{name}.pem")), key, false).unwrap();
    }
    let policy = root.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "builders:\n  - name: ci\n    public_key_file: keys/builder.pem.pub\nreproducers:\n  - name: alice\n    public_key_file: keys/alice.pem.pub\n",
    )
    .unwrap();
    let fast = [1_000_000, 1_010_000, 990_000];
    let half = [520_000, 515_000, 510_000];
    let original = sealed(root.path(), "store", &builder, &fast, &half, "1");
    let other = sealed(
        root.path(),
        "store",
        &builder,
        &[2_000_000; 3],
        &[1_000_000; 3],
        "2",
    );
    let by_alice = sealed(
        root.path(),
        "alice-store",
        &alice,
        &[1_050_000; 3],
        &[540_000; 3],
        "3",
    );
    let by_mallory = sealed(root.path(), "mallory-store", &mallory, &fast, &half, "4");
    let by_builder = sealed(root.path(), "store", &builder, &fast, &half, "5");
    let alice_attestation = attest(root.path(), &original, &builder, &by_alice, &alice, "alice");
    let mallory_attestation = attest(
        root.path(),
        &original,
        &builder,
        &by_mallory,
        &mallory,
        "mallory",
    );
    let builder_attestation = attest(
        root.path(),
        &original,
        &builder,
        &by_builder,
        &builder,
        "builder",
    );
    let alice_other = attest(
        root.path(),
        &other,
        &builder,
        &by_alice,
        &alice,
        "alice-other",
    );
    World {
        builder_public: keys_dir.join("builder.pem.pub"),
        policy,
        original,
        other,
        alice: alice_attestation,
        mallory: mallory_attestation,
        builder_own: builder_attestation,
        alice_other,
        alice_bundle: by_alice,
        root,
    }
}

fn capos(directory: &Path, arguments: &[&str]) -> (bool, String, String) {
    let arguments: Vec<&std::ffi::OsStr> = arguments.iter().map(|a| a.as_ref()).collect();
    let output = capos_in(directory, &arguments);
    (
        output.status.success(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

fn empty_dir(world: &World, name: &str) -> PathBuf {
    let dir = world.root.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn push_pull_verify_and_report_with_reproductions_from_an_empty_directory() {
    let registry = start_registry();
    let world = world();
    let reference = format!("127.0.0.1:{}/capos/evidence:scale", registry.port);
    let here = world.root.path();
    let (ok, out, err) = capos(
        here,
        &["push", world.original.to_str().unwrap(), &reference],
    );
    assert!(ok, "push: {out}{err}");
    assert!(out.starts_with("pushed bundle "), "{out}");

    for attestation in [&world.alice, &world.mallory, &world.builder_own] {
        let (ok, out, err) = capos(here, &["push", attestation.to_str().unwrap(), &reference]);
        assert!(ok, "push attestation: {out}{err}");
        assert!(out.starts_with("attached attestation sha256:"), "{out}");
    }
    // An attestation about another bundle is not attached to this one.
    let (ok, _, err) = capos(
        here,
        &["push", world.alice_other.to_str().unwrap(), &reference],
    );
    assert!(!ok);
    assert!(err.contains("attests bundle"), "{err}");

    let empty = empty_dir(&world, "empty");
    let key = world.builder_public.to_str().unwrap();
    let oci = format!("oci://{reference}");
    let (ok, out, err) = capos(&empty, &["pull", &reference]);
    assert!(ok, "pull: {out}{err}");
    let name = world.original.file_name().unwrap().to_str().unwrap();
    let pulled = empty.join(format!("{name}.tar"));
    assert!(pulled.is_file(), "{out}");
    assert_eq!(
        std::fs::read(&pulled).unwrap(),
        pack::pack_to_writer(&world.original, Vec::new()).unwrap(),
        "the pulled tar is the deterministic pack of the bundle"
    );
    // Without a tag, the tag is the bundle name (never `latest`).
    let untagged = format!("127.0.0.1:{}/capos/evidence", registry.port);
    let (ok, out, err) = capos(here, &["push", world.other.to_str().unwrap(), &untagged]);
    assert!(ok, "push untagged: {out}{err}");
    let other_name = world.other.file_name().unwrap().to_str().unwrap();
    assert!(out.contains(&format!("(tag {other_name})")), "{out}");
    let (ok, out, err) = capos(
        &empty,
        &[
            "verify",
            &format!("oci://{untagged}:{other_name}"),
            "--trusted-key",
            key,
        ],
    );
    assert!(ok, "verify by bundle-name tag: {out}{err}");
    let (ok, out, err) = capos(&empty, &["verify", &oci, "--trusted-key", key]);
    assert!(ok, "verify oci: {out}{err}");
    assert!(out.contains(&format!("verified: {name}")), "{out}");

    let policy = world.policy.to_str().unwrap();
    let (ok, out, err) = capos(
        &empty,
        &[
            "report",
            &oci,
            "--trusted-key",
            key,
            "--policy",
            policy,
            "--out",
            "report",
        ],
    );
    assert!(ok, "report oci: {out}{err}");
    assert!(
        out.contains(
            "reproductions: reproduced by 1 independent key on 1 host; 0 disagreements; 2 refused"
        ),
        "{out}"
    );
    assert!(
        out.contains("which the trust policy does not name as a reproducer"),
        "{out}"
    );
    assert!(out.contains("is not independent"), "{out}");
    let markdown = std::fs::read_to_string(empty.join("report/report.md")).unwrap();
    assert!(markdown.contains("## Reproductions"), "{markdown}");
    assert!(markdown.contains("| alice |"), "{markdown}");
    let html = std::fs::read_to_string(empty.join("report/report.html")).unwrap();
    assert!(
        html.contains("reproduced by 1 independent key on 1 host"),
        "{html}"
    );

    let (ok, out, err) = capos(
        &empty,
        &[
            "reproductions",
            &reference,
            "--policy",
            policy,
            "--trusted-key",
            key,
        ],
    );
    assert!(ok, "reproductions: {out}{err}");
    assert!(out.contains(": 3 attestations"), "{out}");
    assert!(out.contains("counted (alice): agrees"), "{out}");

    // The whole repository: both bundles verified, the refused attestations
    // make the audit fail, the index is written anyway.
    let (ok, out, err) = capos(
        &empty,
        &[
            "archive",
            "audit",
            &format!("oci://127.0.0.1:{}/capos/evidence", registry.port),
            "--trusted-key",
            key,
            "--policy",
            policy,
            "--out",
            "index",
        ],
    );
    assert!(!ok, "refused attestations fail the audit: {out}");
    assert!(err.contains("does not fully verify"), "{err}");
    assert!(
        out.starts_with("2 bundles verified, 0 failed verification; 0 run logs verified (0 entries), 0 refused; 2 bundles no run log mentions; attestations: 1 counted, 2 refused"),
        "{out}"
    );
    let index = std::fs::read_to_string(empty.join("index/index.md")).unwrap();
    assert!(index.contains("## prime-scale"), "{index}");
    assert!(index.contains("1 agree"), "{index}");
    assert!(std::fs::read_to_string(empty.join("index/index.html"))
        .unwrap()
        .contains("<svg"));
}

#[test]
fn attestations_for_another_bundle_or_with_a_bad_signature_are_refused() {
    let world = world();
    let dir = empty_dir(&world, "only-other");
    std::fs::copy(
        &world.alice_other,
        dir.join(format!("x{}", attestation::FILE_SUFFIX)),
    )
    .unwrap();
    let mut forged = std::fs::read_to_string(&world.alice).unwrap();
    // Re-sign nothing: swap the payload for the other attestation's payload.
    let other = std::fs::read_to_string(&world.alice_other).unwrap();
    let payload = |text: &str| {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        value["payload"].as_str().unwrap().to_owned()
    };
    forged = forged.replace(&payload(&forged), &payload(&other));
    std::fs::write(
        dir.join(format!("forged{}", attestation::FILE_SUFFIX)),
        forged,
    )
    .unwrap();
    let (ok, out, err) = capos(
        world.root.path(),
        &[
            "verify",
            world.original.to_str().unwrap(),
            "--trusted-key",
            world.builder_public.to_str().unwrap(),
            "--policy",
            world.policy.to_str().unwrap(),
            "--reproductions",
            dir.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("not reproduced by any independent key; 0 disagreements; 2 refused"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "it attests bundle {}, not this bundle",
            world.other.file_name().unwrap().to_str().unwrap()
        )),
        "{out}"
    );
    assert!(out.contains("the signature does not verify"), "{out}");
}

#[test]
fn attest_signs_for_an_existing_reproduction_made_with_the_same_key() {
    let world = world();
    let here = world.root.path();
    let keys_dir = here.join("keys");
    let store = here.join("attested");
    let run = |signing: &str| {
        capos(
            here,
            &[
                "attest",
                world.original.to_str().unwrap(),
                world.alice_bundle.to_str().unwrap(),
                "--trusted-key",
                world.builder_public.to_str().unwrap(),
                "--signing-key",
                keys_dir.join(signing).to_str().unwrap(),
                "--store",
                store.to_str().unwrap(),
            ],
        )
    };
    let (ok, _, err) = run("mallory.pem");
    assert!(!ok, "mallory did not sign alice's reproduction");
    assert!(
        err.contains("does not verify with the attesting key"),
        "{err}"
    );
    let (ok, out, err) = run("alice.pem");
    assert!(ok, "{out}{err}");
    assert!(out.contains("(PASSED, about bundle"), "{out}");
    let (ok, out, err) = capos(
        here,
        &[
            "verify",
            world.original.to_str().unwrap(),
            "--trusted-key",
            world.builder_public.to_str().unwrap(),
            "--policy",
            world.policy.to_str().unwrap(),
            "--reproductions",
            store.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("reproductions: reproduced by 1 independent key on 1 host; 0 disagreements\n"),
        "{out}"
    );
}

#[test]
fn a_registry_serving_altered_bytes_is_refused() {
    let registry = start_registry();
    let world = world();
    let reference = format!("127.0.0.1:{}/capos/evidence:t", registry.port);
    let (ok, out, err) = capos(
        world.root.path(),
        &["push", world.original.to_str().unwrap(), &reference],
    );
    assert!(ok, "{out}{err}");
    // A size cap is applied from the descriptor, before any download.
    let capped = empty_dir(&world, "capped");
    let (ok, _, err) = capos(&capped, &["pull", &reference, "--max-bundle-size", "1K"]);
    assert!(!ok);
    assert!(err.contains("over the 1024-byte limit"), "{err}");
    assert!(
        std::fs::read_dir(&capped).unwrap().next().is_none(),
        "nothing is written"
    );
    let proxy = start_proxy(registry.port, Mischief::AlterBlobs);
    let empty = empty_dir(&world, "empty");
    let (ok, out, err) = capos(
        &empty,
        &["pull", &format!("127.0.0.1:{proxy}/capos/evidence:t")],
    );
    assert!(!ok, "pull through an altering proxy must fail: {out}");
    assert!(
        err.contains("the registry served bytes with digest"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(&empty).unwrap().next().is_none(),
        "nothing is written"
    );
}

#[test]
fn unreachable_registry_refused_access_and_unknown_repository_are_named() {
    let world = world();
    let here = world.root.path();
    let closed = free_port();
    let (ok, _, err) = capos(
        here,
        &["pull", &format!("127.0.0.1:{closed}/capos/evidence:t")],
    );
    assert!(!ok);
    assert!(
        err.contains(&format!("registry 127.0.0.1:{closed} is unreachable")),
        "{err}"
    );

    let registry = start_registry();
    let (ok, _, err) = capos(
        here,
        &[
            "pull",
            &format!("127.0.0.1:{}/nobody/nothing:t", registry.port),
        ],
    );
    assert!(!ok);
    assert!(err.contains("not found on the registry"), "{err}");

    let refusing = start_proxy(registry.port, Mischief::RefuseAccess);
    let (ok, _, err) = capos(
        here,
        &[
            "push",
            world.original.to_str().unwrap(),
            &format!("127.0.0.1:{refusing}/capos/evidence:t"),
        ],
    );
    assert!(!ok);
    assert!(err.contains("refused access"), "{err}");
}
