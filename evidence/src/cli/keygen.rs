//! `capos keygen`: an Ed25519 key pair for signing provenance (see
//! `crate::bundle::keys`); prints the public key's path and id.

use crate::bundle::keys;
use anyhow::{Context as _, Result};
use std::path::PathBuf;

/// Arguments of `capos keygen`.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the private key (default: target/keys/capos-signing.pem);
    /// the public key goes to `<path>.pub`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace an existing key at that path.
    #[arg(long)]
    pub force: bool,
}

/// Generate the key pair. `workspace` finds the checkout for the default
/// path; it is not called with `--out`.
pub fn run_command(args: KeygenArgs, workspace: impl FnOnce() -> Result<PathBuf>) -> Result<()> {
    let path = match args.out {
        Some(path) => path,
        None => keys::default_signing_key_path(&workspace().context(
            "the default key lives in the checkout's target/keys; outside a checkout, pass --out <path>",
        )?),
    };
    let public_key = keys::generate_key_pair(&path, args.force)?;
    println!("public key: {}", keys::public_key_path(&path).display());
    println!("key id: {}", keys::key_id(&public_key));
    Ok(())
}
