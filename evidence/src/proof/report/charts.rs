//! SVG charts for the report: speedup (or median) against CPU count, one
//! curve per system when the contract has baselines, drawn
//! here rather than in the templates so the bytes never depend on the
//! template engine's float formatting.

use crate::proof::baseline::view as baseline_view;
use crate::proof::stats;
use crate::proof::summary::SummaryDocument;

/// A chart before it is handed to the templates.
pub(super) struct Chart {
    pub(super) title: String,
    pub(super) file: String,
    pub(super) svg: String,
}

/// Speedup vs CPUs per speedup metric; without speedups, median of each
/// metric vs CPUs. With baselines, one curve per system.
pub(super) fn charts(summary: &SummaryDocument) -> Vec<Chart> {
    let mut charts = Vec::new();
    let mut metrics: Vec<&str> = Vec::new();
    for speedup in &summary.speedups {
        if !metrics.contains(&speedup.metric.as_str()) {
            metrics.push(speedup.metric.as_str());
        }
    }
    if let Some(comparison) = &summary.comparison {
        charts.extend(combined_speedup_chart(summary, comparison));
        for curves in baseline_view::curves(comparison) {
            let title = if curves.speedups {
                format!(
                    "Median {} speedup vs CPUs{}",
                    curves.metric,
                    interval_note(summary)
                )
            } else {
                format!("Median {} vs CPUs{}", curves.metric, interval_note(summary))
            };
            let series: Vec<Series> = curves
                .systems
                .iter()
                .zip(SERIES_COLORS)
                .map(|(curve, color)| Series {
                    label: curve.os.title().to_string(),
                    color,
                    dash: "",
                    points: curve_points(summary, &curves, curve),
                })
                .collect();
            let thresholds = if curves.speedups {
                speedup_thresholds(summary, &curves.metric)
            } else {
                Vec::new()
            };
            let y_label = if curves.speedups {
                "speedup (x)".to_string()
            } else {
                format!("{} ({})", curves.metric, curves.unit)
            };
            charts.push(Chart {
                svg: line_chart(&ChartSpec {
                    title: &title,
                    y_label: &y_label,
                    series: &series,
                    ideal: &curves.ideal,
                    thresholds: &thresholds,
                }),
                file: format!(
                    "chart-{}{}-by-system.svg",
                    if curves.speedups { "speedup-" } else { "" },
                    curves.metric
                ),
                title,
            });
        }
    } else if !metrics.is_empty() {
        for metric in metrics {
            let speedups: Vec<_> = summary
                .speedups
                .iter()
                .filter(|s| s.metric == metric)
                .collect();
            let mut points = Vec::new();
            let mut ideal = Vec::new();
            if let Some(first) = speedups.first() {
                let baseline = f64::from(first.baseline_cpus);
                points.push(Point {
                    x: baseline,
                    y: 1.0,
                    low: None,
                    high: None,
                    label: first.baseline_case.clone(),
                });
                ideal.push((baseline, 1.0));
            }
            for speedup in &speedups {
                if let Some(value) = speedup.value {
                    points.push(Point {
                        x: f64::from(speedup.case_cpus),
                        y: value,
                        low: speedup.interval.map(|interval| interval.lower),
                        high: speedup.interval.map(|interval| interval.upper),
                        label: speedup.case.clone(),
                    });
                }
                ideal.push((f64::from(speedup.case_cpus), speedup.ideal));
            }
            let thresholds = speedup_thresholds(summary, metric);
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            ideal.sort_by(|a, b| a.0.total_cmp(&b.0));
            ideal.dedup();
            let title = format!("Median {metric} speedup vs CPUs{}", interval_note(summary));
            charts.push(Chart {
                svg: line_chart(&ChartSpec {
                    title: &title,
                    y_label: "speedup (x)",
                    series: &[Series::single(points)],
                    ideal: &ideal,
                    thresholds: &thresholds,
                }),
                file: format!("chart-speedup-{metric}.svg"),
                title,
            });
        }
    } else if let Some(first_case) = summary.cases.first() {
        for (index, metric) in first_case.metrics.iter().enumerate() {
            let mut points: Vec<Point> = summary
                .cases
                .iter()
                .filter_map(|case| {
                    let statistics = case.metrics.get(index)?.statistics.as_ref()?;
                    Some(Point {
                        x: f64::from(case.cpus),
                        y: statistics.median,
                        low: Some(statistics.min),
                        high: Some(statistics.max),
                        label: case.id.clone(),
                    })
                })
                .collect();
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            let title = format!("Median {} vs CPUs (bars: min to max)", metric.name);
            let y_label = format!("{} ({})", metric.name, metric.unit);
            charts.push(Chart {
                svg: line_chart(&ChartSpec {
                    title: &title,
                    y_label: &y_label,
                    series: &[Series::single(points)],
                    ideal: &[],
                    thresholds: &[],
                }),
                file: format!("chart-{}.svg", metric.name),
                title,
            });
        }
    }
    charts
}

