//! The `--max-bundle-size` option shared by every command that reads a
//! bundle, turned into the library's [`Limits`].
//!
//! Invariant: the size is parsed by [`parse_size`], so every command accepts
//! the same spellings and refuses the same bad ones.

use crate::bundle::verify::{parse_size, Limits, DEFAULT_MAX_BUNDLE_BYTES};

/// The size cap option shared by every command that reads a bundle.
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// Refuse bundles larger than this (bytes, or with a K, M or G suffix; 1K = 1024).
    #[arg(long = "max-bundle-size", env = "CAPOS_MAX_BUNDLE_SIZE", value_name = "SIZE", default_value = "512M", value_parser = parse_size)]
    pub max_bundle_size: u64,
}

impl Default for LimitArgs {
    fn default() -> Self {
        Self {
            max_bundle_size: DEFAULT_MAX_BUNDLE_BYTES,
        }
    }
}

impl LimitArgs {
    /// The limits these options ask for.
    #[must_use]
    pub fn limits(&self) -> Limits {
        Limits {
            max_bundle_bytes: self.max_bundle_size,
        }
    }
}
