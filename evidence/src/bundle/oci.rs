//! The shared evidence archive on an OCI registry, through the maintained
//! `oci-client` crate (no hand-written HTTP).
//!
//! Layout:
//! - a bundle is an OCI image manifest with `artifactType`
//!   [`BUNDLE_ARTIFACT_TYPE`], the empty config, and one layer: the
//!   deterministic bundle tar ([`BUNDLE_LAYER_TYPE`]), which carries the
//!   run-log segment under `runlog/` when the store has one;
//! - a reproduction attestation is a manifest with `artifactType`
//!   [`REPRODUCTION_ARTIFACT_TYPE`], one DSSE layer, and `subject` = the
//!   bundle's manifest, so it is an OCI referrer of the bundle. Because
//!   registries without the referrers API (Debian's `docker-registry` 2.8)
//!   ignore `subject`, every push also updates the referrers tag schema
//!   index (tag `sha256-<hex>` of the subject digest), as the distribution
//!   spec's fallback says; readers use the referrers API and fall back to
//!   that tag when it answers 404.
//!
//! Invariants:
//! - Every manifest read is checked against its digest (the one asked for,
//!   or the one the registry names) and every blob against its descriptor's
//!   digest and size; a registry serving other bytes than it named is an
//!   error, never a warning.
//! - Sizes are capped before download: a manifest or index over
//!   [`MAX_MANIFEST_BYTES`], a bundle layer over the caller's limit (`--max-bundle-size`), an
//!   attestation over [`MAX_ATTESTATION_BYTES`] is refused from its
//!   descriptor, and a download is cut off when it passes the size named.
//! - Plain HTTP is used only for a loopback registry (`127.0.0.1`,
//!   `localhost`, `[::1]`) or when the caller asks for it (`--plain-http`).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::json;

use crate::terminal::untrusted;

/// `artifactType` of a capOS evidence bundle.
pub const BUNDLE_ARTIFACT_TYPE: &str = "application/vnd.capos.evidence.bundle.v1";
/// Media type of the bundle tar layer.
pub const BUNDLE_LAYER_TYPE: &str = "application/vnd.capos.evidence.bundle.v1.tar";
/// `artifactType` of a reproduction attestation.
pub const REPRODUCTION_ARTIFACT_TYPE: &str = "application/vnd.capos.reproduction.v1";
/// Media type of the attestation layer (a DSSE envelope).
pub const DSSE_LAYER_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// OCI image manifest media type.
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The OCI empty descriptor's media type.
pub const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// Annotation naming the bundle (its manifest digest).
pub const BUNDLE_NAME_ANNOTATION: &str = "dev.capos.bundle.name";
/// Annotation naming the attestation signer's key id.
pub const KEY_ANNOTATION: &str = "dev.capos.reproduction.key";
/// Annotation with the attestation verdict (`PASSED` or `FAILED`).
pub const RESULT_ANNOTATION: &str = "dev.capos.reproduction.result";
/// Largest manifest or index read.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Largest attestation layer read.
pub const MAX_ATTESTATION_BYTES: u64 = 4 << 20;
/// Most referrers listed for one bundle.
pub const MAX_REFERRERS: usize = 1000;
/// URI scheme of OCI references on the command line.
pub const SCHEME: &str = "oci://";

const EMPTY_JSON: &[u8] = b"{}";

/// Why an archive operation failed.
#[derive(thiserror::Error, Debug)]
pub enum OciError {
    /// The reference does not parse.
    #[error(
        "{}: not an OCI reference (<registry>/<repository>[:tag|@sha256:...]): {reason}",
        untrusted(text)
    )]
    BadReference {
        /// What was given.
        text: String,
        /// Why.
        reason: String,
    },
    /// No connection to the registry.
    #[error("registry {registry} is unreachable: {reason}")]
    Unreachable {
        /// host:port
        registry: String,
        /// The transport error.
        reason: String,
    },
    /// The registry refused the credentials (or demands some).
    #[error("registry {registry} refused access ({reason}); set CAPOS_OCI_USERNAME and CAPOS_OCI_PASSWORD")]
    AuthRefused {
        /// host:port
        registry: String,
        /// What it said.
        reason: String,
    },
    /// The repository or tag does not exist.
    #[error("{} not found on the registry ({reason})", untrusted(reference))]
    NotFound {
        /// The reference.
        reference: String,
        /// What the registry said.
        reason: String,
    },
    /// The registry served other bytes than it named.
    #[error("{what}: the registry served bytes with digest {actual}, not the {expected} it named; refusing them")]
    DigestMismatch {
        /// Which object.
        what: String,
        /// The digest named.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// An object is larger than allowed.
    #[error(
        "{what} is {size} bytes, over the {limit}-byte limit (raise --max-bundle-size for bundles)"
    )]
    TooLarge {
        /// Which object.
        what: String,
        /// Its size (declared or reached).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The manifest is not a capOS artifact of the expected kind.
    #[error("{}: {reason}", untrusted(reference))]
    NotAnArtifact {
        /// The reference.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// Any other registry error.
    #[error("registry {registry}: {reason}")]
    Registry {
        /// host:port
        registry: String,
        /// The error.
        reason: String,
    },
    /// The async runtime could not start.
    #[error("starting the network runtime: {0}")]
    Runtime(std::io::Error),
}

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// Use plain HTTP even for a non-loopback registry.
    pub plain_http: bool,
    /// Basic-auth credentials, if any.
    pub credentials: Option<(String, String)>,
}

