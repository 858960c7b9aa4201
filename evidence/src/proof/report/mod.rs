//! `capos report`: the proof-contract report (Markdown and HTML) of a verified bundle.
//!
//! The bundle is verified first (digests, signature, recomputed figures);
//! unverified evidence is never rendered. The templates (`templates/report.md.j2`,
//! `templates/report.html.j2`) are built into the binary, so a report needs no
//! checkout (`--templates <dir>` renders with others), and they
//! receive preformatted figures, so the same bundle always renders to the
//! same bytes: nothing depends on the time of rendering or on float
//! formatting inside the template engine. Charts are SVG generated here.
//! Every value a template prints is escaped for Markdown or HTML by the
//! report's formatter ([`escape`]): a validly signed bundle may still carry
//! hostile strings. Table figures are made readable ([`crate::proof::numbers`]); the
//! bundle's CSV and JSON keep every digit.

mod charts;
pub(crate) mod escape;
mod host;
mod measure;

use crate::bundle::files::BundleFiles;
use crate::proof::baseline::view as baseline_view;
use crate::proof::contract::ContractSpec;
use crate::proof::inputs::Inputs;
use crate::proof::summary::{self, GateVerdict, SummaryDocument};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Component, Path};

/// Markdown report template.
pub const MARKDOWN_TEMPLATE: &str = "report.md.j2";
/// HTML report template.
pub const HTML_TEMPLATE: &str = "report.html.j2";
/// Files of one run's log directory, in the order the report lists them.
const RUN_FILES: [&str; 5] = [
    crate::guest::qemu::SERIAL_LOG,
    crate::guest::qemu::TIMED_LOG,
    crate::guest::qemu::STDERR_LOG,
    crate::guest::qemu::COMMAND_FILE,
    summary::EXIT_FILE,
];

/// The two report templates' sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    /// Where they came from, for messages (`built-in` or a directory).
    pub origin: String,
    /// `report.md.j2`.
    pub markdown: String,
    /// `report.html.j2`.
    pub html: String,
}

impl Templates {
    /// The templates of the checkout this binary was built from.
    #[must_use]
    pub fn builtin() -> Self {
        Self {
            origin: "built-in templates".to_owned(),
            markdown: include_str!("../../../../templates/report.md.j2").to_owned(),
            html: include_str!("../../../../templates/report.html.j2").to_owned(),
        }
    }

    /// `report.md.j2` and `report.html.j2` from `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path)
                .with_context(|| format!("reading template {}", path.display()))
        };
        Ok(Self {
            origin: dir.display().to_string(),
            markdown: read(MARKDOWN_TEMPLATE)?,
            html: read(HTML_TEMPLATE)?,
        })
    }
}

/// What the report says about the bundle itself.
#[derive(Debug, Clone, Serialize)]
pub struct BundleFacts {
    /// Bundle name (sha256 of its manifest).
    pub name: String,
    /// Id of the key that signed it.
    pub key_id: String,
    /// Files the manifest lists.
    pub files: usize,
    /// Path prefix from the report to the bundle's files, when they can be linked.
    pub link_prefix: Option<String>,
    /// The `capos` that made the bundle (SLSA `builder.version`: `capos`,
    /// `capos-commit`), empty for bundles that predate it.
    pub tool: BTreeMap<String, String>,
    /// What the store's run log says about this run and its siblings, when
    /// the log is at hand.
    pub history: String,
    /// Reproduction attestations judged against a trust policy, when asked for.
    pub reproductions: Option<crate::proof::attestation::ReproductionsView>,
}

/// A rendered report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// report.md
    pub markdown: String,
    /// report.html
    pub html: String,
    /// SVG charts `(file name, contents)`, also inlined in the HTML.
    pub charts: Vec<(String, String)>,
}

