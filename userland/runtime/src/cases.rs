//! Named checks of a test program, each reported as one console line: the
//! shape the smoke programs share. A check returns the detail text of a
//! pass or the problem of a failure; [`Tally`] prints
//! `[<tag>] <name> <detail> ok` or `[<tag>] <name> FAILED <problem>` (the
//! smoke suite forbids `FAILED` everywhere) and counts both.

use crate::context::Context;
use alloc::format;
use alloc::string::String;
use capos_abi::Error;

/// One check: the detail of a pass, or the problem.
pub type Check = fn(&Context) -> Result<String, String>;

/// Passed and failed checks so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Checks that passed.
    pub passed: u32,
    /// Checks that failed.
    pub failed: u32,
}

impl Tally {
    /// Print and count the outcome of check `name`.
    pub fn report(
        &mut self,
        context: &Context,
        tag: &str,
        name: &str,
        outcome: Result<String, String>,
    ) {
        match outcome {
            Ok(detail) => {
                self.passed += 1;
                crate::println!(context, "[{tag}] {name} {detail} ok");
            }
            Err(problem) => {
                self.failed += 1;
                crate::println!(context, "[{tag}] {name} FAILED {problem}");
            }
        }
    }

    /// Run every check in order and report each.
    pub fn run(&mut self, context: &Context, tag: &str, checks: &[(&str, Check)]) {
        for (name, check) in checks {
            self.report(context, tag, name, check(context));
        }
    }

    /// The process exit code: 0 iff nothing failed.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.failed != 0)
    }
}

/// A problem text for `what` failing with `error`: `<what> error=<name>`.
pub fn failure(what: &str, error: Error) -> String {
    format!("{what} error={}", error.name())
}
