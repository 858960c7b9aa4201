//! `capos archive audit`: verify everything an archive holds — every bundle
//! (in full, figures recomputed), every run log, every reproduction
//! attestation — and render an index of each contract's claim over time.
//!
//! An archive is a store directory (bundles, `runlog.jsonl` with its signed
//! head, `attestations/`) or an OCI repository (bundle artifacts, each tar
//! carrying its run-log segment, and attestations as referrers). Sources are
//! gathered into [`Gathered`] by the caller (the CLI); this module only
//! judges and renders, so both kinds share one audit.
//!
//! Invariants: a bundle that fails verification is listed as failed with
//! its error, never dropped and never charted; a bundle no verified run log
//! names is listed by name; a run that ended in an error (no bundle) is a
//! row of its own; attestations count only as [`attestation::judge`] allows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::bundle::runlog::{self, Entry, Verdict};
use crate::bundle::verify::{Limits, VerifiedBundle};
use crate::proof::attestation::{self, Judged, VerificationResult};
use crate::proof::policy::Policy;
use crate::proof::{audit, summary};
use crate::terminal::untrusted;

/// One bundle to audit: where it is, and a label for messages.
pub struct BundleInput {
    /// Directory or packed archive on disk.
    pub path: std::path::PathBuf,
    /// Where it came from (store path or OCI reference).
    pub origin: String,
}

/// Everything gathered from an archive.
#[derive(Default)]
pub struct Gathered {
    /// The bundles.
    pub bundles: Vec<BundleInput>,
    /// Run logs `(origin, log, head)` found besides the bundles' own segments.
    pub logs: Vec<(String, Vec<u8>, Vec<u8>)>,
    /// Attestation envelopes `(origin, bytes)`.
    pub attestations: Vec<(String, Vec<u8>)>,
}

/// One row of the index: a bundle, or a run that ended without one.
#[derive(Serialize, Debug, Clone)]
pub struct ClaimRow {
    /// Contract.
    pub contract: String,
    /// Commit (short), or `unknown`.
    pub commit: String,
    /// RFC 3339 start of the run.
    pub started: String,
    /// Bundle name (short) or `—` for an error run.
    pub bundle: String,
    /// Full bundle name.
    pub bundle_full: String,
    /// `verified`, `FAILED VERIFICATION: ...`, or `error run: ...`.
    pub status: String,
    /// Whether the bundle verified.
    pub verified: bool,
    /// Claim level (`publishable`, `diagnostic`, `failed`).
    pub claim: String,
    /// Runs passed / total.
    pub runs: String,
    /// Speedup id to capOS value; for a contract without speedups, each
    /// `case/metric` median instead (so every contract has a line to chart).
    pub speedups: BTreeMap<String, Option<f64>>,
    /// Speedup id to `system: value` of the baselines (Linux guest, native).
    pub baselines: BTreeMap<String, String>,
    /// Reproductions that agree (counted keys).
    pub reproduced: usize,
    /// Reproductions that disagree (counted keys).
    pub disagreed: usize,
    /// Whether a verified run log names the bundle.
    pub in_run_log: bool,
}

/// One contract's section of the index.
#[derive(Serialize, Debug, Clone)]
pub struct ContractSection {
    /// Contract name.
    pub contract: String,
    /// Speedup ids, the columns.
    pub speedup_ids: Vec<String>,
    /// Rows, oldest first.
    pub rows: Vec<ClaimRow>,
    /// SVG chart of every speedup over the rows (capOS and baselines).
    pub chart: String,
    /// Whether any row has baseline figures (else their columns are left out).
    pub has_baselines: bool,
}

