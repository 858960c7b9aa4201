//! Descriptive statistics over run figures, and their deterministic rounding.
//!
//! Empty input or a non-finite value is an error, never a NaN that would
//! quietly pass or fail a gate. Figures are rounded to a fixed number of
//! decimals before they are stored, so recomputation yields identical bytes.

use serde::{Deserialize, Serialize};

/// Decimals kept for every stored figure (milliseconds to the microsecond).
pub const DECIMALS: i32 = 3;

/// Why statistics could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// There were no values.
    #[error("no values to summarize")]
    Empty,
    /// A value was NaN or infinite.
    #[error("value {0} is not a finite number")]
    NotFinite(f64),
}

/// Summary statistics of one sample, rounded to [`DECIMALS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1); None for a single value.
    pub stddev: Option<f64>,
    /// Number of values.
    pub n: usize,
}

fn check(values: &[f64]) -> Result<(), StatsError> {
    if values.is_empty() {
        return Err(StatsError::Empty);
    }
    match values.iter().find(|value| !value.is_finite()) {
        Some(value) => Err(StatsError::NotFinite(*value)),
        None => Ok(()),
    }
}

/// Median of `values` (unrounded).
pub fn median(values: &[f64]) -> Result<f64, StatsError> {
    check(values)?;
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Ok(if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        sorted[middle - 1] / 2.0 + sorted[middle] / 2.0
    })
}

/// Smallest of `values`.
pub fn min(values: &[f64]) -> Result<f64, StatsError> {
    check(values)?;
    Ok(values.iter().copied().fold(f64::INFINITY, f64::min))
}

/// Largest of `values`.
pub fn max(values: &[f64]) -> Result<f64, StatsError> {
    check(values)?;
    Ok(values.iter().copied().fold(f64::NEG_INFINITY, f64::max))
}

/// Arithmetic mean of `values` (summed in sorted order, so order does not matter).
pub fn mean(values: &[f64]) -> Result<f64, StatsError> {
    check(values)?;
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Ok(sorted.iter().sum::<f64>() / sorted.len() as f64)
}

/// Sample standard deviation (divisor n - 1); None for a single value.
pub fn sample_stddev(values: &[f64]) -> Result<Option<f64>, StatsError> {
    let average = mean(values)?;
    if values.len() < 2 {
        return Ok(None);
    }
    let mut squares: Vec<f64> = values
        .iter()
        .map(|value| (value - average).powi(2))
        .collect();
    squares.sort_by(f64::total_cmp);
    Ok(Some(
        (squares.iter().sum::<f64>() / (values.len() - 1) as f64).sqrt(),
    ))
}

/// All statistics of `values`, rounded with [`round`].
pub fn summarize(values: &[f64]) -> Result<Summary, StatsError> {
    Ok(Summary {
        median: round(median(values)?),
        min: round(min(values)?),
        max: round(max(values)?),
        mean: round(mean(values)?),
        stddev: sample_stddev(values)?.map(round),
        n: values.len(),
    })
}

/// `value` rounded half away from zero to [`DECIMALS`] decimals (-0 becomes 0).
pub fn round(value: f64) -> f64 {
    let scale = 10f64.powi(DECIMALS);
    let rounded = (value * scale).round() / scale;
    if rounded == 0.0 {
        0.0
    } else {
        rounded
    }
}

/// `value` with exactly [`DECIMALS`] decimals, for CSV and reports.
pub fn format_figure(value: f64) -> String {
    format!("{:.*}", DECIMALS as usize, round(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_input_is_an_error_not_nan() {
        assert_eq!(median(&[]), Err(StatsError::Empty));
        assert_eq!(summarize(&[]), Err(StatsError::Empty));
        assert!(matches!(
            mean(&[1.0, f64::NAN]),
            Err(StatsError::NotFinite(_))
        ));
    }

    #[test]
    fn known_values() {
        let values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let summary = summarize(&values).unwrap();
        assert_eq!(summary.median, 4.5);
        assert_eq!(summary.min, 2.0);
        assert_eq!(summary.max, 9.0);
        assert_eq!(summary.mean, 5.0);
        assert_eq!(summary.stddev, Some(2.138));
        assert_eq!(summary.n, 8);
        assert_eq!(median(&[3.0, 1.0, 2.0]).unwrap(), 2.0);
        assert_eq!(sample_stddev(&[7.0]).unwrap(), None);
    }

    #[test]
    fn formatting_is_fixed() {
        assert_eq!(format_figure(412.3), "412.300");
        assert_eq!(format_figure(1.0005), "1.001");
        assert_eq!(format_figure(-0.0001), "0.000");
        assert_eq!(round(1.23456), 1.235);
    }

    proptest! {
        #[test]
        fn median_lies_between_min_and_max(values in proptest::collection::vec(-1e9f64..1e9, 1..40)) {
            let median = median(&values).unwrap();
            prop_assert!(min(&values).unwrap() <= median);
            prop_assert!(median <= max(&values).unwrap());
        }

        #[test]
        fn statistics_ignore_order(values in proptest::collection::vec(-1e6f64..1e6, 1..40), seed in any::<u64>()) {
            let mut shuffled = values.clone();
            let mut state = seed | 1;
            for index in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                shuffled.swap(index, (state % (index as u64 + 1)) as usize);
            }
            prop_assert_eq!(summarize(&values).unwrap(), summarize(&shuffled).unwrap());
        }
    }
}