/// Dash patterns of the metrics on a combined chart, in metric order.
const METRIC_DASHES: [&str; 4] = ["", "7 4", "2 3", "10 3 2 3"];

/// Every speedup metric's curves on one chart when there are several: one
/// colour per system, one dash pattern per metric.
fn combined_speedup_chart(
    summary: &SummaryDocument,
    comparison: &crate::proof::summary::ComparisonSummary,
) -> Option<Chart> {
    let curves: Vec<_> = baseline_view::curves(comparison)
        .into_iter()
        .filter(|curves| curves.speedups)
        .collect();
    if curves.len() < 2 || curves.len() > METRIC_DASHES.len() {
        return None;
    }
    let mut series = Vec::new();
    let mut thresholds = Vec::new();
    for (metric, dash) in curves.iter().zip(METRIC_DASHES) {
        thresholds.extend(speedup_thresholds(summary, &metric.metric));
        for curve in &metric.systems {
            let color = match curve.os {
                crate::proof::baseline::Os::Capos => SERIES_COLORS[0],
                crate::proof::baseline::Os::Linux => SERIES_COLORS[1],
                crate::proof::baseline::Os::Native => SERIES_COLORS[2],
            };
            series.push(Series {
                label: format!("{} {}", curve.os.title(), metric.metric),
                color,
                dash,
                points: curve_points(summary, metric, curve),
            });
        }
    }
    let names: Vec<&str> = curves.iter().map(|curves| curves.metric.as_str()).collect();
    let title = format!(
        "Median speedup vs CPUs: {}{}",
        names.join(", "),
        interval_note(summary)
    );
    Some(Chart {
        svg: line_chart(&ChartSpec {
            title: &title,
            y_label: "speedup (x)",
            series: &series,
            ideal: &curves[0].ideal,
            thresholds: &thresholds,
        }),
        file: "chart-speedup-all-by-system.svg".to_string(),
        title,
    })
}

/// Colours of stacked phases, bottom up.
const PHASE_COLORS: [&str; 6] = [
    "#8da0cb", "#1f5fbf", "#e78ac3", "#a6d854", "#ffd92f", "#66c2a5",
];

/// One stacked-bar chart per system: each case's median of every `phases`
/// metric, bottom up in contract order, so a bar's height is the median run
/// and its parts show where the time went.
pub(super) fn phase_charts(summary: &SummaryDocument, phases: &[String]) -> Vec<Chart> {
    use crate::proof::baseline::Os;
    if phases.len() < 2 || phases.len() > PHASE_COLORS.len() {
        return Vec::new();
    }
    let mut charts = Vec::new();
    for os in [Os::Capos, Os::Linux, Os::Native] {
        let mut bars: Vec<(String, u32, Vec<f64>)> = summary
            .cases
            .iter()
            .filter(|case| case.os == os && case.skipped.is_none())
            .filter_map(|case| {
                let medians: Option<Vec<f64>> = phases
                    .iter()
                    .map(|name| {
                        let metric = case.metrics.iter().find(|metric| &metric.name == name)?;
                        Some(metric.statistics.as_ref()?.median)
                    })
                    .collect();
                Some((case.id.clone(), case.cpus, medians?))
            })
            .collect();
        if bars.is_empty() {
            continue;
        }
        bars.sort_by_key(|(_, cpus, _)| *cpus);
        let unit = summary.cases[0]
            .metrics
            .iter()
            .find(|metric| metric.name == phases[0])
            .map(|metric| metric.unit.clone())
            .unwrap_or_default();
        let title = format!("{}: median phases per case ({unit})", os.title());
        charts.push(Chart {
            svg: stacked_bars(&title, &unit, phases, &bars),
            file: format!("chart-phases-{}.svg", os.name()),
            title,
        });
    }
    charts
}

