//! Booting the ISO under QEMU: accelerator choice, one timed run, raw logs.
//!
//! Every run has a timeout, keeps its raw serial bytes, a copy with host
//! arrival times per line, QEMU's stderr and the exact command line, and
//! passes only when the guest wrote the success code to `isa-debug-exit`.
//! A watched run ([`run_captured_watched`]) also gets a QMP socket, is
//! pinned once it runs, and has the host sampled just before it starts and
//! just after it exits, before it is reaped ([`crate::host::watch`]).

use crate::guest::build;
use crate::host::affinity;
use crate::host::watch::{RunHost, Watch};
use crate::{paths, tools};
use anyhow::{bail, Context, Result};
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Value the kernel writes to `isa-debug-exit` on success; QEMU exits `(v << 1) | 1`.
pub const GUEST_SUCCESS: u32 = 0x10;
/// Value the kernel writes on failure (fault, failed self-check).
pub const GUEST_FAILURE: u32 = 0x11;
const DEBUG_EXIT_PORT: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";

/// Raw serial bytes of a run, in its log directory.
pub const SERIAL_LOG: &str = "serial.log";
/// Serial lines with host arrival times (`<micros> <line>`).
pub const TIMED_LOG: &str = "serial.timed.log";
/// QEMU's stderr.
pub const STDERR_LOG: &str = "stderr.log";
/// The exact QEMU command line, shell-quoted.
pub const COMMAND_FILE: &str = "command.txt";

/// Which accelerator QEMU runs the guest with (a frozen bundle-format tag).
pub use crate::bundle::format::Accel;

impl Accel {
    /// QEMU arguments selecting this accelerator and a CPU model it supports.
    fn qemu_args(self) -> [&'static str; 4] {
        match self {
            Accel::Kvm => ["-accel", "kvm", "-cpu", "qemu64"],
            Accel::Tcg => ["-accel", "tcg,thread=multi", "-cpu", "qemu64"],
        }
    }
}

/// What the user asked for with `--accel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccelRequest {
    /// KVM only if a short probe shows it is really usable, else multi-threaded TCG.
    Auto,
    Kvm,
    Tcg,
}

/// The accelerator picked and the reason, recorded with every run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccelChoice {
    pub accel: Accel,
    pub reason: String,
}

/// Resolve `request` to an accelerator. `auto` probes once per process.
pub fn detect_accel(root: &Path, request: AccelRequest) -> Result<AccelChoice> {
    match request {
        AccelRequest::Kvm => Ok(AccelChoice {
            accel: Accel::Kvm,
            reason: "requested with --accel kvm".into(),
        }),
        AccelRequest::Tcg => Ok(AccelChoice {
            accel: Accel::Tcg,
            reason: "requested with --accel tcg".into(),
        }),
        AccelRequest::Auto => {
            static PROBED: OnceLock<AccelChoice> = OnceLock::new();
            if let Some(choice) = PROBED.get() {
                return Ok(choice.clone());
            }
            let choice = probe_accel(root)?;
            Ok(PROBED.get_or_init(|| choice).clone())
        }
    }
}

/// Iterations of the probe's busy loop: ~0.1-0.2 s under TCG here.
const PROBE_ITERATIONS: u32 = 20_000_000;

/// A 512-byte boot sector: count `PROBE_ITERATIONS` down, then report success
/// through `isa-debug-exit`. Timing it under TCG and KVM shows whether KVM is
/// really faster here (nested KVM can be three orders of magnitude slower).
fn probe_boot_sector() -> [u8; 512] {
    let mut sector = [0u8; 512];
    let mut code = vec![0xFA, 0x66, 0xB9]; // cli; mov ecx, imm32
    code.extend_from_slice(&PROBE_ITERATIONS.to_le_bytes());
    code.extend_from_slice(&[0x66, 0x49, 0x75, 0xFC]); // loop: dec ecx; jnz loop
    code.extend_from_slice(&[0xBA, 0xF4, 0x00]); // mov dx, 0xf4
    code.extend_from_slice(&[0x66, 0xB8]); // mov eax, imm32
    code.extend_from_slice(&GUEST_SUCCESS.to_le_bytes());
    code.extend_from_slice(&[0x66, 0xEF, 0xF4, 0xEB, 0xFD]); // out dx, eax; hlt; jmp hlt
    sector[..code.len()].copy_from_slice(&code);
    sector[510] = 0x55;
    sector[511] = 0xAA;
    sector
}

