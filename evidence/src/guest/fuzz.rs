//! `capos fuzz`: boot the random submission fuzzer (`userland/programs/src/bin/fuzz.rs`,
//! manifest `system-fuzz`) once per seed and judge each boot like a smoke.
//!
//! Each seed becomes a one-entry smoke list (written under
//! `target/fuzz/`) run by [`crate::guest::smokes::run_command`], so a fuzz boot is
//! judged by exactly the smoke rules: guest verdict, the fuzzer's
//! `[fuzz] seed=<s> ops=<n> answered=<n> ok` line from the process named
//! `fuzz`, the echo pair and init finishing, and no `[panic]`, `FAILED` or
//! kernel error anywhere. Raw logs stay in
//! `target/smokes/smp<N>/fuzz-seed-<s>-ops-<n>/`. Ends with
//! `N passed, N failed` (one per seed).

use crate::guest::boot_options::BootOptions;
use crate::guest::smokes::{self, SmokeArgs};
use crate::paths;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::Instant;

/// Arguments of `capos fuzz`.
#[derive(clap::Args, Debug)]
pub struct FuzzArgs {
    /// Seeds, one boot each (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1u64, 2, 3])]
    pub seeds: Vec<u64>,
    /// Random submissions per boot.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub ops: u64,
    #[command(flatten)]
    pub boot: BootOptions,
}

/// Seconds a fuzz boot may take: a base for boot and drain plus a generous
/// allowance per submission (about 20x what -smp 2 under TCG needs).
pub fn timeout_secs(ops: u64) -> u64 {
    60 + ops / 1000
}

/// The name of the smoke (and log directory) of one seed.
fn smoke_name(seed: u64, ops: u64) -> String {
    format!("fuzz-seed-{seed}-ops-{ops}")
}

/// A smoke list with one entry: the fuzzer with `seed` and `ops`.
pub fn smoke_list(seed: u64, ops: u64) -> String {
    format!(
        r#"# Written by `capos fuzz`; one boot of the fuzzer.
smokes:
  - name: {name}
    manifest: system-fuzz
    options: "user.seed={seed} user.ops={ops}"
    timeout_secs: {timeout}
    expect:
      - "[u:fuzz] [fuzz] start seed={seed} ops={ops}"
      - "[u:fuzz] [fuzz] seed={seed} ops={ops} answered={ops} ok"
      - "[u:fuzz-echo-client] [fuzz-peer] echo-client calls="
      - "[u:init] [init] done children=3 failed=0"
      - "[kernel] init exited code=0"
"#,
        name = smoke_name(seed, ops),
        timeout = timeout_secs(ops),
    )
}

/// `capos fuzz`: one boot per seed, a line per boot, then the summary.
pub fn run_command(root: &Path, args: FuzzArgs) -> Result<()> {
    if args.seeds.is_empty() {
        bail!("no seeds given");
    }
    let iso = args.boot.iso(root)?;
    let list_dir = paths::target_dir(root).join("fuzz");
    std::fs::create_dir_all(&list_dir)
        .with_context(|| format!("creating {}", list_dir.display()))?;
    let (mut passed, mut failed) = (0, 0);
    for (index, seed) in args.seeds.iter().enumerate() {
        eprintln!(
            "[fuzz] seed={seed} ops={} ({}/{})",
            args.ops,
            index + 1,
            args.seeds.len()
        );
        let list = list_dir.join(format!("{}.yaml", smoke_name(*seed, args.ops)));
        std::fs::write(&list, smoke_list(*seed, args.ops))
            .with_context(|| format!("writing {}", list.display()))?;
        let start = Instant::now();
        let outcome = smokes::run_command(
            root,
            SmokeArgs {
                smp: args.boot.smp,
                accel: args.boot.accel,
                iso: Some(iso.clone()),
                only: Vec::new(),
                list: Some(list),
            },
        );
        let seconds = start.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => {
                passed += 1;
                println!(
                    "[fuzz] seed={seed} ops={} smp={} pass ({seconds:.1}s)",
                    args.ops, args.boot.smp
                );
            }
            Err(error) => {
                failed += 1;
                println!(
                    "[fuzz] seed={seed} ops={} smp={} FAIL: {error:#} ({seconds:.1}s)",
                    args.ops, args.boot.smp
                );
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} of {} fuzz seeds failed", args.seeds.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::qemu::AccelRequest;

    #[test]
    fn the_generated_list_names_seed_and_ops_and_parses_as_a_smoke_list() {
        let text = smoke_list(7, 1234);
        assert!(text.contains("options: \"user.seed=7 user.ops=1234\""));
        assert!(text.contains("[u:fuzz] [fuzz] seed=7 ops=1234 answered=1234 ok"));
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("list.yaml");
        std::fs::write(&path, &text).unwrap();
        // The smoke runner's own loader must accept it; an unknown smoke
        // name is the first thing it then complains about.
        let error = smokes::run_command(
            directory.path(),
            SmokeArgs {
                smp: 1,
                accel: AccelRequest::Tcg,
                iso: Some(path.clone()),
                only: vec!["no-such-smoke".into()],
                list: Some(path),
            },
        )
        .unwrap_err();
        assert!(format!("{error:#}").contains("fuzz-seed-7-ops-1234"));
    }

    #[test]
    fn timeout_grows_with_the_op_count() {
        assert_eq!(timeout_secs(0), 60);
        assert!(timeout_secs(1_000_000) > timeout_secs(100_000));
    }
}
