//! `capos smokes`: the in-QEMU smoke suite. Each smoke boots the ISO with one
//! manifest (`mode=user manifest=<name>`) and checks the guest verdict and
//! the serial lines listed in `userland/smokes.yaml`. Ends with the line
//! `N passed, N failed`.
//!
//! Expected lines are matched at the start of a serial line (`expect`: a
//! literal prefix; `expect_matching`: a regex anchored at the line start).
//! The kernel frames every user write as `[u:<process>] ...`, so a user
//! process can satisfy only expectations that name it, never a kernel line
//! or another process's line. Forbidden texts (`forbid`) match anywhere;
//! `forbid_line_start` texts fail a smoke only at the start of a line, which
//! is where an unframed forgery of a kernel or process line would appear
//! (the same text framed as `[u:<process>] ...` is harmless).

use crate::guest::build;
use crate::guest::qemu::{self, AccelRequest, CaseSpec, Verdict};
use crate::paths;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Forbidden in every smoke's output, in addition to its own list.
const ALWAYS_FORBIDDEN: &[&str] = &["[panic]", "FAILED", "[kernel] error"];

/// The smoke list file.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct SmokeFile {
    smokes: Vec<Smoke>,
}

/// Expected guest verdict.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
enum GuestVerdict {
    #[default]
    Success,
    Failure,
}

/// One smoke.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Smoke {
    name: String,
    manifest: String,
    #[serde(default)]
    guest: GuestVerdict,
    #[serde(default)]
    expect: Vec<String>,
    /// Regexes, each anchored at the start of some serial line.
    #[serde(default)]
    expect_matching: Vec<String>,
    #[serde(default)]
    forbid: Vec<String>,
    /// Texts no serial line may start with.
    #[serde(default)]
    forbid_line_start: Vec<String>,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
    /// Extra boot options appended to `mode=user manifest=<manifest>`.
    #[serde(default)]
    options: String,
}

fn default_timeout() -> u64 {
    60
}

/// Arguments of `capos smokes`.
#[derive(clap::Args, Debug)]
pub struct SmokeArgs {
    /// Virtual CPUs for every smoke.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub smp: u32,
    /// Accelerator: auto probes KVM and falls back to multi-threaded TCG.
    #[arg(long, value_enum, default_value_t = AccelRequest::Auto)]
    pub accel: AccelRequest,
    /// Boot this ISO instead of building target/iso/capos.iso first.
    #[arg(long)]
    pub iso: Option<PathBuf>,
    /// Run only the smokes with these names (repeatable).
    #[arg(long = "only")]
    pub only: Vec<String>,
    /// Smoke list (default: userland/smokes.yaml).
    #[arg(long)]
    pub list: Option<PathBuf>,
}

/// Why a smoke failed, or None if it passed.
fn judge(smoke: &Smoke, verdict: &Verdict, lines: &[String]) -> Option<String> {
    let expected = match smoke.guest {
        GuestVerdict::Success => matches!(verdict, Verdict::Pass),
        GuestVerdict::Failure => matches!(
            verdict,
            Verdict::Fail { exit_code: Some(code), .. }
                if *code == qemu::exit_status_for(qemu::GUEST_FAILURE)
        ),
    };
    if !expected {
        return Some(format!(
            "guest verdict {verdict}, expected {:?}",
            smoke.guest
        ));
    }
    if let Some(missing) = smoke
        .expect
        .iter()
        .find(|text| !lines.iter().any(|line| line.starts_with(text.as_str())))
    {
        return Some(format!("missing line starting with {missing:?}"));
    }
    for pattern in &smoke.expect_matching {
        let regex = match regex::Regex::new(&format!("^(?:{pattern})")) {
            Ok(regex) => regex,
            Err(error) => return Some(format!("bad expect_matching regex {pattern:?}: {error}")),
        };
        if !lines.iter().any(|line| regex.is_match(line)) {
            return Some(format!("missing line matching {pattern:?} at its start"));
        }
    }
    let forbidden = smoke
        .forbid
        .iter()
        .map(String::as_str)
        .chain(ALWAYS_FORBIDDEN.iter().copied());
    for text in forbidden {
        if let Some(line) = lines.iter().find(|line| line.contains(text)) {
            return Some(format!("forbidden output {text:?} in line {line:?}"));
        }
    }
    for text in &smoke.forbid_line_start {
        if let Some(line) = lines.iter().find(|line| line.starts_with(text.as_str())) {
            return Some(format!("forbidden line start {text:?} in line {line:?}"));
        }
    }
    None
}

