//! `capos run <proof>`: boot every case of a proof contract N times and store a signed bundle.
//!
//! The run records what it used before it measures anything (inputs.json),
//! keeps every raw log, and computes results.csv and summary.json with
//! [`summary::recompute`] over its own staging directory, so the stored
//! figures are exactly what an auditor recomputes. A failed run or gate still
//! produces a sealed bundle (failed evidence is evidence) and a non-zero exit.
//!
//! Before the first boot it reads the host's topology and places every
//! case (the root `host.json`); each run is then pinned and the host
//! sampled around it, and the run's `host.json` records both
//! ([`crate::proof::host`]). A pinning or sampling failure is recorded and
//! printed, never fatal.
//!
//! With `CAPOS_THREAD_SCALE_GUEST_MEASURE=1` the kernel is built with its
//! `measure` feature (recorded in inputs.json as `kernel_features`), and
//! each capOS run also stores its `[measure]` lines (`measure.log`) and
//! their user PCs resolved against the benchmark binary
//! (`user-pc-symbols.log`); see [`crate::proof::measure`].

use crate::bundle::files::BundleFiles;
use crate::bundle::keys;
use crate::bundle::provenance::{BuildFacts, ResourceDescriptor};
use crate::bundle::runlog;
use crate::bundle::writer::BundleWriter;
use crate::guest::build::{self, KernelFlavor};
use crate::guest::qemu::{self, Accel, AccelRequest, CaseSpec, Verdict};
use crate::host::noise::Limits;
use crate::host::watch::Watch;
use crate::proof::adaptive::Decision;
use crate::proof::baseline::rules;
use crate::proof::baseline::runner as baseline_runner;
use crate::proof::bootstrap::BootstrapPlan;
use crate::proof::contract::{self, Contract, RepetitionChoice};
use crate::proof::history;
use crate::proof::host;
use crate::proof::inputs::{
    AcceleratorRecord, ArtifactRecord, HostRecord, Inputs, QemuRecord, SkippedCase, SourceRecord,
    INPUTS_FORMAT,
};
use crate::proof::measure::{self, Benchmark};
use crate::proof::stats;
use crate::proof::summary::wording::Wording;
use crate::proof::summary::{
    self, ClaimLevel, ExitRecord, GateVerdict, GatedWidth, RunRecord, SummaryDocument,
};
use crate::terminal::untrusted;
use crate::tools;
use anyhow::{bail, Context, Result};
use ed25519_dalek::SigningKey;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// SLSA `buildType` of a proof run; its meaning: `docs/provenance-types.md`.
pub const BUILD_TYPE: &str = "https://capos.dev/evidence/run/v1";
/// SLSA builder id of the local `capos` CLI; its meaning: `docs/provenance-types.md`.
pub const BUILDER_ID: &str = "https://capos.dev/evidence/builder/capos-cli";
/// Environment variables a run reads besides the contract's repetition variable.
const RECORDED_VARIABLES: &[&str] = &[
    "CAPOS_ROOT",
    "CAPOS_EVIDENCE_STORE",
    "CAPOS_SIGNING_KEY",
    "CAPOS_TARGET_DIR",
    "CAPOS_GRUB_PLATFORM_DIR",
    "SOURCE_DATE_EPOCH",
    build::GUEST_MEASURE_VARIABLE,
    // Set by the Nix apps (flake.nix): which app, the ISO's store path, and the lock.
    "CAPOS_NIX_APP",
    "CAPOS_NIX_ISO",
    "CAPOS_FLAKE_LOCK_SHA256",
    "CAPOS_FLAKE_REV",
    "CAPOS_FLAKE_NAR_HASH",
    "CAPOS_FLAKE_LAST_MODIFIED",
    // The Linux guest kernel and the static baseline program, when given.
    crate::proof::baseline::linux_kernel::KERNEL_VARIABLE,
    crate::proof::baseline::program::PROGRAM_VARIABLE,
];

/// What `capos run` was asked to do, before anything is resolved.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Proof contract name: `evidence/contracts/<proof>.yaml`.
    pub proof: String,
    /// Repetitions per case as given (`1..=100`, `auto`, `auto:<cap>`);
    /// None: the contract's variable, else its default.
    pub runs: Option<String>,
    /// Accelerator request.
    pub accel: AccelRequest,
    /// An ISO to boot instead of building one.
    pub iso: Option<PathBuf>,
    /// Bundle store directory (None: `target/evidence`).
    pub store: Option<PathBuf>,
    /// Signing key (None: the workspace key, generated on first use).
    pub signing_key: Option<PathBuf>,
}