/// The audit's result.
#[derive(Serialize, Debug, Clone, Default)]
pub struct ArchiveAudit {
    /// What was audited.
    pub origin: String,
    /// Bundles that verified.
    pub verified: usize,
    /// Bundles that failed verification, with the error.
    pub failed: Vec<(String, String)>,
    /// Run logs that verified `(origin, entries)`.
    pub logs: Vec<(String, usize)>,
    /// Run logs that failed `(origin, error)`.
    pub bad_logs: Vec<(String, String)>,
    /// Verified bundles no verified run log names.
    pub unlogged: Vec<String>,
    /// Attestations counted / refused / unjudged (no policy).
    pub attestations_counted: usize,
    /// Refused attestations `(origin, reason)`.
    pub attestations_refused: Vec<(String, String)>,
    /// Attestations not judged because no policy was given.
    pub attestations_unjudged: usize,
    /// Per contract.
    pub sections: Vec<ContractSection>,
}

impl ArchiveAudit {
    /// Whether everything verified (no failed bundle, log or refused attestation).
    #[must_use]
    pub fn clean(&self) -> bool {
        self.failed.is_empty() && self.bad_logs.is_empty() && self.attestations_refused.is_empty()
    }
}

fn short(text: &str) -> String {
    text.get(..12).unwrap_or(text).to_owned()
}

