//! Latency histograms and their summaries.
//!
//! Every latency is recorded in nanoseconds into an HDR histogram (3 significant digits, up to
//! one minute), so percentiles stay exact enough at the tail without keeping every sample. The
//! summary is what reports and plots consume: microseconds as floating point.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The largest latency a histogram accepts (values above are clamped to it).
const MAX_NS: u64 = 60_000_000_000;

#[derive(Debug, thiserror::Error)]
pub enum HistError {
    #[error("histogram: {0}")]
    Create(#[from] hdrhistogram::CreationError),
    #[error("histogram merge: {0}")]
    Add(#[from] hdrhistogram::AdditionError),
}

/// A latency histogram in nanoseconds.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Latencies {
    pub fn new() -> Result<Self, HistError> {
        Ok(Self(Histogram::new_with_bounds(1, MAX_NS, 3)?))
    }

    pub fn record(&mut self, d: std::time::Duration) {
        let ns = u64::try_from(d.as_nanos())
            .unwrap_or(MAX_NS)
            .clamp(1, MAX_NS);
        self.0.saturating_record(ns);
    }

    pub fn merge(&mut self, other: &Latencies) -> Result<(), HistError> {
        self.0.add(&other.0)?;
        Ok(())
    }

    pub fn summary(&self) -> Summary {
        let us = |q: f64| self.0.value_at_quantile(q) as f64 / 1000.0;
        Summary {
            count: self.0.len(),
            p50_us: us(0.50),
            p90_us: us(0.90),
            p99_us: us(0.99),
            p999_us: us(0.999),
            max_us: self.0.max() as f64 / 1000.0,
            mean_us: self.0.mean() / 1000.0,
        }
    }
}

/// Percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

/// The median of a few samples (cold starts), in microseconds; `None` when empty.
pub fn median_us(samples: &[std::time::Duration]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn percentiles_in_microseconds() {
        let mut h = Latencies::new().unwrap();
        for i in 1..=1000u64 {
            h.record(Duration::from_micros(i));
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50_us - 500.0).abs() < 2.0, "{s:?}");
        assert!((s.p99_us - 990.0).abs() < 3.0, "{s:?}");
    }

    #[test]
    fn median_of_samples() {
        let d = |ms| Duration::from_millis(ms);
        assert_eq!(median_us(&[]), None);
        assert_eq!(median_us(&[d(3), d(1), d(2)]), Some(2000.0));
        assert_eq!(median_us(&[d(1), d(2)]), Some(1500.0));
    }
}
