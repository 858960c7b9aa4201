//! Building a bundle: the run writes into a staging directory in the store,
//! and sealing signs, names and publishes it in one rename.
//!
//! Invariant: a directory under the store named by a 64-digit hex digest was
//! renamed there whole; an unfinished bundle only ever lives in a
//! `.staging-*` directory, which is removed when the writer is dropped unsealed.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use ed25519_dalek::SigningKey;
use rand_core::RngCore as _;

use super::manifest::{bundle_name, manifest_entries, render_manifest, ManifestEntry};
use super::provenance::{self, BuildFacts, ResourceDescriptor};
use super::{is_byproduct, MANIFEST_FILE, PROVENANCE_FILE, STAGING_PREFIX};

/// Builds one bundle: the run writes into a staging directory, then
/// [`BundleWriter::seal`] signs, names and publishes it.
///
/// Dropping a writer without sealing removes the staging directory, so
/// nothing half-written ever looks like a bundle.
#[derive(Debug)]
pub struct BundleWriter {
    store: PathBuf,
    staging: PathBuf,
    finished: bool,
}

impl BundleWriter {
    /// New empty staging dir `<store>/.staging-<random hex>` (the store is
    /// created if missing).
    pub fn create(store: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(store)
            .with_context(|| format!("cannot create the bundle store {}", store.display()))?;
        let mut random = [0u8; 16];
        rand_core::OsRng.fill_bytes(&mut random);
        let staging = store.join(format!("{STAGING_PREFIX}{}", hex::encode(random)));
        fs::create_dir(&staging).with_context(|| {
            format!(
                "cannot write to the bundle store {} (creating {})",
                store.display(),
                staging.display()
            )
        })?;
        Ok(Self {
            store: store.to_path_buf(),
            staging,
            finished: false,
        })
    }

    /// Directory to write the run's files into.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.staging
    }

    /// Digest every file, write `provenance.dsse.json` (subjects: every file;
    /// byproducts: every file under `logs/`), then `MANIFEST.sha256`, then
    /// rename the staging directory to `<store>/<name>` and return that path.
    ///
    /// If `<store>/<name>` exists already it holds the same content (the
    /// name is the digest of the manifest): the staging copy is dropped and
    /// the existing path returned.
    #[must_use = "the sealed bundle path is the only way to find the bundle"]
    pub fn seal(mut self, key: &SigningKey, facts: &BuildFacts) -> anyhow::Result<PathBuf> {
        for reserved in [PROVENANCE_FILE, MANIFEST_FILE] {
            if fs::symlink_metadata(self.staging.join(reserved)).is_ok() {
                bail!("the run wrote {reserved} itself; only the bundle writer writes it");
            }
        }
        let mut entries = manifest_entries(&self.staging).context("digesting the bundle files")?;
        let subjects: Vec<ResourceDescriptor> = entries
            .iter()
            .map(|entry| ResourceDescriptor::sha256(&entry.path, &entry.sha256))
            .collect();
        let byproducts = subjects
            .iter()
            .filter(|subject| is_byproduct(&subject.name))
            .cloned()
            .collect();
        let statement = provenance::build_statement(subjects, byproducts, facts);
        let envelope = provenance::sign_statement(&statement, key)
            .context("serializing the provenance statement")?;
        let provenance_path = self.staging.join(PROVENANCE_FILE);
        let provenance_bytes = provenance::envelope_file_bytes(&envelope)?;
        fs::write(&provenance_path, &provenance_bytes)
            .with_context(|| format!("writing {}", provenance_path.display()))?;

        // The other files were digested above; add the envelope from the
        // bytes just written instead of walking and hashing everything again.
        entries.push(ManifestEntry {
            path: PROVENANCE_FILE.to_owned(),
            size: provenance_bytes.len() as u64,
            sha256: crate::digest::sha256_hex(&provenance_bytes),
        });
        let manifest = render_manifest(&entries);
        let manifest_path = self.staging.join(MANIFEST_FILE);
        fs::write(&manifest_path, &manifest)
            .with_context(|| format!("writing {}", manifest_path.display()))?;

        let target = self.store.join(bundle_name(manifest.as_bytes()));
        if !target.exists() {
            if let Err(error) = fs::rename(&self.staging, &target) {
                // Another writer may have published the same bundle meanwhile.
                if !target.is_dir() {
                    return Err(error).with_context(|| {
                        format!(
                            "renaming {} to {}",
                            self.staging.display(),
                            target.display()
                        )
                    });
                }
            } else {
                self.finished = true;
                return Ok(target);
            }
        }
        fs::remove_dir_all(&self.staging)
            .with_context(|| format!("removing {}", self.staging.display()))?;
        self.finished = true;
        Ok(target)
    }
}