/// Audit `gathered` against the builder key `trusted` and, for attestations, `policy`.
#[must_use]
pub fn audit_archive(
    origin: &str,
    gathered: &Gathered,
    trusted: &VerifyingKey,
    policy: Option<&Policy>,
    limits: Limits,
) -> ArchiveAudit {
    let mut result = ArchiveAudit {
        origin: untrusted(origin).into_owned(),
        ..ArchiveAudit::default()
    };
    let mut logged: BTreeMap<String, Entry> = BTreeMap::new();
    let mut error_runs: Vec<Entry> = Vec::new();
    for (log_origin, log, head) in &gathered.logs {
        match runlog::verify(log, head, trusted) {
            Ok(verified) => {
                result
                    .logs
                    .push((untrusted(log_origin).into_owned(), verified.entries.len()));
                for entry in verified.entries {
                    match &entry.run.bundle {
                        Some(name) => {
                            logged.insert(name.clone(), entry);
                        }
                        None => error_runs.push(entry),
                    }
                }
            }
            Err(error) => result
                .bad_logs
                .push((untrusted(log_origin).into_owned(), error.to_string())),
        }
    }
    let mut verified_bundles: Vec<(VerifiedBundle, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    for input in &gathered.bundles {
        match audit::verify_bundle(&input.path, trusted, limits) {
            Ok(verified) => {
                if !seen.insert(verified.name.clone()) {
                    continue;
                }
                // A packed bundle's own run-log segment counts as a run log.
                let packed = || -> anyhow::Result<Option<runlog::VerifiedLog>> {
                    let Some(head) = verified.files.packed_runlog_head(runlog::MAX_HEAD_BYTES)?
                    else {
                        return Ok(None);
                    };
                    let head = runlog::verify_head(&head, trusted)?;
                    let lines = verified
                        .files
                        .packed_runlog_segment(runlog::log_budget(head.entries))?;
                    Ok(Some(runlog::verify_lines(&lines, head)?))
                };
                match packed() {
                    Ok(Some(log)) => {
                        result.logs.push((
                            format!("{} (run-log segment)", untrusted(&input.origin)),
                            log.entries.len(),
                        ));
                        for entry in log.entries {
                            if let Some(name) = &entry.run.bundle {
                                logged.entry(name.clone()).or_insert(entry);
                            }
                        }
                    }
                    Ok(None) => {}
                    Err(error) => result.bad_logs.push((
                        format!("{} (run-log segment)", untrusted(&input.origin)),
                        untrusted(&format!("{error:#}")).into_owned(),
                    )),
                }
                verified_bundles.push((verified, input.origin.clone()));
            }
            Err(error) => result.failed.push((
                untrusted(&input.origin).into_owned(),
                untrusted(&format!("{error:#}")).into_owned(),
            )),
        }
    }
    result.verified = verified_bundles.len();

    // Attestations, per subject bundle.
    let mut agree: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut disagree: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (source, bytes) in &gathered.attestations {
        let Some(policy) = policy else {
            result.attestations_unjudged += 1;
            continue;
        };
        let subject = subject_of(bytes);
        let judged: Judged = attestation::judge(bytes, source, &subject, trusted, policy);
        match &judged.outcome {
            Ok((_, statement)) => {
                result.attestations_counted += 1;
                let key = judged.key_id.clone().unwrap_or_default();
                let target = match statement.predicate.verification_result {
                    VerificationResult::Passed => &mut agree,
                    VerificationResult::Failed => &mut disagree,
                };
                target.entry(subject).or_default().insert(key);
            }
            Err(refusal) => result
                .attestations_refused
                .push((untrusted(source).into_owned(), refusal.to_string())),
        }
    }
    // A bundle named by no verified attestation subject that exists here is
    // fine; an attestation about a bundle not in the archive still counts
    // as verified (its subject is named in the index only via the bundle).

    let mut rows: Vec<ClaimRow> = Vec::new();
    for (verified, _) in &verified_bundles {
        let Ok((_, inputs, summary)) = summary::read_bundle(&verified.files) else {
            continue;
        };
        let in_run_log = logged.contains_key(&verified.name);
        if !in_run_log {
            result.unlogged.push(verified.name.clone());
        }
        let mut speedups = BTreeMap::new();
        let mut baselines = BTreeMap::new();
        for speedup in &summary.speedups {
            speedups.insert(speedup.id.clone(), speedup.value);
            if let Some(comparison) = &summary.comparison {
                let others: Vec<String> = comparison
                    .rows
                    .iter()
                    .filter(|row| row.metric == speedup.metric && row.cpus == speedup.case_cpus)
                    .flat_map(|row| row.systems.iter())
                    .filter(|system| !system.os.is_capos())
                    .filter_map(|system| {
                        Some(format!(
                            "{} {}",
                            system.os.title(),
                            crate::proof::stats::format_figure(system.speedup?)
                        ))
                    })
                    .collect();
                if !others.is_empty() {
                    baselines.insert(speedup.id.clone(), others.join(", "));
                }
            }
        }
        if summary.speedups.is_empty() {
            for case in &summary.cases {
                for metric in &case.metrics {
                    speedups.insert(
                        format!("{} {}", case.id, metric.name),
                        metric
                            .statistics
                            .as_ref()
                            .map(|statistics| statistics.median),
                    );
                }
            }
        }
        let started = verified
            .statement
            .predicate
            .run_details
            .metadata
            .as_ref()
            .and_then(|metadata| metadata.started_on.clone())
            .unwrap_or_default();
        rows.push(ClaimRow {
            contract: summary.contract.clone(),
            commit: inputs
                .source
                .git_commit
                .as_deref()
                .map_or("unknown".to_owned(), short),
            started,
            bundle: short(&verified.name),
            bundle_full: verified.name.clone(),
            status: "verified".to_owned(),
            verified: true,
            claim: summary.claim.level.to_string(),
            runs: format!("{}/{}", summary.runs.passed, summary.runs.total),
            speedups,
            baselines,
            reproduced: agree.get(&verified.name).map_or(0, BTreeSet::len),
            disagreed: disagree.get(&verified.name).map_or(0, BTreeSet::len),
            in_run_log,
        });
    }
    for entry in &error_runs {
        rows.push(ClaimRow {
            contract: entry.run.contract.clone(),
            commit: entry
                .run
                .commit
                .as_deref()
                .map_or("unknown".to_owned(), short),
            started: entry.run.started.clone(),
            bundle: "—".to_owned(),
            bundle_full: String::new(),
            status: format!(
                "error run: {}",
                entry.run.detail.as_deref().unwrap_or("no detail")
            ),
            verified: false,
            claim: "failed".to_owned(),
            runs: "—".to_owned(),
            speedups: BTreeMap::new(),
            baselines: BTreeMap::new(),
            reproduced: 0,
            disagreed: 0,
            in_run_log: true,
        });
    }
    // Logged runs whose bundle is missing from the archive.
    let present: BTreeSet<&String> = verified_bundles.iter().map(|(v, _)| &v.name).collect();
    for (name, entry) in &logged {
        if present.contains(name)
            || result
                .failed
                .iter()
                .any(|(origin, _)| origin.contains(name.as_str()))
        {
            continue;
        }
        rows.push(ClaimRow {
            contract: entry.run.contract.clone(),
            commit: entry
                .run
                .commit
                .as_deref()
                .map_or("unknown".to_owned(), short),
            started: entry.run.started.clone(),
            bundle: short(name),
            bundle_full: name.clone(),
            status: format!(
                "MISSING: the run log names this {} run's bundle, the archive lacks it",
                verdict_word(entry.run.verdict)
            ),
            verified: false,
            claim: verdict_word(entry.run.verdict).to_owned(),
            runs: "—".to_owned(),
            speedups: BTreeMap::new(),
            baselines: BTreeMap::new(),
            reproduced: 0,
            disagreed: 0,
            in_run_log: true,
        });
    }
    rows.sort_by(|left, right| {
        (&left.contract, &left.started, &left.bundle_full).cmp(&(
            &right.contract,
            &right.started,
            &right.bundle_full,
        ))
    });
    let mut by_contract: BTreeMap<String, Vec<ClaimRow>> = BTreeMap::new();
    for row in rows {
        by_contract
            .entry(untrusted(&row.contract).into_owned())
            .or_default()
            .push(row);
    }
    for (contract, rows) in by_contract {
        let speedup_ids: Vec<String> = rows
            .iter()
            .flat_map(|row| row.speedups.keys().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let chart = chart(&contract, &speedup_ids, &rows);
        let has_baselines = rows.iter().any(|row| !row.baselines.is_empty());
        result.sections.push(ContractSection {
            contract,
            speedup_ids,
            rows,
            chart,
            has_baselines,
        });
    }
    result
}

fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "passed",
        _ => "failed",
    }
}