/// The probe's boot sector in a file of its own under `dir`, removed when
/// dropped: concurrent runs in one checkout each probe their own image
/// (QEMU locks the image it boots; a shared one made a second run's probe
/// fail "even under TCG").
fn write_probe_image(dir: &Path) -> Result<tempfile::NamedTempFile> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut image = tempfile::Builder::new()
        .prefix("accel-probe-")
        .suffix(".img")
        .tempfile_in(dir)
        .with_context(|| format!("creating the probe image in {}", dir.display()))?;
    std::io::Write::write_all(&mut image, &probe_boot_sector())
        .and_then(|()| image.as_file().sync_all())
        .with_context(|| format!("writing {}", image.path().display()))?;
    Ok(image)
}

fn probe_accel(root: &Path) -> Result<AccelChoice> {
    let tcg = |reason: String| AccelChoice {
        accel: Accel::Tcg,
        reason,
    };
    if let Err(error) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return Ok(tcg(format!("/dev/kvm unusable ({error})")));
    }
    let qemu = tools::require(&tools::QEMU)?;
    let image = write_probe_image(&paths::qemu_log_root(root))?;
    let image = image.path();
    let tcg_time = match time_probe(&qemu, image, Accel::Tcg, Duration::from_secs(30))? {
        Some(time) => time,
        None => bail!("the accelerator probe failed even under TCG; QEMU is not working (try `capos qemu --accel tcg`)"),
    };
    let kvm_budget = Duration::from_secs(3).max(tcg_time * 3);
    Ok(match time_probe(&qemu, image, Accel::Kvm, kvm_budget)? {
        Some(kvm_time) if kvm_time <= tcg_time => AccelChoice {
            accel: Accel::Kvm,
            reason: format!(
                "KVM probe {:.2}s vs TCG {:.2}s: KVM usable",
                kvm_time.as_secs_f64(),
                tcg_time.as_secs_f64()
            ),
        },
        Some(kvm_time) => tcg(format!(
            "KVM probe {:.2}s slower than TCG {:.2}s (nested KVM?)",
            kvm_time.as_secs_f64(),
            tcg_time.as_secs_f64()
        )),
        None => tcg(format!(
            "KVM probe failed or exceeded {:.1}s (TCG took {:.2}s): KVM not really usable",
            kvm_budget.as_secs_f64(),
            tcg_time.as_secs_f64()
        )),
    })
}

/// Wall time of the probe under `accel`, or None if it failed or timed out.
fn time_probe(
    qemu: &Path,
    image: &Path,
    accel: Accel,
    budget: Duration,
) -> Result<Option<Duration>> {
    let start = Instant::now();
    let mut child = Command::new(qemu)
        .args(["-display", "none", "-nodefaults", "-no-reboot", "-m", "16"])
        .args(accel.qemu_args())
        .args(["-device", DEBUG_EXIT_PORT])
        .arg("-drive")
        .arg(format!("format=raw,if=floppy,file={}", image.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting QEMU for the accelerator probe")?;
    match wait_with_deadline(&mut child, start + budget)? {
        Some(status) if status.code() == Some(exit_status_for(GUEST_SUCCESS)) => {
            Ok(Some(start.elapsed()))
        }
        _ => Ok(None),
    }
}

/// QEMU's process exit status when the guest writes `value` to isa-debug-exit.
pub const fn exit_status_for(value: u32) -> i32 {
    ((value << 1) | 1) as i32
}

/// One QEMU boot: everything needed to run it and to record it.
#[derive(Clone, Debug)]
pub struct CaseSpec {
    pub iso: PathBuf,
    pub cpus: u32,
    pub memory_mib: u32,
    pub accel: Accel,
    /// Boot options handed to the kernel through fw_cfg `opt/capos/cmdline`.
    pub cmdline: String,
    pub timeout: Duration,
    /// Created if missing; receives serial.log, serial.timed.log, stderr.log, command.txt.
    pub log_dir: PathBuf,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The guest reported failure, or QEMU ended some other way.
    Fail {
        exit_code: Option<i32>,
        reason: String,
    },
    Timeout,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Pass => f.write_str("pass"),
            Verdict::Fail { reason, .. } => write!(f, "fail ({reason})"),
            Verdict::Timeout => f.write_str("timeout"),
        }
    }
}

