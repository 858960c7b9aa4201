//! The smoke lists of `capos fuzz`, which boots the random submission fuzzer
//! (`userland/programs/src/bin/fuzz.rs`, manifest `system-fuzz`) once per
//! seed and judges each boot like a smoke.
//!
//! Each seed becomes a one-entry smoke list (written under
//! `target/fuzz/` by [`write_smoke_list`]) run by the smoke suite, so a fuzz boot is
//! judged by exactly the smoke rules: guest verdict, the fuzzer's
//! `[fuzz] seed=<s> ops=<n> answered=<n> ok` line from the process named
//! `fuzz`, the echo pair and init finishing, and no `[panic]`, `FAILED` or
//! kernel error anywhere. Raw logs stay in
//! `target/smokes/smp<N>/fuzz-seed-<s>-ops-<n>/`. Ends with
//! `N passed, N failed` (one per seed).

use crate::paths;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Seconds a fuzz boot may take: a base for boot and drain plus a generous
/// allowance per submission (about 20x what -smp 2 under TCG needs).
pub fn timeout_secs(ops: u64) -> u64 {
    60 + ops / 1000
}

/// The name of the smoke (and log directory) of one seed.
pub fn smoke_name(seed: u64, ops: u64) -> String {
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

/// Write the one-entry smoke list of `seed` and `ops` under
/// `target/fuzz/` and return its path.
pub fn write_smoke_list(root: &Path, seed: u64, ops: u64) -> Result<PathBuf> {
    let list_dir = paths::target_dir(root).join("fuzz");
    std::fs::create_dir_all(&list_dir)
        .with_context(|| format!("creating {}", list_dir.display()))?;
    let list = list_dir.join(format!("{}.yaml", smoke_name(seed, ops)));
    std::fs::write(&list, smoke_list(seed, ops))
        .with_context(|| format!("writing {}", list.display()))?;
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::smokes;

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
        let error = smokes::select(
            directory.path(),
            Some(&path),
            &["no-such-smoke".to_string()],
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
