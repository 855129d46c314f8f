//! Latency recording in HDR histograms (microseconds, 3 significant digits) and the correction
//! for coordinated omission.
//!
//! A load generator that waits for an answer before sending the next request stops sending
//! exactly when the server stalls, so the stall shows up in one sample instead of in every
//! request that a real user would have sent meanwhile ("coordinated omission"). Two remedies:
//! - open model (`--rate`): each request has an intended send time `t0 + i / rate`, and its
//!   latency is measured from that time, so queueing behind a stall is counted in full;
//! - closed loop (`--connections`): the recorded latencies are corrected afterwards with
//!   [`Histogram::clone_correct`], the expected interval between requests of one connection
//!   being `connections / achieved throughput`.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// A fresh latency histogram in microseconds. It resizes itself to the largest value recorded,
/// so one per connection and route stays small.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant digits is a valid precision")
}

/// Records a duration in microseconds (at least 1), growing the histogram as needed.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = (d.as_micros() as u64).max(1);
    // `saturating_record` never grows the histogram; `record` does (and fails only beyond
    // what a u64 histogram can track).
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

/// Which correction for coordinated omission the reported latencies carry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Correction {
    /// Open model: measured from each request's intended send time.
    IntendedStart {
        /// The arrival rate, requests per second.
        rate: f64,
    },
    /// Closed loop: corrected after the run with this expected interval.
    PostHoc {
        /// Expected interval between requests of one connection, microseconds.
        interval_us: u64,
    },
}

impl Correction {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Correction::IntendedStart { rate } => {
                format!("open model at {rate:.0} req/s: latency measured from each request's intended send time")
            }
            Correction::PostHoc { interval_us } => format!(
                "closed loop: corrected post hoc (HdrHistogram clone_correct) with an expected interval of {:.3} ms \
                 = connections / throughput",
                *interval_us as f64 / 1e3
            ),
        }
    }
}

/// The expected interval between two requests of one connection in a closed loop: each of
/// `connections` sends one after another, so at `calls / elapsed` requests per second in all,
/// one connection sends every `connections / throughput` seconds. In microseconds, at least 1.
pub fn closed_loop_interval_us(connections: usize, calls: u64, elapsed: Duration) -> u64 {
    if calls == 0 || elapsed.is_zero() {
        return 1;
    }
    let throughput = calls as f64 / elapsed.as_secs_f64();
    ((connections as f64 / throughput) * 1e6).round().max(1.0) as u64
}

/// Percentiles of a histogram in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Values recorded (after a post-hoc correction this includes the synthetic ones).
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest value.
    pub max_ms: f64,
}

impl Summary {
    /// The percentiles of `h` (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> Summary {
        if h.is_empty() {
            return Summary::default();
        }
        let ms = |us: u64| us as f64 / 1e3;
        Summary {
            count: h.len(),
            mean_ms: h.mean() / 1e3,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closed_loop_interval_is_connections_over_throughput() {
        // 10,000 requests in 2 s over 50 connections: 5,000 req/s, each connection every 10 ms.
        assert_eq!(closed_loop_interval_us(50, 10_000, Duration::from_secs(2)), 10_000);
        assert_eq!(closed_loop_interval_us(8, 0, Duration::from_secs(1)), 1, "no calls, no interval");
    }

    #[test]
    fn a_stall_hidden_by_a_closed_loop_is_restored_by_the_post_hoc_correction() {
        // One connection, a request every 1 ms, then one request stalled 100 ms: a real user
        // arriving every 1 ms during the stall would have waited 99, 98, ... 1 ms too.
        let mut h = new_histogram();
        for _ in 0..1_000 {
            record(&mut h, Duration::from_millis(1));
        }
        record(&mut h, Duration::from_millis(100));
        let raw = Summary::of(&h);
        assert!(raw.p99_ms < 1.1, "raw p99 hides the stall: {raw:?}");
        let corrected = Summary::of(&h.clone_correct(1_000));
        assert_eq!(corrected.count, 1_000 + 100, "99 synthetic values below the stall, down to the interval");
        assert!(corrected.p99_ms > 80.0, "the stall shows at p99 once corrected: {corrected:?}");
        assert_eq!(corrected.max_ms, raw.max_ms);
    }

    #[test]
    fn percentiles_are_in_milliseconds() {
        let mut h = new_histogram();
        for ms in 1..=100 {
            record(&mut h, Duration::from_millis(ms));
        }
        let s = Summary::of(&h);
        assert!((s.p50_ms - 50.0).abs() < 0.1 && (s.max_ms - 100.0).abs() < 0.1, "{s:?}");
        assert_eq!(Summary::of(&new_histogram()), Summary::default());
    }
}
