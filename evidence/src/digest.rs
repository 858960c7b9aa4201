//! SHA-256, the one digest the pipeline uses: of bytes, and of a file read once as a stream.
//!
//! Digests are always shown as 64 lowercase hex digits.

use std::fs;
use std::io;
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// Lowercase hex sha256 of bytes.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lowercase hex sha256 and size of a file, read once as a stream (never whole into memory).
pub fn file_sha256(path: &Path) -> io::Result<(String, u64)> {
    let mut file = fs::File::open(path)?;
    reader_sha256(&mut file)
}

/// Lowercase hex sha256 and length of everything `reader` yields.
pub fn reader_sha256(reader: &mut impl io::Read) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let size = io::copy(reader, &mut hasher)?;
    Ok((hex::encode(hasher.finalize()), size))
}