impl Drop for BundleWriter {
    fn drop(&mut self) {
        if !self.finished {
            // Best effort: an error here leaves a `.staging-*` directory,
            // which is never mistaken for a bundle.
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::manifest::{parse_manifest, BundleError};

    fn facts() -> BuildFacts {
        BuildFacts {
            build_type: "https://capos.example/run/v1".into(),
            external_parameters: serde_json::json!({}),
            internal_parameters: serde_json::json!({}),
            resolved_dependencies: vec![],
            builder_id: "https://capos.example/builder".into(),
            builder_version: Default::default(),
            invocation_id: "test".into(),
            started_on: "2025-01-01T00:00:00Z".into(),
            finished_on: "2025-01-01T00:00:01Z".into(),
        }
    }

    #[test]
    fn seal_names_the_bundle_by_its_manifest() {
        let store = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        let writer = BundleWriter::create(store.path()).unwrap();
        fs::create_dir_all(writer.root().join("logs/case/1")).unwrap();
        fs::write(writer.root().join("results.csv"), "a,b\n").unwrap();
        fs::write(writer.root().join("logs/case/1/serial.log"), "ok\n").unwrap();
        let bundle = writer.seal(&key, &facts()).unwrap();
        let manifest = fs::read(bundle.join(MANIFEST_FILE)).unwrap();
        assert_eq!(bundle, store.path().join(bundle_name(&manifest)));
        let entries = parse_manifest(&manifest).unwrap();
        let paths: Vec<&str> = entries.iter().map(|entry| entry.path.as_str()).collect();
        assert_eq!(
            paths,
            ["logs/case/1/serial.log", PROVENANCE_FILE, "results.csv"]
        );
        let envelope =
            provenance::parse_envelope(&fs::read(bundle.join(PROVENANCE_FILE)).unwrap()).unwrap();
        let statement = provenance::verify_envelope(&envelope, &key.verifying_key()).unwrap();
        let subjects: Vec<&str> = statement
            .subject
            .iter()
            .map(|subject| subject.name.as_str())
            .collect();
        assert_eq!(subjects, ["logs/case/1/serial.log", "results.csv"]);
        let byproducts: Vec<&str> = statement
            .predicate
            .run_details
            .byproducts
            .iter()
            .map(|byproduct| byproduct.name.as_str())
            .collect();
        assert_eq!(byproducts, ["logs/case/1/serial.log"]);
        let leftovers: Vec<_> = fs::read_dir(store.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [bundle.file_name().unwrap()]);
    }

    #[test]
    fn sealing_the_same_content_twice_returns_the_existing_bundle() {
        let store = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut sealed = Vec::new();
        for _ in 0..2 {
            let writer = BundleWriter::create(store.path()).unwrap();
            fs::write(writer.root().join("results.csv"), "a,b\n").unwrap();
            sealed.push(writer.seal(&key, &facts()).unwrap());
        }
        assert_eq!(sealed[0], sealed[1]);
        assert_eq!(fs::read_dir(store.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropping_an_unsealed_writer_removes_staging() {
        let store = tempfile::tempdir().unwrap();
        let writer = BundleWriter::create(store.path()).unwrap();
        let staging = writer.root().to_path_buf();
        assert!(staging
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(STAGING_PREFIX));
        fs::write(staging.join("results.csv"), "partial").unwrap();
        drop(writer);
        assert!(!staging.exists());
        assert_eq!(fs::read_dir(store.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_failed_seal_leaves_no_bundle() {
        let store = tempfile::tempdir().unwrap();
        let writer = BundleWriter::create(store.path()).unwrap();
        fs::create_dir(writer.root().join("empty")).unwrap();
        let error = writer
            .seal(&SigningKey::from_bytes(&[7; 32]), &facts())
            .unwrap_err();
        assert!(
            matches!(
                error.downcast_ref::<BundleError>(),
                Some(BundleError::EmptyDirectory { path }) if path == "empty"
            ),
            "{error:#}"
        );
        assert_eq!(fs::read_dir(store.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_run_may_not_write_the_reserved_files() {
        let store = tempfile::tempdir().unwrap();
        let writer = BundleWriter::create(store.path()).unwrap();
        fs::write(writer.root().join(PROVENANCE_FILE), "{}").unwrap();
        let error = writer
            .seal(&SigningKey::from_bytes(&[7; 32]), &facts())
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("the run wrote {PROVENANCE_FILE} itself; only the bundle writer writes it")
        );
    }

    #[test]
    fn unwritable_store_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-directory");
        fs::write(&file, "").unwrap();
        let store = file.join("store");
        let error = BundleWriter::create(&store).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cannot create the bundle store {}", store.display())
        );
    }
}
