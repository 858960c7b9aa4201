//! What the report shows of a comparison: preformatted table rows and the
//! curves of the per-system chart. Formatting only; every number comes
//! from summary.json's `comparison`, which `capos verify` recomputed.

use super::Os;
use crate::proof::summary::ComparisonSummary;
use serde::Serialize;

/// One row of the side-by-side table, every cell already text.
#[derive(Debug, Clone, Serialize)]
pub struct ComparisonView {
    /// Metric name.
    pub metric: String,
    /// Its unit.
    pub unit: String,
    /// CPUs of the row.
    pub cpus: u32,
    /// Workers, or an empty cell.
    pub workers: String,
    /// (median, speedup) cells for capOS, the Linux guest and native.
    pub capos: (String, String),
    /// See `capos`.
    pub linux: (String, String),
    /// See `capos`.
    pub native: (String, String),
    /// capOS median / Linux median.
    pub median_ratio: String,
    /// capOS speedup / Linux speedup.
    pub speedup_ratio: String,
    /// Whether the row has speedups (a scaling metric).
    pub scaling: bool,
}

/// A count for the comparison table ([`crate::proof::numbers::readable`]):
/// `7.98 G`, `5,072`.
pub fn quantity(value: f64) -> String {
    crate::proof::numbers::readable(value)
}

fn cell(value: Option<f64>, format: impl Fn(f64) -> String) -> String {
    value.map(format).unwrap_or_else(|| "—".into())
}

/// The table rows of `comparison`.
pub fn rows(comparison: &ComparisonSummary) -> Vec<ComparisonView> {
    comparison
        .rows
        .iter()
        .map(|row| {
            let system = |os: Os| {
                let figure = row.systems.iter().find(|figure| figure.os == os);
                (
                    cell(figure.and_then(|f| f.median), quantity),
                    cell(figure.and_then(|f| f.speedup), |v| {
                        format!("{}x", crate::proof::numbers::readable(v))
                    }),
                )
            };
            ComparisonView {
                metric: row.metric.clone(),
                unit: row.unit.clone(),
                cpus: row.cpus,
                workers: row.workers.map(|w| w.to_string()).unwrap_or_default(),
                capos: system(Os::Capos),
                linux: system(Os::Linux),
                native: system(Os::Native),
                median_ratio: cell(row.median_ratio, crate::proof::numbers::readable),
                speedup_ratio: cell(row.speedup_ratio, crate::proof::numbers::readable),
                scaling: row.systems.iter().any(|figure| figure.speedup.is_some()),
            }
        })
        .collect()
}

/// One point of a curve.
pub struct CurvePoint {
    /// CPUs.
    pub cpus: f64,
    /// Speedup or median.
    pub value: f64,
    /// The case measured.
    pub case: String,
}

/// One system's curve.
pub struct Curve {
    /// The system.
    pub os: Os,
    /// Its points, by CPU count.
    pub points: Vec<CurvePoint>,
}

/// The curves of one chart.
pub struct Curves {
    /// Metric name.
    pub metric: String,
    /// Its unit.
    pub unit: String,
    /// Speedups (true) or medians (false).
    pub speedups: bool,
    /// One curve per system, capOS first.
    pub systems: Vec<Curve>,
    /// The ideal speedup line (empty for medians).
    pub ideal: Vec<(f64, f64)>,
}

/// One chart per metric: speedup curves for scaling metrics, else medians.
pub fn curves(comparison: &ComparisonSummary) -> Vec<Curves> {
    let mut metrics: Vec<&str> = Vec::new();
    for row in &comparison.rows {
        if !metrics.contains(&row.metric.as_str()) {
            metrics.push(&row.metric);
        }
    }
    metrics
        .into_iter()
        .map(|metric| {
            let rows: Vec<_> = comparison
                .rows
                .iter()
                .filter(|r| r.metric == metric)
                .collect();
            let speedups = rows
                .iter()
                .any(|row| row.systems.iter().any(|figure| figure.speedup.is_some()));
            let mut systems = Vec::new();
            for os in [Os::Capos, Os::Linux, Os::Native] {
                let points: Vec<CurvePoint> = rows
                    .iter()
                    .filter_map(|row| {
                        let figure = row.systems.iter().find(|figure| figure.os == os)?;
                        let value = if speedups {
                            figure.speedup
                        } else {
                            figure.median
                        }?;
                        Some(CurvePoint {
                            cpus: f64::from(row.cpus),
                            value,
                            case: figure.case.clone(),
                        })
                    })
                    .collect();
                if !points.is_empty() {
                    systems.push(Curve { os, points });
                }
            }
            let lowest = rows.iter().map(|row| row.cpus).min().unwrap_or(1).max(1);
            let ideal = if speedups {
                rows.iter()
                    .map(|row| (f64::from(row.cpus), f64::from(row.cpus) / f64::from(lowest)))
                    .collect()
            } else {
                Vec::new()
            };
            Curves {
                metric: metric.to_string(),
                unit: rows.first().map(|row| row.unit.clone()).unwrap_or_default(),
                speedups,
                systems,
                ideal,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_well() {
        assert_eq!(quantity(7_980_911_260.0), "7.98 G");
        assert_eq!(quantity(4_952_209.0), "4.95 M");
        assert_eq!(quantity(5072.0), "5,072");
    }
}
