//! Content-addressed evidence bundles: a directory of files, its canonical
//! manifest of file digests, and a name that is the digest of that manifest.
//!
//! Layout (the run writes everything but the last two):
//! `contract.yaml`, `inputs.json`, `results.csv`, `summary.json`,
//! `logs/<case>/<repetition>/{serial.log,serial.timed.log,stderr.log,command.txt,exit.json}`,
//! `provenance.dsse.json`, `MANIFEST.sha256`.
//!
//! This layer knows the bundle as a format only: [`manifest`] (the digest
//! list and the tree rules), [`provenance`] (the signed statement),
//! [`keys`], [`writer`] (staging and sealing), [`pack`] (archives) and
//! [`verify`] (integrity and signature); [`format`] holds the frozen record
//! types a run writes (exit records, the accelerator tag). What the files mean — contracts,
//! figures, reports — is the business of the `proof` layer.

pub mod archive;
pub mod files;
pub mod format;
pub mod keys;
pub mod manifest;
pub mod oci;
pub mod pack;
pub mod provenance;
pub mod runlog;
pub mod verify;
pub mod writer;

/// Name of the manifest file at the bundle root.
pub const MANIFEST_FILE: &str = "MANIFEST.sha256";
/// Name of the signed provenance at the bundle root.
pub const PROVENANCE_FILE: &str = "provenance.dsse.json";
/// Directory whose files are recorded as provenance byproducts (raw logs).
pub const LOGS_DIR: &str = "logs";
/// Prefix of the staging directories a [`BundleWriter`] creates in the store.
pub const STAGING_PREFIX: &str = ".staging-";

/// Whether a bundle file is a provenance byproduct (a raw log).
#[must_use]
pub fn is_byproduct(path: &str) -> bool {
    path.strip_prefix(LOGS_DIR)
        .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byproducts_are_exactly_the_logs() {
        assert!(is_byproduct("logs/a/1/serial.log"));
        assert!(!is_byproduct("logs"));
        assert!(!is_byproduct("logs-old/a"));
        assert!(!is_byproduct("results.csv"));
    }
}