/// The subject an attestation names (unverified; the judge checks it).
fn subject_of(bytes: &[u8]) -> String {
    let Ok(envelope) = crate::bundle::provenance::parse_envelope(bytes) else {
        return String::new();
    };
    let Ok(body) = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        &envelope.payload,
    ) else {
        return String::new();
    };
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|value| {
            value["subject"][0]["digest"]["sha256"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// An SVG line chart: one line per speedup over the rows (x = row order),
/// failed or unverified rows as red crosses on the axis.
fn chart(contract: &str, speedup_ids: &[String], rows: &[ClaimRow]) -> String {
    let (width, height, left, bottom, top) = (780.0_f64, 300.0_f64, 80.0, 60.0, 30.0);
    let plot_w = width - left - 170.0;
    let plot_h = height - top - bottom;
    let max = rows
        .iter()
        .flat_map(|row| row.speedups.values().flatten().copied())
        .fold(1.0_f64, f64::max)
        .ceil();
    let count = rows.len().max(1);
    let x = |index: usize| {
        if count == 1 {
            left + plot_w / 2.0
        } else {
            left + plot_w * index as f64 / (count - 1) as f64
        }
    };
    let y = |value: f64| top + plot_h - plot_h * value / max;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11"><title>{} speedups (or medians) over time</title>"#,
        html_escape(contract)
    );
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#333"/><line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#333"/>"##,
        top + plot_h,
        left + plot_w,
        top + plot_h,
        top + plot_h
    );
    for tick in 0..=4 {
        let value = max * f64::from(tick) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{left}" y1="{0}" x2="{1}" y2="{0}" stroke="#eee"/><text x="{2}" y="{3}" text-anchor="end">{4:.2}</text>"##,
            y(value),
            left + plot_w,
            left - 4.0,
            y(value) + 4.0,
            value
        );
    }
    for (index, row) in rows.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<text x="{0}" y="{1}" text-anchor="end" transform="rotate(-40 {0} {1})">{2}</text>"#,
            x(index),
            top + plot_h + 14.0,
            html_escape(&row.commit)
        );
        if !row.verified || row.claim == "failed" {
            let (cx, cy) = (x(index), top + plot_h);
            let _ = write!(
                svg,
                r##"<path d="M{} {} l8 8 M{} {} l-8 8" stroke="#c00" stroke-width="2"/>"##,
                cx - 4.0,
                cy - 4.0,
                cx + 4.0,
                cy - 4.0
            );
        }
    }
    for (series, id) in speedup_ids.iter().enumerate() {
        let color = COLORS[series % COLORS.len()];
        let points: Vec<(f64, f64)> = rows
            .iter()
            .enumerate()
            .filter_map(|(index, row)| Some((x(index), y((*row.speedups.get(id)?)?))))
            .collect();
        let path: Vec<String> = points
            .iter()
            .map(|(px, py)| format!("{px:.1},{py:.1}"))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for (px, py) in &points {
            let _ = write!(
                svg,
                r#"<circle cx="{px:.1}" cy="{py:.1}" r="3.5" fill="{color}"/>"#
            );
        }
        let legend_y = top + 14.0 * series as f64;
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            left + plot_w + 12.0,
            legend_y,
            left + plot_w + 26.0,
            legend_y + 9.0,
            html_escape(id)
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" fill="#c00">✕ failed run</text></svg>"##,
        left + plot_w + 12.0,
        top + 14.0 * speedup_ids.len() as f64 + 9.0
    );
    svg
}

