//! Percentiles and medians over recorded samples.

/// Samples sorted once, queried for any number of percentiles.
#[derive(Debug, Clone)]
pub struct Percentiles {
    sorted: Vec<u64>,
}

impl Percentiles {
    /// Sorts `samples`.
    pub fn new(mut samples: Vec<u64>) -> Self {
        samples.sort_unstable();
        Self { sorted: samples }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The `q`-th percentile (0–100) by the nearest-rank method, `None` without samples.
    pub fn at(&self, q: f64) -> Option<u64> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let rank = ((q / 100.0) * n as f64).ceil() as usize;
        Some(self.sorted[rank.clamp(1, n) - 1])
    }

    /// The largest sample.
    pub fn max(&self) -> Option<u64> {
        self.sorted.last().copied()
    }
}

/// The median of `values` (the mean of the two middle ones for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = Percentiles::new((1..=100).rev().collect());
        assert_eq!(p.at(50.0), Some(50));
        assert_eq!(p.at(99.0), Some(99));
        assert_eq!(p.at(100.0), Some(100));
        assert_eq!(p.at(0.0), Some(1));
        assert_eq!(Percentiles::new(vec![]).at(50.0), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