/// A serial line with the host time since QEMU started when it arrived.
#[derive(Clone, Debug, PartialEq)]
pub struct TimedLine {
    pub elapsed: Duration,
    pub text: String,
}

/// Result of [`run_case`]: verdict, QEMU's exit status, timing, serial
/// lines, and the raw serial log (the other logs sit beside it).
#[derive(Clone, Debug)]
pub struct CaseOutcome {
    pub verdict: Verdict,
    /// QEMU's exit status; None when it was killed (timeout or signal).
    pub exit_code: Option<i32>,
    pub wall: Duration,
    pub lines: Vec<TimedLine>,
    pub serial_log: PathBuf,
    /// Pinning and host noise, when the run was watched.
    pub host: Option<RunHost>,
}

impl CaseOutcome {
    /// The first serial line containing `needle`.
    pub fn find_line(&self, needle: &str) -> Option<&TimedLine> {
        self.lines.iter().find(|line| line.text.contains(needle))
    }
}

/// The machine every guest of a run gets, capOS or a Linux baseline: no
/// display or default devices, no reboot, the serial console on stdio,
/// the accelerator and its CPU model, `cpus` vCPUs and `memory_mib` MiB.
pub fn envelope_arguments(accel: Accel, cpus: u32, memory_mib: u32) -> Vec<String> {
    let mut args: Vec<String> = [
        "-display",
        "none",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        "stdio",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(accel.qemu_args().iter().map(|s| s.to_string()));
    args.extend([
        "-smp".into(),
        cpus.to_string(),
        "-m".into(),
        format!("{memory_mib}M"),
    ]);
    args
}

/// The QEMU argument vector for `spec` (without the program name).
pub fn qemu_arguments(spec: &CaseSpec) -> Vec<String> {
    let mut args = envelope_arguments(spec.accel, spec.cpus, spec.memory_mib);
    args.extend([
        "-device".into(),
        DEBUG_EXIT_PORT.into(),
        "-boot".into(),
        "d".into(),
        "-cdrom".into(),
        spec.iso.display().to_string(),
    ]);
    if !spec.cmdline.is_empty() {
        args.push("-fw_cfg".into());
        args.push(format!("name=opt/capos/cmdline,string={}", spec.cmdline));
    }
    args
}

/// Boot `spec` once, capture its serial output with arrival times, and judge it.
pub fn run_case(spec: &CaseSpec) -> Result<CaseOutcome> {
    run_case_watched(spec, None)
}

/// [`run_case`], with QEMU pinned and the host sampled by `watch`.
pub fn run_case_watched(spec: &CaseSpec, watch: Option<&mut Watch>) -> Result<CaseOutcome> {
    let qemu = tools::require(&tools::QEMU)?;
    build::check_iso_signature(&spec.iso)?;
    if spec.cmdline.contains(',') {
        bail!(
            "boot options may not contain ',' (QEMU -fw_cfg syntax): {:?}",
            spec.cmdline
        );
    }
    let args = qemu_arguments(spec);
    let captured = run_captured_watched(
        &qemu,
        tools::QEMU.program,
        &args,
        spec.timeout,
        &spec.log_dir,
        watch,
    )?;
    let exit_code = captured.status.and_then(|status| status.code());
    Ok(CaseOutcome {
        verdict: judge_exit(exit_code, captured.status.is_none()),
        exit_code,
        wall: captured.wall,
        lines: captured.lines,
        serial_log: spec.log_dir.join(SERIAL_LOG),
        host: captured.host,
    })
}

/// A program run by [`run_captured`].
#[derive(Debug)]
pub struct Captured {
    /// Its exit status; None when it was killed at the timeout.
    pub status: Option<std::process::ExitStatus>,
    /// Wall time from start to exit (or kill).
    pub wall: Duration,
    /// Its stdout, line by line, with arrival times.
    pub lines: Vec<TimedLine>,
    /// Pinning and host noise, when the run was watched.
    pub host: Option<RunHost>,
}

/// Run `program` with `args` and keep everything as a run's raw logs in
/// `log_dir`: the command line (first word `shown_name`) in command.txt,
/// stdout as serial.log and serial.timed.log, stderr in stderr.log. Killed
/// at `timeout`. QEMU's serial console is its stdout; a native program's
/// stdout is recorded the same way.
pub fn run_captured(
    program: &Path,
    shown_name: &str,
    args: &[String],
    timeout: Duration,
    log_dir: &Path,
) -> Result<Captured> {
    run_captured_watched(program, shown_name, args, timeout, log_dir, None)
}

/// [`run_captured`], with `watch` (when given) adding its arguments,
/// sampling the host just before the start and just after the exit (before
/// the process is reaped), and pinning the process once it runs.
pub fn run_captured_watched(
    program: &Path,
    shown_name: &str,
    args: &[String],
    timeout: Duration,
    log_dir: &Path,
    mut watch: Option<&mut Watch>,
) -> Result<Captured> {
    std::fs::create_dir_all(log_dir)
        .with_context(|| format!("cannot create log directory {}", log_dir.display()))?;
    let serial_log = log_dir.join(SERIAL_LOG);
    let timed_log = log_dir.join(TIMED_LOG);
    let mut args = args.to_vec();
    if let Some(watch) = watch.as_deref() {
        args.extend(watch.extra_arguments());
    }
    let mut command_line = vec![shown_name.to_string()];
    command_line.extend(args.iter().cloned());
    std::fs::write(
        log_dir.join(COMMAND_FILE),
        shell_words(&command_line) + "\n",
    )?;

    let stderr_file = std::fs::File::create(log_dir.join(STDERR_LOG))?;
    let mut command = Command::new(program);
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr_file);
    if let Some(watch) = watch.as_deref_mut() {
        watch.before_start();
    }
    let start = Instant::now();
    let spawn_cpus = watch
        .as_deref()
        .and_then(Watch::spawn_cpus)
        .map(<[u32]>::to_vec);
    let spawned = match spawn_cpus {
        // The child inherits this thread's affinity from its first instruction.
        Some(cpus) => match affinity::with_thread_affinity(&cpus, || command.spawn()) {
            Ok((spawned, restored)) => {
                restored.context("restoring this thread's CPU affinity after a pinned spawn")?;
                spawned
            }
            Err(error) => {
                if let Some(watch) = watch.as_deref_mut() {
                    watch.spawn_affinity_failed(&error);
                }
                command.spawn()
            }
        },
        None => command.spawn(),
    };
    let mut child = spawned.with_context(|| format!("starting {}", program.display()))?;
    let stdout = child
        .stdout
        .take()
        .with_context(|| format!("{shown_name}'s stdout was not captured"))?;
    let reader = std::thread::spawn(move || capture_serial(stdout, start, &serial_log, &timed_log));

    let status = match watch.as_deref_mut() {
        Some(watch) => {
            watch.started(child.id());
            wait_watched(&mut child, start + timeout, watch)?
        }
        None => wait_with_deadline(&mut child, start + timeout)?,
    };
    let wall = start.elapsed();
    let lines = reader
        .join()
        .map_err(|_| anyhow::anyhow!("serial capture thread panicked"))??;
    Ok(Captured {
        status,
        wall,
        lines,
        host: watch.map(|watch| watch.take_record()),
    })
}