/// Serial lines shown under a failed smoke.
const FAILURE_CONTEXT_LINES: usize = 20;

/// What to show of a failed boot's serial log: the lines that report a
/// failure (the always-forbidden output, any error, a user fault) and the
/// last lines, in log order, at most [`FAILURE_CONTEXT_LINES`].
fn failure_context(lines: &[String]) -> Vec<&str> {
    const MORE_MARKS: &[&str] = &["error", "[fault]"];
    let marks = || ALWAYS_FORBIDDEN.iter().chain(MORE_MARKS);
    let tail_start = lines.len().saturating_sub(FAILURE_CONTEXT_LINES / 2);
    let mut shown: Vec<&str> = lines[..tail_start]
        .iter()
        .filter(|line| marks().any(|mark| line.contains(mark)))
        .map(String::as_str)
        .collect();
    let room = FAILURE_CONTEXT_LINES - FAILURE_CONTEXT_LINES / 2;
    if shown.len() > room {
        shown.drain(..shown.len() - room);
    }
    shown.extend(lines[tail_start..].iter().map(String::as_str));
    shown
}

fn load(path: &Path) -> Result<Vec<Smoke>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: SmokeFile = serde_yaml::from_str(&text)
        .with_context(|| format!("{}: malformed smoke list", path.display()))?;
    if file.smokes.is_empty() {
        bail!("{}: no smokes listed", path.display());
    }
    for smoke in &file.smokes {
        if smoke.expect.is_empty() && smoke.expect_matching.is_empty() {
            bail!("{}: smoke {:?} expects nothing", path.display(), smoke.name);
        }
        for pattern in &smoke.expect_matching {
            regex::Regex::new(pattern).with_context(|| {
                format!(
                    "{}: smoke {:?}: bad regex {pattern:?}",
                    path.display(),
                    smoke.name
                )
            })?;
        }
    }
    Ok(file.smokes)
}

