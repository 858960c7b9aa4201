//! Reproduction attestations: a signed in-toto Statement v1 about an original
//! bundle, carrying a SLSA Verification Summary Attestation (VSA) v1
//! predicate and, as a capOS extension field `comparison`, the figures the
//! reproducer recorded beside the original's.
//!
//! Invariants:
//! - The subject is the original bundle by its name, which is the sha256 of
//!   its `MANIFEST.sha256`: the same for a directory and any packed archive,
//!   and it pins every file of the bundle.
//! - The envelope is the one DSSE + Ed25519 implementation of
//!   [`crate::bundle::provenance`] (payload type `application/vnd.in-toto+json`),
//!   signed with the reproducer's own key.
//! - An attestation is only written from two fully verified bundles: the
//!   original (with its builder's key) and the reproduction (with the key
//!   that signs the attestation), so the figures it states are the ones
//!   recomputed from raw logs.
//! - Judging an attestation ([`judge`]) never counts one that is not for the
//!   bundle at hand, whose signature does not verify, whose key the policy
//!   does not name as a reproducer, or whose key is a builder's (the
//!   bundle's own signer or any builder the policy names).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context as _, Result};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::bundle::provenance::{self, ResourceDescriptor, PAYLOAD_TYPE, STATEMENT_TYPE};
use crate::bundle::verify::VerifiedBundle;
use crate::bundle::PROVENANCE_FILE;
use crate::proof::compare::{self, Comparison};
use crate::proof::inputs::Inputs;
use crate::proof::policy::Policy;
use crate::proof::stats;
use crate::proof::summary::{self, GateVerdict, SummaryDocument, CONTRACT_FILE};

/// `predicateType` of a SLSA Verification Summary Attestation v1.
pub const VSA_PREDICATE_TYPE: &str = "https://slsa.dev/verification_summary/v1";
/// `verifier.id` of capos as a reproducer.
pub const VERIFIER_ID: &str = "https://capos.dev/evidence/reproducer/capos-cli";
/// `policy.uri`: the reproduction rule (same contract, same accelerator, gates
/// equal, medians and speedups within the tolerance).
pub const POLICY_URI: &str = "https://capos.dev/evidence/reproduce/v1";
/// File-name suffix of a stored attestation envelope.
pub const FILE_SUFFIX: &str = ".vsa.dsse.json";
/// Directory of a store that holds attestations, one folder per original bundle.
pub const STORE_DIR: &str = "attestations";
/// Largest attestation envelope read (they are a few KiB).
pub const MAX_ATTESTATION_BYTES: u64 = 4 << 20;

/// `PASSED` or `FAILED`, as SLSA VSA spells them.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationResult {
    /// The reproduction agrees with the original.
    #[serde(rename = "PASSED")]
    Passed,
    /// It does not (a figure moved, a gate flipped, or not comparable).
    #[serde(rename = "FAILED")]
    Failed,
}

/// The in-toto statement of a reproduction attestation.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AttestationStatement {
    /// Always [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// The original bundle (exactly one).
    pub subject: Vec<ResourceDescriptor>,
    /// Always [`VSA_PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The verification summary.
    pub predicate: VerificationSummary,
}

/// SLSA VSA v1 predicate, plus the capOS `comparison` extension.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VerificationSummary {
    /// Who verified.
    pub verifier: Verifier,
    /// RFC 3339 time of the verdict.
    pub time_verified: String,
    /// Where the original was taken from (a path or an `oci://` reference).
    pub resource_uri: String,
    /// The rule applied: the contract and the tolerance.
    pub policy: PolicyDescriptor,
    /// The original provenance and the reproducer's own bundle.
    pub input_attestations: Vec<ResourceDescriptor>,
    /// The verdict.
    pub verification_result: VerificationResult,
    /// SLSA levels verified: none (this is a reproduction, not a SLSA check).
    #[serde(default)]
    pub verified_levels: Vec<String>,
    /// SLSA version of this predicate.
    pub slsa_version: String,
    /// capOS extension: the figures side by side.
    pub comparison: ReproductionComparison,
}

