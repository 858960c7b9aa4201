//! Signed provenance: an in-toto Statement v1 carrying a SLSA provenance v1
//! predicate, wrapped in a DSSE envelope and signed with Ed25519.
//!
//! Invariants:
//! - The signature covers the DSSE pre-authentication encoding (PAE) of the
//!   payload type and the exact payload bytes, never the payload alone, so a
//!   signature for one payload type cannot be replayed as another.
//! - Serialization is deterministic: struct fields in declaration order and
//!   JSON objects as sorted maps, so the same facts give the same bytes.
//! - One signed statement has exactly one valid envelope file: the bytes
//!   [`envelope_file_bytes`] writes, with standard padded base64, one
//!   signature, and the signer's own key id. Anything else is refused even
//!   when the signature verifies, so a statement cannot be re-wrapped into a
//!   second bundle with another name.
//! - Parsing the statement follows in-toto and SLSA: unknown fields are
//!   ignored, and fields the specs make optional may be absent (our writer
//!   always writes them). The envelope itself is strict.

use std::collections::BTreeMap;

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// `predicateType` of a SLSA provenance v1 predicate.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// DSSE `payloadType` of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// An artifact reference (in-toto ResourceDescriptor): a name and its digests.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ResourceDescriptor {
    /// Name of the artifact; inside a bundle, its relative path with `/`.
    pub name: String,
    /// Where the artifact can be found, when it has a location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Digest algorithm name (`sha256`) to lowercase hex digest.
    #[serde(default)]
    pub digest: BTreeMap<String, String>,
}

impl ResourceDescriptor {
    /// A descriptor with one sha256 digest and no uri.
    #[must_use]
    pub fn sha256(name: impl Into<String>, sha256_hex: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            uri: None,
            digest: BTreeMap::from([("sha256".to_owned(), sha256_hex.into())]),
        }
    }
}

/// What the run knows about itself; everything in the statement except the
/// subjects and byproducts, which the bundle writer computes from the files.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildFacts {
    /// URI naming the template of `external_parameters` (what kind of run).
    pub build_type: String,
    /// Inputs a user chose: contract, cases, repetitions, accelerator request.
    pub external_parameters: serde_json::Value,
    /// Inputs the builder chose: detected accelerator, host facts, tool versions.
    pub internal_parameters: serde_json::Value,
    /// Artifacts the run consumed, with digests (the ISO, the contract, QEMU).
    pub resolved_dependencies: Vec<ResourceDescriptor>,
    /// URI of the builder that ran and signed (trusted to report honestly).
    pub builder_id: String,
    /// Versions of the builder's parts (SLSA `builder.version`): the `capos`
    /// crate version and the commit it was built from.
    pub builder_version: BTreeMap<String, String>,
    /// Identifier of this run.
    pub invocation_id: String,
    /// RFC 3339 time the run started.
    pub started_on: String,
    /// RFC 3339 time the run finished.
    pub finished_on: String,
}

/// An in-toto Statement v1 with a SLSA provenance v1 predicate.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Statement {
    /// Always [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// The artifacts this statement is about.
    pub subject: Vec<ResourceDescriptor>,
    /// Always [`PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The SLSA provenance.
    pub predicate: Provenance,
}

/// SLSA provenance v1 predicate.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// What the run was asked to do.
    pub build_definition: BuildDefinition,
    /// Who ran it, when, and what it left behind.
    pub run_details: RunDetails,
}

/// SLSA `buildDefinition`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    /// See [`BuildFacts::build_type`].
    pub build_type: String,
    /// See [`BuildFacts::external_parameters`].
    pub external_parameters: serde_json::Value,
    /// See [`BuildFacts::internal_parameters`]; optional in SLSA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_parameters: Option<serde_json::Value>,
    /// See [`BuildFacts::resolved_dependencies`]; optional in SLSA.
    #[serde(default)]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

/// SLSA `runDetails`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunDetails {
    /// The builder.
    pub builder: Builder,
    /// Invocation id and timestamps; optional in SLSA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BuildMetadata>,
    /// Files the run produced that are not its results (raw logs); optional in SLSA.
    #[serde(default)]
    pub byproducts: Vec<ResourceDescriptor>,
}

