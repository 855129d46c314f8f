//! `jupang loadgen`: the built-in load generator and benchmark.
//!
//! Scenarios: [`open_run`] (N people, M coupons on one sale or K, double clicks; or the search
//! for the highest rate held, [`rate_search`]), [`order_rush`] (a small stock, many buyers, then
//! payment), [`mixed`] (browse, cart, order, pay), [`compare`] (the open run against every issue
//! strategy and the `GET /health` ceiling, each on its own child `jupang serve`) and [`browse`]
//! (catalog reads against the ceiling, optionally while an open run hammers the same server),
//! [`waiting_room`] (N entrants of a waiting room polling as told until admitted), [`drain`]
//! (the V2 stream consumer's rate into Postgres, on child `jupang serve` processes).
//! Every scenario prepares its own data before the clock starts, drives keep-alive connections
//! through the [`engine`], records latency in HDR histograms corrected for coordinated omission
//! ([`histogram`]), and ends with a correctness [`verdict`]: the exit status is non-zero when it
//! fails.
//!
//! A crate of its own, run by the `jupang` binary's `loadgen` subcommand. It drives the server
//! only over HTTP and does not link the server library (the binary depends on both, and Cargo
//! forbids the cycle): it mints its tokens itself ([`token`]) and names strategies by their
//! contract strings.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod browse;
pub mod catalog_mix;
pub mod client;
pub mod compare;
pub mod drain;
pub mod engine;
pub mod histogram;
pub mod mixed;
pub mod open_run;
pub mod order_rush;
pub mod rate_search;
pub mod report;
pub mod sales;
pub mod schedule;
pub mod server;
pub mod setup;
pub mod token;
pub mod verdict;
pub mod waiting_room;

use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use self::{
    client::Target,
    engine::RunOptions,
    schedule::{Pacing, parse_rate},
};

/// Options of `jupang loadgen`.
#[derive(Debug, Args)]
pub struct LoadgenArgs {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// N people press "get coupon" on a fresh sale of M coupons, some of them twice.
    OpenRun(open_run::OpenRunArgs),
    /// A small stock, many buyers: each orders one unit, then pays for it.
    OrderRush(order_rush::OrderRushArgs),
    /// Browse, cart, order and pay with realistic ratios.
    Mixed(mixed::MixedArgs),
    /// The open run against every issue strategy and the `GET /health` ceiling, one table.
    Compare(compare::CompareArgs),
    /// Catalog reads (product listing, product pages) against the `GET /health` ceiling.
    Browse(browse::BrowseArgs),
    /// N entrants of a coupon's waiting room poll as told until admitted: order, cap, rates.
    WaitingRoom(waiting_room::WaitingRoomArgs),
    /// N admissions made with no consumer, then the rate a consumer-only `serve` persists them.
    Drain(drain::DrainArgs),
}

/// What the load generator needs from the environment; the `jupang` binary reads it.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `JUPANG_JWT_SECRET`, the server's token key: required, the generator signs its own tokens.
    pub jwt_secret: Option<String>,
    /// `DATABASE_URL`, the server's database: when set, users are made there and Postgres
    /// convergence is checked.
    pub database_url: Option<String>,
    /// `REDIS_URL`, the server's Redis: when it names one Redis, `waiting-room` reports Redis's
    /// CPU per poll.
    pub redis_url: Option<String>,
}

/// Runs a scenario, prints its report, and fails when its verdict does.
pub async fn run(args: LoadgenArgs, env: &Env) -> anyhow::Result<()> {
    match args.scenario {
        Scenario::OpenRun(a) => open_run::run(a, env).await,
        Scenario::OrderRush(a) => order_rush::run(a, env).await,
        Scenario::Mixed(a) => mixed::run(a, env).await,
        Scenario::Compare(a) => compare::run(a, env).await,
        Scenario::Browse(a) => browse::run(a, env).await,
        Scenario::WaitingRoom(a) => waiting_room::run(a, env).await,
        Scenario::Drain(a) => drain::run(a, env).await,
    }
}

/// Options every scenario against a running server shares.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Base URL of the server under load.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Print one JSON document instead of Markdown tables.
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// How long Postgres may take to agree with the answers (needs `DATABASE_URL`).
    #[arg(long, default_value_t = 30)]
    pub converge_timeout_secs: u64,
    /// Per-request timeout; a request without an answer by then is a transport error.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
}

impl Common {
    /// The parsed target.
    pub fn target(&self) -> anyhow::Result<Target> {
        Target::parse(&self.target)
    }

    /// Engine options for a pacing; the progress line is labelled `label`.
    pub fn options(&self, pacing: Pacing, label: &str) -> RunOptions {
        let mut options = RunOptions::new(pacing, Duration::from_millis(self.timeout_ms));
        options.progress = (!self.quiet).then(|| label.to_owned());
        options
    }

    /// How long to wait for Postgres.
    pub fn converge_timeout(&self) -> Duration {
        Duration::from_secs(self.converge_timeout_secs)
    }
}

/// How the load is offered: a closed loop over `--connections`, or the open model at `--rate`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Closed loop over this many keep-alive connections (default 64). With `--rate`: the
    /// connections that send the arrivals (default 128).
    #[arg(long)]
    pub connections: Option<usize>,
    /// Open model: this many arrivals per second, each request's latency measured from its
    /// intended send time.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
}

impl LoadArgs {
    /// The pacing these options ask for.
    pub fn pacing(&self) -> anyhow::Result<Pacing> {
        let pacing = match (self.rate, self.connections) {
            (Some(rate), connections) => Pacing::Open { rate, connections: connections.unwrap_or(128) },
            (None, connections) => Pacing::Closed { connections: connections.unwrap_or(64) },
        };
        anyhow::ensure!(pacing.connections() >= 1, "--connections must be at least 1");
        Ok(pacing)
    }
}

/// Prints a report as JSON or Markdown, then turns its verdict into the exit status.
pub fn emit<R: Serialize>(json: bool, report: &R, markdown: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", markdown());
    }
    Ok(())
}
