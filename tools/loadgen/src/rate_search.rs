//! `jupang loadgen open-run --find-rate --p99-ms 10`: the highest arrival rate the server holds.
//! Short open-model runs (probes of `--probe-secs`, each on fresh sales) at rising rates, from
//! `--start-rate` doubling up to `--max-rate` while they hold, then bisecting between the highest
//! rate held and the lowest that was not, until the two are within 5% or `--max-probes` have run.
//! A probe holds when its corrected p99 (measured from each request's intended send time) is
//! within the bound, no answer is 5xx, no request failed in transport, and its correctness
//! verdict passes. The report is the table of probes and the highest rate held.

use std::{fmt::Write, time::Duration};

use clap::Args;
use serde::Serialize;

use super::{
    Common,
    client::Target,
    emit,
    open_run::{self, OpenRunReport, Prepared},
    schedule::{Pacing, parse_rate},
    setup::Setup,
};

/// Probes stop bisecting once the highest rate held is within this fraction of the lowest not held.
const PRECISION: f64 = 0.05;
/// No probe goes below this rate (requests per second).
const MIN_RATE: f64 = 1.0;

/// Options of the rate search.
#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// Search the highest arrival rate held within `--p99-ms` instead of making one run.
    #[arg(long, conflicts_with = "rate")]
    pub find_rate: bool,
    /// The p99 bound of the rate search, in milliseconds.
    #[arg(long, default_value_t = 10.0, requires = "find_rate")]
    pub p99_ms: f64,
    /// Length of each probe, in seconds.
    #[arg(long, default_value_t = 3, requires = "find_rate", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub probe_secs: u64,
    /// Rate of the first probe (requests per second).
    #[arg(long, default_value_t = 1_000.0, requires = "find_rate", value_parser = parse_rate)]
    pub start_rate: f64,
    /// No probe goes above this rate.
    #[arg(long, default_value_t = 100_000.0, requires = "find_rate", value_parser = parse_rate)]
    pub max_rate: f64,
    /// At most this many probes.
    #[arg(long, default_value_t = 12, requires = "find_rate", value_parser = clap::value_parser!(u32).range(1..=50))]
    pub max_probes: u32,
}

/// One probe of the search.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// Offered arrival rate, requests per second.
    pub rate: f64,
    /// What was achieved.
    pub throughput_rps: f64,
    /// Requests sent.
    pub requests: u64,
    /// Median latency (from intended send time), ms.
    pub p50_ms: f64,
    /// 99th percentile (from intended send time), ms.
    pub p99_ms: f64,
    /// Largest latency, ms.
    pub max_ms: f64,
    /// Answers 5xx.
    pub server_errors: u64,
    /// Requests without an answer.
    pub transport_errors: u64,
    /// The open run's correctness verdict, `PASS` or `FAIL`.
    pub verdict: &'static str,
    /// Every condition held.
    pub held: bool,
    /// What did not hold, or `held`.
    pub why: String,
}

impl Probe {
    fn of(rate: f64, run: &OpenRunReport, p99_bound_ms: f64) -> Probe {
        let load = &run.load;
        let (server_errors, transport_errors) = (load.server_errors(), load.transport_errors);
        let mut why = Vec::new();
        if load.latency.p99_ms > p99_bound_ms {
            why.push(format!("p99 {:.2} ms > {p99_bound_ms} ms", load.latency.p99_ms));
        }
        if server_errors > 0 {
            why.push(format!("{server_errors} answers 5xx"));
        }
        if transport_errors > 0 {
            why.push(format!("{transport_errors} transport errors"));
        }
        if !run.verdict.passed {
            why.push("verdict FAIL".into());
        }
        Probe {
            rate,
            throughput_rps: load.throughput_rps,
            requests: load.requests,
            p50_ms: load.latency.p50_ms,
            p99_ms: load.latency.p99_ms,
            max_ms: load.latency.max_ms,
            server_errors,
            transport_errors,
            verdict: run.verdict.word(),
            held: why.is_empty(),
            why: if why.is_empty() { "held".into() } else { why.join(", ") },
        }
    }
}

/// The rate of the next probe, given the highest rate held and the lowest not held so far:
/// double while everything holds (up to `max_rate`), halve while nothing does, else bisect.
/// `None` when the search is over.
pub fn next_rate(held: Option<f64>, failed: Option<f64>, max_rate: f64) -> Option<f64> {
    let next = match (held, failed) {
        (None, None) => return None,
        (Some(h), None) => (h < max_rate).then(|| (h * 2.0).min(max_rate))?,
        (None, Some(f)) => (f / 2.0).round(),
        (Some(h), Some(f)) => {
            if f - h <= h * PRECISION {
                return None;
            }
            ((h + f) / 2.0).round()
        }
    };
    let inside = next >= MIN_RATE && held.is_none_or(|h| next > h) && failed.is_none_or(|f| next < f);
    inside.then_some(next)
}

/// What the rate search found.
#[derive(Debug, Clone, Serialize)]
pub struct RateSearchReport {
    /// `open-run --find-rate`.
    pub scenario: &'static str,
    /// The server's base URL.
    pub target: String,
    /// The p99 bound, ms.
    pub p99_bound_ms: f64,
    /// Length of each probe, s.
    pub probe_secs: u64,
    /// Connections sending the arrivals.
    pub connections: usize,
    /// People pressing (again from the start when everyone has pressed within a probe).
    pub people: u32,
    /// Coupons per sale.
    pub coupons: u32,
    /// Fresh sales per probe.
    pub sales: u32,
    /// The highest rate held, requests per second (`None`: no probe held).
    pub highest_held_rps: Option<f64>,
    /// The probes, in the order run.
    pub probes: Vec<Probe>,
    /// Every probe's open run in full.
    pub runs: Vec<OpenRunReport>,
}