/// SLSA `runDetails.builder`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Builder {
    /// See [`BuildFacts::builder_id`].
    pub id: String,
    /// See [`BuildFacts::builder_version`]; optional in SLSA.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version: BTreeMap<String, String>,
}

/// SLSA `runDetails.metadata`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BuildMetadata {
    /// See [`BuildFacts::invocation_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    /// See [`BuildFacts::started_on`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_on: Option<String>,
    /// See [`BuildFacts::finished_on`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_on: Option<String>,
}

/// A DSSE envelope as stored in `provenance.dsse.json`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Base64 of the serialized statement.
    pub payload: String,
    /// Always [`PAYLOAD_TYPE`] for capOS bundles.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// One or more signatures over PAE(payloadType, payload).
    pub signatures: Vec<EnvelopeSignature>,
}

/// One DSSE signature.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// Hex sha256 of the raw 32-byte Ed25519 public key of the signer.
    pub keyid: String,
    /// Base64 of the 64-byte Ed25519 signature.
    pub sig: String,
}

/// Why an envelope does not verify against the trusted key.
#[derive(thiserror::Error, Debug)]
pub enum EnvelopeError {
    /// `provenance.dsse.json` is not a DSSE envelope.
    #[error("not a DSSE envelope: {}", crate::terminal::untrusted(&.0.to_string()))]
    NotAnEnvelope(serde_json::Error),
    /// The payload type is not the expected one.
    #[error(
        "payloadType is \"{}\", expected {expected:?}",
        crate::terminal::untrusted(found)
    )]
    WrongPayloadType {
        /// The payload type found.
        found: String,
        /// The payload type this envelope must have.
        expected: &'static str,
    },
    /// A field is not standard, padded base64 in its one canonical spelling.
    #[error("{field} is not canonical base64 (standard alphabet, padded, as capos writes it)")]
    BadBase64 {
        /// Which field (`payload` or `signatures[0].sig`).
        field: String,
    },
    /// The envelope carries no signature at all.
    #[error("the envelope carries no signature")]
    NoSignatures,
    /// The envelope carries more than one signature.
    #[error("the envelope carries {count} signatures; a capOS envelope has exactly one")]
    SignatureCount {
        /// How many it carries.
        count: usize,
    },
    /// The signature verifies with the trusted key, but its key id is another.
    #[error("the signature verifies with the trusted key {trusted}, but its keyid is {}; a capOS envelope names its signer's key id", crate::terminal::untrusted(found))]
    WrongKeyId {
        /// The key id the envelope names.
        found: String,
        /// Key id of the trusted key.
        trusted: String,
    },
    /// The file is not the exact bytes capos writes for its envelope.
    #[error("not in the canonical form capos writes (pretty-printed JSON with payload, payloadType, signatures in that order, and a final newline)")]
    NotCanonical,
    /// No signature claims the trusted key, and none verifies with it.
    #[error(
        "signed by key {}, not the trusted key {trusted}",
        crate::terminal::untrusted_list(signed_by)
    )]
    UntrustedSigner {
        /// Key ids the envelope names.
        signed_by: Vec<String>,
        /// Key id of the trusted key.
        trusted: String,
    },
    /// A signature names the trusted key but does not verify.
    #[error(
        "the signature by trusted key {trusted} does not verify (payload or signature altered)"
    )]
    BadSignature {
        /// Key id of the trusted key.
        trusted: String,
    },
    /// The signed payload is not an in-toto statement with a SLSA predicate.
    #[error("the signed payload is not a statement this tool understands: {}", crate::terminal::untrusted(&.0.to_string()))]
    MalformedStatement(serde_json::Error),
    /// The statement has the wrong `_type`.
    #[error(
        "statement _type is \"{}\", expected {STATEMENT_TYPE:?}",
        crate::terminal::untrusted(found)
    )]
    WrongStatementType {
        /// The `_type` found.
        found: String,
    },
    /// The statement has the wrong `predicateType`.
    #[error(
        "predicateType is \"{}\", expected {PREDICATE_TYPE:?}",
        crate::terminal::untrusted(found)
    )]
    WrongPredicateType {
        /// The `predicateType` found.
        found: String,
    },
}