/// The accelerator request as recorded: its `--accel` name (`auto`, `kvm`, `tcg`).
pub fn accel_request_name(request: AccelRequest) -> String {
    match request {
        AccelRequest::Auto => "auto",
        AccelRequest::Kvm => "kvm",
        AccelRequest::Tcg => "tcg",
    }
    .to_string()
}

/// Parse a recorded accelerator request (the `--accel` names, exactly).
pub fn parse_accel_request(name: &str) -> Option<AccelRequest> {
    match name {
        "auto" => Some(AccelRequest::Auto),
        "kvm" => Some(AccelRequest::Kvm),
        "tcg" => Some(AccelRequest::Tcg),
        _ => None,
    }
}

/// What a run needs, already resolved (shared by `run` and `reproduce`).
pub struct RunPlan<'a> {
    /// The contract to run.
    pub contract: &'a Contract,
    /// Repetitions per case.
    pub repetitions: RepetitionChoice,
    /// Accelerator request (auto is probed once).
    pub accel_request: AccelRequest,
    /// The ISO to boot.
    pub iso: PathBuf,
    /// Its sha256, taken once when the ISO was chosen or built.
    pub iso_sha256: String,
    /// Whether this process built the ISO.
    pub iso_built: bool,
    /// The kernel in the ISO (built so, or declared so by the environment
    /// for a given `--iso`).
    pub kernel_flavor: KernelFlavor,
    /// Bundle store.
    pub store: PathBuf,
    /// Provenance signing key.
    pub signing_key: SigningKey,
}

/// A finished, sealed run.
#[derive(Debug)]
pub struct RunOutcome {
    /// Sealed bundle directory.
    pub bundle: PathBuf,
    /// The stored summary.
    pub summary: SummaryDocument,
    /// Commit and dirtiness of the checkout as inputs.json records them.
    pub source: (Option<String>, Option<bool>),
}

impl RunOutcome {
    /// Whether every run and gate passed.
    pub fn succeeded(&self) -> bool {
        self.summary.all_passed()
    }
}

/// The bundle store: `explicit` (flag or CAPOS_EVIDENCE_STORE), else target/evidence.
pub fn store_dir(root: &Path, explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| crate::paths::target_dir(root).join("evidence"))
}

/// Refuse a run whose gate threshold variables (`threshold_env`) are set
/// to anything but a positive number, before anything is built or booted.
fn check_threshold_variables(contract: &Contract) -> Result<()> {
    for gate in &contract.spec.gates {
        let Some(name) = &gate.threshold_env else {
            continue;
        };
        if let Ok(value) = std::env::var(name) {
            if contract::parse_threshold(&value).is_none() {
                anyhow::bail!(
                    "{name}={value:?}: the threshold of gate {:?} must be a positive number (e.g. 1.9)",
                    gate.id
                );
            }
        }
    }
    Ok(())
}

/// `capos run`: resolve the plan, run it, print the verdicts and the bundle
/// path last; an error when anything failed ([`finish`]).
pub fn run(root: &Path, args: RunRequest) -> Result<()> {
    let contract = contract::find(root, &args.proof)?;
    let repetitions = contract.choose_repetitions(args.runs.as_deref())?;
    check_threshold_variables(&contract)?;
    if let Some((name, value)) = workload_size_variable(&contract) {
        crate::proof::workload_size::parse_blocks(&name, &value)?;
    }
    let signing_key = keys::ensure_signing_key(root, args.signing_key.as_deref())?;
    let kernel_flavor = KernelFlavor::from_environment()?;
    let (iso, iso_sha256, iso_built) = match args.iso {
        Some(iso) => {
            let sha256 = sha256_of(&iso)?;
            (iso, sha256, false)
        }
        None => {
            let built = build::build_default_iso(root, &mut |notice| eprintln!("capos: {notice}"))?;
            (built.path, built.sha256, true)
        }
    };
    let plan = RunPlan {
        contract: &contract,
        repetitions,
        accel_request: args.accel,
        iso,
        iso_sha256,
        iso_built,
        kernel_flavor,
        store: store_dir(root, args.store),
        signing_key,
    };
    let outcome = execute(root, &plan)?;
    finish(&outcome)
}