/// A stacked bar chart: one bar per (label, cpus, parts).
fn stacked_bars(
    title: &str,
    unit: &str,
    phases: &[String],
    bars: &[(String, u32, Vec<f64>)],
) -> String {
    let legend_width = 150.0;
    let plot_width = WIDTH - LEFT - RIGHT - legend_width;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let max_y = nice_ceiling(
        bars.iter()
            .map(|(_, _, parts)| parts.iter().sum::<f64>())
            .fold(0.0, f64::max)
            * 1.05,
    );
    let y_of = |y: f64| TOP + plot_height * (1.0 - y / max_y);
    let slot = plot_width / bars.len() as f64;
    let bar_width = (slot * 0.6).min(60.0);
    let mut svg = frame(title, plot_width, max_y);
    svg.push_str(&format!(
        "<text x=\"16\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {:.1})\">{}</text>\n",
        TOP + plot_height / 2.0,
        TOP + plot_height / 2.0,
        xml_escape(unit)
    ));
    for (index, (label, cpus, parts)) in bars.iter().enumerate() {
        let x = LEFT + slot * (index as f64 + 0.5) - bar_width / 2.0;
        let mut bottom = 0.0;
        let total: f64 = parts.iter().sum();
        for ((part, name), color) in parts.iter().zip(phases).zip(PHASE_COLORS) {
            let top = bottom + part;
            let share = if total > 0.0 {
                100.0 * part / total
            } else {
                0.0
            };
            svg.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar_width:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{}: {} {} ({share:.1}%)</title></rect>\n",
                y_of(top),
                (y_of(bottom) - y_of(top)).max(0.0),
                xml_escape(name),
                stats::format_figure(*part),
                xml_escape(unit)
            ));
            bottom = top;
        }
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\">{}</text>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{} CPU{}</text>\n",
            x + bar_width / 2.0,
            y_of(total) - 4.0,
            axis_label(total, max_y),
            x + bar_width / 2.0,
            TOP + plot_height + 16.0,
            xml_escape(label),
            x + bar_width / 2.0,
            TOP + plot_height + 30.0,
            cpus,
            if *cpus == 1 { "" } else { "s" }
        ));
    }
    for (index, (name, color)) in phases.iter().zip(PHASE_COLORS).enumerate() {
        let y = TOP + 12.0 + 18.0 * (phases.len() - 1 - index) as f64;
        let x = WIDTH - RIGHT - legend_width + 12.0;
        svg.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>\n",
            y - 9.0,
            x + 16.0,
            y + 1.0,
            xml_escape(name)
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

/// ` (bars: 95% interval)` when the summary has intervals (format v2 onward).
fn interval_note(summary: &SummaryDocument) -> String {
    match &summary.statistics {
        Some(plan) => {
            let percent = format!("{:.3}", plan.confidence * 100.0);
            format!(
                " (bars: {}% interval)",
                percent.trim_end_matches('0').trim_end_matches('.')
            )
        }
        None => String::new(),
    }
}

/// A system's curve as chart points, with the interval of each speedup
/// (or median) as its bar when the summary has intervals.
fn curve_points(
    summary: &SummaryDocument,
    curves: &baseline_view::Curves,
    curve: &baseline_view::Curve,
) -> Vec<Point> {
    let interval_of = |case: &str| {
        if curves.speedups {
            summary
                .speedups
                .iter()
                .find(|speedup| speedup.case == case && speedup.metric == curves.metric)
                .and_then(|speedup| speedup.interval)
        } else {
            summary
                .cases
                .iter()
                .find(|summary_case| summary_case.id == case)
                .and_then(|summary_case| {
                    summary_case
                        .metrics
                        .iter()
                        .find(|metric| metric.name == curves.metric)
                })
                .and_then(|metric| metric.interval)
        }
    };
    curve
        .points
        .iter()
        .map(|point| {
            let interval = interval_of(&point.case);
            Point {
                x: point.cpus,
                y: point.value,
                low: interval.map(|interval| interval.lower),
                high: interval.map(|interval| interval.upper),
                label: point.case.clone(),
            }
        })
        .collect()
}

/// The start of a chart: the SVG element, title, background, both axes and
/// the y grid (six lines from 0 to `max_y`) of a plot `plot_width` wide.
fn frame(title: &str, plot_width: f64, max_y: f64) -> String {
    let plot_height = HEIGHT - TOP - BOTTOM;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n<title>{}</title>\n<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#ffffff\"/>\n<text x=\"{:.1}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        xml_escape(title),
        WIDTH / 2.0,
        xml_escape(title)
    );
    svg.push_str(&format!(
        "<line x1=\"{LEFT:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#000\"/>\n<line x1=\"{LEFT:.1}\" y1=\"{TOP:.1}\" x2=\"{LEFT:.1}\" y2=\"{:.1}\" stroke=\"#000\"/>\n",
        TOP + plot_height,
        LEFT + plot_width,
        TOP + plot_height,
        TOP + plot_height
    ));
    for step in 0..=5 {
        let value = max_y * f64::from(step) / 5.0;
        let y = TOP + plot_height * (1.0 - value / max_y);
        svg.push_str(&format!(
            "<line x1=\"{LEFT:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            LEFT + plot_width,
            LEFT - 6.0,
            y + 4.0,
            axis_label(value, max_y)
        ));
    }
    svg
}

