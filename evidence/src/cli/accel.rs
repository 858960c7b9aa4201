//! The `--accel` option of the commands that boot: the clap face of the
//! library's [`AccelRequest`].
//!
//! Invariant: [`AccelOption`] has exactly the variants of [`AccelRequest`]
//! (both conversions are exhaustive matches), so the option's names are the
//! names a bundle records (`proof::run::accel_request_name`).

use crate::guest::qemu::AccelRequest;

/// What the user asked for with `--accel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AccelOption {
    /// KVM only if a short probe shows it is really usable, else multi-threaded TCG.
    Auto,
    Kvm,
    Tcg,
}

impl From<AccelOption> for AccelRequest {
    fn from(option: AccelOption) -> Self {
        match option {
            AccelOption::Auto => AccelRequest::Auto,
            AccelOption::Kvm => AccelRequest::Kvm,
            AccelOption::Tcg => AccelRequest::Tcg,
        }
    }
}

impl From<AccelRequest> for AccelOption {
    fn from(request: AccelRequest) -> Self {
        match request {
            AccelRequest::Auto => AccelOption::Auto,
            AccelRequest::Kvm => AccelOption::Kvm,
            AccelRequest::Tcg => AccelOption::Tcg,
        }
    }
}