/// A run whose claim is inconclusive: nothing failed, but the evidence
/// does not decide it (`capos` exits with [`Inconclusive::EXIT_STATUS`]).
#[derive(Debug, thiserror::Error)]
#[error("the claim is inconclusive: {reason}; the evidence is stored in {}", bundle.display())]
pub struct Inconclusive {
    /// The claim's reason.
    pub reason: String,
    /// The sealed bundle.
    pub bundle: PathBuf,
}

impl Inconclusive {
    /// Exit status of an inconclusive run (1 is a failure, 0 a pass).
    pub const EXIT_STATUS: i32 = 2;
}

/// Exit status policy: an error (after the bundle path was printed) when
/// anything failed or the claim is inconclusive.
pub fn finish(outcome: &RunOutcome) -> Result<()> {
    if outcome.succeeded() {
        return Ok(());
    }
    if outcome.summary.claim.level == ClaimLevel::Inconclusive {
        return Err(Inconclusive {
            reason: outcome.summary.claim.reason.clone(),
            bundle: outcome.bundle.clone(),
        }
        .into());
    }
    let failed_gates = outcome
        .summary
        .gates
        .iter()
        .filter(|gate| gate.required && gate.verdict == GateVerdict::Fail)
        .count();
    bail!(
        "{} of {} runs failed and {failed_gates} gate(s) failed; the failed evidence is stored in {}",
        outcome.summary.runs.failed,
        outcome.summary.runs.total,
        outcome.bundle.display()
    )
}

/// Run every case and repetition of `plan`, write and seal the bundle, print
/// progress and verdicts, and record the run, whatever its outcome, in the
/// store's run log.
pub fn execute(root: &Path, plan: &RunPlan<'_>) -> Result<RunOutcome> {
    let started_on = crate::time::rfc3339(SystemTime::now());
    let commit_at_start = git_state(root);
    let result = execute_unrecorded(root, plan, &started_on);
    let run = history::RunEnd {
        contract: &plan.contract.spec.name,
        // What the bundle records (the checkout may move during a long run),
        // else what the checkout was when the run started.
        commit: match &result {
            Ok(outcome) => outcome.source.clone(),
            Err(_) => commit_at_start,
        },
        started: started_on.clone(),
        finished: crate::time::rfc3339(SystemTime::now()),
        outcome: match &result {
            Ok(outcome) => Ok((outcome.bundle.as_path(), &outcome.summary)),
            Err(error) => Err(format!("{error:#}")),
        },
    };
    let contract_name = run.contract;
    let recorded = history::record(&plan.store, &plan.signing_key, run);
    if let Ok(entry) = &recorded {
        eprintln!(
            "capos: [{}] recorded as entry {} of {}",
            untrusted(contract_name),
            entry.sequence,
            plan.store.join(runlog::LOG_FILE).display()
        );
    }
    match (recorded, result) {
        (Ok(_), result) => result,
        (Err(log_error), Ok(outcome)) => Err(log_error.context(format!(
            "the bundle is sealed at {}, but its run was not recorded",
            outcome.bundle.display()
        ))),
        (Err(log_error), Err(error)) => Err(error.context(format!(
            "the run was not recorded in the run log either: {log_error:#}"
        ))),
    }
}

/// The contract's workload-size variable and its value, when the contract
/// has one and the environment sets it.
fn workload_size_variable(contract: &Contract) -> Option<(String, String)> {
    let size = contract.spec.workload_size.as_ref()?;
    let value = std::env::var(&size.env).ok()?;
    Some((size.env.clone(), value))
}

