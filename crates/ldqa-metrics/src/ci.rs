//! Confidence intervals over repeated runs (`ldqa ab --repeat N`).
//!
//! Two-sided 95 % Student-t interval for a mean: `mean ± t(0.975, n−1) · s / √n`, with `s`
//! the sample standard deviation (Bessel-corrected). For a ratio (a gain) measured once per
//! repeat, pass the per-repeat ratios: the interval is then for their mean.
//!
//! t quantiles: exact table for 1–30 degrees of freedom (NIST/SEMATECH e-Handbook of
//! Statistical Methods, §1.3.6.7.2, "Critical values of the Student's t distribution");
//! above 30, the Cornish-Fisher expansion of Abramowitz & Stegun, Handbook of
//! Mathematical Functions, 26.7.5 (error below 1e-4 there).

use serde::{Deserialize, Serialize};

/// t(0.975, df) for df = 1..=30 (NIST e-Handbook table 1.3.6.7.2).
const T975: [f64; 30] = [
    12.706_204_7,
    4.302_652_7,
    3.182_446_3,
    2.776_445_1,
    2.570_581_8,
    2.446_911_9,
    2.364_624_3,
    2.306_004_1,
    2.262_157_2,
    2.228_138_9,
    2.200_985_2,
    2.178_812_8,
    2.160_368_7,
    2.144_786_7,
    2.131_449_5,
    2.119_905_3,
    2.109_815_5,
    2.100_922_0,
    2.093_024_1,
    2.085_963_4,
    2.079_613_8,
    2.073_873_1,
    2.068_657_6,
    2.063_898_6,
    2.059_538_6,
    2.055_529_4,
    2.051_830_5,
    2.048_407_1,
    2.045_229_6,
    2.042_272_5,
];

/// The standard normal 0.975 quantile.
const Z975: f64 = 1.959_963_984_540_054;

/// Upper 0.975 quantile of Student's t with `df` degrees of freedom; `None` for `df == 0`.
pub fn t_quantile_975(df: usize) -> Option<f64> {
    match df {
        0 => None,
        1..=30 => Some(T975[df - 1]),
        _ => {
            // A&S 26.7.5: t ≈ z + g1/ν + g2/ν² + g3/ν³ + g4/ν⁴.
            let z = Z975;
            let v = df as f64;
            let (z3, z5, z7, z9) = (z.powi(3), z.powi(5), z.powi(7), z.powi(9));
            let g1 = (z3 + z) / 4.0;
            let g2 = (5.0 * z5 + 16.0 * z3 + 3.0 * z) / 96.0;
            let g3 = (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / 384.0;
            let g4 = (79.0 * z9 + 776.0 * z7 + 1482.0 * z5 - 1920.0 * z3 - 945.0 * z) / 92160.0;
            Some(z + g1 / v + g2 / v.powi(2) + g3 / v.powi(3) + g4 / v.powi(4))
        }
    }
}

/// A two-sided confidence interval for a mean, in the unit of the samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanInterval {
    /// Number of repeats.
    pub n: usize,
    /// Mean of the samples.
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator).
    pub std_dev: f64,
    /// `t · s / √n`.
    pub half_width: f64,
    /// `mean − half_width`.
    pub low: f64,
    /// `mean + half_width`.
    pub high: f64,
    /// Confidence level, e.g. 0.95.
    pub confidence: f64,
}

/// Student-t 95 % interval for the mean of `values` (any unit; the result is in the same
/// unit). `None` with fewer than two values or a non-finite value.
pub fn mean_ci95(values: &[f64]) -> Option<MeanInterval> {
    let n = values.len();
    if n < 2 || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std_dev = var.sqrt();
    let half_width = t_quantile_975(n - 1)? * std_dev / (n as f64).sqrt();
    Some(MeanInterval {
        n,
        mean,
        std_dev,
        half_width,
        low: mean - half_width,
        high: mean + half_width,
        confidence: 0.95,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_expansion_agree_at_the_seam() {
        // The expansion at df = 30 must reproduce the table's value closely.
        let z = Z975;
        let v = 30.0f64;
        let approx = z
            + (z.powi(3) + z) / 4.0 / v
            + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / 96.0 / v.powi(2);
        assert!((approx - T975[29]).abs() < 2e-4, "{approx}");
        // Known values: t(0.975, 40) = 2.021075, t(0.975, 120) = 1.979930 (NIST table).
        assert!((t_quantile_975(40).unwrap() - 2.021_075).abs() < 1e-4);
        assert!((t_quantile_975(120).unwrap() - 1.979_930).abs() < 1e-5);
        assert_eq!(t_quantile_975(0), None);
        // Decreasing towards z.
        for df in 1..200 {
            assert!(
                t_quantile_975(df).unwrap() > t_quantile_975(df + 1).unwrap(),
                "df {df}"
            );
        }
        assert!(t_quantile_975(100_000).unwrap() - Z975 < 1e-4);
    }

    #[test]
    fn interval_of_known_samples() {
        // mean 2, s = 1, n = 3: half width = 4.3026527 / sqrt(3).
        let ci = mean_ci95(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(ci.mean, 2.0);
        assert_eq!(ci.std_dev, 1.0);
        assert!((ci.half_width - 4.302_652_7 / 3f64.sqrt()).abs() < 1e-12);
        assert!((ci.low - (2.0 - ci.half_width)).abs() < 1e-12);
        assert_eq!(mean_ci95(&[1.0]), None);
        assert_eq!(mean_ci95(&[1.0, f64::INFINITY]), None);
        let flat = mean_ci95(&[5.0, 5.0, 5.0, 5.0]).unwrap();
        assert_eq!((flat.low, flat.high), (5.0, 5.0));
    }
}
