//! Figures as a reader of a report table wants them: `99.56 G` rather than
//! `99556460745.000`, `12,345` for a whole count, `1.8` for a ratio.
//!
//! Invariant: only report tables use this; `results.csv` and `summary.json`
//! keep `stats::format_figure` (every digit), so nothing is lost.

/// `value` rounded for reading: from a million up with an SI prefix and
/// two decimals (`99.56 G`), from a thousand up with grouped digits
/// (`12,345`, one decimal if it is not whole), below that whole or with up
/// to three decimals, trailing zeros dropped (`1.8`, `0.125`).
#[must_use]
pub fn readable(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let magnitude = value.abs();
    for (scale, prefix) in [(1e12, "T"), (1e9, "G"), (1e6, "M")] {
        if magnitude >= scale {
            return format!("{:.2} {prefix}", value / scale);
        }
    }
    if magnitude >= 1e3 {
        let tenths = (value * 10.0).round() / 10.0;
        let whole = tenths.trunc();
        let fraction = (tenths - whole).abs();
        let grouped = grouped(whole);
        return if fraction == 0.0 {
            grouped
        } else {
            format!("{grouped}.{}", (fraction * 10.0).round() as u8)
        };
    }
    let shown = format!("{value:.3}");
    let trimmed = shown.trim_end_matches('0').trim_end_matches('.');
    if trimmed == "-0" {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// A whole number below 10^12 with `,` between groups of three digits.
fn grouped(whole: f64) -> String {
    let digits = format!("{:.0}", whole.abs());
    let mut shown = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if whole < 0.0 {
        shown.push('-');
    }
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            shown.push(',');
        }
        shown.push(digit);
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_figures_get_units_and_counts_no_fraction() {
        assert_eq!(readable(99_556_460_745.0), "99.56 G");
        assert_eq!(readable(7_981_000.0), "7.98 M");
        assert_eq!(readable(2.5e12), "2.50 T");
        assert_eq!(readable(12_345.0), "12,345");
        assert_eq!(readable(-12_345.5), "-12,345.5");
        assert_eq!(readable(1_000.0), "1,000");
        assert_eq!(readable(999_999.0), "999,999");
        assert_eq!(readable(310.0), "310");
        assert_eq!(readable(1.800), "1.8");
        assert_eq!(readable(0.125), "0.125");
        assert_eq!(readable(0.0), "0");
        assert_eq!(readable(-0.0001), "0");
    }
}