/// [`execute`] without the run-log entry.
fn execute_unrecorded(root: &Path, plan: &RunPlan<'_>, started_on: &str) -> Result<RunOutcome> {
    let size_variable = workload_size_variable(plan.contract);
    let sized = match &size_variable {
        Some((name, value)) => {
            let environment = BTreeMap::from([(name.clone(), value.clone())]);
            let sized = crate::proof::workload_size::sized(plan.contract, &environment)?;
            if let Some(sized) = &sized {
                eprintln!(
                    "capos: [{}] {name}={value}: cases run with `{}`",
                    plan.contract.spec.name,
                    sized
                        .spec
                        .cases
                        .first()
                        .map(|case| case.cmdline.as_str())
                        .unwrap_or("")
                );
            }
            sized
        }
        None => None,
    };
    let contract = sized.as_ref().unwrap_or(plan.contract);
    let proof = contract.spec.name.as_str();
    let qemu_binary = tools::require(&tools::QEMU)?;
    build::check_iso_signature(&plan.iso)?;
    let choice = qemu::detect_accel(root, plan.accel_request)?;
    eprintln!(
        "capos: [{proof}] accel={} ({})",
        choice.accel, choice.reason
    );
    let host_cpus = host_record().cpu_count;
    let mut skipped_cases = Vec::new();
    let mut running = Vec::new();
    for (index, case) in contract.spec.cases.iter().enumerate() {
        match rules::skip_reason(case, host_cpus, |name| std::env::var(name).ok()) {
            Some(reason) => {
                eprintln!("capos: [{proof}] case {} skipped: {reason}", case.id);
                skipped_cases.push(SkippedCase {
                    id: case.id.clone(),
                    reason,
                });
            }
            None => running.push(index),
        }
    }
    let running_cases: Vec<&contract::CaseSpec> = running
        .iter()
        .map(|&index| &contract.spec.cases[index])
        .collect();
    let baselines = baseline_runner::prepare(root, contract, &running_cases)?;
    let host_document = host::plan(Path::new(host::SYSFS_ROOT), &running_cases);
    for line in host::describe_plan(&host_document) {
        eprintln!("capos: [{proof}] host: {line}");
    }
    let guest_measure = plan.kernel_flavor == KernelFlavor::Measure;
    let benchmark = if guest_measure {
        Some(measured_benchmark(root, contract, &running_cases)?)
    } else {
        None
    };

    let writer = BundleWriter::create(&plan.store)?;
    let bundle_root = writer.root().to_path_buf();
    write_file(&bundle_root.join(summary::CONTRACT_FILE), &contract.text)?;
    let mut inputs = collect_inputs(root, plan, &choice, &qemu_binary)?;
    for condition in contract
        .spec
        .cases
        .iter()
        .filter_map(|case| case.condition.as_ref())
    {
        if let Ok(value) = std::env::var(&condition.env) {
            inputs.environment.insert(condition.env.clone(), value);
        }
    }
    for name in contract
        .spec
        .gates
        .iter()
        .flat_map(|gate| [gate.threshold_env.as_ref(), gate.opt_in_env.as_ref()])
        .flatten()
    {
        if let Ok(value) = std::env::var(name) {
            inputs.environment.insert(name.clone(), value);
        }
    }
    if let Some((name, value)) = &size_variable {
        inputs.environment.insert(name.clone(), value.clone());
    }
    inputs.skipped_cases = skipped_cases;
    inputs.baseline = baselines.as_ref().map(|prepared| prepared.inputs.clone());
    write_file(
        &bundle_root.join(summary::INPUTS_FILE),
        &summary::json_text(&inputs)?,
    )?;
    host::write_document(&bundle_root, &host_document)?;

    let count = plan.repetitions.count;
    let rule = plan.repetitions.adaptive.as_ref();
    let total = running.len() as u64 * u64::from(count);
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(format!("[{proof}]"));
    if let Some(rule) = rule {
        bar.suspend(|| {
            println!(
                "[{proof}] adaptive repetitions: {} to {} rounds, until every gated interval spans at most {} of its figure",
                rule.min_rounds,
                rule.max_rounds,
                stats::format_figure(rule.target_relative_width)
            )
        });
    }
    // Interleaved by repetition (every case once, then again), so drift on
    // a shared machine hits every case and system alike.
    let mut all_records: Vec<Vec<RunRecord>> = vec![Vec::new(); contract.spec.cases.len()];
    let mut rounds = 0;
    for repetition in 1..=count {
        for &case_index in &running {
            let case = &contract.spec.cases[case_index];
            bar.set_message(format!("{} run {repetition}/{count}", case.id));
            if bar.is_hidden() {
                eprintln!("capos: [{proof}] {} run {repetition}/{count}", case.id);
            }
            let run_dir = summary::run_log_path(&case.id, repetition);
            let mut watch = host::watch_for(&host_document, case);
            let record = match &baselines {
                Some(prepared) if !case.os.is_capos() => {
                    let log_dir = bundle_root.join(&run_dir);
                    let (exit, run_host) = baseline_runner::run_case(
                        prepared,
                        case,
                        choice.accel,
                        &log_dir,
                        Some(&mut watch),
                    )
                    .with_context(|| format!("running case {} repetition {repetition}", case.id))?;
                    write_file(
                        &log_dir.join(summary::EXIT_FILE),
                        &summary::json_text(&exit)?,
                    )?;
                    if let Some(run_host) = run_host {
                        for warning in
                            host::write_run(&log_dir, run_host, host_document.noise_limits)?
                        {
                            eprintln!("capos: [{proof}] {} run {repetition}: {warning}", case.id);
                        }
                    }
                    summary::evaluate_run_dir(
                        contract,
                        case_index,
                        repetition,
                        &BundleFiles::staging(&bundle_root),
                        &run_dir,
                        Wording::CURRENT,
                        guest_measure,
                    )?
                }
                _ => run_one(
                    contract,
                    (case_index, repetition),
                    &plan.iso,
                    choice.accel,
                    &bundle_root,
                    benchmark.as_ref(),
                    (&mut watch, host_document.noise_limits),
                )?,
            };
            bar.inc(1);
            all_records[case_index].push(record);
        }
        rounds = repetition;
        if let Some(rule) = rule {
            let so_far: Vec<RunRecord> = all_records.iter().flatten().cloned().collect();
            let widths = summary::gated_widths(contract, &inputs, &so_far)
                .context("estimating the gated intervals after a round")?;
            let relative: Vec<Option<f64>> =
                widths.iter().map(|width| width.relative_width).collect();
            let decision = rule.decide(repetition, &relative);
            let line = round_line(proof, repetition, &widths, decision);
            bar.suspend(|| println!("{line}"));
            if decision != Decision::Continue {
                break;
            }
        }
    }
    if rule.is_some() {
        // The rounds that ran are the count verify replays the rule over.
        inputs.repetitions.count = rounds;
        bar.set_length(running.len() as u64 * u64::from(rounds));
        write_file(
            &bundle_root.join(summary::INPUTS_FILE),
            &summary::json_text(&inputs)?,
        )?;
    }
    for &case_index in &running {
        let case = &contract.spec.cases[case_index];
        let records = &all_records[case_index];
        let line = case_line(contract, case_index, records);
        bar.suspend(|| {
            println!("{line}");
            for record in records.iter().filter(|record| !record.passed()) {
                println!(
                    "[{proof}]   {} run {} failed: {} (logs: {})",
                    case.id,
                    record.repetition,
                    record.problems.join("; "),
                    summary::run_log_path(&case.id, record.repetition)
                );
            }
        });
    }
    bar.finish_and_clear();

    let recomputed = summary::recompute(&BundleFiles::staging(&bundle_root))
        .context("computing the summary of this run")?;
    write_file(
        &bundle_root.join(summary::RESULTS_FILE),
        &recomputed.results_csv,
    )?;
    write_file(
        &bundle_root.join(summary::SUMMARY_FILE),
        &recomputed.summary_json,
    )?;
    let summary: SummaryDocument = serde_json::from_str(&recomputed.summary_json)?;

    let facts = build_facts(plan, &inputs, started_on)?;
    let bundle = writer.seal(&plan.signing_key, &facts)?;
    for gate in &summary.gates {
        let required = if gate.required { "" } else { ", not required" };
        println!(
            "[{proof}] gate {}: {}{required} ({})",
            gate.id,
            gate.verdict.shouted(),
            gate.detail
        );
    }
    for note in &summary.notes {
        println!("[{proof}] note: {note}");
    }
    println!(
        "[{proof}] claim: {} ({})",
        summary.claim.level, summary.claim.reason
    );
    println!("{}", bundle.display());
    Ok(RunOutcome {
        bundle,
        summary,
        source: (inputs.source.git_commit.clone(), inputs.source.git_dirty),
    })
}