impl Connection {
    /// Credentials from `CAPOS_OCI_USERNAME` / `CAPOS_OCI_PASSWORD`, when both are set.
    #[must_use]
    pub fn from_env(plain_http: bool) -> Self {
        let credentials = match (
            std::env::var("CAPOS_OCI_USERNAME"),
            std::env::var("CAPOS_OCI_PASSWORD"),
        ) {
            (Ok(user), Ok(password)) => Some((user, password)),
            _ => None,
        };
        Self {
            plain_http,
            credentials,
        }
    }
}

/// Whether `text` names an OCI reference (`oci://...`).
#[must_use]
pub fn is_oci(text: &str) -> bool {
    text.starts_with(SCHEME)
}

/// Parse `[oci://]<registry>/<repository>[:tag|@digest]`. A registry must be
/// named explicitly (no implicit Docker Hub).
pub fn parse_reference(text: &str) -> Result<Reference, OciError> {
    let bare = text.strip_prefix(SCHEME).unwrap_or(text);
    let bad = |reason: &str| OciError::BadReference {
        text: text.to_owned(),
        reason: reason.to_owned(),
    };
    let Some((registry, _)) = bare.split_once('/') else {
        return Err(bad(
            "name the registry, e.g. 127.0.0.1:5000/capos/evidence:tag",
        ));
    };
    if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
        return Err(bad(
            "the first part must be a registry host (with a dot or a port)",
        ));
    }
    bare.parse::<Reference>()
        .map_err(|error| bad(&error.to_string()))
}

/// A pushed or pulled bundle artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleArtifact {
    /// The reference by digest (`registry/repo@sha256:...`).
    pub reference: String,
    /// The manifest digest.
    pub manifest_digest: String,
    /// The layer (tar) digest.
    pub layer_digest: String,
    /// The tar size.
    pub size: u64,
    /// The bundle name the manifest annotates.
    pub bundle_name: String,
}

/// An attestation found as a referrer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// Manifest digest of the attestation artifact.
    pub manifest_digest: String,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// The envelope bytes (digest-checked).
    pub envelope: Vec<u8>,
}

/// A client for one registry, with a private single-threaded runtime.
pub struct Archive {
    client: Client,
    auth: RegistryAuth,
    runtime: tokio::runtime::Runtime,
}