/// [`wait_with_deadline`] for a watched child: the watch takes its end
/// sample after the child exits but before it is reaped, or just before it
/// is killed at `deadline`.
fn wait_watched(
    child: &mut std::process::Child,
    deadline: Instant,
    watch: &mut Watch,
) -> Result<Option<std::process::ExitStatus>> {
    let pid = child.id();
    loop {
        if affinity::exited_unreaped(pid)? {
            watch.exited(pid);
            return Ok(Some(child.wait()?));
        }
        if Instant::now() >= deadline {
            watch.exited(pid);
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How a run ended, from QEMU's exit status and whether the harness killed
/// it at the timeout: the one classification both the runner and the
/// bundle recompute use.
pub fn judge_exit(code: Option<i32>, timed_out: bool) -> Verdict {
    if timed_out {
        return Verdict::Timeout;
    }
    match code {
        Some(code) if code == exit_status_for(GUEST_SUCCESS) => Verdict::Pass,
        Some(code) if code == exit_status_for(GUEST_FAILURE) => Verdict::Fail {
            exit_code: Some(code),
            reason: format!("guest reported failure (QEMU status {code})"),
        },
        Some(0) => Verdict::Fail {
            exit_code: Some(0),
            reason: "QEMU exited without a guest verdict (reset or triple fault)".into(),
        },
        Some(code) => Verdict::Fail {
            exit_code: Some(code),
            reason: format!("QEMU exited with status {code} (see stderr.log)"),
        },
        None => Verdict::Fail {
            exit_code: None,
            reason: "QEMU was killed by a signal".into(),
        },
    }
}

/// Copy serial bytes verbatim to `raw_path`, and each line with its arrival
/// time (microseconds since QEMU started) to `timed_path`.
fn capture_serial(
    mut stdout: impl Read,
    start: Instant,
    raw_path: &Path,
    timed_path: &Path,
) -> Result<Vec<TimedLine>> {
    let mut raw = std::fs::File::create(raw_path)?;
    let mut timed = std::io::BufWriter::new(std::fs::File::create(timed_path)?);
    let mut lines = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = match stdout.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error.into()),
        };
        let now = start.elapsed();
        raw.write_all(&buffer[..read])?;
        pending.extend_from_slice(&buffer[..read]);
        while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = serial_line_text(&line);
            writeln!(timed, "{} {}", now.as_micros(), text)?;
            lines.push(TimedLine { elapsed: now, text });
        }
    }
    if !pending.is_empty() {
        let text = String::from_utf8_lossy(&pending).to_string();
        let elapsed = start.elapsed();
        writeln!(timed, "{} {}", elapsed.as_micros(), text)?;
        lines.push(TimedLine { elapsed, text });
    }
    timed.flush()?;
    Ok(lines)
}