/// ` stroke-dasharray="..."` for a dashed curve, nothing for a solid one.
fn dash_attribute(dash: &str) -> String {
    if dash.is_empty() {
        String::new()
    } else {
        format!(" stroke-dasharray=\"{dash}\"")
    }
}

/// Speedup-gate thresholds of `metric`'s speedups, at the compared CPU count.
fn speedup_thresholds(summary: &SummaryDocument, metric: &str) -> Vec<(f64, f64)> {
    summary
        .gates
        .iter()
        .filter_map(|gate| {
            let threshold = gate.threshold?;
            let speedup = summary
                .speedups
                .iter()
                .find(|s| s.metric == metric && gate.speedup.as_deref() == Some(s.id.as_str()))?;
            Some((f64::from(speedup.case_cpus), threshold))
        })
        .collect()
}

/// Colours of the curves, in series order.
const SERIES_COLORS: [&str; 3] = ["#1f5fbf", "#c25a00", "#2e8b57"];

/// One curve: its points and, when a chart has several, its legend label.
struct Series {
    label: String,
    color: &'static str,
    /// SVG `stroke-dasharray` of the curve; empty for a solid line.
    dash: &'static str,
    points: Vec<Point>,
}

impl Series {
    /// The only curve of a chart (no legend).
    fn single(mut points: Vec<Point>) -> Series {
        points.sort_by(|a, b| a.x.total_cmp(&b.x));
        Series {
            label: String::new(),
            color: SERIES_COLORS[0],
            dash: "",
            points,
        }
    }
}

/// A measured point, with an optional min-max bar.
struct Point {
    x: f64,
    y: f64,
    low: Option<f64>,
    high: Option<f64>,
    label: String,
}