impl RateSearchReport {
    /// Markdown for people.
    pub fn markdown(&self) -> String {
        let mut s = String::from("## jupang loadgen open-run --find-rate\n\n");
        let _ = writeln!(
            s,
            "Open-model probes of {} s against {}, each on {} fresh sale(s) of {} coupons, {} people, over up to {} \
             connections. A probe holds when p99 (from each request's intended send time) <= {} ms, no answer is 5xx, \
             no request failed in transport and the open run's verdict passes.\n",
            self.probe_secs, self.target, self.sales, self.coupons, self.people, self.connections, self.p99_bound_ms
        );
        s.push_str("| rate (req/s) | achieved req/s | requests | p50 ms | p99 ms | max ms | 5xx | transport errors | verdict | held |\n");
        s.push_str("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n");
        for p in &self.probes {
            let _ = writeln!(
                s,
                "| {:.0} | {:.0} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} |",
                p.rate,
                p.throughput_rps,
                p.requests,
                p.p50_ms,
                p.p99_ms,
                p.max_ms,
                p.server_errors,
                p.transport_errors,
                p.verdict,
                p.why
            );
        }
        let _ = match self.highest_held_rps {
            Some(r) => writeln!(s, "\n**highest rate held with p99 <= {} ms: {r:.0} req/s**", self.p99_bound_ms),
            None => writeln!(s, "\n**no rate held with p99 <= {} ms**", self.p99_bound_ms),
        };
        s
    }
}

/// Runs the search and prints its report; fails when no probe held.
pub async fn run(
    setup: &Setup,
    target: &Target,
    prepared: &Prepared,
    common: &Common,
    connections: usize,
    args: &SearchArgs,
) -> anyhow::Result<()> {
    anyhow::ensure!(args.p99_ms > 0.0, "--p99-ms must be positive");
    anyhow::ensure!(args.start_rate <= args.max_rate, "--start-rate must not exceed --max-rate");
    let (mut probes, mut runs) = (Vec::new(), Vec::new());
    let (mut held, mut failed): (Option<f64>, Option<f64>) = (None, None);
    let mut rate = Some(args.start_rate);
    while let Some(r) = rate.filter(|_| probes.len() < args.max_probes as usize) {
        let mut options = common.options(Pacing::Open { rate: r, connections }, &format!("find-rate {r:.0}/s"));
        options.duration = Some(Duration::from_secs(args.probe_secs));
        // Each probe on fresh sales, so no probe inherits a sold-out coupon from the one before.
        let run = open_run::execute(setup, target, prepared, options, common.converge_timeout()).await?;
        let p = Probe::of(r, &run, args.p99_ms);
        if p.held {
            held = Some(held.map_or(r, |h| h.max(r)));
        } else {
            failed = Some(failed.map_or(r, |f| f.min(r)));
        }
        if !common.quiet {
            eprintln!("find-rate: {r:.0} req/s: p99 {:.2} ms, {}", p.p99_ms, p.why);
        }
        probes.push(p);
        runs.push(run);
        rate = next_rate(held, failed, args.max_rate);
    }
    let report = RateSearchReport {
        scenario: "open-run --find-rate",
        target: target.base.clone(),
        p99_bound_ms: args.p99_ms,
        probe_secs: args.probe_secs,
        connections,
        people: prepared.spec.people,
        coupons: prepared.spec.coupons,
        sales: prepared.spec.sales.sales,
        highest_held_rps: held,
        probes,
        runs,
    };
    emit(common.json, &report, || report.markdown())?;
    anyhow::ensure!(held.is_some(), "no rate held with p99 <= {} ms", args.p99_ms);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_doubles_while_held_then_bisects_until_within_five_per_cent() {
        assert_eq!(next_rate(Some(1_000.0), None, 100_000.0), Some(2_000.0));
        assert_eq!(next_rate(Some(64_000.0), None, 100_000.0), Some(100_000.0), "capped at the maximum");
        assert_eq!(next_rate(Some(100_000.0), None, 100_000.0), None, "the maximum held: done");
        assert_eq!(next_rate(Some(8_000.0), Some(16_000.0), 100_000.0), Some(12_000.0));
        assert_eq!(next_rate(Some(12_000.0), Some(12_500.0), 100_000.0), None, "within 5%");
        assert_eq!(next_rate(None, Some(1_000.0), 100_000.0), Some(500.0), "nothing held yet: halve");
        assert_eq!(next_rate(None, Some(1.0), 100_000.0), None, "not below 1 req/s");
        assert_eq!(next_rate(Some(10.0), Some(11.0), 100_000.0), None, "no whole rate strictly between");
    }

    #[test]
    fn a_search_from_a_thousand_against_a_limit_of_5000_ends_within_five_per_cent_of_it() {
        let (mut held, mut failed, mut rate, mut probes) = (None::<f64>, None::<f64>, Some(1_000.0), 0);
        while let Some(r) = rate {
            probes += 1;
            if r <= 5_000.0 {
                held = Some(held.map_or(r, |h: f64| h.max(r)));
            } else {
                failed = Some(failed.map_or(r, |f: f64| f.min(r)));
            }
            rate = next_rate(held, failed, 100_000.0);
        }
        let (h, f) = (held.unwrap(), failed.unwrap());
        assert!(h <= 5_000.0 && f > 5_000.0 && f - h <= h * PRECISION, "{h} .. {f}");
        assert!(probes <= 8, "{probes} probes");
    }
}
