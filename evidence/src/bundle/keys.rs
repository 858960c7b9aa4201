//! Ed25519 key files (`capos keygen`): PKCS#8 PEM private keys, SPKI PEM public keys.
//!
//! Invariants:
//! - Private keys are written as PKCS#8 v1 (RFC 5208 `PrivateKeyInfo`, no
//!   public key inside), the form every common tool loads; v1 and v2 are read.
//! - A private key file is written with mode 0600 and never silently
//!   replaced: overwriting needs `--force`.
//! - The public half of `<path>` lives at `<path>.pub`; that file is all a
//!   third party needs to audit a bundle.
//! - A key id is the lowercase hex sha256 of the raw 32-byte public key.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use ed25519_dalek::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, KeypairBytes};
use ed25519_dalek::{SigningKey, VerifyingKey};

pub use crate::bundle::provenance::key_id;

/// Why a key file cannot be read or written.
#[derive(thiserror::Error, Debug)]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error (shown in the message, so not chained as a source).
        cause: std::io::Error,
    },
    /// The file is not a PKCS#8 PEM Ed25519 private key.
    #[error("{}: not a PKCS#8 PEM Ed25519 private key ({reason})", path.display())]
    NotPrivateKey {
        /// The key file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// The file is not an SPKI PEM Ed25519 public key.
    #[error("{}: not an SPKI PEM Ed25519 public key ({reason})", path.display())]
    NotPublicKey {
        /// The key file.
        path: PathBuf,
        /// What the decoder said, or a hint.
        reason: String,
    },
    /// A key exists where a new one would be written.
    #[error("{} already exists; pass --force to replace it", path.display())]
    Exists {
        /// The existing key file.
        path: PathBuf,
    },
    /// PEM encoding failed.
    #[error("encoding the key as PEM: {0}")]
    Encode(String),
}

/// `target/keys/capos-signing.pem` under the workspace root.
#[must_use]
pub fn default_signing_key_path(root: &Path) -> PathBuf {
    crate::paths::target_dir(root)
        .join("keys")
        .join("capos-signing.pem")
}

/// `<private key path>.pub`: where the public half of a key lives.
#[must_use]
pub fn public_key_path(private_key_path: &Path) -> PathBuf {
    let mut path = private_key_path.as_os_str().to_owned();
    path.push(".pub");
    PathBuf::from(path)
}

/// Read a PKCS#8 PEM Ed25519 private key.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let text = read_text(path)?;
    SigningKey::from_pkcs8_pem(&text).map_err(|error| KeyError::NotPrivateKey {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })
}

/// Read an SPKI PEM Ed25519 public key (`-----BEGIN PUBLIC KEY-----`).
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let bytes = read_bytes(path)?;
    let Ok(text) = std::str::from_utf8(&bytes) else {
        // Binary: the same SubjectPublicKeyInfo, DER-encoded.
        return VerifyingKey::from_public_key_der(&bytes).map_err(|error| {
            KeyError::NotPublicKey {
                path: path.to_path_buf(),
                reason: format!(
                    "the file is binary but not a DER SubjectPublicKeyInfo either ({error}); expected `-----BEGIN PUBLIC KEY-----` PEM text as `capos keygen` writes to <key>.pub"
                ),
            }
        });
    };
    if text.contains("-----BEGIN PRIVATE KEY-----") {
        return Err(KeyError::NotPublicKey {
            path: path.to_path_buf(),
            reason: "this is a private key; pass its .pub file".to_owned(),
        });
    }
    VerifyingKey::from_public_key_pem(text).map_err(|error| KeyError::NotPublicKey {
        path: path.to_path_buf(),
        reason: format!(
            "{error}; expected `-----BEGIN PUBLIC KEY-----` PEM text as `capos keygen` writes to <key>.pub, or the same key DER-encoded"
        ),
    })
}

/// Largest key file read: a PEM key is a few hundred bytes.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

fn read_bytes(path: &Path) -> Result<Vec<u8>, KeyError> {
    use std::io::Read as _;
    let io_error = |cause| KeyError::Io {
        path: path.to_path_buf(),
        cause,
    };
    if !fs::metadata(path).map_err(io_error)?.is_file() {
        return Err(io_error(std::io::Error::other("not a regular file")));
    }
    let file = fs::File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(io_error(std::io::Error::other(format!(
            "more than {MAX_KEY_FILE_BYTES} bytes; a key file is a few hundred"
        ))));
    }
    Ok(bytes)
}