/// Text from bundles, logs and attestations for the HTML index: the
/// report's escaping (markup, quotes, controls and bidi shown visibly).
fn html_escape(text: &str) -> String {
    crate::proof::report::escape::html_text(text)
}

/// Text from bundles, logs and attestations for the Markdown index: the
/// report's escaping (inline markup, pipes, line breaks, controls and bidi).
fn md_cell(text: &str) -> String {
    crate::proof::report::escape::markdown_text(text)
}

/// A whole code span for the Markdown index (delimiters included).
fn md_code(text: &str) -> String {
    crate::proof::report::escape::markdown_code(text)
}

fn figure(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), crate::proof::stats::format_figure)
}

/// The index as Markdown.
#[must_use]
pub fn render_markdown(audit: &ArchiveAudit) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Evidence archive audit: {}\n",
        md_cell(&audit.origin)
    );
    let _ = writeln!(out, "{}\n", md_cell(&summary_line(audit)));
    for section in &audit.sections {
        let _ = writeln!(out, "## {}\n", md_cell(&section.contract));
        let _ = writeln!(
            out,
            "![speedups (medians when the contract has no speedups) over time]({}.svg)\n",
            file_stem(&section.contract)
        );
        let mut header = "| Started | Commit | Bundle | Status | Claim | Runs |".to_owned();
        let mut rule = "|---|---|---|---|---|---|".to_owned();
        for id in &section.speedup_ids {
            let _ = write!(header, " {} |", md_cell(id));
            rule.push_str("---|");
            if section.has_baselines {
                header.push_str(" baselines |");
                rule.push_str("---|");
            }
        }
        header.push_str(" Reproductions | In run log |");
        rule.push_str("---|---|");
        let _ = writeln!(out, "{header}\n{rule}");
        for row in &section.rows {
            let mut line = format!(
                "| {} | {} | {} | {} | {} | {} |",
                md_cell(&row.started),
                md_code(&row.commit),
                md_code(&row.bundle),
                md_cell(&row.status),
                row.claim,
                row.runs
            );
            for id in &section.speedup_ids {
                let _ = write!(
                    line,
                    " {} |",
                    figure(row.speedups.get(id).copied().flatten())
                );
                if section.has_baselines {
                    let _ = write!(
                        line,
                        " {} |",
                        md_cell(row.baselines.get(id).map_or("—", String::as_str))
                    );
                }
            }
            let _ = write!(
                line,
                " {} | {} |",
                reproductions_text(row),
                if row.in_run_log { "yes" } else { "**no**" }
            );
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
    }
    problems_markdown(audit, &mut out);
    out
}