/// Write a rendered report into `out`.
pub fn write(out: &Path, rendered: &Rendered) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let files = [
        ("report.md", &rendered.markdown),
        ("report.html", &rendered.html),
    ];
    for (name, contents) in files.into_iter().chain(
        rendered
            .charts
            .iter()
            .map(|(name, svg)| (name.as_str(), svg)),
    ) {
        let path = out.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `target` relative to `from` as a `/`-separated prefix ending in `/`, when both resolve.
#[must_use]
pub fn relative_link(from: &Path, target: &Path) -> Option<String> {
    let from = from.canonicalize().ok()?;
    let target = target.canonicalize().ok()?;
    let from_parts: Vec<Component> = from.components().collect();
    let target_parts: Vec<Component> = target.components().collect();
    let common = from_parts
        .iter()
        .zip(&target_parts)
        .take_while(|(left, right)| left == right)
        .count();
    let mut parts: Vec<String> = vec!["..".to_string(); from_parts.len() - common];
    for part in &target_parts[common..] {
        parts.push(part.as_os_str().to_str()?.to_string());
    }
    let mut prefix = parts.join("/");
    if !prefix.is_empty() {
        prefix.push('/');
    }
    Some(prefix)
}

/// One row of the per-case, per-metric table; figures preformatted.
#[derive(Debug, Serialize)]
struct MetricRow {
    case: String,
    cpus: u32,
    workers: Option<u32>,
    passed: usize,
    runs: usize,
    metric: String,
    unit: String,
    median: String,
    min: String,
    max: String,
    mean: String,
    stddev: String,
    n: usize,
    /// Bootstrap interval of the median (`[lower, upper]`), `—` without one.
    interval: String,
}

/// One row of the speedup table.
#[derive(Debug, Serialize)]
struct SpeedupRow {
    id: String,
    metric: String,
    baseline_case: String,
    case: String,
    baseline_cpus: u32,
    case_cpus: u32,
    value: String,
    ideal: String,
    efficiency: String,
    gates: Vec<SpeedupGate>,
    /// Bootstrap interval (`[lower, upper]`), `—` without one.
    interval: String,
}

/// A gate applied to a speedup.
#[derive(Debug, Serialize)]
struct SpeedupGate {
    id: String,
    threshold: String,
    verdict: GateVerdict,
}

/// One row of the gate table.
#[derive(Debug, Serialize)]
struct GateRow {
    id: String,
    kind: String,
    description: String,
    threshold: String,
    value: String,
    verdict: GateVerdict,
    detail: String,
    /// Bootstrap interval the verdict was judged on, `—` without one.
    interval: String,
    /// Why it is inconclusive (`host_limited`, ...), empty otherwise.
    reason: String,
    /// What the host delivered to the native run, empty without a native figure.
    host: String,
    /// Whether it decides the claim (opt-in gates may not).
    required: bool,
}

/// The figures behind the claim's confidence: method, seed and adaptive rounds.
#[derive(Debug, Serialize)]
struct StatisticsView {
    method: String,
    confidence: String,
    resamples: u32,
    seed: String,
    /// `fixed: 5 (env CAPOS_SMP_SCALE_RUNS)` or the adaptive rule and outcome.
    repetitions: String,
    /// Per gated figure after the last adaptive round.
    widths: Vec<String>,
}

/// One run's logs.
#[derive(Debug, Serialize)]
struct LogRow {
    case: String,
    repetition: u32,
    verdict: &'static str,
    directory: String,
    files: Vec<LogFile>,
}

/// One log file, with its path inside the bundle.
#[derive(Debug, Serialize)]
struct LogFile {
    name: &'static str,
    path: String,
}

/// The measurement files a run of a measuring kernel may hold.
const MEASURE_FILES: [&str; 2] = [
    crate::proof::measure::MEASURE_FILE,
    crate::proof::measure::SYMBOLS_FILE,
];

/// A chart for the templates.
#[derive(Debug, Serialize)]
struct ChartView {
    title: String,
    file: String,
    svg: minijinja::Value,
}

/// Everything the templates see.
#[derive(Debug, Serialize)]
struct ReportContext<'a> {
    bundle: &'a BundleFacts,
    contract: &'a ContractSpec,
    inputs: &'a Inputs,
    summary: &'a SummaryDocument,
    metric_rows: Vec<MetricRow>,
    speedup_rows: Vec<SpeedupRow>,
    gate_rows: Vec<GateRow>,
    logs: Vec<LogRow>,
    charts: Vec<ChartView>,
    /// capOS beside its baselines (empty without baseline cases).
    comparison_rows: Vec<baseline_view::ComparisonView>,
    /// Ratios of speedups, figures preformatted.
    ratio_rows: Vec<RatioRow>,
    /// Guest measurement per case (empty unless the kernel had `measure`).
    measure_cases: Vec<measure::MeasureCaseView>,
    /// Topology, pinning and noise (None for bundles made before they were recorded).
    host: Option<host::HostView>,
    /// How the intervals were computed (None for format v1 bundles).
    statistics: Option<StatisticsView>,
}

