//! The in-QEMU smoke suite (`capos smokes`). Each smoke boots the ISO with
//! one manifest (`mode=user manifest=<name>`) and checks the guest verdict
//! and the serial lines listed in `userland/smokes.yaml`. [`run`] reports
//! each smoke to the caller's callback as it ends and returns the tally; it
//! prints nothing.
//!
//! Expected lines are matched at the start of a serial line (`expect`: a
//! literal prefix; `expect_matching`: a regex anchored at the line start).
//! The kernel frames every user write as `[u:<process>] ...`, so a user
//! process can satisfy only expectations that name it, never a kernel line
//! or another process's line. Forbidden texts (`forbid`) match anywhere;
//! `forbid_line_start` texts fail a smoke only at the start of a line, which
//! is where an unframed forgery of a kernel or process line would appear
//! (the same text framed as `[u:<process>] ...` is harmless).

use crate::guest::qemu::{self, Accel, CaseSpec, Verdict};
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

/// One smoke of a smoke list.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Smoke {
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

/// How every smoke of one suite run boots.
#[derive(Debug, Clone)]
pub struct SmokeOptions {
    /// Virtual CPUs for every smoke.
    pub cpus: u32,
    /// The accelerator, already chosen (see [`qemu::detect_accel`]).
    pub accel: Accel,
    /// The ISO to boot.
    pub iso: PathBuf,
}

/// How one smoke ended.
#[derive(Debug)]
pub struct SmokeRun {
    /// The smoke's name.
    pub name: String,
    /// Wall-clock time of its boot.
    pub wall: Duration,
    /// Its raw serial log.
    pub serial_log: PathBuf,
    /// Why it failed; None if it passed.
    pub failure: Option<SmokeFailure>,
}

/// Why a smoke failed and how its boot ended.
#[derive(Debug)]
pub struct SmokeFailure {
    /// The first rule the boot broke.
    pub reason: String,
    /// The serial lines worth showing (see [`failure_context`]).
    pub context: Vec<String>,
}

/// How many smokes of a suite run passed and failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct SmokeTally {
    /// Smokes that passed.
    pub passed: usize,
    /// Smokes that failed.
    pub failed: usize,
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

/// The smokes of the list at `path` (default `userland/smokes.yaml` under
/// `root`), only those named in `only` when it is not empty; an unknown
/// name is an error listing the available ones.
pub fn select(root: &Path, path: Option<&Path>, only: &[String]) -> Result<Vec<Smoke>> {
    let list = path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join("userland").join("smokes.yaml"));
    let mut smokes = load(&list)?;
    if !only.is_empty() {
        if let Some(unknown) = only
            .iter()
            .find(|name| !smokes.iter().any(|smoke| &smoke.name == *name))
        {
            let names: Vec<&str> = smokes.iter().map(|smoke| smoke.name.as_str()).collect();
            bail!(
                "no smoke named {unknown:?}; available: {}",
                names.join(", ")
            );
        }
        smokes.retain(|smoke| only.contains(&smoke.name));
    }
    Ok(smokes)
}

/// Boot and judge each of `smokes` in order, handing each result to
/// `observe` as it ends; raw logs go to `target/smokes/smp<N>/<name>/`.
/// An error means a boot could not be made at all (not that a smoke failed).
pub fn run(
    root: &Path,
    smokes: &[Smoke],
    options: &SmokeOptions,
    observe: &mut dyn FnMut(&SmokeRun),
) -> Result<SmokeTally> {
    let mut tally = SmokeTally::default();
    for smoke in smokes {
        let log_dir = paths::target_dir(root)
            .join("smokes")
            .join(format!("smp{}", options.cpus))
            .join(&smoke.name);
        let spec = CaseSpec {
            iso: options.iso.clone(),
            cpus: options.cpus,
            memory_mib: 256,
            accel: options.accel,
            cmdline: format!("mode=user manifest={} {}", smoke.manifest, smoke.options)
                .trim_end()
                .to_string(),
            timeout: Duration::from_secs(smoke.timeout_secs),
            log_dir,
        };
        let outcome = qemu::run_case(&spec)?;
        let lines: Vec<String> = outcome.lines.iter().map(|line| line.text.clone()).collect();
        let failure = judge(smoke, &outcome.verdict, &lines).map(|reason| SmokeFailure {
            reason,
            context: failure_context(&lines)
                .into_iter()
                .map(str::to_string)
                .collect(),
        });
        match failure {
            None => tally.passed += 1,
            Some(_) => tally.failed += 1,
        }
        observe(&SmokeRun {
            name: smoke.name.clone(),
            wall: outcome.wall,
            serial_log: outcome.serial_log,
            failure,
        });
    }
    Ok(tally)
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