fn reproductions_text(row: &ClaimRow) -> String {
    match (row.reproduced, row.disagreed) {
        (0, 0) => "never reproduced".to_owned(),
        (agree, 0) => format!("{agree} agree"),
        (agree, disagree) => format!("{agree} agree, {disagree} disagree"),
    }
}

fn problems_markdown(audit: &ArchiveAudit, out: &mut String) {
    if !audit.failed.is_empty() {
        let _ = writeln!(out, "## Bundles that failed verification\n");
        for (origin, error) in &audit.failed {
            let _ = writeln!(out, "- {}: {}", md_code(origin), md_cell(error));
        }
        out.push('\n');
    }
    if !audit.unlogged.is_empty() {
        let _ = writeln!(out, "## Bundles no run log mentions\n");
        for name in &audit.unlogged {
            let _ = writeln!(out, "- `{name}`");
        }
        out.push('\n');
    }
    if !audit.bad_logs.is_empty() || !audit.attestations_refused.is_empty() {
        let _ = writeln!(out, "## Refused run logs and attestations\n");
        for (origin, error) in audit.bad_logs.iter().chain(&audit.attestations_refused) {
            let _ = writeln!(out, "- {}: {}", md_code(origin), md_cell(error));
        }
        out.push('\n');
    }
}

/// One line: what was verified.
#[must_use]
pub fn summary_line(audit: &ArchiveAudit) -> String {
    format!(
        "{} bundles verified, {} failed verification; {} run logs verified ({} entries), {} refused; {} bundles no run log mentions; attestations: {} counted, {} refused{}",
        audit.verified,
        audit.failed.len(),
        audit.logs.len(),
        audit.logs.iter().map(|(_, entries)| entries).sum::<usize>(),
        audit.bad_logs.len(),
        audit.unlogged.len(),
        audit.attestations_counted,
        audit.attestations_refused.len(),
        if audit.attestations_unjudged > 0 {
            format!(", {} not judged (no --policy)", audit.attestations_unjudged)
        } else {
            String::new()
        }
    )
}