/// VSA `verifier`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    /// [`VERIFIER_ID`].
    pub id: String,
    /// capos version and commit.
    #[serde(default)]
    pub version: BTreeMap<String, String>,
}

/// VSA `policy`: the contract (by digest) and the tolerance.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDescriptor {
    /// [`POLICY_URI`].
    pub uri: String,
    /// Contract name.
    pub name: String,
    /// sha256 of the original bundle's `contract.yaml`.
    pub digest: BTreeMap<String, String>,
    /// A median or speedup agrees when within this many percent.
    pub tolerance_percent: f64,
}

/// One side of a reproduction: where and how it ran.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Side {
    /// Bundle name.
    pub bundle: String,
    /// Accelerator the runs used (`kvm`, `tcg`).
    pub accelerator: String,
    /// Host CPU model.
    pub cpu_model: String,
    /// Host logical CPUs.
    pub cpu_count: u32,
    /// Host kernel release.
    pub host_kernel: String,
    /// QEMU version line.
    pub qemu: String,
    /// sha256 of the booted ISO.
    pub iso_sha256: String,
    /// Claim level of the run (`publishable`, ...).
    pub claim: String,
}

impl Side {
    /// A short host label: CPU model and count.
    #[must_use]
    pub fn host(&self) -> String {
        format!("{} ({} CPUs)", self.cpu_model, self.cpu_count)
    }
}

/// One median or speedup, recorded and reproduced.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FigurePair {
    /// `case/metric` for a median, the speedup id for a speedup.
    pub id: String,
    /// The original's figure.
    pub recorded: Option<f64>,
    /// The reproduction's figure.
    pub reproduced: Option<f64>,
    /// Relative change in percent.
    pub change_percent: Option<f64>,
    /// Whether within the tolerance.
    pub within_tolerance: bool,
}

/// One gate, recorded and reproduced.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GatePair {
    /// Gate id.
    pub id: String,
    /// The original's verdict.
    pub recorded: GateVerdict,
    /// The reproduction's verdict, if it has the gate.
    pub reproduced: Option<GateVerdict>,
}

/// The capOS `comparison` extension of the predicate.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReproductionComparison {
    /// Contract name.
    pub contract: String,
    /// The original run.
    pub original: Side,
    /// The reproducing run.
    pub reproduction: Side,
    /// Whether the reproduction booted the bit-identical ISO.
    pub iso_identical: bool,
    /// Per case and metric.
    pub medians: Vec<FigurePair>,
    /// Per speedup.
    pub speedups: Vec<FigurePair>,
    /// Per gate.
    pub gates: Vec<GatePair>,
    /// Figures that moved beyond the tolerance, and gates that flipped, in words.
    pub moved: Vec<String>,
    /// Why the runs are not comparable at all, if so.
    pub blocker: Option<String>,
}

/// One verified bundle's facts for an attestation.
pub struct AttestedBundle<'a> {
    /// The verified bundle.
    pub bundle: &'a VerifiedBundle,
    /// Its inputs.json.
    pub inputs: Inputs,
    /// Its summary.json.
    pub summary: SummaryDocument,
}

impl<'a> AttestedBundle<'a> {
    /// Read inputs and summary of a verified bundle.
    pub fn read(bundle: &'a VerifiedBundle) -> Result<Self> {
        let (_, inputs, summary) = summary::read_bundle(&bundle.files)?;
        Ok(Self {
            bundle,
            inputs,
            summary,
        })
    }

    fn side(&self) -> Side {
        Side {
            bundle: self.bundle.name.clone(),
            accelerator: self.inputs.accelerator.name.to_string(),
            cpu_model: self.inputs.host.cpu_model.clone(),
            cpu_count: self.inputs.host.cpu_count,
            host_kernel: self.inputs.host.kernel.clone(),
            qemu: self.inputs.qemu.version.clone(),
            iso_sha256: self.inputs.iso.sha256.clone(),
            claim: self.summary.claim.level.to_string(),
        }
    }
}

