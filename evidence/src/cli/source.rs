//! Where a bundle argument points: a directory, a packed archive, or an
//! `oci://` reference, which is pulled (digest-checked, size-capped) into a
//! temporary directory that lives as long as the [`BundleSource`].

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use oci_client::Reference;

use crate::bundle::oci::{self, Archive, BundleArtifact, Connection};

/// Options every verb that reaches a registry takes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// Use plain HTTP (no TLS) for a registry that is not on a loopback
    /// address; 127.0.0.1, localhost and [::1] always use plain HTTP.
    /// Credentials come from CAPOS_OCI_USERNAME and CAPOS_OCI_PASSWORD.
    #[arg(long, env = "CAPOS_OCI_PLAIN_HTTP")]
    pub plain_http: bool,
}

impl RegistryArgs {
    /// The connection these options describe.
    #[must_use]
    pub fn connection(&self) -> Connection {
        Connection::from_env(self.plain_http)
    }
}

/// A bundle argument, resolved to a local path.
pub struct BundleSource {
    /// The directory or archive to verify.
    pub path: PathBuf,
    /// The registry artifact it was pulled from, if any.
    pub pulled: Option<(Reference, BundleArtifact)>,
    _temporary: Option<tempfile::TempDir>,
}

/// Resolve `argument`: an `oci://` reference is pulled into a temporary
/// directory (at most `max_bytes`); anything else is a local path.
pub fn resolve(argument: &Path, registry: &RegistryArgs, max_bytes: u64) -> Result<BundleSource> {
    let text = argument.to_string_lossy();
    if !oci::is_oci(&text) {
        return Ok(BundleSource {
            path: argument.to_path_buf(),
            pulled: None,
            _temporary: None,
        });
    }
    let reference = oci::parse_reference(&text)?;
    let archive = Archive::connect(&reference, &registry.connection())?;
    let (artifact, tar) = archive.pull_bundle(&reference, max_bytes)?;
    let temporary = tempfile::tempdir().context("creating a temporary directory")?;
    let path = temporary.path().join("bundle.tar");
    std::fs::write(&path, tar).with_context(|| format!("writing {}", path.display()))?;
    Ok(BundleSource {
        path,
        pulled: Some((reference, artifact)),
        _temporary: Some(temporary),
    })
}
