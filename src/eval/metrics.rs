//! Counts, rates and Wilson score intervals.
//!
//! ```
//! use deliberate::eval::metrics::{Confusion, wilson};
//!
//! let (lo, hi) = wilson(8, 10);
//! assert!(lo < 0.8 && 0.8 < hi);
//! let c = Confusion { tp: 8, fn_: 2, fp: 1, tn: 9 };
//! assert_eq!(c.catch_rate().value, Some(0.8));
//! assert_eq!(c.false_block_rate().value, Some(0.1));
//! ```

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

/// z for a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

/// Wilson score 95 % interval for `k` successes in `n` trials (`(0, 1)` when `n == 0`).
///
/// `k` and `n` are `f64` so that the F1 score, a ratio with half-counts, can use it too.
pub fn wilson_f(k: f64, n: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let p = k / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Wilson score 95 % interval for `k` successes in `n` trials.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    wilson_f(k as f64, n as f64)
}

/// A proportion with its 95 % Wilson interval; `value` is `None` when nothing was counted.
///
/// Every rate in the JSON reports has this one shape: `{"value": 0.8 | null, "ci": [lo, hi] |
/// null, "k": 8, "n": 10}`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// The proportion.
    pub value: Option<f64>,
    /// Lower bound of the 95 % Wilson interval.
    pub lo: Option<f64>,
    /// Upper bound.
    pub hi: Option<f64>,
    /// Numerator.
    pub k: f64,
    /// Denominator.
    pub n: f64,
}

impl Rate {
    /// `k / n` with its interval.
    pub fn new(k: f64, n: f64) -> Rate {
        if n <= 0.0 {
            return Rate {
                value: None,
                lo: None,
                hi: None,
                k,
                n,
            };
        }
        let (lo, hi) = wilson_f(k, n);
        Rate {
            value: Some(k / n),
            lo: Some(lo),
            hi: Some(hi),
            k,
            n,
        }
    }

    /// `"83.3% [79.1–86.8] (250/300)"`, or `"–"` when undefined.
    pub fn display(&self) -> String {
        match (self.value, self.lo, self.hi) {
            (Some(v), Some(lo), Some(hi)) => format!(
                "{:.1}% [{:.1}–{:.1}] ({}/{})",
                v * 100.0,
                lo * 100.0,
                hi * 100.0,
                fmt_count(self.k),
                fmt_count(self.n)
            ),
            _ => "–".into(),
        }
    }

    /// The interval as `[lo, hi]`, for JSON.
    pub fn ci(&self) -> Option<[f64; 2]> {
        Some([self.lo?, self.hi?])
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Rate", 4)?;
        s.serialize_field("value", &self.value)?;
        s.serialize_field("ci", &self.ci())?;
        s.serialize_field("k", &self.k)?;
        s.serialize_field("n", &self.n)?;
        s.end()
    }
}

fn fmt_count(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// A confusion matrix: unsafe cases are positives, "caught" is the prediction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// Unsafe and caught.
    pub tp: u64,
    /// Unsafe and let through (misses).
    pub fn_: u64,
    /// Safe and caught (false blocks).
    pub fp: u64,
    /// Safe and let through.
    pub tn: u64,
}

impl Confusion {
    /// Counts one case.
    pub fn add(&mut self, unsafe_: bool, caught: bool) {
        match (unsafe_, caught) {
            (true, true) => self.tp += 1,
            (true, false) => self.fn_ += 1,
            (false, true) => self.fp += 1,
            (false, false) => self.tn += 1,
        }
    }

    /// Number of cases.
    pub fn n(&self) -> u64 {
        self.tp + self.fn_ + self.fp + self.tn
    }

    /// Share of unsafe cases caught (recall).
    pub fn catch_rate(&self) -> Rate {
        Rate::new(self.tp as f64, (self.tp + self.fn_) as f64)
    }

    /// Share of safe cases caught.
    pub fn false_block_rate(&self) -> Rate {
        Rate::new(self.fp as f64, (self.fp + self.tn) as f64)
    }

    /// Share of caught cases that were unsafe.
    pub fn precision(&self) -> Rate {
        Rate::new(self.tp as f64, (self.tp + self.fp) as f64)
    }

    /// F1 = tp / (tp + (fp + fn) / 2), with a Wilson interval on that ratio (an approximation:
    /// F1 is not a plain proportion).
    pub fn f1(&self) -> Rate {
        let tp = self.tp as f64;
        Rate::new(tp, tp + (self.fp + self.fn_) as f64 / 2.0)
    }

    /// Share of cases classified right.
    pub fn accuracy(&self) -> Rate {
        Rate::new((self.tp + self.tn) as f64, self.n() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_known_values() {
        // Reference values from the textbook formula (e.g. statsmodels proportion_confint
        // method="wilson").
        let (lo, hi) = wilson(8, 10);
        assert!((lo - 0.4902).abs() < 1e-3, "{lo}");
        assert!((hi - 0.9433).abs() < 1e-3, "{hi}");
        let (lo, hi) = wilson(0, 20);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.1611).abs() < 1e-3, "{hi}");
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }

    #[test]
    fn confusion_rates() {
        let mut c = Confusion::default();
        for (u, k) in [
            (true, true),
            (true, true),
            (true, false),
            (false, true),
            (false, false),
        ] {
            c.add(u, k);
        }
        assert_eq!(c.catch_rate().value, Some(2.0 / 3.0));
        assert_eq!(c.false_block_rate().value, Some(0.5));
        assert_eq!(c.precision().value, Some(2.0 / 3.0));
        assert_eq!(c.f1().value, Some(2.0 / 3.0));
        assert_eq!(Confusion::default().precision().value, None);
    }

    #[test]
    fn a_rate_serializes_as_value_ci_k_n() {
        let v = serde_json::to_value(Rate::new(8.0, 10.0)).unwrap();
        assert_eq!(v["value"], 0.8);
        assert_eq!(v["k"], 8.0);
        assert_eq!(v["n"], 10.0);
        assert!(v["ci"][0].as_f64().unwrap() < 0.8 && 0.8 < v["ci"][1].as_f64().unwrap());
        let none = serde_json::to_value(Rate::new(0.0, 0.0)).unwrap();
        assert_eq!(
            none,
            serde_json::json!({"value": null, "ci": null, "k": 0.0, "n": 0.0})
        );
    }
}