/// `[proof] round N: gate=value [lower, upper] width W, ... -> continue`:
/// the current estimate of every gated figure after an adaptive round.
fn round_line(proof: &str, round: u32, widths: &[GatedWidth], decision: Decision) -> String {
    let figure = |value: Option<f64>| {
        value
            .map(stats::format_figure)
            .unwrap_or_else(|| "none".into())
    };
    let parts: Vec<String> = widths
        .iter()
        .map(|width| {
            let interval = width
                .interval
                .map(|interval| {
                    format!(
                        " [{}, {}]",
                        stats::format_figure(interval.lower),
                        stats::format_figure(interval.upper)
                    )
                })
                .unwrap_or_default();
            format!(
                "{}={}{interval} width {}",
                width.gate,
                figure(width.value),
                figure(width.relative_width)
            )
        })
        .collect();
    let decision = match decision {
        Decision::Continue => "continue",
        Decision::TargetReached => "stop: every gated interval is narrow enough",
        Decision::CapReached => "stop: the cap is reached",
    };
    format!(
        "[{proof}] round {round}: {} -> {decision}",
        if parts.is_empty() {
            "no gated figure".to_string()
        } else {
            parts.join(", ")
        }
    )
}

/// Boot one repetition (`(case index, repetition)`), record how QEMU ended
/// and, for a measuring kernel (`benchmark` given), the run's measurement
/// files, and judge the logs as stored.
fn run_one(
    contract: &Contract,
    (case_index, repetition): (usize, u32),
    iso: &Path,
    accel: Accel,
    bundle_root: &Path,
    benchmark: Option<&Benchmark>,
    (watch, noise_limits): (&mut Watch, Limits),
) -> Result<RunRecord> {
    let case = &contract.spec.cases[case_index];
    let run_dir = summary::run_log_path(&case.id, repetition);
    let log_dir = bundle_root.join(&run_dir);
    let spec = CaseSpec {
        iso: iso.to_path_buf(),
        cpus: case.cpus,
        memory_mib: case.memory(),
        accel,
        cmdline: case.cmdline.clone(),
        timeout: Duration::from_secs(case.timeout_secs),
        log_dir: log_dir.to_path_buf(),
    };
    let outcome = qemu::run_case_watched(&spec, Some(watch))
        .with_context(|| format!("running case {} repetition {repetition}", case.id))?;
    if let Some(run_host) = outcome.host.clone() {
        for warning in host::write_run(&log_dir, run_host, noise_limits)? {
            eprintln!(
                "capos: [{}] {} run {repetition}: {warning}",
                contract.spec.name, case.id
            );
        }
    }
    let exit = ExitRecord {
        exit_code: outcome.exit_code,
        timed_out: outcome.verdict == Verdict::Timeout,
        wall_ms: u64::try_from(outcome.wall.as_millis()).unwrap_or(u64::MAX),
        pinned_cpus: None,
    };
    write_file(
        &log_dir.join(summary::EXIT_FILE),
        &summary::json_text(&exit)?,
    )?;
    if let Some(benchmark) = benchmark {
        let serial_path = log_dir.join(summary::SERIAL_FILE);
        let serial = std::fs::read(&serial_path)
            .with_context(|| format!("reading {}", serial_path.display()))?;
        let lines = summary::split_serial(&serial);
        measure::record_run(&log_dir, lines.iter().map(String::as_str), benchmark)?;
    }
    Ok(summary::evaluate_run_dir(
        contract,
        case_index,
        repetition,
        &BundleFiles::staging(bundle_root),
        &run_dir,
        Wording::CURRENT,
        benchmark.is_some(),
    )?)
}

