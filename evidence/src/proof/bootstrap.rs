//! Percentile-bootstrap confidence intervals for medians, speedups (ratios
//! of medians) and ratios of speedups, reproducible byte for byte.
//!
//! Invariants a reader must know:
//! - The random stream is SplitMix64 (Steele, Lea and Flood, "Fast
//!   splittable pseudorandom number generators", OOPSLA 2014), written out
//!   here with its published constants, so no dependency update can change
//!   it. Every interval draws from its own stream, seeded from the bundle's
//!   recorded seed and the interval's label ([`stream_seed`]): adding a case
//!   or a metric never shifts another interval's resamples.
//! - A resample index is `(x * n) >> 64` for a 64-bit draw `x` (Lemire's
//!   multiply-shift): deterministic, with a bias below `n / 2^64`.
//! - Bounds are order statistics of the sorted resampled statistics
//!   ([`percentile_bounds`]) and are rounded like every stored figure
//!   ([`stats::round`]), so `capos verify` recomputes identical bytes.
//! - A constant sample gives a zero-width interval; an empty or non-finite
//!   sample is an error, never a NaN bound.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::proof::contract::Better;
use crate::proof::stats::{self, StatsError};

/// Resamples per interval when a run does not say otherwise.
pub const DEFAULT_RESAMPLES: u32 = 10_000;
/// Confidence level when a run does not say otherwise.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;
/// Name of the method, as recorded in the bundle.
pub const METHOD: &str = "percentile-bootstrap/splitmix64/v1";

/// How a bundle's intervals are computed (recorded in inputs.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapPlan {
    /// Always [`METHOD`]; another value is refused (fail closed).
    pub method: String,
    /// Confidence level, e.g. 0.95.
    pub confidence: f64,
    /// Resamples per interval.
    pub resamples: u32,
    /// Seed of every interval's stream.
    pub seed: u64,
}

impl BootstrapPlan {
    /// The default plan with `seed`.
    #[must_use]
    pub fn with_seed(seed: u64) -> Self {
        Self {
            method: METHOD.into(),
            confidence: DEFAULT_CONFIDENCE,
            resamples: DEFAULT_RESAMPLES,
            seed,
        }
    }

    /// Why this plan cannot be used, or None.
    #[must_use]
    pub fn problem(&self) -> Option<String> {
        if self.method != METHOD {
            return Some(format!(
                "bootstrap method {:?} is not {METHOD:?}, the one this capos computes",
                self.method
            ));
        }
        if !(self.confidence > 0.5 && self.confidence < 1.0) {
            return Some(format!(
                "bootstrap confidence {} is not between 0.5 and 1",
                self.confidence
            ));
        }
        if !(100..=1_000_000).contains(&self.resamples) {
            return Some(format!(
                "bootstrap resamples {} is not between 100 and 1000000",
                self.resamples
            ));
        }
        None
    }
}

/// A confidence interval, bounds rounded to [`stats::DECIMALS`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

impl Interval {
    /// `upper - lower`.
    #[must_use]
    pub fn width(&self) -> f64 {
        self.upper - self.lower
    }

    /// Width relative to `value` (None for a non-positive value).
    #[must_use]
    pub fn relative_width(&self, value: f64) -> Option<f64> {
        (value > 0.0).then(|| self.width() / value)
    }
}

