//! Verbs of the `capos` binary that live beside it rather than in the
//! library: each file holds one verb's clap arguments and its printing, and
//! calls library functions that return values.

pub mod archive_test;
