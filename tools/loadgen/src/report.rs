//! Reports of a run: the serialisable numbers (for `--json`) and their Markdown tables.

use std::fmt::Write;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{
    client::Target,
    engine::{RouteStats, RunStats},
    histogram::{Correction, Summary, closed_loop_interval_us, new_histogram},
    schedule::Pacing,
};

/// Answers of one outcome.
#[derive(Debug, Clone, Serialize)]
pub struct OutcomeCount {
    /// `201`, `400 COUPON_SOLD_OUT`, `transport error: io`.
    pub outcome: String,
    /// HTTP status; 0 for transport errors.
    pub status: u16,
    /// The contract's error code, or the transport error kind.
    pub code: Option<String>,
    /// How many.
    pub count: u64,
}

/// Latency and outcomes of one route.
#[derive(Debug, Clone, Serialize)]
pub struct RouteReport {
    /// Route label.
    pub route: String,
    /// Requests sent on it.
    pub requests: u64,
    /// Latency corrected for coordinated omission (see the run's `correction`).
    pub latency: Summary,
    /// Latency from actual send to answer, uncorrected.
    pub uncorrected: Summary,
    /// Answers per outcome.
    pub outcomes: Vec<OutcomeCount>,
}

/// Throughput, latency and outcomes of a run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The server's base URL.
    pub target: String,
    /// How the load was offered, in words.
    pub load: String,
    /// Connections.
    pub connections: usize,
    /// Arrival rate of the open model.
    pub rate: Option<f64>,
    /// Requests sent (answered or failed).
    pub requests: u64,
    /// Open model: the requests that were arrivals of the schedule (the others followed an
    /// answer on their connection: a payment after its order, a retry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<u64>,
    /// From the first send to the last answer.
    pub elapsed_secs: f64,
    /// `requests / elapsed_secs`.
    pub throughput_rps: f64,
    /// The correction for coordinated omission applied to `latency`.
    pub correction: Correction,
    /// The same, in words.
    pub correction_note: String,
    /// Latency over every route, corrected.
    pub latency: Summary,
    /// Latency over every route, from actual send, uncorrected.
    pub uncorrected: Summary,
    /// Answers per outcome over every route.
    pub outcomes: Vec<OutcomeCount>,
    /// Per route (one for single-route scenarios).
    pub routes: Vec<RouteReport>,
    /// Requests without an HTTP answer.
    pub transport_errors: u64,
    /// Connections reopened during the run.
    pub reconnects: u64,
}

fn outcomes_of(stats: &[&RouteStats]) -> Vec<OutcomeCount> {
    let mut all: Vec<(super::engine::Outcome, u64)> = Vec::new();
    for r in stats {
        for (o, n) in &r.outcomes {
            match all.iter_mut().find(|(x, _)| x == o) {
                Some((_, c)) => *c += n,
                None => all.push((o.clone(), *n)),
            }
        }
    }
    all.sort();
    all.into_iter()
        .map(|(o, count)| OutcomeCount { outcome: o.label(), status: o.status, code: o.code.map(String::from), count })
        .collect()
}

/// The corrected and uncorrected histograms of some routes together.
fn latency_of(stats: &[&RouteStats], correction: Correction) -> (Summary, Summary) {
    let (mut service, mut intended) = (new_histogram(), new_histogram());
    for r in stats {
        service.add(&r.service).expect("auto-resizing histograms add");
        if let Some(h) = &r.intended {
            intended.add(h).expect("auto-resizing histograms add");
        }
    }
    let corrected: Histogram<u64> = match correction {
        Correction::IntendedStart { .. } => intended,
        Correction::PostHoc { interval_us } => service.clone_correct(interval_us),
    };
    (Summary::of(&corrected), Summary::of(&service))
}