/// The comparison extension from a [`Comparison`] of the two summaries.
#[must_use]
pub fn comparison_of(
    original: &AttestedBundle<'_>,
    reproduction: &AttestedBundle<'_>,
    comparison: &Comparison,
) -> ReproductionComparison {
    let medians: Vec<FigurePair> = comparison
        .medians
        .iter()
        .map(|median| FigurePair {
            id: format!("{}/{}", median.case, median.metric),
            recorded: median.old,
            reproduced: median.new,
            change_percent: median.change_percent,
            within_tolerance: median.agrees,
        })
        .collect();
    let speedups: Vec<FigurePair> = comparison
        .speedups
        .iter()
        .map(|speedup| FigurePair {
            id: speedup.id.clone(),
            recorded: speedup.old,
            reproduced: speedup.new,
            change_percent: speedup.change_percent,
            within_tolerance: speedup.agrees,
        })
        .collect();
    let gates: Vec<GatePair> = comparison
        .gates
        .iter()
        .map(|gate| GatePair {
            id: gate.id.clone(),
            recorded: gate.old,
            reproduced: gate.new,
        })
        .collect();
    let mut moved = Vec::new();
    for pair in speedups.iter().chain(&medians) {
        if !pair.within_tolerance {
            moved.push(format!(
                "{}: {} vs {}",
                pair.id,
                figure(pair.recorded),
                figure(pair.reproduced)
            ));
        }
    }
    for gate in &gates {
        if gate.reproduced != Some(gate.recorded) {
            moved.push(format!(
                "gate {}: {} vs {}",
                gate.id,
                verdict_word(Some(gate.recorded)),
                verdict_word(gate.reproduced)
            ));
        }
    }
    let original_side = original.side();
    let reproduction_side = reproduction.side();
    let iso_identical = original_side.iso_sha256 == reproduction_side.iso_sha256;
    if !iso_identical {
        moved.push("the reproduction booted another ISO".to_owned());
    }
    ReproductionComparison {
        contract: original.summary.contract.clone(),
        original: original_side,
        reproduction: reproduction_side,
        iso_identical,
        medians,
        speedups,
        gates,
        moved,
        blocker: comparison.blocker.clone(),
    }
}

/// A figure as the reports show it, `none` when absent.
#[must_use]
pub fn figure(value: Option<f64>) -> String {
    value.map_or_else(|| "none".to_owned(), stats::format_figure)
}

fn verdict_word(verdict: Option<GateVerdict>) -> &'static str {
    match verdict {
        Some(GateVerdict::Pass) => "pass",
        Some(GateVerdict::Fail) => "fail",
        Some(GateVerdict::Inconclusive) => "inconclusive",
        None => "missing",
    }
}