/// The benchmark binary a measuring run samples: the manifest binary of the
/// process the contract's `result_line.process` names, in the manifest of
/// the capOS cases' `manifest=` boot option (all cases must agree).
fn measured_benchmark(
    root: &Path,
    contract: &Contract,
    cases: &[&contract::CaseSpec],
) -> Result<Benchmark> {
    let variable = build::GUEST_MEASURE_VARIABLE;
    let process = contract.spec.result_line.process.as_deref().with_context(|| {
        format!(
            "{variable}=1: contract {} names no result_line.process, so the measured binary is unknown",
            contract.spec.name
        )
    })?;
    let mut manifests: Vec<&str> = cases
        .iter()
        .filter(|case| case.os.is_capos())
        .map(|case| capos_kcore::cmdline::option(&case.cmdline, "manifest").unwrap_or(""))
        .collect();
    manifests.dedup();
    let [manifest] = manifests.as_slice() else {
        bail!(
            "{variable}=1: the capOS cases of {} boot manifests [{}]; the measured binary must come from exactly one",
            contract.spec.name,
            manifests.join(", ")
        );
    };
    let path = root
        .join("userland/manifests")
        .join(format!("{manifest}.yaml"));
    let spec = crate::guest::manifest::load(&path, &crate::guest::manifest::known_binaries(root)?)?;
    let binary = spec
        .processes
        .iter()
        .find(|entry| entry.name == process)
        .map(|entry| entry.binary.clone())
        .with_context(|| format!("{}: no process named {process}", path.display()))?;
    let elf = crate::guest::userland::program_elf(root, &binary);
    Benchmark::load(&binary, &elf).with_context(|| format!("{variable}=1: the measured binary"))
}

