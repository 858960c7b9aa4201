//! Adaptive repetitions (`CAPOS_*_RUNS=auto`): interleaved rounds repeat
//! until every gated speedup's and ratio's interval is narrow enough, or a
//! cap is reached.
//!
//! Invariants a reader must know:
//! - The rule is recorded in inputs.json before the first boot and the
//!   number of rounds after the last; `capos verify` recomputes the widths
//!   after every round from the raw logs (`summary::check_stopping`) and
//!   refuses a bundle that stopped too early or ran on after the rule said
//!   stop: the count cannot be chosen after seeing the figures.
//! - A gate whose figure has no interval (no passing runs, a zero median)
//!   is never narrow enough: such a run goes on to the cap.
//! - Gates on oversubscribed cases and gates the run does not require are
//!   diagnostic and do not hold the rounds open.

use serde::{Deserialize, Serialize};

/// The default stopping rule.
pub const DEFAULT_RULE: StoppingRule = StoppingRule {
    min_rounds: 3,
    max_rounds: 15,
    target_relative_width: 0.05,
};

/// When adaptive rounds stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoppingRule {
    /// Never stop before this many rounds.
    pub min_rounds: u32,
    /// Always stop after this many rounds.
    pub max_rounds: u32,
    /// Stop once every gated interval's width, divided by its figure, is
    /// at most this (0.05: the interval spans at most 5% of the figure).
    pub target_relative_width: f64,
}

/// What the rule says after a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Run another round.
    Continue,
    /// Every gated interval is narrow enough.
    TargetReached,
    /// The cap was reached first.
    CapReached,
}

impl StoppingRule {
    /// The decision after `rounds` rounds, given each gated figure's
    /// relative interval width (None: no interval).
    #[must_use]
    pub fn decide(&self, rounds: u32, widths: &[Option<f64>]) -> Decision {
        let narrow = widths
            .iter()
            .all(|width| width.is_some_and(|width| width <= self.target_relative_width));
        if rounds >= self.min_rounds && narrow {
            Decision::TargetReached
        } else if rounds >= self.max_rounds {
            Decision::CapReached
        } else {
            Decision::Continue
        }
    }

    /// Why this rule cannot be used, or None.
    #[must_use]
    pub fn problem(&self, max_repetitions: u32) -> Option<String> {
        let valid = self.min_rounds >= 2
            && self.min_rounds <= self.max_rounds
            && self.max_rounds <= max_repetitions
            && self.target_relative_width > 0.0
            && self.target_relative_width.is_finite();
        (!valid).then(|| {
            format!(
                "adaptive rule min_rounds={} max_rounds={} target_relative_width={} is not usable (2 <= min <= max <= {max_repetitions}, width > 0)",
                self.min_rounds, self.max_rounds, self.target_relative_width
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_at_the_boundaries() {
        let rule = DEFAULT_RULE;
        assert_eq!(rule.decide(2, &[Some(0.01)]), Decision::Continue);
        assert_eq!(rule.decide(3, &[Some(0.05)]), Decision::TargetReached);
        assert_eq!(rule.decide(3, &[Some(0.0501)]), Decision::Continue);
        assert_eq!(rule.decide(3, &[Some(0.01), None]), Decision::Continue);
        assert_eq!(rule.decide(15, &[None]), Decision::CapReached);
        assert_eq!(rule.decide(15, &[Some(0.01)]), Decision::TargetReached);
        assert_eq!(rule.decide(4, &[]), Decision::TargetReached);
    }

    #[test]
    fn unusable_rules_are_named() {
        assert_eq!(DEFAULT_RULE.problem(100), None);
        let rule = StoppingRule {
            min_rounds: 5,
            max_rounds: 4,
            ..DEFAULT_RULE
        };
        assert!(rule.problem(100).is_some());
        assert!(DEFAULT_RULE.problem(10).is_some());
    }
}