/// Build the attestation statement: `reproduction` re-ran `original` and the
/// two summaries compare as `comparison` under `tolerance_percent`.
pub fn build(
    original: &AttestedBundle<'_>,
    reproduction: &AttestedBundle<'_>,
    tolerance_percent: f64,
    resource_uri: &str,
    time_verified: &str,
) -> Result<AttestationStatement> {
    let comparison = compare::compare(&original.summary, &reproduction.summary, tolerance_percent);
    let extension = comparison_of(original, reproduction, &comparison);
    let passed = comparison.agrees() && extension.iso_identical;
    let provenance_digest = |bundle: &VerifiedBundle| -> Result<String> {
        let bytes = bundle.files.read(PROVENANCE_FILE)?;
        Ok(crate::digest::sha256_hex(&bytes))
    };
    let contract_bytes = original.bundle.files.read(CONTRACT_FILE)?;
    let name = &original.bundle.name;
    let reproduction_name = &reproduction.bundle.name;
    Ok(AttestationStatement {
        statement_type: STATEMENT_TYPE.to_owned(),
        subject: vec![ResourceDescriptor::sha256(name.clone(), name.clone())],
        predicate_type: VSA_PREDICATE_TYPE.to_owned(),
        predicate: VerificationSummary {
            verifier: Verifier {
                id: VERIFIER_ID.to_owned(),
                version: crate::tool::builder_version(),
            },
            time_verified: time_verified.to_owned(),
            resource_uri: resource_uri.to_owned(),
            policy: PolicyDescriptor {
                uri: POLICY_URI.to_owned(),
                name: original.summary.contract.clone(),
                digest: BTreeMap::from([(
                    "sha256".to_owned(),
                    crate::digest::sha256_hex(&contract_bytes),
                )]),
                tolerance_percent,
            },
            input_attestations: vec![
                ResourceDescriptor {
                    name: format!("{name}/{PROVENANCE_FILE}"),
                    uri: None,
                    digest: BTreeMap::from([(
                        "sha256".to_owned(),
                        provenance_digest(original.bundle)?,
                    )]),
                },
                ResourceDescriptor {
                    name: format!("{reproduction_name}/{PROVENANCE_FILE}"),
                    uri: None,
                    digest: BTreeMap::from([(
                        "sha256".to_owned(),
                        provenance_digest(reproduction.bundle)?,
                    )]),
                },
                ResourceDescriptor::sha256(reproduction_name.clone(), reproduction_name.clone()),
            ],
            verification_result: if passed {
                VerificationResult::Passed
            } else {
                VerificationResult::Failed
            },
            verified_levels: Vec::new(),
            slsa_version: "1.0".to_owned(),
            comparison: extension,
        },
    })
}

/// Sign `statement` with `key`: the bytes of its DSSE envelope file.
pub fn sign(statement: &AttestationStatement, key: &SigningKey) -> Result<Vec<u8>> {
    let body = serde_json::to_vec(statement).context("serializing the attestation")?;
    let envelope = provenance::sign_payload(PAYLOAD_TYPE, &body, key);
    provenance::envelope_file_bytes(&envelope).context("serializing the attestation envelope")
}

/// Where a store keeps the attestation of `reproduction` about `original`:
/// `attestations/<original>/<reproduction>.vsa.dsse.json`.
#[must_use]
pub fn store_path(original: &str, reproduction: &str) -> String {
    format!("{STORE_DIR}/{original}/{reproduction}{FILE_SUFFIX}")
}

/// Why an attestation is not counted.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a DSSE envelope capos writes.
    #[error("not an attestation envelope: {0}")]
    NotAnEnvelope(String),
    /// Signed by a key the policy does not name.
    #[error("signed by key {key_id}, which the trust policy does not name as a reproducer")]
    KeyOutsidePolicy {
        /// The signer's key id.
        key_id: String,
    },
    /// Signed by a builder's key: not an independent reproduction.
    #[error(
        "signed by builder key {key_id} ({name}): a builder's own reproduction is not independent"
    )]
    BuilderKey {
        /// The signer's key id.
        key_id: String,
        /// The policy's name for it.
        name: String,
    },
    /// The signature does not verify with the key it names.
    #[error("the signature does not verify: {0}")]
    BadSignature(String),
    /// The statement is not a capOS reproduction attestation.
    #[error("not a reproduction attestation: {0}")]
    Malformed(String),
    /// It is about another bundle.
    #[error("it attests bundle {subject}, not this bundle")]
    OtherBundle {
        /// What it names as its subject.
        subject: String,
    },
}

/// One attestation, judged against a bundle and a policy.
#[derive(Debug, Clone)]
pub struct Judged {
    /// Where it came from (a path or an OCI digest).
    pub source: String,
    /// The key id it names, when it is an envelope at all.
    pub key_id: Option<String>,
    /// The verified statement and the policy's name for its key, or why not counted.
    pub outcome: Result<(String, AttestationStatement), Refusal>,
}