fn read_text(path: &Path) -> Result<String, KeyError> {
    fs::read_to_string(path).map_err(|cause| KeyError::Io {
        path: path.to_path_buf(),
        cause,
    })
}

/// Write `key` to `path` (PKCS#8 PEM, mode 0600) and its public half to
/// `<path>.pub` (SPKI PEM). Refuses to replace an existing private key
/// unless `force`.
pub fn write_key_pair(path: &Path, key: &SigningKey, force: bool) -> Result<(), KeyError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| KeyError::Io { path, cause }
    };
    if !force && fs::symlink_metadata(path).is_ok() {
        return Err(KeyError::Exists {
            path: path.to_path_buf(),
        });
    }
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    // PKCS#8 v1 (no embedded public key): v2 is what `SigningKey` writes by
    // default, and OpenSSL 3.0 and Python `cryptography` refuse it.
    let private_pem = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    }
    .to_pkcs8_pem(LineEnding::LF)
    .map_err(|error| KeyError::Encode(error.to_string()))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|error| KeyError::Encode(error.to_string()))?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .create_new(!force)
        .mode(0o600)
        .open(path)
        .map_err(|cause| {
            if cause.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                KeyError::Io {
                    path: path.to_path_buf(),
                    cause,
                }
            }
        })?;
    // An existing file keeps its old mode on open; tighten it before writing.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(io_error(path))?;
    file.write_all(private_pem.as_bytes())
        .map_err(io_error(path))?;
    let public_path = public_key_path(path);
    fs::write(&public_path, public_pem).map_err(io_error(&public_path))?;
    Ok(())
}

/// The key that signs this run: `explicit` if given (it must exist), else the
/// default key, generated on first use with a one-line note on stderr.
pub fn ensure_signing_key(root: &Path, explicit: Option<&Path>) -> Result<SigningKey> {
    if let Some(path) = explicit {
        return Ok(load_signing_key(path)?);
    }
    let path = default_signing_key_path(root);
    if path.exists() {
        return Ok(load_signing_key(&path)?);
    }
    let key = SigningKey::generate(&mut rand_core::OsRng);
    match write_key_pair(&path, &key, false) {
        // A concurrent run generated it first: use that one.
        Err(KeyError::Exists { .. }) => return Ok(load_signing_key(&path)?),
        result => result?,
    }
    eprintln!(
        "capos: generated signing key {} (key {}); auditors need {}",
        path.display(),
        key_id(&key.verifying_key()),
        public_key_path(&path).display()
    );
    Ok(key)
}