/// `capos smokes`: run the suite, print one line per smoke and the summary.
pub fn run_command(root: &Path, args: SmokeArgs) -> Result<()> {
    let list = args
        .list
        .unwrap_or_else(|| root.join("userland").join("smokes.yaml"));
    let mut smokes = load(&list)?;
    if !args.only.is_empty() {
        if let Some(unknown) = args
            .only
            .iter()
            .find(|name| !smokes.iter().any(|smoke| &smoke.name == *name))
        {
            let names: Vec<&str> = smokes.iter().map(|smoke| smoke.name.as_str()).collect();
            bail!(
                "no smoke named {unknown:?}; available: {}",
                names.join(", ")
            );
        }
        smokes.retain(|smoke| args.only.contains(&smoke.name));
    }
    let iso = match args.iso {
        Some(iso) => iso,
        None => build::build_default_iso(root)?.path,
    };
    let choice = qemu::detect_accel(root, args.accel)?;
    eprintln!("capos: accel={} ({})", choice.accel, choice.reason);
    let (mut passed, mut failed) = (0, 0);
    for smoke in &smokes {
        let log_dir = paths::target_dir(root)
            .join("smokes")
            .join(format!("smp{}", args.smp))
            .join(&smoke.name);
        let spec = CaseSpec {
            iso: iso.clone(),
            cpus: args.smp,
            memory_mib: 256,
            accel: choice.accel,
            cmdline: format!("mode=user manifest={} {}", smoke.manifest, smoke.options)
                .trim_end()
                .to_string(),
            timeout: Duration::from_secs(smoke.timeout_secs),
            log_dir: log_dir.clone(),
        };
        let outcome = qemu::run_case(&spec)?;
        let lines: Vec<String> = outcome.lines.iter().map(|line| line.text.clone()).collect();
        match judge(smoke, &outcome.verdict, &lines) {
            None => {
                passed += 1;
                println!(
                    "[smoke] {} smp={} pass ({:.2}s)",
                    smoke.name,
                    args.smp,
                    outcome.wall.as_secs_f64()
                );
            }
            Some(reason) => {
                failed += 1;
                println!(
                    "[smoke] {} smp={} FAIL: {reason} (raw log: {})",
                    smoke.name,
                    args.smp,
                    build::display_relative(root, &outcome.serial_log)
                );
                // CI keeps only the output, not the logs: show how it ended.
                for line in failure_context(&lines) {
                    println!("    | {line}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} of {} smokes failed", smokes.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smoke(guest: GuestVerdict) -> Smoke {
        Smoke {
            name: "t".into(),
            manifest: "m".into(),
            guest,
            expect: vec!["[a] ok".into()],
            expect_matching: vec![r"\[b\] n=\d+".into()],
            forbid: vec!["bad".into()],
            forbid_line_start: vec!["[kernel] forged".into()],
            timeout_secs: 5,
            options: String::new(),
        }
    }

    fn lines(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|text| text.to_string()).collect()
    }

    #[test]
    fn failure_context_keeps_failure_lines_and_the_tail() {
        let mut log: Vec<String> = (0..100).map(|n| format!("line {n}")).collect();
        log[3] = "[u:x] case=a FAILED got=b".into();
        log[40] = "[panic] cpu=0 boom".into();
        let shown = failure_context(&log);
        assert_eq!(shown[0], "[u:x] case=a FAILED got=b");
        assert_eq!(shown[1], "[panic] cpu=0 boom");
        assert_eq!(shown[2], "line 90");
        assert_eq!(shown.last(), Some(&"line 99"));
        assert_eq!(shown.len(), 12);
        let short = lines(&["only line"]);
        assert_eq!(failure_context(&short), vec!["only line"]);
    }

    #[test]
    fn passes_only_with_expected_verdict_and_lines() {
        let smoke = smoke(GuestVerdict::Success);
        let good = ["[a] ok", "[b] n=12"];
        assert_eq!(judge(&smoke, &Verdict::Pass, &lines(&good)), None);
        assert!(judge(&smoke, &Verdict::Timeout, &lines(&good))
            .unwrap()
            .contains("verdict"));
        assert!(
            judge(&smoke, &Verdict::Pass, &lines(&["[a] no", "[b] n=1"]))
                .unwrap()
                .contains("missing")
        );
        assert!(
            judge(&smoke, &Verdict::Pass, &lines(&["[a] ok", "[b] n=x"]))
                .unwrap()
                .contains("missing")
        );
        assert!(judge(
            &smoke,
            &Verdict::Pass,
            &lines(&["[a] ok", "[b] n=1", "bad"])
        )
        .unwrap()
        .contains("forbidden"));
        assert!(judge(
            &smoke,
            &Verdict::Pass,
            &lines(&["[a] ok", "[b] n=1", "[panic] x"])
        )
        .unwrap()
        .contains("forbidden"));
    }

    #[test]
    fn a_framed_user_line_cannot_satisfy_another_line() {
        // What a process named `evil` printing "[a] ok" looks like on serial.
        let smoke = smoke(GuestVerdict::Success);
        let forged = ["[u:evil] [a] ok", "[u:evil] [b] n=3"];
        assert!(judge(&smoke, &Verdict::Pass, &lines(&forged))
            .unwrap()
            .contains("missing"));
    }

    #[test]
    fn forbidden_line_starts_fail_only_at_the_start_of_a_line() {
        let smoke = smoke(GuestVerdict::Success);
        let framed = ["[a] ok", "[b] n=1", "[u:evil] [kernel] forged line"];
        assert_eq!(judge(&smoke, &Verdict::Pass, &lines(&framed)), None);
        let unframed = ["[a] ok", "[b] n=1", "[kernel] forged line"];
        assert!(judge(&smoke, &Verdict::Pass, &lines(&unframed))
            .unwrap()
            .contains("forbidden line start"));
    }

    #[test]
    fn expected_guest_failure_must_be_the_guest_failure_code() {
        let smoke = smoke(GuestVerdict::Failure);
        let good = ["[a] ok", "[b] n=12"];
        let guest_failure = Verdict::Fail {
            exit_code: Some(35),
            reason: String::new(),
        };
        let triple_fault = Verdict::Fail {
            exit_code: Some(0),
            reason: String::new(),
        };
        assert_eq!(judge(&smoke, &guest_failure, &lines(&good)), None);
        assert!(judge(&smoke, &triple_fault, &lines(&good)).is_some());
        assert!(judge(&smoke, &Verdict::Pass, &lines(&good)).is_some());
    }

    #[test]
    fn the_repository_smoke_list_parses() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let smokes = load(&root.join("userland").join("smokes.yaml")).unwrap();
        assert!(smokes.len() >= 7);
    }
}