/// One ratio of two speedups.
#[derive(Debug, Serialize)]
struct RatioRow {
    id: String,
    speedup: String,
    reference: String,
    value: String,
    diagnostic: bool,
    /// Bootstrap interval (`[lower, upper]`), `—` without one.
    interval: String,
}

/// Render the report of the bundle whose `files` the caller verified.
pub fn render(
    templates: &Templates,
    files: &BundleFiles,
    bundle: &BundleFacts,
) -> Result<Rendered> {
    let (contract, inputs, summary) = summary::read_bundle(files)?;

    let mut charts = charts::charts(&summary);
    charts.extend(charts::phase_charts(&summary, &contract.spec.phases));
    let measure_cases = if inputs.guest_measure() {
        measure::views(files, &summary)?
    } else {
        Vec::new()
    };
    let host = crate::proof::host::check_bundle(files, &contract, &inputs)?
        .as_ref()
        .map(host::view);
    let context = ReportContext {
        host,
        bundle,
        contract: &contract.spec,
        inputs: &inputs,
        summary: &summary,
        metric_rows: metric_rows(&summary),
        speedup_rows: speedup_rows(&summary),
        gate_rows: gate_rows(&summary),
        logs: log_rows(&summary, files),
        measure_cases,
        comparison_rows: summary
            .comparison
            .as_ref()
            .map(baseline_view::rows)
            .unwrap_or_default(),
        ratio_rows: summary
            .ratios
            .iter()
            .map(|ratio| RatioRow {
                id: ratio.id.clone(),
                speedup: ratio.speedup.clone(),
                reference: ratio.reference.clone(),
                value: figure(ratio.value),
                diagnostic: ratio.diagnostic,
                interval: interval_text(ratio.interval),
            })
            .collect(),
        statistics: statistics_view(&inputs, &summary),
        charts: charts
            .iter()
            .map(|chart| ChartView {
                title: chart.title.clone(),
                file: chart.file.clone(),
                svg: minijinja::Value::from_safe_string(chart.svg.clone()),
            })
            .collect(),
    };

    let mut environment = minijinja::Environment::new();
    environment.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    environment.set_trim_blocks(true);
    environment.set_lstrip_blocks(true);
    environment.set_keep_trailing_newline(true);
    environment.set_auto_escape_callback(escape::auto_escape_for);
    environment.set_formatter(escape::formatter);
    environment.add_filter("md_cell", markdown_cell);
    environment.add_filter("md_code", |value: String| {
        minijinja::Value::from_safe_string(escape::markdown_code(&value))
    });
    environment.add_filter("md_paragraph", |value: String| {
        minijinja::Value::from_safe_string(escape::markdown_paragraph(&value))
    });
    environment.add_filter("href", href);
    for (name, source) in [
        (MARKDOWN_TEMPLATE, &templates.markdown),
        (HTML_TEMPLATE, &templates.html),
    ] {
        environment
            .add_template_owned(name.to_string(), source.clone())
            .with_context(|| format!("template {name} ({})", templates.origin))?;
    }
    let render = |name: &str| -> Result<String> {
        environment
            .get_template(name)?
            .render(&context)
            .map_err(|error| anyhow::anyhow!("rendering {name} ({}): {error:#}", templates.origin))
    };
    Ok(Rendered {
        markdown: render(MARKDOWN_TEMPLATE)?,
        html: render(HTML_TEMPLATE)?,
        charts: charts
            .into_iter()
            .map(|chart| (chart.file, chart.svg))
            .collect(),
    })
}