/// A file stem for a contract's chart.
#[must_use]
pub fn file_stem(contract: &str) -> String {
    contract
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The index as HTML, charts inlined.
#[must_use]
pub fn render_html(audit: &ArchiveAudit) -> String {
    let e = html_escape;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Evidence archive audit</title><style>body{{font-family:system-ui,sans-serif;max-width:80rem;margin:2rem auto;padding:0 1rem;color:#222}}table{{border-collapse:collapse;margin:1rem 0}}th,td{{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}}th{{background:#f3f3f3}}td.n{{text-align:right;font-variant-numeric:tabular-nums}}tr.bad td{{background:#ffe3e3}}.publishable{{color:#11561f;font-weight:bold}}.failed{{color:#8a1010;font-weight:bold}}.diagnostic{{color:#6b4f00}}</style></head><body>\n<h1>Evidence archive audit</h1>\n<p><code>{}</code></p>\n<p>{}</p>\n",
        e(&audit.origin),
        e(&summary_line(audit))
    );
    for section in &audit.sections {
        let _ = write!(out, "<h2>{}</h2>\n<figure>{}</figure>\n<table><tr><th>Started</th><th>Commit</th><th>Bundle</th><th>Status</th><th>Claim</th><th>Runs</th>", e(&section.contract), section.chart);
        for id in &section.speedup_ids {
            let _ = write!(out, "<th>{}</th>", e(id));
            if section.has_baselines {
                out.push_str("<th>baselines</th>");
            }
        }
        out.push_str("<th>Reproductions</th><th>In run log</th></tr>\n");
        for row in &section.rows {
            let bad = !row.verified || row.claim == "failed";
            let _ = write!(
                out,
                "<tr{}><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td class=\"{}\">{}</td><td class=\"n\">{}</td>",
                if bad { " class=\"bad\"" } else { "" },
                e(&row.started),
                e(&row.commit),
                e(&row.bundle),
                e(&row.status),
                e(&row.claim),
                e(&row.claim),
                e(&row.runs)
            );
            for id in &section.speedup_ids {
                let _ = write!(
                    out,
                    "<td class=\"n\">{}</td>",
                    figure(row.speedups.get(id).copied().flatten())
                );
                if section.has_baselines {
                    let _ = write!(
                        out,
                        "<td>{}</td>",
                        e(row.baselines.get(id).map_or("—", String::as_str))
                    );
                }
            }
            let _ = writeln!(
                out,
                "<td>{}</td><td>{}</td></tr>",
                e(&reproductions_text(row)),
                if row.in_run_log {
                    "yes"
                } else {
                    "<strong>no</strong>"
                }
            );
        }
        out.push_str("</table>\n");
    }
    let mut problems = String::new();
    problems_markdown(audit, &mut problems);
    if !problems.is_empty() {
        out.push_str("<h2>Problems</h2>\n<ul>\n");
        for line in problems.lines().filter(|line| line.starts_with("- ")) {
            let _ = writeln!(out, "<li>{}</li>", e(line.trim_start_matches("- ")));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</body></html>\n");
    out
}

/// Gather a store directory: its bundles (64-hex directories), its run log,
/// and the attestations under `attestations/`.
pub fn gather_store(store: &Path) -> anyhow::Result<Gathered> {
    use anyhow::Context as _;
    let mut gathered = Gathered::default();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(store).with_context(|| format!("reading {}", store.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_name = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if is_name && entry.file_type()?.is_dir() {
            names.push(name);
        }
    }
    names.sort();
    for name in names {
        gathered.bundles.push(BundleInput {
            path: store.join(&name),
            origin: format!("{}/{name}", store.display()),
        });
    }
    // Bounded reads of regular files only; the signature is checked when
    // the audit verifies the gathered log against its key.
    /// A store's log lines and head, read but not yet verified.
    type UnverifiedLog = (Vec<u8>, Vec<u8>);
    let read = || -> Result<Option<UnverifiedLog>, runlog::LogError> {
        if !runlog::present(store) {
            return Ok(None);
        }
        let head = runlog::read_bounded(
            &store.join(runlog::HEAD_FILE),
            runlog::MAX_HEAD_BYTES,
            "a run-log head is small",
        )?
        .unwrap_or_default();
        let lines = runlog::read_bounded(
            &store.join(runlog::LOG_FILE),
            runlog::MAX_UNVERIFIED_LOG_BYTES,
            "no key is at hand yet to check the head's entry count",
        )?
        .unwrap_or_default();
        Ok(Some((lines, head)))
    };
    match read() {
        Ok(Some((lines, head))) => gathered.logs.push((
            format!("{}/{}", store.display(), runlog::LOG_FILE),
            lines,
            head,
        )),
        Ok(None) => {}
        Err(error) => gathered.logs.push((
            format!("{}/{}: {error}", store.display(), runlog::LOG_FILE),
            Vec::new(),
            Vec::new(),
        )),
    }
    let attestations = store.join(attestation::STORE_DIR);
    if attestations.is_dir() {
        gathered.attestations = attestation::collect_local(&attestations)?;
    }
    Ok(gathered)
}