/// Judge one attestation envelope (`bytes`, from `source`) about bundle
/// `bundle_name`, signed (the bundle) by `bundle_signer`, against `policy`.
#[must_use]
pub fn judge(
    bytes: &[u8],
    source: &str,
    bundle_name: &str,
    bundle_signer: &VerifyingKey,
    policy: &Policy,
) -> Judged {
    let envelope = match provenance::parse_envelope(bytes) {
        Ok(envelope) => envelope,
        Err(error) => {
            return Judged {
                source: source.to_owned(),
                key_id: None,
                outcome: Err(Refusal::NotAnEnvelope(error.to_string())),
            }
        }
    };
    let key_id = envelope
        .signatures
        .first()
        .map(|signature| signature.keyid.clone());
    let outcome = judge_envelope(&envelope, bundle_name, bundle_signer, policy);
    Judged {
        source: source.to_owned(),
        key_id,
        outcome,
    }
}

fn judge_envelope(
    envelope: &provenance::Envelope,
    bundle_name: &str,
    bundle_signer: &VerifyingKey,
    policy: &Policy,
) -> Result<(String, AttestationStatement), Refusal> {
    let Some(named) = envelope.signatures.first().map(|s| s.keyid.as_str()) else {
        return Err(Refusal::NotAnEnvelope("no signature".to_owned()));
    };
    let bad = |error: provenance::EnvelopeError| Refusal::BadSignature(error.to_string());
    let signer_id = provenance::key_id(bundle_signer);
    let builder = if named == signer_id {
        Some(("the bundle's signer".to_owned(), *bundle_signer))
    } else {
        policy.builder(named).map(|key| (key.name.clone(), key.key))
    };
    if let Some((name, key)) = builder {
        provenance::verify_payload(envelope, PAYLOAD_TYPE, &key).map_err(bad)?;
        return Err(Refusal::BuilderKey {
            key_id: named.to_owned(),
            name,
        });
    }
    let Some(reproducer) = policy.reproducer(named) else {
        return Err(Refusal::KeyOutsidePolicy {
            key_id: named.to_owned(),
        });
    };
    let body = provenance::verify_payload(envelope, PAYLOAD_TYPE, &reproducer.key).map_err(bad)?;
    let statement: AttestationStatement =
        serde_json::from_slice(&body).map_err(|error| Refusal::Malformed(error.to_string()))?;
    if statement.statement_type != STATEMENT_TYPE {
        return Err(Refusal::Malformed(format!(
            "_type is {:?}",
            statement.statement_type
        )));
    }
    if statement.predicate_type != VSA_PREDICATE_TYPE {
        return Err(Refusal::Malformed(format!(
            "predicateType is {:?}",
            statement.predicate_type
        )));
    }
    let subject_ok = match statement.subject.as_slice() {
        [subject] => subject.digest.get("sha256").map(String::as_str) == Some(bundle_name),
        _ => false,
    };
    if !subject_ok {
        let subject = statement
            .subject
            .iter()
            .map(|subject| {
                subject
                    .digest
                    .get("sha256")
                    .cloned()
                    .unwrap_or_else(|| subject.name.clone())
            })
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Refusal::OtherBundle {
            subject: crate::terminal::untrusted(&subject).into_owned(),
        });
    }
    Ok((reproducer.name.clone(), statement))
}