/// Kept for custom templates: every printed value is escaped by the
/// formatter ([`escape::formatter`]), table cells included.
fn markdown_cell(value: String) -> String {
    value
}

/// A relative link target, percent-encoded ([`escape::url_path`]); safe in
/// Markdown link destinations and HTML attributes alike.
fn href(value: String) -> minijinja::Value {
    minijinja::Value::from_safe_string(escape::url_path(&value))
}

/// `[lower, upper]`, or `—` without an interval.
fn interval_text(interval: Option<crate::proof::bootstrap::Interval>) -> String {
    interval
        .map(|interval| {
            format!(
                "[{}, {}]",
                crate::proof::numbers::readable(interval.lower),
                crate::proof::numbers::readable(interval.upper)
            )
        })
        .unwrap_or_else(|| "—".into())
}

fn statistics_view(inputs: &Inputs, summary: &SummaryDocument) -> Option<StatisticsView> {
    let plan = summary.statistics.as_ref()?;
    let percent = format!("{:.3}", plan.confidence * 100.0);
    let repetitions = match &summary.adaptive {
        Some(adaptive) => format!(
            "adaptive ({}): {} to {} rounds until every gated interval spans at most {} of its figure; ran {} rounds, stopped: {}",
            inputs.repetitions.source,
            adaptive.rule.min_rounds,
            adaptive.rule.max_rounds,
            crate::proof::stats::format_figure(adaptive.rule.target_relative_width),
            adaptive.rounds,
            match adaptive.stopped {
                crate::proof::adaptive::Decision::TargetReached => "every gated interval narrow enough",
                crate::proof::adaptive::Decision::CapReached => "cap reached",
                crate::proof::adaptive::Decision::Continue => "still open",
            }
        ),
        None => format!(
            "fixed: {} ({})",
            inputs.repetitions.count, inputs.repetitions.source
        ),
    };
    let widths = summary
        .adaptive
        .iter()
        .flat_map(|adaptive| &adaptive.widths)
        .map(|width| {
            format!(
                "{}: {} {} (relative width {})",
                width.gate,
                figure(width.value),
                interval_text(width.interval),
                figure(width.relative_width)
            )
        })
        .collect();
    Some(StatisticsView {
        method: plan.method.clone(),
        confidence: format!("{}%", percent.trim_end_matches('0').trim_end_matches('.')),
        resamples: plan.resamples,
        seed: format!("{:#018x}", plan.seed),
        repetitions,
        widths,
    })
}

/// A figure for a report table ([`crate::proof::numbers::readable`]), `—` when absent.
fn figure(value: Option<f64>) -> String {
    value
        .map(crate::proof::numbers::readable)
        .unwrap_or_else(|| "—".into())
}

fn metric_rows(summary: &SummaryDocument) -> Vec<MetricRow> {
    let mut rows = Vec::new();
    for case in &summary.cases {
        for metric in &case.metrics {
            let statistics = metric.statistics.as_ref();
            rows.push(MetricRow {
                case: case.id.clone(),
                cpus: case.cpus,
                workers: case.workers,
                passed: case.passed,
                runs: case.runs,
                metric: metric.name.clone(),
                unit: metric.unit.clone(),
                median: figure(statistics.map(|s| s.median)),
                min: figure(statistics.map(|s| s.min)),
                max: figure(statistics.map(|s| s.max)),
                mean: figure(statistics.map(|s| s.mean)),
                stddev: figure(statistics.and_then(|s| s.stddev)),
                n: statistics.map(|s| s.n).unwrap_or(0),
                interval: interval_text(metric.interval),
            });
        }
    }
    rows
}

