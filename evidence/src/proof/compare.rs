//! Comparing a reproduced summary with the recorded one: gates by verdict,
//! medians and speedups within a tolerance in percent, and whether the two
//! runs are comparable at all (same contract, same accelerator).
//!
//! Invariant: a missing figure never agrees; a speedup neither run could
//! compute is no disagreement.

use crate::proof::summary::{GateVerdict, SummaryDocument};

/// One median, recorded and reproduced.
#[derive(Debug, Clone, PartialEq)]
pub struct MedianComparison {
    /// Case id.
    pub case: String,
    /// Metric name.
    pub metric: String,
    /// Recorded median.
    pub old: Option<f64>,
    /// Reproduced median.
    pub new: Option<f64>,
    /// Relative change in percent, when both exist and the old is non-zero.
    pub change_percent: Option<f64>,
    /// Whether the medians agree within the tolerance.
    pub agrees: bool,
}

/// One gate, recorded and reproduced.
#[derive(Debug, Clone, PartialEq)]
pub struct GateComparison {
    /// Gate id.
    pub id: String,
    /// Recorded verdict.
    pub old: GateVerdict,
    /// Reproduced verdict (None if the new run lacks the gate).
    pub new: Option<GateVerdict>,
}

impl GateComparison {
    /// Whether both runs reached the same verdict.
    pub fn agrees(&self) -> bool {
        self.new == Some(self.old)
    }
}

/// One speedup, recorded and reproduced.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeedupComparison {
    /// Speedup id.
    pub id: String,
    /// Recorded speedup.
    pub old: Option<f64>,
    /// Reproduced speedup.
    pub new: Option<f64>,
    /// Relative change in percent, when both exist and the old is non-zero.
    pub change_percent: Option<f64>,
    /// Whether the speedups agree within the tolerance.
    pub agrees: bool,
}

/// The comparison of a recorded and a reproduced summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Every case and metric of the recorded summary.
    pub medians: Vec<MedianComparison>,
    /// Every speedup of the recorded summary (the claims are speedups, and a
    /// ratio of two medians each within the tolerance can move further).
    pub speedups: Vec<SpeedupComparison>,
    /// Every gate of the recorded summary.
    pub gates: Vec<GateComparison>,
    /// Why the two summaries cannot be compared as a reproduction, if so.
    pub blocker: Option<String>,
}

impl Comparison {
    /// Whether the reproduction agrees: no blocker, all gates, medians and speedups agree.
    pub fn agrees(&self) -> bool {
        self.blocker.is_none()
            && self.gates.iter().all(GateComparison::agrees)
            && self.medians.iter().all(|median| median.agrees)
            && self.speedups.iter().all(|speedup| speedup.agrees)
    }
}

/// Compare `new` with `old`: gates by verdict, medians within `tolerance_percent`.
#[must_use]
pub fn compare(old: &SummaryDocument, new: &SummaryDocument, tolerance_percent: f64) -> Comparison {
    let mut medians = Vec::new();
    for case in &old.cases {
        for metric in &case.metrics {
            let old_median = metric
                .statistics
                .as_ref()
                .map(|statistics| statistics.median);
            let new_median = new.median(&case.id, &metric.name);
            let (change_percent, agrees) = within(old_median, new_median, tolerance_percent);
            medians.push(MedianComparison {
                case: case.id.clone(),
                metric: metric.name.clone(),
                old: old_median,
                new: new_median,
                change_percent,
                agrees,
            });
        }
    }
    let speedups = old
        .speedups
        .iter()
        .map(|speedup| {
            let new_value = new
                .speedups
                .iter()
                .find(|candidate| candidate.id == speedup.id)
                .and_then(|candidate| candidate.value);
            let (change_percent, agrees) = within(speedup.value, new_value, tolerance_percent);
            SpeedupComparison {
                id: speedup.id.clone(),
                old: speedup.value,
                new: new_value,
                change_percent,
                // A speedup neither run could compute is no disagreement.
                agrees: agrees || (speedup.value.is_none() && new_value.is_none()),
            }
        })
        .collect();
    let gates = old
        .gates
        .iter()
        .map(|gate| GateComparison {
            id: gate.id.clone(),
            old: gate.verdict,
            new: new
                .gates
                .iter()
                .find(|candidate| candidate.id == gate.id)
                .map(|candidate| candidate.verdict),
        })
        .collect();
    let blocker = if old.contract != new.contract {
        Some(format!(
            "different proofs ({} vs {})",
            old.contract, new.contract
        ))
    } else if old.accelerator.name != new.accelerator.name {
        Some(format!(
            "the recorded runs used {} but this machine runs {} ({}); timings under different accelerators are not comparable",
            old.accelerator.name, new.accelerator.name, new.accelerator.reason
        ))
    } else {
        None
    };
    Comparison {
        medians,
        speedups,
        gates,
        blocker,
    }
}

/// The relative change from `old` to `new` in percent, and whether it is
/// within `tolerance_percent` (a missing figure never agrees).
fn within(old: Option<f64>, new: Option<f64>, tolerance_percent: f64) -> (Option<f64>, bool) {
    let change_percent = match (old, new) {
        (Some(old), Some(new)) if old != 0.0 => Some(100.0 * (new - old) / old),
        _ => None,
    };
    let agrees = match (old, new, change_percent) {
        (Some(_), Some(_), Some(change)) => change.abs() <= tolerance_percent,
        (Some(old), Some(new), None) => old == new,
        _ => false,
    };
    (change_percent, agrees)
}