/// The text of one newline-terminated serial line: lossy UTF-8 without its
/// line ending. The bundle recompute splits raw logs with the same rule.
pub fn serial_line_text(line: &[u8]) -> String {
    String::from_utf8_lossy(line)
        .trim_end_matches(['\r', '\n'])
        .to_string()
}

/// Wait for `child` until `deadline`; kill it and return None if it is still running.
fn wait_with_deadline(
    child: &mut std::process::Child,
    deadline: Instant,
) -> Result<Option<std::process::ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Quote a command line so it can be pasted into a POSIX shell.
pub fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|word| {
            if !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@".contains(c))
            {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_probes_get_images_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_probe_image(dir.path()).unwrap();
        let second = write_probe_image(dir.path()).unwrap();
        assert_ne!(first.path(), second.path());
        assert_eq!(std::fs::read(first.path()).unwrap(), probe_boot_sector());
        let kept = first.path().to_path_buf();
        drop(first);
        assert!(!kept.exists(), "the image goes with its run");
    }

    #[test]
    fn probe_sector_is_bootable_and_small() {
        let sector = probe_boot_sector();
        assert_eq!(&sector[510..], &[0x55, 0xAA]);
        assert_eq!(sector[0], 0xFA);
        assert!(sector[..510].iter().rposition(|&b| b != 0).unwrap() < 64);
    }

    #[test]
    fn exit_codes_follow_isa_debug_exit() {
        assert_eq!(exit_status_for(GUEST_SUCCESS), 33);
        assert_eq!(judge_exit(Some(33), false), Verdict::Pass);
        assert!(matches!(judge_exit(Some(35), false), Verdict::Fail { .. }));
        assert!(matches!(judge_exit(Some(0), false), Verdict::Fail { .. }));
        assert!(matches!(judge_exit(None, false), Verdict::Fail { .. }));
    }

    #[test]
    fn timed_capture_splits_lines_and_keeps_raw_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        let timed = dir.path().join("timed");
        let input: &[u8] = b"one\r\ntwo\nthree";
        let lines = capture_serial(input, Instant::now(), &raw, &timed).unwrap();
        let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["one", "two", "three"]);
        assert_eq!(std::fs::read(&raw).unwrap(), input);
        assert_eq!(std::fs::read_to_string(&timed).unwrap().lines().count(), 3);
    }

    #[test]
    fn shell_words_quotes_only_when_needed() {
        let words = ["qemu".to_string(), "a b".into(), "it's".into()];
        assert_eq!(shell_words(&words), "qemu 'a b' 'it'\\''s'");
    }
}