/// The headline over judged attestations, e.g. "reproduced by 2 independent
/// keys on 2 hosts; 1 disagreement (alice: thread-scale 1-to-2: 1.42 vs 2.03); 1 refused".
#[must_use]
pub fn headline(judged: &[Judged]) -> String {
    let mut keys = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    let mut disagreements = Vec::new();
    let mut refused = 0;
    for one in judged {
        match &one.outcome {
            Ok((name, statement)) => {
                let predicate = &statement.predicate;
                match predicate.verification_result {
                    VerificationResult::Passed => {
                        keys.insert(one.key_id.clone().unwrap_or_default());
                        hosts.insert(predicate.comparison.reproduction.host());
                    }
                    VerificationResult::Failed => {
                        let what = predicate
                            .comparison
                            .blocker
                            .clone()
                            .into_iter()
                            .chain(predicate.comparison.moved.iter().cloned())
                            .collect::<Vec<_>>()
                            .join(", ");
                        disagreements.push(format!("{name}: {what}"));
                    }
                }
            }
            Err(_) => refused += 1,
        }
    }
    let plural = |count: usize, word: &str| {
        if count == 1 {
            format!("{count} {word}")
        } else {
            format!("{count} {word}s")
        }
    };
    let mut text = if keys.is_empty() {
        "not reproduced by any independent key".to_owned()
    } else {
        format!(
            "reproduced by {} on {}",
            plural(keys.len(), "independent key"),
            plural(hosts.len(), "host")
        )
    };
    text.push_str(&format!(
        "; {}",
        plural(disagreements.len(), "disagreement")
    ));
    if !disagreements.is_empty() {
        text.push_str(&format!(" ({})", disagreements.join("; ")));
    }
    if refused > 0 {
        text.push_str(&format!("; {refused} refused"));
    }
    crate::terminal::untrusted(&text).into_owned()
}

/// Whether `verdict` as a word (for reports).
#[must_use]
pub fn result_word(result: VerificationResult) -> &'static str {
    match result {
        VerificationResult::Passed => "agrees",
        VerificationResult::Failed => "disagrees",
    }
}

/// One counted attestation, as the report's table shows it.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct ReproductionRow {
    /// The policy's name for the key.
    pub key_name: String,
    /// The key id.
    pub key_id: String,
    /// Host label.
    pub host: String,
    /// Accelerator.
    pub accelerator: String,
    /// When it was verified.
    pub date: String,
    /// `agrees` or `disagrees`.
    pub result: String,
    /// The tolerance it applied, in percent.
    pub tolerance: String,
    /// What moved, in words (empty when it agrees).
    pub moved: String,
    /// The reproduction's own bundle.
    pub bundle: String,
}

/// One figure of the original beside every counted reproduction.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct FigureRow {
    /// `case/metric` or speedup id.
    pub id: String,
    /// Whether a speedup (else a median).
    pub speedup: bool,
    /// The original's figure.
    pub original: String,
    /// Each counted reproduction's figure, `!` marking one beyond the tolerance.
    pub reproduced: Vec<String>,
}

/// One refused attestation.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct RefusedRow {
    /// Where it came from.
    pub source: String,
    /// The key id it names.
    pub key_id: String,
    /// Why it is not counted.
    pub reason: String,
}

/// What a report shows about reproductions.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct ReproductionsView {
    /// The headline ([`headline`]).
    pub headline: String,
    /// Where the attestations came from.
    pub origin: String,
    /// Counted attestations.
    pub rows: Vec<ReproductionRow>,
    /// Figures side by side (columns in the order of `rows`).
    pub figures: Vec<FigureRow>,
    /// Refused attestations.
    pub refused: Vec<RefusedRow>,
}