impl LoadReport {
    /// Summarises a run.
    pub fn new(target: &Target, stats: &RunStats) -> LoadReport {
        let connections = stats.pacing.connections();
        let correction = match stats.pacing {
            Pacing::Open { rate, .. } => Correction::IntendedStart { rate },
            Pacing::Closed { connections } => {
                Correction::PostHoc { interval_us: closed_loop_interval_us(connections, stats.calls, stats.elapsed) }
            }
        };
        let all: Vec<&RouteStats> = stats.routes.iter().collect();
        let (latency, uncorrected) = latency_of(&all, correction);
        let routes = stats
            .routes
            .iter()
            .map(|r| {
                let (latency, uncorrected) = latency_of(&[r], correction);
                RouteReport {
                    route: r.route.to_owned(),
                    requests: r.outcomes.iter().map(|(_, n)| n).sum(),
                    latency,
                    uncorrected,
                    outcomes: outcomes_of(&[r]),
                }
            })
            .collect();
        let secs = stats.elapsed.as_secs_f64();
        LoadReport {
            target: target.base.clone(),
            load: stats.pacing.describe(),
            connections,
            rate: match stats.pacing {
                Pacing::Open { rate, .. } => Some(rate),
                Pacing::Closed { .. } => None,
            },
            requests: stats.calls,
            arrivals: matches!(stats.pacing, Pacing::Open { .. }).then_some(stats.arrivals),
            elapsed_secs: secs,
            throughput_rps: if secs > 0.0 { stats.calls as f64 / secs } else { 0.0 },
            correction,
            correction_note: correction.describe(),
            latency,
            uncorrected,
            outcomes: outcomes_of(&all),
            routes,
            transport_errors: stats.routes.iter().map(|r| r.with_status(0)).sum(),
            reconnects: stats.reconnects,
        }
    }

    /// Answers with this status.
    pub fn with_status(&self, status: u16) -> u64 {
        self.outcomes.iter().filter(|o| o.status == status).map(|o| o.count).sum()
    }

    /// Answers with a 5xx status.
    pub fn server_errors(&self) -> u64 {
        self.outcomes.iter().filter(|o| o.status >= 500).map(|o| o.count).sum()
    }

    /// The Markdown tables: run, latency (per route when there are several), outcomes.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "| | |\n| --- | --- |");
        let _ = writeln!(s, "| target | {} |", self.target);
        let _ = writeln!(s, "| load | {} |", self.load);
        let _ = writeln!(s, "| requests | {} in {:.2} s |", self.requests, self.elapsed_secs);
        if let Some(arrivals) = self.arrivals.filter(|a| *a < self.requests) {
            let _ = writeln!(s, "| arrivals | {arrivals} (the other requests followed an answer: payments, retries) |");
        }
        let _ = writeln!(s, "| throughput | {:.0} req/s |", self.throughput_rps);
        let _ = writeln!(s, "| transport errors | {} ({} reconnects) |", self.transport_errors, self.reconnects);
        let _ = writeln!(s, "| latency correction | {} |", self.correction_note);
        let _ = writeln!(s, "\n| latency (ms) | requests | p50 | p90 | p99 | p99.9 | max |");
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        let mut row = |name: &str, n: u64, l: &Summary| {
            let _ = writeln!(
                s,
                "| {name} | {n} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
            );
        };
        if self.routes.len() > 1 {
            for r in &self.routes {
                row(&format!("`{}`", r.route), r.requests, &r.latency);
            }
        }
        row("all, corrected", self.requests, &self.latency);
        row("all, uncorrected", self.requests, &self.uncorrected);
        let _ = writeln!(s, "\n| outcome | count |\n| --- | ---: |");
        if self.routes.len() > 1 {
            for r in &self.routes {
                for o in &r.outcomes {
                    let _ = writeln!(s, "| `{}` {} | {} |", r.route, o.outcome, o.count);
                }
            }
        } else {
            for o in &self.outcomes {
                let _ = writeln!(s, "| {} | {} |", o.outcome, o.count);
            }
        }
        s
    }
}
