//! Verbs of the `capos` binary that live beside it rather than in the
//! library: each file holds one verb's clap arguments and its printing, and
//! calls library functions that return values (`bundle::oci`,
//! `proof::attestation`, `proof::policy`, `proof::archive_audit`, ...).

pub mod archive;
pub mod archive_test;
pub mod attest;
pub mod pull;
pub mod push;
pub mod reproduction_options;
pub mod reproductions;
pub mod source;