/// `capos keygen`: generate an Ed25519 signing key pair at `path` (the
/// public half at `<path>.pub`), replacing an existing one only when
/// `force`; returns the public key.
pub fn generate_key_pair(path: &Path, force: bool) -> Result<VerifyingKey> {
    if path.is_dir() {
        bail!(
            "{} is a directory; --out names the key file",
            path.display()
        );
    }
    let key = SigningKey::generate(&mut rand_core::OsRng);
    write_key_pair(path, &key, force)?;
    Ok(key.verifying_key())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_pair_round_trips_with_private_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/signing.pem");
        let key = SigningKey::from_bytes(&[3; 32]);
        write_key_pair(&path, &key, false).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_signing_key(&path).unwrap().to_bytes(), key.to_bytes());
        let public = load_verifying_key(&dir.path().join("keys/signing.pem.pub")).unwrap();
        assert_eq!(public, key.verifying_key());
        assert!(fs::read_to_string(public_key_path(&path))
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----\n"));
    }

    #[test]
    fn existing_key_is_not_overwritten_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.pem");
        write_key_pair(&path, &SigningKey::from_bytes(&[3; 32]), false).unwrap();
        let error = write_key_pair(&path, &SigningKey::from_bytes(&[4; 32]), false).unwrap_err();
        assert!(
            matches!(&error, KeyError::Exists { path: p } if p == &path),
            "{error:?}"
        );
        assert_eq!(load_signing_key(&path).unwrap().to_bytes(), [3; 32]);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_key_pair(&path, &SigningKey::from_bytes(&[4; 32]), true).unwrap();
        assert_eq!(load_signing_key(&path).unwrap().to_bytes(), [4; 32]);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_private_key_is_not_accepted_as_trusted_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.pem");
        write_key_pair(&path, &SigningKey::from_bytes(&[3; 32]), false).unwrap();
        let error = load_verifying_key(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: not an SPKI PEM Ed25519 public key (this is a private key; pass its .pub file)",
                path.display()
            )
        );
    }

    #[test]
    fn garbage_and_missing_key_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.pem");
        fs::write(&path, "hello").unwrap();
        assert!(matches!(
            load_verifying_key(&path),
            Err(KeyError::NotPublicKey { path: p, .. }) if p == path
        ));
        assert!(matches!(
            load_signing_key(&path),
            Err(KeyError::NotPrivateKey { path: p, .. }) if p == path
        ));
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            load_verifying_key(&missing),
            Err(KeyError::Io { path: p, .. }) if p == missing
        ));
    }

    #[test]
    fn ensure_generates_the_default_key_once() {
        let root = tempfile::tempdir().unwrap();
        let first = ensure_signing_key(root.path(), None).unwrap();
        assert!(default_signing_key_path(root.path()).is_file());
        let second = ensure_signing_key(root.path(), None).unwrap();
        assert_eq!(first.to_bytes(), second.to_bytes());
        let missing = root.path().join("nope.pem");
        assert!(ensure_signing_key(root.path(), Some(&missing)).is_err());
        assert!(!missing.exists());
    }

    #[test]
    fn private_keys_are_pkcs8_v1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.pem");
        write_key_pair(&path, &SigningKey::from_bytes(&[3; 32]), false).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let (label, document) = ed25519_dalek::pkcs8::Document::from_pem(&text).unwrap();
        assert_eq!(label, "PRIVATE KEY");
        // SEQUENCE { INTEGER 0 (v1), AlgorithmIdentifier { 1.3.101.112 }, OCTET STRING { OCTET STRING <32 bytes> } }
        // and nothing after the private key: no [1] public key.
        let der = document.as_bytes();
        assert_eq!(
            der[..16],
            [
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
                0x04, 0x20
            ]
        );
        assert_eq!(der[16..], [3; 32]);
        // A v2 key (what other tools may hand us) still loads.
        let v2 = SigningKey::from_bytes(&[4; 32])
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap();
        fs::write(&path, v2.as_bytes()).unwrap();
        assert_eq!(load_signing_key(&path).unwrap().to_bytes(), [4; 32]);
    }

    /// `openssl pkey` (OpenSSL 3.0 refuses PKCS#8 v2 Ed25519 keys) loads the
    /// private key and derives exactly the `.pub` file we wrote.
    #[test]
    fn openssl_loads_the_private_key() {
        if std::process::Command::new("openssl")
            .arg("version")
            .output()
            .is_err()
        {
            eprintln!("skipped: openssl is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.pem");
        write_key_pair(&path, &SigningKey::from_bytes(&[5; 32]), false).unwrap();
        let output = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl pkey: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            fs::read_to_string(public_key_path(&path)).unwrap()
        );
    }

    #[test]
    fn key_id_is_sha256_of_the_raw_public_key() {
        let key = SigningKey::from_bytes(&[3; 32]).verifying_key();
        assert_eq!(key_id(&key), crate::digest::sha256_hex(key.as_bytes()));
    }

    /// Issue 20, finding 9: a DER key file used to give "stream did not
    /// contain valid UTF-8".
    #[test]
    fn a_der_public_key_loads_and_other_binary_says_what_is_expected() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[5; 32]);
        let der = dir.path().join("key.der");
        fs::write(
            &der,
            key.verifying_key().to_public_key_der().unwrap().as_bytes(),
        )
        .unwrap();
        assert_eq!(load_verifying_key(&der).unwrap(), key.verifying_key());
        let junk = dir.path().join("junk.bin");
        fs::write(&junk, [0xff, 0x00, 0x13]).unwrap();
        let message = load_verifying_key(&junk).unwrap_err().to_string();
        assert!(
            message.contains("expected `-----BEGIN PUBLIC KEY-----` PEM text"),
            "{message}"
        );
    }
}