/// `[proof] case=<id> runs=N passed=P median_<metric>=.. min=.. max=..` for one finished case.
pub fn case_line(contract: &Contract, case_index: usize, records: &[RunRecord]) -> String {
    let case = &contract.spec.cases[case_index];
    let passed: Vec<&RunRecord> = records.iter().filter(|record| record.passed()).collect();
    let mut line = format!(
        "[{}] case={} runs={} passed={}",
        contract.spec.name,
        case.id,
        records.len(),
        passed.len()
    );
    for (index, metric) in contract.spec.metrics.iter().enumerate() {
        let values: Vec<f64> = passed
            .iter()
            .filter_map(|record| record.metrics[index])
            .collect();
        match stats::summarize(&values) {
            Ok(summary) => line.push_str(&format!(
                " median_{}={} min={} max={}",
                metric.name,
                stats::format_figure(summary.median),
                stats::format_figure(summary.min),
                stats::format_figure(summary.max)
            )),
            Err(_) => line.push_str(&format!(" median_{}=none", metric.name)),
        }
    }
    line
}

fn write_file(path: &Path, contents: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// Gather inputs.json for `plan`.
fn collect_inputs(
    root: &Path,
    plan: &RunPlan<'_>,
    choice: &qemu::AccelChoice,
    qemu_binary: &Path,
) -> Result<Inputs> {
    let iso = ArtifactRecord {
        path: build::display_relative(root, &plan.iso),
        sha256: plan.iso_sha256.clone(),
        built_by_run: plan.iso_built,
    };
    let kernel_path = plan.kernel_flavor.kernel_elf(root);
    let kernel = if plan.iso_built && kernel_path.is_file() {
        Some(ArtifactRecord {
            path: build::display_relative(root, &kernel_path),
            sha256: sha256_of(&kernel_path)?,
            built_by_run: true,
        })
    } else {
        None
    };
    let mut environment = BTreeMap::new();
    let repetition_variable = plan.contract.spec.repetitions.env.as_str();
    for name in RECORDED_VARIABLES
        .iter()
        .copied()
        .chain([repetition_variable])
    {
        if let Ok(value) = std::env::var(name) {
            environment.insert(name.to_string(), value);
        }
    }
    let optional_digest = |path: PathBuf| -> Result<Option<String>> {
        if path.is_file() {
            Ok(Some(sha256_of(&path)?))
        } else {
            Ok(None)
        }
    };
    let (git_commit, git_dirty) = git_state(root);
    Ok(Inputs {
        format: INPUTS_FORMAT.into(),
        proof: plan.contract.spec.name.clone(),
        repetitions: plan.repetitions.clone(),
        accelerator: AcceleratorRecord {
            requested: accel_request_name(plan.accel_request),
            name: choice.accel,
            reason: choice.reason.clone(),
        },
        iso,
        kernel,
        kernel_features: plan
            .kernel_flavor
            .features()
            .iter()
            .map(|feature| feature.to_string())
            .collect(),
        qemu: QemuRecord {
            version: qemu_version(qemu_binary)?,
            path: qemu_binary.display().to_string(),
            sha256: sha256_of(qemu_binary)?,
        },
        host: host_record(),
        source: SourceRecord {
            git_commit,
            git_dirty,
            cargo_lock_sha256: optional_digest(root.join("Cargo.lock"))?,
            flake_lock_sha256: optional_digest(root.join("flake.lock"))?,
        },
        environment,
        skipped_cases: Vec::new(),
        baseline: None,
        statistics: Some(BootstrapPlan::with_seed(rand_core::RngCore::next_u64(
            &mut rand_core::OsRng,
        ))),
    })
}

/// First line of `qemu --version`.
fn qemu_version(qemu_binary: &Path) -> Result<String> {
    let output = Command::new(qemu_binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", qemu_binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    match text.lines().next() {
        Some(line) if output.status.success() => Ok(line.trim().to_string()),
        _ => bail!(
            "{} --version failed ({})",
            qemu_binary.display(),
            output.status
        ),
    }
}

/// CPU model, logical CPU count and kernel release of this machine.
pub fn host_record() -> HostRecord {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let processors = cpuinfo
        .lines()
        .filter(|line| line.split(':').next().map(str::trim) == Some("processor"))
        .count();
    let cpu_count = if processors > 0 {
        processors
    } else {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    HostRecord {
        cpu_model,
        cpu_count: u32::try_from(cpu_count).unwrap_or(u32::MAX),
        available_cpus: std::thread::available_parallelism()
            .ok()
            .and_then(|count| u32::try_from(usize::from(count)).ok()),
        kernel,
    }
}

/// HEAD commit and whether the tree differs from it (None when git is unavailable).
pub fn git_state(root: &Path) -> (Option<String>, Option<bool>) {
    let commit = crate::git::output(root, &["rev-parse", "HEAD"]);
    let dirty = commit
        .as_ref()
        .and_then(|_| {
            crate::git::output(root, &["status", "--porcelain", "--untracked-files=normal"])
        })
        .map(|text| !text.is_empty());
    (commit, dirty)
}

/// Provenance facts: external parameters are what the user chose, internal what the run found.
fn build_facts(plan: &RunPlan<'_>, inputs: &Inputs, started_on: &str) -> Result<BuildFacts> {
    let external_parameters = serde_json::json!({
        "proof": plan.contract.spec.name,
        "contract_sha256": crate::digest::sha256_hex(plan.contract.text.as_bytes()),
        "runs": inputs.repetitions.count,
        "runs_source": plan.repetitions.source,
        "accel": accel_request_name(plan.accel_request),
    });
    let internal_parameters = serde_json::json!({
        "accelerator": inputs.accelerator,
        "host": inputs.host,
        "qemu_version": inputs.qemu.version,
        "git_commit": inputs.source.git_commit,
        "git_dirty": inputs.source.git_dirty,
        "environment": inputs.environment,
    });
    let mut dependencies = vec![ResourceDescriptor::sha256(
        &inputs.iso.path,
        &inputs.iso.sha256,
    )];
    if let Some(kernel) = &inputs.kernel {
        dependencies.push(ResourceDescriptor::sha256(&kernel.path, &kernel.sha256));
    }
    dependencies.push(ResourceDescriptor::sha256(
        &inputs.qemu.path,
        &inputs.qemu.sha256,
    ));
    if let Some(baseline) = &inputs.baseline {
        dependencies.push(ResourceDescriptor::sha256(
            &baseline.init.path,
            &baseline.init.sha256,
        ));
        if let Some(kernel) = &baseline.linux_kernel {
            dependencies.push(ResourceDescriptor::sha256(&kernel.path, &kernel.sha256));
        }
        if let Some(initramfs) = &baseline.initramfs {
            dependencies.push(ResourceDescriptor::sha256(
                &initramfs.path,
                &initramfs.sha256,
            ));
        }
    }
    if let Some(digest) = &inputs.source.cargo_lock_sha256 {
        dependencies.push(ResourceDescriptor::sha256("Cargo.lock", digest));
    }
    if let Some(digest) = &inputs.source.flake_lock_sha256 {
        dependencies.push(ResourceDescriptor::sha256("flake.lock", digest));
    }
    if let Some(commit) = &inputs.source.git_commit {
        dependencies.push(ResourceDescriptor {
            name: "source".into(),
            uri: None,
            digest: BTreeMap::from([("gitCommit".to_string(), commit.clone())]),
        });
    }
    let mut random = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut random);
    Ok(BuildFacts {
        build_type: BUILD_TYPE.into(),
        external_parameters,
        internal_parameters,
        resolved_dependencies: dependencies,
        builder_id: BUILDER_ID.into(),
        builder_version: crate::tool::builder_version(),
        invocation_id: format!("urn:uuid:{}", uuid_text(random)),
        started_on: started_on.to_string(),
        finished_on: crate::time::rfc3339(SystemTime::now()),
    })
}

/// A random (version 4) UUID in its usual text form.
fn uuid_text(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// sha256 of a file the run used (ISO, kernel, QEMU, lock files).
fn sha256_of(path: &Path) -> Result<String> {
    Ok(crate::digest::file_sha256(path)
        .with_context(|| format!("reading {}", path.display()))?
        .0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_version_and_variant() {
        let text = uuid_text([0xff; 16]);
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "4");
        assert_eq!(&text[19..20], "b");
    }

    #[test]
    fn accel_names_round_trip() {
        for request in [AccelRequest::Auto, AccelRequest::Kvm, AccelRequest::Tcg] {
            assert_eq!(
                parse_accel_request(&accel_request_name(request)),
                Some(request)
            );
        }
    }
}