fn speedup_rows(summary: &SummaryDocument) -> Vec<SpeedupRow> {
    summary
        .speedups
        .iter()
        .map(|speedup| {
            let gates = summary
                .gates
                .iter()
                .filter(|gate| gate.speedup.as_deref() == Some(speedup.id.as_str()))
                .map(|gate| SpeedupGate {
                    id: gate.id.clone(),
                    threshold: figure(gate.threshold),
                    verdict: gate.verdict,
                })
                .collect();
            SpeedupRow {
                id: speedup.id.clone(),
                metric: speedup.metric.clone(),
                baseline_case: speedup.baseline_case.clone(),
                case: speedup.case.clone(),
                baseline_cpus: speedup.baseline_cpus,
                case_cpus: speedup.case_cpus,
                value: figure(speedup.value),
                ideal: figure(Some(speedup.ideal)),
                efficiency: speedup
                    .value
                    .map(|value| format!("{:.1}%", 100.0 * value / speedup.ideal))
                    .unwrap_or_else(|| "—".into()),
                gates,
                interval: interval_text(speedup.interval),
            }
        })
        .collect()
}

fn gate_rows(summary: &SummaryDocument) -> Vec<GateRow> {
    summary
        .gates
        .iter()
        .map(|gate| GateRow {
            id: gate.id.clone(),
            kind: gate.kind.to_string(),
            description: gate.description.trim().to_string(),
            threshold: gate
                .threshold
                .map(crate::proof::numbers::readable)
                .unwrap_or_default(),
            value: gate
                .value
                .map(crate::proof::numbers::readable)
                .unwrap_or_default(),
            verdict: gate.verdict,
            detail: gate.detail.clone(),
            interval: interval_text(gate.interval),
            reason: gate
                .reason
                .map(|reason| match reason {
                    summary::InconclusiveReason::IntervalContainsThreshold => {
                        "interval contains the threshold"
                    }
                    summary::InconclusiveReason::NoInterval => "no interval",
                    summary::InconclusiveReason::HostLimited => "host-limited",
                    summary::InconclusiveReason::Oversubscribed => "oversubscribed",
                })
                .unwrap_or_default()
                .to_string(),
            host: gate
                .host_capacity
                .as_ref()
                .map(|host| {
                    format!(
                        "{} {}x {} (needs {}x)",
                        host.speedup,
                        figure(host.value),
                        interval_text(host.interval),
                        crate::proof::stats::format_figure(host.needed)
                    )
                })
                .unwrap_or_default(),
            required: gate.required,
        })
        .collect()
}

fn log_rows(summary: &SummaryDocument, files: &BundleFiles) -> Vec<LogRow> {
    let mut rows = Vec::new();
    for case in summary.cases.iter().filter(|case| case.skipped.is_none()) {
        for repetition in 1..=summary.repetitions {
            let failed = summary
                .failures
                .iter()
                .any(|failure| failure.case == case.id && failure.repetition == repetition);
            let directory = summary::run_log_path(&case.id, repetition);
            rows.push(LogRow {
                case: case.id.clone(),
                repetition,
                verdict: if failed { "fail" } else { "pass" },
                files: RUN_FILES
                    .iter()
                    .chain(
                        MEASURE_FILES
                            .iter()
                            .chain([&crate::proof::host::HOST_FILE])
                            .filter(|name| files.read(&format!("{directory}/{name}")).is_ok()),
                    )
                    .map(|name| LogFile {
                        name,
                        path: format!("{directory}/{name}"),
                    })
                    .collect(),
                directory,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_links_walk_up_and_down() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("store/abc");
        let out = dir.path().join("store/reports/abc");
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        assert_eq!(relative_link(&out, &bundle).as_deref(), Some("../../abc/"));
    }
}
