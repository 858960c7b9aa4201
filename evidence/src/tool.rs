//! Which `capos` this is: crate version and the commit it was built from.
//!
//! Both are recorded in every bundle (SLSA `runDetails.builder.version`) and
//! in every run-log entry, and printed by `capos --version`, so any piece of
//! evidence names the exact tool that produced it.

use std::collections::BTreeMap;

/// The `capos-evidence` crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit the binary was built from (`<sha>`, `<sha>-dirty` or
/// `unknown`; see the crate's build script).
pub const COMMIT: &str = env!("CAPOS_TOOL_COMMIT");

/// `0.1.0 (commit <sha>)`: what `capos --version` prints after the name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CAPOS_TOOL_COMMIT"),
    ")"
);

/// The builder's version map in provenance: `capos` and `capos-commit`.
#[must_use]
pub fn builder_version() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("capos".to_owned(), VERSION.to_owned()),
        ("capos-commit".to_owned(), COMMIT.to_owned()),
    ])
}