/// SplitMix64: a 64-bit state advanced by the golden-ratio increment, then
/// mixed (the constants are the published ones; never change them).
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A stream starting at `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64-bit value.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// An index in `0..len` (multiply-shift; `len` > 0).
    pub fn index(&mut self, len: usize) -> usize {
        ((u128::from(self.next_u64()) * len as u128) >> 64) as usize
    }
}

/// The seed of the stream for the interval named `label`: the first eight
/// bytes (little-endian) of sha256(`seed` as 8 little-endian bytes, `label`).
#[must_use]
pub fn stream_seed(seed: u64, label: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update(label.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

/// One resample (with replacement) of `sample` into `buffer`, and its median.
fn resampled_median(sample: &[f64], buffer: &mut Vec<f64>, random: &mut SplitMix64) -> f64 {
    buffer.clear();
    buffer.extend((0..sample.len()).map(|_| sample[random.index(sample.len())]));
    buffer.sort_by(f64::total_cmp);
    let middle = buffer.len() / 2;
    if buffer.len() % 2 == 1 {
        buffer[middle]
    } else {
        buffer[middle - 1] / 2.0 + buffer[middle] / 2.0
    }
}

/// The `(1 - confidence) / 2` and `(1 + confidence) / 2` order statistics
/// of `statistics` (sorted here): with B values, indices
/// `floor(B * (1 - c) / 2)` and `ceil(B * (1 + c) / 2) - 1`, clamped to the
/// sample. 95% of 10,000 gives the 251st and the 9,750th smallest.
pub fn percentile_bounds(statistics: &mut [f64], confidence: f64) -> Option<Interval> {
    if statistics.is_empty() || statistics.iter().any(|value| !value.is_finite()) {
        return None;
    }
    statistics.sort_by(f64::total_cmp);
    let count = statistics.len() as f64;
    let tail = (1.0 - confidence) / 2.0;
    let low_index = ((count * tail).floor() as usize).min(statistics.len() - 1);
    let high_index = ((count * (1.0 - tail)).ceil() as usize)
        .saturating_sub(1)
        .clamp(low_index, statistics.len() - 1);
    Some(Interval {
        lower: stats::round(statistics[low_index]),
        upper: stats::round(statistics[high_index]),
    })
}

fn check(sample: &[f64]) -> Result<(), StatsError> {
    if sample.is_empty() {
        return Err(StatsError::Empty);
    }
    match sample.iter().find(|value| !value.is_finite()) {
        Some(value) => Err(StatsError::NotFinite(*value)),
        None => Ok(()),
    }
}

/// Interval of the median of `sample`, for the interval named `label`.
pub fn median_interval(
    plan: &BootstrapPlan,
    label: &str,
    sample: &[f64],
) -> Result<Interval, StatsError> {
    check(sample)?;
    let mut random = SplitMix64::new(stream_seed(plan.seed, label));
    let mut buffer = Vec::with_capacity(sample.len());
    let mut medians: Vec<f64> = (0..plan.resamples)
        .map(|_| resampled_median(sample, &mut buffer, &mut random))
        .collect();
    percentile_bounds(&mut medians, plan.confidence).ok_or(StatsError::Empty)
}

/// A speedup's resampled value: baseline and compared samples resampled
/// independently (baseline first), the ratio of their medians in the
/// direction `better`; None when a median is zero.
fn resampled_speedup(
    better: Better,
    (baseline, compared): (&[f64], &[f64]),
    buffer: &mut Vec<f64>,
    random: &mut SplitMix64,
) -> Option<f64> {
    let baseline_median = resampled_median(baseline, buffer, random);
    let compared_median = resampled_median(compared, buffer, random);
    let (top, bottom) = match better {
        Better::Lower => (baseline_median, compared_median),
        Better::Higher => (compared_median, baseline_median),
    };
    (bottom > 0.0).then(|| top / bottom)
}

/// Interval of the speedup of `compared` over `baseline` (ratio of
/// medians in the direction `better`). None when a resample hits a zero
/// median: no interval rather than a guess.
pub fn speedup_interval(
    plan: &BootstrapPlan,
    label: &str,
    better: Better,
    baseline: &[f64],
    compared: &[f64],
) -> Result<Option<Interval>, StatsError> {
    check(baseline)?;
    check(compared)?;
    let mut random = SplitMix64::new(stream_seed(plan.seed, label));
    let mut buffer = Vec::with_capacity(baseline.len().max(compared.len()));
    let mut values = Vec::with_capacity(plan.resamples as usize);
    for _ in 0..plan.resamples {
        match resampled_speedup(better, (baseline, compared), &mut buffer, &mut random) {
            Some(value) => values.push(value),
            None => return Ok(None),
        }
    }
    Ok(percentile_bounds(&mut values, plan.confidence))
}

/// The four samples behind a ratio of two speedups: the numerator
/// speedup's (baseline, compared) and the reference speedup's.
pub struct RatioSamples<'a> {
    /// Numerator speedup: direction and (baseline, compared) samples.
    pub speedup: (Better, &'a [f64], &'a [f64]),
    /// Reference speedup: direction and (baseline, compared) samples.
    pub reference: (Better, &'a [f64], &'a [f64]),
}

/// Interval of a ratio of two speedups: all four samples resampled
/// independently in the order numerator baseline, numerator compared,
/// reference baseline, reference compared.
pub fn ratio_interval(
    plan: &BootstrapPlan,
    label: &str,
    samples: &RatioSamples<'_>,
) -> Result<Option<Interval>, StatsError> {
    let (top_better, top_baseline, top_compared) = samples.speedup;
    let (bottom_better, bottom_baseline, bottom_compared) = samples.reference;
    for sample in [top_baseline, top_compared, bottom_baseline, bottom_compared] {
        check(sample)?;
    }
    let mut random = SplitMix64::new(stream_seed(plan.seed, label));
    let mut buffer = Vec::new();
    let mut values = Vec::with_capacity(plan.resamples as usize);
    for _ in 0..plan.resamples {
        let top = resampled_speedup(
            top_better,
            (top_baseline, top_compared),
            &mut buffer,
            &mut random,
        );
        let bottom = resampled_speedup(
            bottom_better,
            (bottom_baseline, bottom_compared),
            &mut buffer,
            &mut random,
        );
        match (top, bottom) {
            (Some(top), Some(bottom)) if bottom > 0.0 => values.push(top / bottom),
            _ => return Ok(None),
        }
    }
    Ok(percentile_bounds(&mut values, plan.confidence))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> BootstrapPlan {
        BootstrapPlan::with_seed(0x5eed)
    }

    #[test]
    fn splitmix64_matches_its_reference_stream() {
        // The first outputs for seed 0 of the published algorithm.
        let mut random = SplitMix64::new(0);
        assert_eq!(random.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(random.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(random.next_u64(), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn constant_sample_gives_a_zero_width_interval() {
        let interval = median_interval(&plan(), "x", &[7.5; 5]).unwrap();
        assert_eq!(
            interval,
            Interval {
                lower: 7.5,
                upper: 7.5
            }
        );
        let speedup =
            speedup_interval(&plan(), "s", Better::Lower, &[200.0; 4], &[100.0; 6]).unwrap();
        assert_eq!(
            speedup,
            Some(Interval {
                lower: 2.0,
                upper: 2.0
            })
        );
    }

    /// Five values, three at 10 and two at 20: a resampled median is 10
    /// exactly when at least three draws are 10, with probability
    /// P(Binomial(5, 0.6) >= 3) = 0.68256. Both tails (2.5%) then fall on
    /// different values: the 95% interval is [10, 20].
    #[test]
    fn two_point_mixture_straddling_both_tails() {
        let sample = [10.0, 20.0, 10.0, 20.0, 10.0];
        let interval = median_interval(&plan(), "m", &sample).unwrap();
        assert_eq!(
            interval,
            Interval {
                lower: 10.0,
                upper: 20.0
            }
        );
    }

    /// Seven values, six at 10 and one at 20: a resampled median is 20
    /// only when at least four of seven draws are 20, with probability
    /// P(Binomial(7, 1/7) >= 4) = 0.0102, below the 2.5% tail: the 95%
    /// interval is [10, 10]. Five values with one 20 give a median of 20
    /// with P(Binomial(5, 0.2) >= 3) = 0.0579: below the 10% tail of an
    /// 80% interval ([10, 10]), above the 0.5% tail of a 99% one ([10, 20]).
    #[test]
    fn two_point_mixture_with_a_rare_value() {
        let sample = [10.0, 10.0, 10.0, 20.0, 10.0, 10.0, 10.0];
        let interval = median_interval(&plan(), "m", &sample).unwrap();
        assert_eq!(
            interval,
            Interval {
                lower: 10.0,
                upper: 10.0
            }
        );
        let wide = BootstrapPlan {
            confidence: 0.80,
            ..plan()
        };
        let sample = [10.0, 10.0, 20.0, 10.0, 10.0];
        let interval = median_interval(&wide, "m", &sample).unwrap();
        assert_eq!(
            interval,
            Interval {
                lower: 10.0,
                upper: 10.0
            }
        );
        let rarer = BootstrapPlan {
            confidence: 0.99,
            ..plan()
        };
        let interval = median_interval(&rarer, "m", &sample).unwrap();
        assert_eq!(
            interval,
            Interval {
                lower: 10.0,
                upper: 20.0
            }
        );
    }

    #[test]
    fn same_seed_same_bounds_other_label_other_stream() {
        let sample = [101.0, 97.0, 110.0, 93.0, 120.0, 99.0];
        let first = median_interval(&plan(), "a", &sample).unwrap();
        assert_eq!(first, median_interval(&plan(), "a", &sample).unwrap());
        assert_ne!(stream_seed(1, "a"), stream_seed(1, "b"));
        assert_ne!(stream_seed(1, "a"), stream_seed(2, "a"));
        assert!(first.lower <= stats::median(&sample).unwrap());
        assert!(first.upper >= stats::median(&sample).unwrap());
    }

    #[test]
    fn percentile_indices_are_the_documented_ones() {
        let mut values: Vec<f64> = (0..10_000).rev().map(f64::from).collect();
        let interval = percentile_bounds(&mut values, 0.95).unwrap();
        assert_eq!(
            interval,
            Interval {
                lower: 250.0,
                upper: 9749.0
            }
        );
        assert_eq!(percentile_bounds(&mut [], 0.95), None);
        assert_eq!(
            percentile_bounds(&mut [3.0], 0.95),
            Some(Interval {
                lower: 3.0,
                upper: 3.0
            })
        );
    }

    #[test]
    fn zero_median_gives_no_interval_and_empty_is_an_error() {
        assert_eq!(
            speedup_interval(&plan(), "z", Better::Lower, &[1.0], &[0.0]).unwrap(),
            None
        );
        assert_eq!(median_interval(&plan(), "e", &[]), Err(StatsError::Empty));
        assert!(median_interval(&plan(), "n", &[f64::NAN]).is_err());
    }

    #[test]
    fn plan_problems_are_named() {
        assert_eq!(plan().problem(), None);
        let mut bad = plan();
        bad.method = "other".into();
        assert!(bad.problem().unwrap().contains("method"));
        let mut bad = plan();
        bad.confidence = 1.0;
        assert!(bad.problem().unwrap().contains("confidence"));
        let mut bad = plan();
        bad.resamples = 5;
        assert!(bad.problem().unwrap().contains("resamples"));
    }
}