/// The report view of `judged` attestations from `origin`.
#[must_use]
pub fn view(judged: &[Judged], origin: &str) -> ReproductionsView {
    let esc = |text: &str| crate::terminal::untrusted(text).into_owned();
    let mut rows = Vec::new();
    let mut counted = Vec::new();
    let mut refused = Vec::new();
    for one in judged {
        let key_id = one.key_id.clone().unwrap_or_else(|| "none".to_owned());
        match &one.outcome {
            Ok((name, statement)) => {
                let predicate = &statement.predicate;
                let comparison = &predicate.comparison;
                rows.push(ReproductionRow {
                    key_name: esc(name),
                    key_id: key_id.clone(),
                    host: esc(&comparison.reproduction.host()),
                    accelerator: esc(&comparison.reproduction.accelerator),
                    date: esc(&predicate.time_verified),
                    result: result_word(predicate.verification_result).to_owned(),
                    tolerance: format!("±{}%", predicate.policy.tolerance_percent),
                    moved: esc(&comparison
                        .blocker
                        .iter()
                        .chain(&comparison.moved)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; ")),
                    bundle: esc(&comparison.reproduction.bundle),
                });
                counted.push(comparison);
            }
            Err(refusal) => refused.push(RefusedRow {
                source: esc(&one.source),
                key_id: esc(&key_id),
                reason: esc(&refusal.to_string()),
            }),
        }
    }
    let mut figures = Vec::new();
    if let Some(first) = counted.first() {
        let pairs = |comparison: &ReproductionComparison, speedup: bool| {
            if speedup {
                comparison.speedups.clone()
            } else {
                comparison.medians.clone()
            }
        };
        for speedup in [true, false] {
            for pair in pairs(first, speedup) {
                let reproduced = counted
                    .iter()
                    .map(|comparison| {
                        pairs(comparison, speedup)
                            .iter()
                            .find(|other| other.id == pair.id)
                            .map_or_else(
                                || "—".to_owned(),
                                |other| {
                                    let mark = if other.within_tolerance { "" } else { " !" };
                                    format!("{}{mark}", figure(other.reproduced))
                                },
                            )
                    })
                    .collect();
                figures.push(FigureRow {
                    id: esc(&pair.id),
                    speedup,
                    original: figure(pair.recorded),
                    reproduced,
                });
            }
        }
    }
    ReproductionsView {
        headline: headline(judged),
        origin: esc(origin),
        rows,
        figures,
        refused,
    }
}

/// Attestation envelopes in a local `path`: a directory searched (8 levels
/// deep) for `*.vsa.dsse.json`, or a tar holding such files; each with its origin.
pub fn collect_local(path: &std::path::Path) -> Result<Vec<(String, Vec<u8>)>> {
    if path.is_dir() {
        let mut found = Vec::new();
        collect_dir(path, &mut found, 0)?;
        found.sort();
        return Ok(found);
    }
    if path.is_file() {
        return collect_tar(path);
    }
    anyhow::bail!(
        "{}: no such directory, archive or oci:// reference",
        path.display()
    );
}

fn collect_dir(
    dir: &std::path::Path,
    found: &mut Vec<(String, Vec<u8>)>,
    depth: usize,
) -> Result<()> {
    if depth > 8 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            collect_dir(&path, found, depth + 1)?;
        } else if kind.is_file()
            && path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().ends_with(FILE_SUFFIX))
        {
            let size = entry.metadata()?.len();
            if size > MAX_ATTESTATION_BYTES {
                bail!(
                    "{} is {size} bytes, over the {}-byte attestation limit",
                    path.display(),
                    MAX_ATTESTATION_BYTES
                );
            }
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            found.push((path.display().to_string(), bytes));
        }
    }
    Ok(())
}

fn collect_tar(path: &std::path::Path) -> Result<Vec<(String, Vec<u8>)>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut archive = tar::Archive::new(file);
    let mut found = Vec::new();
    for entry in archive
        .entries()
        .with_context(|| format!("reading {}", path.display()))?
    {
        let entry = entry.with_context(|| format!("reading {}", path.display()))?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if !entry.header().entry_type().is_file() || !name.ends_with(FILE_SUFFIX) {
            continue;
        }
        if entry.size() > MAX_ATTESTATION_BYTES {
            bail!("{}: {name} is over the attestation limit", path.display());
        }
        let mut bytes = Vec::new();
        entry.take(MAX_ATTESTATION_BYTES).read_to_end(&mut bytes)?;
        found.push((format!("{}:{name}", path.display()), bytes));
    }
    Ok(found)
}