/// DSSE pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII decimal bytes.
#[must_use]
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let type_length = payload_type.len().to_string();
    let body_length = body.len().to_string();
    let mut encoded = Vec::with_capacity(
        10 + type_length.len() + payload_type.len() + body_length.len() + body.len(),
    );
    encoded.extend_from_slice(b"DSSEv1 ");
    encoded.extend_from_slice(type_length.as_bytes());
    encoded.push(b' ');
    encoded.extend_from_slice(payload_type.as_bytes());
    encoded.push(b' ');
    encoded.extend_from_slice(body_length.as_bytes());
    encoded.push(b' ');
    encoded.extend_from_slice(body);
    encoded
}

/// Hex sha256 of the raw 32-byte public key: the DSSE `keyid` capOS uses.
#[must_use]
pub fn key_id(key: &VerifyingKey) -> String {
    crate::digest::sha256_hex(key.as_bytes())
}

/// Assemble the statement for `subjects` and `byproducts` from the run's facts.
#[must_use]
pub fn build_statement(
    subjects: Vec<ResourceDescriptor>,
    byproducts: Vec<ResourceDescriptor>,
    facts: &BuildFacts,
) -> Statement {
    Statement {
        statement_type: STATEMENT_TYPE.to_owned(),
        subject: subjects,
        predicate_type: PREDICATE_TYPE.to_owned(),
        predicate: Provenance {
            build_definition: BuildDefinition {
                build_type: facts.build_type.clone(),
                external_parameters: facts.external_parameters.clone(),
                internal_parameters: Some(facts.internal_parameters.clone()),
                resolved_dependencies: facts.resolved_dependencies.clone(),
            },
            run_details: RunDetails {
                builder: Builder {
                    id: facts.builder_id.clone(),
                    version: facts.builder_version.clone(),
                },
                metadata: Some(BuildMetadata {
                    invocation_id: Some(facts.invocation_id.clone()),
                    started_on: Some(facts.started_on.clone()),
                    finished_on: Some(facts.finished_on.clone()),
                }),
                byproducts,
            },
        },
    }
}

/// Sign arbitrary payload bytes: an envelope with one Ed25519 signature over PAE.
#[must_use]
pub fn sign_payload(payload_type: &str, body: &[u8], key: &SigningKey) -> Envelope {
    let signature = key.sign(&pae(payload_type, body));
    let base64 = base64::engine::general_purpose::STANDARD;
    Envelope {
        payload: base64.encode(body),
        payload_type: payload_type.to_owned(),
        signatures: vec![EnvelopeSignature {
            keyid: key_id(&key.verifying_key()),
            sig: base64.encode(signature.to_bytes()),
        }],
    }
}

/// Serialize `statement` compactly and sign it as an in-toto DSSE envelope.
pub fn sign_statement(
    statement: &Statement,
    key: &SigningKey,
) -> Result<Envelope, serde_json::Error> {
    let body = serde_json::to_vec(statement)?;
    Ok(sign_payload(PAYLOAD_TYPE, &body, key))
}