fn is_loopback(registry: &str) -> bool {
    let host = match registry.find(']') {
        Some(end) if registry.starts_with('[') => &registry[..=end],
        _ => registry.split(':').next().unwrap_or(registry),
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

impl Archive {
    /// A client for the registry of `reference`.
    pub fn connect(reference: &Reference, connection: &Connection) -> Result<Self, OciError> {
        let registry = reference.resolve_registry().to_owned();
        let protocol = if connection.plain_http || is_loopback(&registry) {
            ClientProtocol::HttpsExcept(vec![registry])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(120)),
            platform_resolver: None,
            ..ClientConfig::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(OciError::Runtime)?;
        let auth = match &connection.credentials {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        };
        Ok(Self {
            client: Client::new(config),
            auth,
            runtime,
        })
    }

    /// Push a bundle tar (`tar`, the bundle named `bundle_name`) to `reference`.
    pub fn push_bundle(
        &self,
        reference: &Reference,
        tar: Vec<u8>,
        bundle_name: &str,
    ) -> Result<BundleArtifact, OciError> {
        let layer_digest = sha256_digest(&tar);
        let size = tar.len() as u64;
        let annotations = json!({
            BUNDLE_NAME_ANNOTATION: bundle_name,
            "org.opencontainers.image.title": format!("{bundle_name}.tar"),
        });
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "artifactType": BUNDLE_ARTIFACT_TYPE,
            "config": empty_descriptor(),
            "layers": [{
                "mediaType": BUNDLE_LAYER_TYPE,
                "digest": layer_digest,
                "size": size,
                "annotations": annotations,
            }],
            "annotations": { BUNDLE_NAME_ANNOTATION: bundle_name },
        });
        self.push_blob(reference, EMPTY_JSON.to_vec())?;
        self.push_blob(reference, tar)?;
        let manifest_digest = self.push_manifest(reference, &manifest, MANIFEST_TYPE)?;
        Ok(BundleArtifact {
            reference: by_digest(reference, &manifest_digest).whole(),
            manifest_digest,
            layer_digest,
            size,
            bundle_name: bundle_name.to_owned(),
        })
    }

    /// Resolve `reference` to its bundle manifest and download the tar,
    /// refusing a layer over `max_bytes` before downloading it.
    pub fn pull_bundle(
        &self,
        reference: &Reference,
        max_bytes: u64,
    ) -> Result<(BundleArtifact, Vec<u8>), OciError> {
        let (manifest, digest) = self.manifest(reference, &[MANIFEST_TYPE])?;
        let whole = reference.whole();
        let not_artifact = |reason: String| OciError::NotAnArtifact {
            reference: whole.clone(),
            reason,
        };
        if manifest["artifactType"] != BUNDLE_ARTIFACT_TYPE {
            return Err(not_artifact(format!(
                "artifactType is {}, not a capOS bundle ({BUNDLE_ARTIFACT_TYPE})",
                manifest["artifactType"]
            )));
        }
        let layer = single_layer(&manifest, BUNDLE_LAYER_TYPE).map_err(not_artifact)?;
        let bundle_name = manifest["annotations"][BUNDLE_NAME_ANNOTATION]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let pinned = by_digest(reference, &digest);
        let tar = self.pull_blob(&pinned, &layer, max_bytes, "the bundle tar")?;
        Ok((
            BundleArtifact {
                reference: pinned.whole(),
                manifest_digest: digest,
                layer_digest: layer.digest,
                size: layer.size,
                bundle_name,
            },
            tar,
        ))
    }

    /// The manifest digest and bundle name of the bundle artifact at
    /// `reference`, without downloading the tar.
    pub fn resolve_bundle(&self, reference: &Reference) -> Result<(String, String), OciError> {
        let (manifest, digest) = self.manifest(reference, &[MANIFEST_TYPE])?;
        if manifest["artifactType"] != BUNDLE_ARTIFACT_TYPE {
            return Err(OciError::NotAnArtifact {
                reference: reference.whole(),
                reason: format!(
                    "artifactType is {}, not a capOS bundle ({BUNDLE_ARTIFACT_TYPE})",
                    manifest["artifactType"]
                ),
            });
        }
        let name = manifest["annotations"][BUNDLE_NAME_ANNOTATION]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok((digest, name))
    }

    /// Attach an attestation envelope to the bundle artifact with manifest
    /// `subject_digest` in `reference`'s repository; returns its manifest digest.
    pub fn push_attestation(
        &self,
        reference: &Reference,
        subject_digest: &str,
        envelope: Vec<u8>,
        annotations: &BTreeMap<String, String>,
    ) -> Result<String, OciError> {
        let subject = by_digest(reference, subject_digest);
        let (subject_bytes, _) = self.manifest_bytes(&subject, &[MANIFEST_TYPE])?;
        let layer_digest = sha256_digest(&envelope);
        let size = envelope.len();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "artifactType": REPRODUCTION_ARTIFACT_TYPE,
            "config": empty_descriptor(),
            "layers": [{ "mediaType": DSSE_LAYER_TYPE, "digest": layer_digest, "size": size }],
            "subject": { "mediaType": MANIFEST_TYPE, "digest": subject_digest, "size": subject_bytes.len() },
            "annotations": annotations,
        });
        self.push_blob(reference, EMPTY_JSON.to_vec())?;
        self.push_blob(reference, envelope)?;
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(|error| OciError::Registry {
            registry: reference.registry().to_owned(),
            reason: error.to_string(),
        })?;
        let manifest_digest = sha256_digest(&manifest_bytes);
        let target = by_digest(reference, &manifest_digest);
        self.put_manifest(&target, manifest_bytes.clone(), MANIFEST_TYPE)?;
        self.add_to_tag_index(
            reference,
            subject_digest,
            json!({
                "mediaType": MANIFEST_TYPE,
                "digest": manifest_digest,
                "size": manifest_bytes.len(),
                "artifactType": REPRODUCTION_ARTIFACT_TYPE,
                "annotations": annotations,
            }),
        )?;
        Ok(manifest_digest)
    }

    /// The reproduction attestations attached to the bundle `reference`
    /// resolves to: referrers API, or the tag schema when it answers 404.
    pub fn attestations(&self, reference: &Reference) -> Result<Vec<Referrer>, OciError> {
        let (_, digest) = self.manifest(reference, &[MANIFEST_TYPE])?;
        let subject = by_digest(reference, &digest);
        let index = self
            .runtime
            .block_on(self.client.pull_referrers(&subject, None))
            .map_err(|error| classify(error, &subject))?;
        if index.manifests.len() > MAX_REFERRERS {
            return Err(OciError::TooLarge {
                what: format!("the referrers index of {}", subject.whole()),
                size: index.manifests.len() as u64,
                limit: MAX_REFERRERS as u64,
            });
        }
        let mut found = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for entry in &index.manifests {
            if !seen.insert(entry.digest.clone()) {
                continue;
            }
            let pinned = by_digest(reference, &entry.digest);
            let (manifest, manifest_digest) = self.manifest(&pinned, &[MANIFEST_TYPE])?;
            if manifest["artifactType"] != REPRODUCTION_ARTIFACT_TYPE {
                continue;
            }
            // One listed here whose `subject` is another manifest is kept:
            // the judge shows it as refused (another bundle's).
            let layer = single_layer(&manifest, DSSE_LAYER_TYPE).map_err(|reason| {
                OciError::NotAnArtifact {
                    reference: pinned.whole(),
                    reason,
                }
            })?;
            let envelope =
                self.pull_blob(&pinned, &layer, MAX_ATTESTATION_BYTES, "an attestation")?;
            let annotations = manifest["annotations"]
                .as_object()
                .map(|map| {
                    map.iter()
                        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            found.push(Referrer {
                manifest_digest,
                annotations,
                envelope,
            });
        }
        Ok(found)
    }

    /// The tags of `reference`'s repository.
    pub fn tags(&self, reference: &Reference) -> Result<Vec<String>, OciError> {
        let response = self
            .runtime
            .block_on(self.client.list_tags(reference, &self.auth, None, None))
            .map_err(|error| classify(error, reference))?;
        Ok(response.tags)
    }

    /// Fetch a manifest, check its digest, parse it as JSON.
    fn manifest(
        &self,
        reference: &Reference,
        accepted: &[&str],
    ) -> Result<(serde_json::Value, String), OciError> {
        let (bytes, digest) = self.manifest_bytes(reference, accepted)?;
        let value = serde_json::from_slice(&bytes).map_err(|error| OciError::NotAnArtifact {
            reference: reference.whole(),
            reason: format!("the manifest is not JSON: {error}"),
        })?;
        Ok((value, digest))
    }

    /// Fetch manifest bytes; their sha256 must equal the digest asked for
    /// and the one the registry names.
    fn manifest_bytes(
        &self,
        reference: &Reference,
        accepted: &[&str],
    ) -> Result<(Vec<u8>, String), OciError> {
        let (bytes, named) = self
            .runtime
            .block_on(
                self.client
                    .pull_manifest_raw(reference, &self.auth, accepted),
            )
            .map_err(|error| classify(error, reference))?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(OciError::TooLarge {
                what: format!("the manifest of {}", reference.whole()),
                size: bytes.len() as u64,
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let actual = sha256_digest(&bytes);
        let expected = reference.digest().map_or(named.clone(), str::to_owned);
        if actual != expected || actual != named {
            return Err(OciError::DigestMismatch {
                what: format!("the manifest of {}", reference.whole()),
                expected,
                actual,
            });
        }
        Ok((bytes.to_vec(), actual))
    }

    fn push_blob(&self, reference: &Reference, bytes: Vec<u8>) -> Result<(), OciError> {
        let digest = sha256_digest(&bytes);
        let exists = self
            .runtime
            .block_on(self.client.blob_exists(reference, &digest))
            .map_err(|error| classify(error, reference))?;
        if !exists {
            self.runtime
                .block_on(self.client.push_blob(reference, bytes, &digest))
                .map_err(|error| classify(error, reference))?;
        }
        Ok(())
    }

    fn push_manifest(
        &self,
        reference: &Reference,
        manifest: &serde_json::Value,
        media_type: &str,
    ) -> Result<String, OciError> {
        let bytes = serde_json::to_vec(manifest).map_err(|error| OciError::Registry {
            registry: reference.registry().to_owned(),
            reason: error.to_string(),
        })?;
        let digest = sha256_digest(&bytes);
        self.put_manifest(reference, bytes, media_type)?;
        Ok(digest)
    }

    fn put_manifest(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> Result<(), OciError> {
        let content_type = media_type.parse().map_err(|_| OciError::Registry {
            registry: reference.registry().to_owned(),
            reason: format!("bad media type {media_type}"),
        })?;
        // Pushing needs the stored credentials even before any pull.
        self.runtime.block_on(
            self.client
                .store_auth_if_needed(reference.resolve_registry(), &self.auth),
        );
        self.runtime
            .block_on(
                self.client
                    .push_manifest_raw(reference, bytes, content_type),
            )
            .map_err(|error| classify(error, reference))?;
        Ok(())
    }

    /// Add `descriptor` to the referrers tag schema index of `subject_digest`.
    fn add_to_tag_index(
        &self,
        reference: &Reference,
        subject_digest: &str,
        descriptor: serde_json::Value,
    ) -> Result<(), OciError> {
        let tag = subject_digest.replace(':', "-");
        let tagged = Reference::with_tag(
            reference.registry().to_owned(),
            reference.repository().to_owned(),
            tag,
        );
        let mut index = match self.manifest(&tagged, &[INDEX_TYPE]) {
            Ok((index, _)) => index,
            Err(OciError::NotFound { .. }) => {
                json!({ "schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": [] })
            }
            Err(error) => return Err(error),
        };
        let Some(manifests) = index["manifests"].as_array_mut() else {
            return Err(OciError::NotAnArtifact {
                reference: tagged.whole(),
                reason: "the referrers tag holds no image index".to_owned(),
            });
        };
        if !manifests
            .iter()
            .any(|entry| entry["digest"] == descriptor["digest"])
        {
            manifests.push(descriptor);
        }
        self.push_manifest(&tagged, &index, INDEX_TYPE)?;
        Ok(())
    }

    /// Download a blob named by `layer`, cut off past its size and capped at
    /// `limit`; its sha256 must be the layer's digest.
    fn pull_blob(
        &self,
        reference: &Reference,
        layer: &Layer,
        limit: u64,
        what: &str,
    ) -> Result<Vec<u8>, OciError> {
        if layer.size > limit {
            return Err(OciError::TooLarge {
                what: what.to_owned(),
                size: layer.size,
                limit,
            });
        }
        let descriptor = oci_client::manifest::OciDescriptor {
            media_type: layer.media_type.clone(),
            digest: layer.digest.clone(),
            size: i64::try_from(layer.size).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let mut sink = CappedSink {
            bytes: Vec::new(),
            limit: layer.size,
        };
        let result =
            self.runtime
                .block_on(self.client.pull_blob(reference, &descriptor, &mut sink));
        if sink.bytes.len() as u64 > layer.size {
            return Err(OciError::TooLarge {
                what: format!("{what} (more bytes than its descriptor names)"),
                size: sink.bytes.len() as u64,
                limit: layer.size,
            });
        }
        match result {
            Ok(()) => {}
            Err(OciDistributionError::DigestError(_)) => {
                return Err(OciError::DigestMismatch {
                    what: what.to_owned(),
                    expected: layer.digest.clone(),
                    actual: sha256_digest(&sink.bytes),
                })
            }
            Err(error) => return Err(classify(error, reference)),
        }
        let actual = sha256_digest(&sink.bytes);
        if actual != layer.digest || sink.bytes.len() as u64 != layer.size {
            return Err(OciError::DigestMismatch {
                what: what.to_owned(),
                expected: layer.digest.clone(),
                actual,
            });
        }
        Ok(sink.bytes)
    }
}

/// A manifest's one layer.
struct Layer {
    media_type: String,
    digest: String,
    size: u64,
}

fn single_layer(manifest: &serde_json::Value, media_type: &str) -> Result<Layer, String> {
    let layers = manifest["layers"].as_array().map_or(&[][..], Vec::as_slice);
    let [layer] = layers else {
        return Err(format!("has {} layers, expected exactly one", layers.len()));
    };
    if layer["mediaType"] != media_type {
        return Err(format!(
            "layer media type is {}, expected {media_type}",
            layer["mediaType"]
        ));
    }
    let digest = layer["digest"].as_str().unwrap_or_default();
    let valid = digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if !valid {
        return Err(format!("layer digest {digest:?} is not a sha256 digest"));
    }
    let Some(size) = layer["size"].as_u64() else {
        return Err("layer has no size".to_owned());
    };
    Ok(Layer {
        media_type: media_type.to_owned(),
        digest: digest.to_owned(),
        size,
    })
}

fn empty_descriptor() -> serde_json::Value {
    json!({ "mediaType": EMPTY_TYPE, "digest": sha256_digest(EMPTY_JSON), "size": EMPTY_JSON.len(), "data": "e30=" })
}

/// `sha256:<hex>` of `bytes`.
#[must_use]
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::digest::sha256_hex(bytes))
}

/// `reference`'s repository at `digest`.
#[must_use]
pub fn by_digest(reference: &Reference, digest: &str) -> Reference {
    Reference::with_digest(
        reference.registry().to_owned(),
        reference.repository().to_owned(),
        digest.to_owned(),
    )
}

/// Name the failure the way a user can act on it.
fn classify(error: OciDistributionError, reference: &Reference) -> OciError {
    let registry = reference.registry().to_owned();
    let text = format!("{error}");
    match error {
        OciDistributionError::RequestError(inner) if inner.is_connect() || inner.is_timeout() => {
            OciError::Unreachable {
                registry,
                reason: chain(&inner),
            }
        }
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => OciError::AuthRefused {
            registry,
            reason: text,
        },
        OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => OciError::AuthRefused {
            registry,
            reason: text,
        },
        OciDistributionError::ServerError { code: 404, .. }
        | OciDistributionError::ImageManifestNotFoundError(_) => OciError::NotFound {
            reference: reference.whole(),
            reason: text,
        },
        OciDistributionError::RegistryError { ref envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|code| {
                matches!(
                    code,
                    OciErrorCode::NameUnknown
                        | OciErrorCode::ManifestUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                OciError::NotFound {
                    reference: reference.whole(),
                    reason: text,
                }
            } else if codes
                .iter()
                .any(|code| matches!(code, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                OciError::AuthRefused {
                    registry,
                    reason: text,
                }
            } else {
                OciError::Registry {
                    registry,
                    reason: text,
                }
            }
        }
        OciDistributionError::RequestError(inner) => match inner.status().map(|s| s.as_u16()) {
            Some(401 | 403) => OciError::AuthRefused {
                registry,
                reason: chain(&inner),
            },
            Some(404) => OciError::NotFound {
                reference: reference.whole(),
                reason: chain(&inner),
            },
            _ => OciError::Registry {
                registry,
                reason: chain(&inner),
            },
        },
        _ => OciError::Registry {
            registry,
            reason: text,
        },
    }
}

/// An error and its sources, joined.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An in-memory sink that stops accepting bytes one past `limit`.
struct CappedSink {
    bytes: Vec<u8>,
    limit: u64,
}

impl tokio::io::AsyncWrite for CappedSink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if (self.bytes.len() + buf.len()) as u64 > self.limit {
            let room = usize::try_from(self.limit + 1)
                .unwrap_or(usize::MAX)
                .saturating_sub(self.bytes.len());
            let take = room.min(buf.len());
            self.bytes.extend_from_slice(&buf[..take]);
            return Poll::Ready(Err(std::io::Error::other(
                "the registry sent more bytes than the descriptor names",
            )));
        }
        self.bytes.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_need_a_registry() {
        assert!(parse_reference("oci://127.0.0.1:5000/capos/evidence:t").is_ok());
        assert!(parse_reference("localhost/capos/evidence").is_ok());
        assert!(parse_reference("capos/evidence:t").is_err());
        assert!(parse_reference("evidence").is_err());
    }

    #[test]
    fn loopback_registries_use_plain_http() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example:5000"));
        assert!(!is_loopback("127.0.0.1.example.com:5000"));
    }
}
