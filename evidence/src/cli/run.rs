//! `capos run`: run a proof contract into a signed bundle (see
//! `crate::proof::run`); the run itself still prints its progress
//! and verdicts (to be moved here behind a callback).

use crate::cli::accel::AccelOption;
use crate::proof::run::{self, RunRequest};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// Arguments of `capos run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Proof contract name: evidence/contracts/<proof>.yaml (e.g. smp-boot).
    pub proof: String,
    /// Repetitions per case, 1..=100, or `auto` / `auto:<cap>` /
    /// `auto:<cap>:<width>%`: interleaved rounds until every gated interval
    /// spans at most 5% (or <width>%) of its figure (3 to 15 or <cap>
    /// rounds; `auto::20%` keeps the cap of 15). Default: the contract's CAPOS_*_RUNS
    /// variable, which takes the same values, else its default.
    #[arg(long)]
    pub runs: Option<String>,
    /// Accelerator: auto probes KVM and falls back to multi-threaded TCG.
    #[arg(long, value_enum, default_value_t = AccelOption::Auto)]
    pub accel: AccelOption,
    /// Boot this ISO instead of building target/iso/capos.iso first.
    #[arg(long)]
    pub iso: Option<PathBuf>,
    /// Bundle store directory (default: target/evidence).
    #[arg(long, env = "CAPOS_EVIDENCE_STORE")]
    pub store: Option<PathBuf>,
    /// Ed25519 signing key (PKCS#8 PEM); default: the workspace key, generated on first use.
    #[arg(long, env = "CAPOS_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
}

/// Run the contract.
pub fn run_command(root: &Path, args: RunArgs) -> Result<()> {
    run::run(
        root,
        RunRequest {
            proof: args.proof,
            runs: args.runs,
            accel: args.accel.into(),
            iso: args.iso,
            store: args.store,
            signing_key: args.signing_key,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::qemu::AccelRequest;
    use clap::ValueEnum;

    #[test]
    fn recorded_accelerator_names_are_the_accel_option_names() {
        for option in AccelOption::value_variants() {
            let name = option
                .to_possible_value()
                .map(|value| value.get_name().to_string())
                .unwrap_or_default();
            let request: AccelRequest = (*option).into();
            assert_eq!(AccelOption::from(request), *option);
            assert_eq!(run::accel_request_name(request), name);
            assert_eq!(run::parse_accel_request(&name), Some(request));
        }
        assert_eq!(run::parse_accel_request("KVM"), None);
        assert_eq!(run::parse_accel_request(""), None);
    }
}