/// The bytes of `provenance.dsse.json` for an envelope: pretty JSON and a final newline.
pub fn envelope_file_bytes(envelope: &Envelope) -> Result<Vec<u8>, serde_json::Error> {
    let mut bytes = serde_json::to_vec_pretty(envelope)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Decode standard, padded base64, accepting only the one spelling that
/// encodes back to the same text (DSSE decoders may accept more; capos
/// writes, and so accepts, exactly one).
fn decode_base64(text: &str, field: &str) -> Result<Vec<u8>, EnvelopeError> {
    let engine = base64::engine::general_purpose::STANDARD;
    match engine.decode(text) {
        Ok(bytes) if engine.encode(&bytes) == text => Ok(bytes),
        _ => Err(EnvelopeError::BadBase64 {
            field: field.to_owned(),
        }),
    }
}

/// Parse the bytes of `provenance.dsse.json`, accepting only what
/// [`envelope_file_bytes`] writes for the parsed envelope.
pub fn parse_envelope(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    let envelope: Envelope = serde_json::from_slice(bytes).map_err(EnvelopeError::NotAnEnvelope)?;
    match envelope_file_bytes(&envelope) {
        Ok(canonical) if canonical == bytes => Ok(envelope),
        _ => Err(EnvelopeError::NotCanonical),
    }
}

/// Check that `envelope` is the one capos writes for `payload_type` — that
/// payload type, exactly one signature, canonical base64, and the trusted
/// key's id as `keyid` — and that its signature over PAE verifies with
/// `trusted`; return the signed payload bytes. The payload type is inside
/// PAE, so checking it first only makes the error clearer; it is not what
/// makes it safe.
pub fn verify_payload(
    envelope: &Envelope,
    payload_type: &'static str,
    trusted: &VerifyingKey,
) -> Result<Vec<u8>, EnvelopeError> {
    let trusted_id = key_id(trusted);
    if envelope.payload_type != payload_type {
        return Err(EnvelopeError::WrongPayloadType {
            found: envelope.payload_type.clone(),
            expected: payload_type,
        });
    }
    let entry = match envelope.signatures.as_slice() {
        [] => return Err(EnvelopeError::NoSignatures),
        [entry] => entry,
        several => {
            return Err(EnvelopeError::SignatureCount {
                count: several.len(),
            })
        }
    };
    let body = decode_base64(&envelope.payload, "payload")?;
    let raw = decode_base64(&entry.sig, "signatures[0].sig")?;
    let verified = Signature::from_slice(&raw).is_ok_and(|signature| {
        trusted
            .verify_strict(&pae(payload_type, &body), &signature)
            .is_ok()
    });
    match (verified, entry.keyid == trusted_id) {
        (true, true) => Ok(body),
        (true, false) => Err(EnvelopeError::WrongKeyId {
            found: entry.keyid.clone(),
            trusted: trusted_id,
        }),
        (false, true) => Err(EnvelopeError::BadSignature {
            trusted: trusted_id,
        }),
        (false, false) => Err(EnvelopeError::UntrustedSigner {
            signed_by: vec![entry.keyid.clone()],
            trusted: trusted_id,
        }),
    }
}

/// Verify `envelope` against `trusted` and return the statement it signs.
///
/// The envelope must be the one capos writes (see [`verify_payload`]); only
/// then is the payload parsed as an in-toto statement with a SLSA predicate.
pub fn verify_envelope(
    envelope: &Envelope,
    trusted: &VerifyingKey,
) -> Result<Statement, EnvelopeError> {
    let body = verify_payload(envelope, PAYLOAD_TYPE, trusted)?;
    let statement: Statement =
        serde_json::from_slice(&body).map_err(EnvelopeError::MalformedStatement)?;
    if statement.statement_type != STATEMENT_TYPE {
        return Err(EnvelopeError::WrongStatementType {
            found: statement.statement_type,
        });
    }
    if statement.predicate_type != PREDICATE_TYPE {
        return Err(EnvelopeError::WrongPredicateType {
            found: statement.predicate_type,
        });
    }
    Ok(statement)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn facts() -> BuildFacts {
        BuildFacts {
            build_type: "https://capos.example/run/v1".into(),
            external_parameters: serde_json::json!({"contract": "smp-boot", "repetitions": 5}),
            internal_parameters: serde_json::json!({"accel": "kvm"}),
            resolved_dependencies: vec![ResourceDescriptor::sha256("capos.iso", "ab".repeat(32))],
            builder_id: "https://capos.example/builder/local".into(),
            builder_version: BTreeMap::from([("capos".to_owned(), "0.1.0".to_owned())]),
            invocation_id: "run-1".into(),
            started_on: "2025-01-01T00:00:00Z".into(),
            finished_on: "2025-01-01T00:01:00Z".into(),
        }
    }

    fn statement() -> Statement {
        build_statement(
            vec![ResourceDescriptor::sha256("results.csv", "cd".repeat(32))],
            vec![ResourceDescriptor::sha256(
                "logs/a/1/serial.log",
                "ef".repeat(32),
            )],
            &facts(),
        )
    }

    #[test]
    fn pae_matches_the_dsse_spec_vector() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn pae_of_empty_type_and_body() {
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn statement_json_is_deterministic_and_has_the_spec_field_names() {
        let first = serde_json::to_vec(&statement()).unwrap();
        let second = serde_json::to_vec(&statement()).unwrap();
        assert_eq!(first, second);
        let value: serde_json::Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(value["_type"], STATEMENT_TYPE);
        assert_eq!(value["predicateType"], PREDICATE_TYPE);
        assert_eq!(value["subject"][0]["digest"]["sha256"], "cd".repeat(32));
        assert!(value["subject"][0].get("uri").is_none());
        let predicate = &value["predicate"];
        assert_eq!(
            predicate["buildDefinition"]["buildType"],
            "https://capos.example/run/v1"
        );
        assert_eq!(
            predicate["buildDefinition"]["externalParameters"]["repetitions"],
            5
        );
        assert_eq!(
            predicate["buildDefinition"]["internalParameters"]["accel"],
            "kvm"
        );
        assert_eq!(
            predicate["buildDefinition"]["resolvedDependencies"][0]["name"],
            "capos.iso"
        );
        assert_eq!(
            predicate["runDetails"]["builder"]["id"],
            "https://capos.example/builder/local"
        );
        assert_eq!(predicate["runDetails"]["metadata"]["invocationId"], "run-1");
        assert_eq!(
            predicate["runDetails"]["metadata"]["startedOn"],
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(
            predicate["runDetails"]["metadata"]["finishedOn"],
            "2025-01-01T00:01:00Z"
        );
        assert_eq!(
            predicate["runDetails"]["byproducts"][0]["name"],
            "logs/a/1/serial.log"
        );
    }

    #[test]
    fn signed_statement_round_trips() {
        let envelope = sign_statement(&statement(), &key(1)).unwrap();
        assert_eq!(envelope.payload_type, PAYLOAD_TYPE);
        assert_eq!(
            envelope.signatures[0].keyid,
            key_id(&key(1).verifying_key())
        );
        let bytes = envelope_file_bytes(&envelope).unwrap();
        let parsed = parse_envelope(&bytes).unwrap();
        let verified = verify_envelope(&parsed, &key(1).verifying_key()).unwrap();
        assert_eq!(verified, statement());
    }

    #[test]
    fn signing_is_deterministic() {
        let first = envelope_file_bytes(&sign_statement(&statement(), &key(1)).unwrap()).unwrap();
        let second = envelope_file_bytes(&sign_statement(&statement(), &key(1)).unwrap()).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn wrong_payload_type_is_rejected() {
        let mut envelope = sign_statement(&statement(), &key(1)).unwrap();
        envelope.payload_type = "application/json".into();
        let error = verify_envelope(&envelope, &key(1).verifying_key()).unwrap_err();
        assert!(
            matches!(&error, EnvelopeError::WrongPayloadType { found, .. } if found == "application/json"),
            "{error:?}"
        );
    }

    #[test]
    fn signature_over_another_payload_type_is_rejected() {
        let body = serde_json::to_vec(&statement()).unwrap();
        let mut envelope = sign_payload("application/json", &body, &key(1));
        envelope.payload_type = PAYLOAD_TYPE.into();
        let error = verify_envelope(&envelope, &key(1).verifying_key()).unwrap_err();
        assert!(
            matches!(error, EnvelopeError::BadSignature { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn bad_base64_is_rejected() {
        let mut envelope = sign_statement(&statement(), &key(1)).unwrap();
        envelope.payload = "not base64!".into();
        let error = verify_envelope(&envelope, &key(1).verifying_key()).unwrap_err();
        assert!(
            matches!(&error, EnvelopeError::BadBase64 { field } if field == "payload"),
            "{error:?}"
        );
        let mut envelope = sign_statement(&statement(), &key(1)).unwrap();
        envelope.signatures[0].sig = "@@@".into();
        let error = verify_envelope(&envelope, &key(1).verifying_key()).unwrap_err();
        assert!(
            matches!(&error, EnvelopeError::BadBase64 { field } if field == "signatures[0].sig"),
            "{error:?}"
        );
    }

    /// Every other spelling of the same bytes: URL-safe, unpadded, and
    /// non-zero trailing bits. Each would give the bundle another name.
    #[test]
    fn only_canonical_base64_is_accepted() {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
        let signed = sign_statement(&statement(), &key(1)).unwrap();
        let body = STANDARD.decode(&signed.payload).unwrap();
        let signature = STANDARD.decode(&signed.signatures[0].sig).unwrap();
        assert!(
            !body.len().is_multiple_of(3) && !signature.len().is_multiple_of(3),
            "padding present"
        );
        // 64 bytes end in `xy==`: `y` holds 2 data bits and 4 bits that must be
        // zero. Setting one of those gives the same bytes, spelled differently.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut trailing_bits = signed.signatures[0].sig.clone().into_bytes();
        let last_data = trailing_bits.len() - 3;
        let value = ALPHABET
            .iter()
            .position(|c| *c == trailing_bits[last_data])
            .unwrap();
        trailing_bits[last_data] = ALPHABET[value ^ 1];
        for (field, payload, sig) in [
            (
                "payload",
                URL_SAFE_NO_PAD.encode(&body),
                signed.signatures[0].sig.clone(),
            ),
            (
                "payload",
                STANDARD_NO_PAD.encode(&body),
                signed.signatures[0].sig.clone(),
            ),
            (
                "payload",
                format!("{}\n", signed.payload),
                signed.signatures[0].sig.clone(),
            ),
            (
                "signatures[0].sig",
                signed.payload.clone(),
                STANDARD_NO_PAD.encode(&signature),
            ),
            (
                "signatures[0].sig",
                signed.payload.clone(),
                String::from_utf8(trailing_bits.clone()).unwrap(),
            ),
        ] {
            let mut envelope = signed.clone();
            envelope.payload = payload;
            envelope.signatures[0].sig = sig;
            let error = verify_envelope(&envelope, &key(1).verifying_key()).unwrap_err();
            assert!(
                matches!(&error, EnvelopeError::BadBase64 { field: f } if f == field),
                "{error:?}"
            );
        }
    }

    #[test]
    fn extra_signatures_are_refused_even_when_they_verify() {
        let mut envelope = sign_statement(&statement(), &key(1)).unwrap();
        envelope.signatures.push(envelope.signatures[0].clone());
        let error = verify_envelope(&envelope, &key(1).verifying_key()).unwrap_err();
        assert!(
            matches!(error, EnvelopeError::SignatureCount { count: 2 }),
            "{error:?}"
        );
        let mut envelope = sign_statement(&statement(), &key(1)).unwrap();
        let other = sign_statement(&statement(), &key(2)).unwrap();
        envelope.signatures.insert(0, other.signatures[0].clone());
        let error = verify_envelope(&envelope, &key(1).verifying_key()).unwrap_err();
        assert!(
            matches!(error, EnvelopeError::SignatureCount { count: 2 }),
            "{error:?}"
        );
    }

    #[test]
    fn the_envelope_file_must_be_byte_for_byte_canonical() {
        let envelope = sign_statement(&statement(), &key(1)).unwrap();
        let bytes = envelope_file_bytes(&envelope).unwrap();
        assert_eq!(parse_envelope(&bytes).unwrap(), envelope);
        let compact = format!("{}\n", serde_json::to_string(&envelope).unwrap());
        let no_newline = &bytes[..bytes.len() - 1];
        let reordered =
            String::from_utf8(bytes.clone())
                .unwrap()
                .replacen("  \"payload\"", "  \"zz\"", 1);
        for variant in [compact.as_bytes(), no_newline] {
            let error = parse_envelope(variant).unwrap_err();
            assert!(matches!(error, EnvelopeError::NotCanonical), "{error:?}");
        }
        assert!(matches!(
            parse_envelope(reordered.as_bytes()),
            Err(EnvelopeError::NotAnEnvelope(_))
        ));
    }

    #[test]
    fn unknown_fields_are_ignored_and_slsa_optional_fields_may_be_absent() {
        let mut value = serde_json::to_value(statement()).unwrap();
        value["futureField"] = serde_json::json!({"any": "thing"});
        value["subject"][0]["annotations"] = serde_json::json!({"note": 1});
        let predicate = &mut value["predicate"];
        predicate["extension"] = serde_json::json!(true);
        let definition = predicate["buildDefinition"].as_object_mut().unwrap();
        definition.remove("internalParameters");
        definition.remove("resolvedDependencies");
        definition.insert("newThing".into(), serde_json::json!([]));
        let details = predicate["runDetails"].as_object_mut().unwrap();
        details.remove("metadata");
        details.remove("byproducts");
        details["builder"]["builderDependencies"] = serde_json::json!([]);
        let envelope = sign_payload(PAYLOAD_TYPE, &serde_json::to_vec(&value).unwrap(), &key(1));
        let parsed = verify_envelope(&envelope, &key(1).verifying_key()).unwrap();
        assert_eq!(parsed.subject, statement().subject);
        assert_eq!(parsed.predicate.build_definition.internal_parameters, None);
        assert!(parsed
            .predicate
            .build_definition
            .resolved_dependencies
            .is_empty());
        assert_eq!(parsed.predicate.run_details.metadata, None);
        assert!(parsed.predicate.run_details.byproducts.is_empty());
    }

    #[test]
    fn no_signatures_is_rejected() {
        let mut envelope = sign_statement(&statement(), &key(1)).unwrap();
        envelope.signatures.clear();
        let error = verify_envelope(&envelope, &key(1).verifying_key()).unwrap_err();
        assert!(matches!(error, EnvelopeError::NoSignatures), "{error:?}");
    }

    #[test]
    fn another_signer_is_named() {
        let envelope = sign_statement(&statement(), &key(2)).unwrap();
        let error = verify_envelope(&envelope, &key(1).verifying_key()).unwrap_err();
        let signer = key_id(&key(2).verifying_key());
        let trusted = key_id(&key(1).verifying_key());
        assert!(
            matches!(&error, EnvelopeError::UntrustedSigner { signed_by, trusted: t }
                if signed_by == &vec![signer.clone()] && t == &trusted),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("signed by key {signer}, not the trusted key {trusted}")
        );
    }

    #[test]
    fn altered_payload_fails_the_signature() {
        let mut envelope = sign_statement(&statement(), &key(1)).unwrap();
        let mut other = statement();
        other.subject[0]
            .digest
            .insert("sha256".into(), "00".repeat(32));
        envelope.payload =
            base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&other).unwrap());
        let error = verify_envelope(&envelope, &key(1).verifying_key()).unwrap_err();
        assert!(
            matches!(error, EnvelopeError::BadSignature { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn a_wrong_keyid_is_refused_even_when_the_signature_verifies() {
        let mut envelope = sign_statement(&statement(), &key(1)).unwrap();
        envelope.signatures[0].keyid = "someone-else\u{1b}[2K".into();
        let error = verify_envelope(&envelope, &key(1).verifying_key()).unwrap_err();
        assert!(
            matches!(&error, EnvelopeError::WrongKeyId { found, .. } if found.starts_with("someone-else")),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("someone-else\\u{1b}[2K"),
            "{error}"
        );
    }

    #[test]
    fn signed_non_statement_is_rejected_after_the_signature() {
        let envelope = sign_payload(PAYLOAD_TYPE, b"{\"hello\": 1}", &key(1));
        let error = verify_envelope(&envelope, &key(1).verifying_key()).unwrap_err();
        assert!(
            matches!(error, EnvelopeError::MalformedStatement(_)),
            "{error:?}"
        );
        let mut other = statement();
        other.predicate_type = "https://slsa.dev/provenance/v0.2".into();
        let envelope = sign_payload(PAYLOAD_TYPE, &serde_json::to_vec(&other).unwrap(), &key(1));
        let error = verify_envelope(&envelope, &key(1).verifying_key()).unwrap_err();
        assert!(
            matches!(error, EnvelopeError::WrongPredicateType { .. }),
            "{error:?}"
        );
    }
}