/// What one chart shows.
struct ChartSpec<'a> {
    title: &'a str,
    y_label: &'a str,
    series: &'a [Series],
    ideal: &'a [(f64, f64)],
    thresholds: &'a [(f64, f64)],
}

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 340.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// A small SVG line chart: x is CPUs from 0, y from 0 to a round maximum.
fn line_chart(spec: &ChartSpec<'_>) -> String {
    let all_points = || spec.series.iter().flat_map(|series| &series.points);
    let max_x = all_points()
        .map(|p| p.x)
        .chain(spec.ideal.iter().map(|p| p.0))
        .fold(1.0, f64::max)
        * 1.12;
    let max_y = nice_ceiling(
        all_points()
            .map(|p| p.high.unwrap_or(p.y))
            .chain(spec.ideal.iter().map(|p| p.1))
            .chain(spec.thresholds.iter().map(|p| p.1))
            .fold(0.0, f64::max)
            * 1.1,
    );
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let x_of = |x: f64| LEFT + plot_width * x / max_x;
    let y_of = |y: f64| TOP + plot_height * (1.0 - y / max_y);
    let mut svg = frame(spec.title, plot_width, max_y);
    let mut ticks: Vec<f64> = all_points()
        .map(|p| p.x)
        .chain(spec.ideal.iter().map(|p| p.0))
        .collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    for x in ticks {
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            x_of(x),
            TOP + plot_height + 18.0,
            x
        ));
    }
    svg.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">CPUs</text>\n<text x=\"16\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {:.1})\">{}</text>\n",
        LEFT + plot_width / 2.0,
        HEIGHT - 10.0,
        TOP + plot_height / 2.0,
        TOP + plot_height / 2.0,
        xml_escape(spec.y_label)
    ));
    if spec.ideal.len() >= 2 {
        let path: Vec<String> = spec
            .ideal
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", x_of(*x), y_of(*y)))
            .collect();
        svg.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#888\" stroke-dasharray=\"6 4\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#888\" text-anchor=\"end\">ideal</text>\n",
            path.join(" "),
            LEFT + plot_width - 4.0,
            spec.ideal.last().map(|p| y_of(p.1) - 6.0).unwrap_or(TOP)
        ));
    }
    for (x, y) in spec.thresholds {
        svg.push_str(&format!(
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#c00\" stroke-width=\"2\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#c00\" text-anchor=\"end\">gate {:.2}</text>\n",
            x_of(*x) - 14.0,
            y_of(*y),
            x_of(*x) + 14.0,
            y_of(*y),
            x_of(*x) - 18.0,
            y_of(*y) + 4.0,
            y
        ));
    }
    let series_count = spec.series.len();
    for (series_index, series) in spec.series.iter().enumerate() {
        let color = series.color;
        // Several curves' bars at one CPU count sit side by side, 5 px apart.
        let bar_offset = 5.0 * (series_index as f64 - (series_count as f64 - 1.0) / 2.0);
        if series.points.len() >= 2 {
            let path: Vec<String> = series
                .points
                .iter()
                .map(|p| format!("{:.1},{:.1}", x_of(p.x), y_of(p.y)))
                .collect();
            svg.push_str(&format!(
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{}/>\n",
                path.join(" "),
                dash_attribute(series.dash)
            ));
        }
        for point in &series.points {
            if let (Some(low), Some(high)) = (point.low, point.high) {
                svg.push_str(&format!(
                    "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{color}\"/>\n",
                    y_of(low),
                    y_of(high),
                    x = x_of(point.x) + bar_offset
                ));
            }
            svg.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{color}\"><title>{}: {}</title></circle>\n<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text>\n",
                x_of(point.x),
                y_of(point.y),
                xml_escape(&point.label),
                stats::format_figure(point.y),
                x_of(point.x) + 6.0,
                y_of(point.y) - 6.0,
                tick_label(point.y, max_y)
            ));
        }
    }
    // A legend when several curves share the chart.
    let labelled: Vec<&Series> = spec.series.iter().filter(|s| !s.label.is_empty()).collect();
    if labelled.len() > 1 {
        for (index, series) in labelled.iter().enumerate() {
            let y = TOP + 12.0 + 16.0 * index as f64;
            svg.push_str(&format!(
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\" stroke-width=\"2\"{}/>\n<text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
                LEFT + 10.0,
                LEFT + 30.0,
                series.color,
                dash_attribute(series.dash),
                LEFT + 36.0,
                y + 4.0,
                xml_escape(&series.label)
            ));
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// The smallest round step (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8) times a power of ten that is at least `value` (1 for nothing).
fn nice_ceiling(value: f64) -> f64 {
    if !(value.is_finite() && value > 0.0) {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|step| step * power)
        .find(|candidate| *candidate >= value)
        .unwrap_or(10.0 * power)
}

/// A point label with as many decimals as the scale needs.
fn tick_label(value: f64, max: f64) -> String {
    let decimals = if max >= 1000.0 {
        0
    } else if max >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.decimals$}")
}

/// A y-axis tick label: whole numbers on large scales.
fn axis_label(value: f64, max: f64) -> String {
    let decimals = if max >= 10.0 {
        0
    } else if max >= 5.0 {
        1
    } else {
        2
    };
    format!("{value:.decimals$}")
}

pub(super) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceiling_rounds_up_to_round_steps() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(1.1), 1.2);
        assert_eq!(nice_ceiling(2.2), 2.5);
        assert_eq!(nice_ceiling(450.0), 500.0);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
    }
}
