//! `jupang loadgen open-run`: people 1..=N press "get coupon" (`POST /api/coupons/{id}/issue`)
//! on a fresh sale of M coupons, a fraction of them twice in a row, in shuffled order. The
//! verdict: exactly min(N, M) issued, nobody twice, the server's stats agree, and (with
//! `DATABASE_URL`) Postgres holds exactly the coupons answered 201, and how soon it did.
//! With `--sales K` the people are spread over K fresh sales ([`sales`]) and the verdict holds
//! per sale and in total; `--find-rate` searches the highest arrival rate held within a p99
//! bound ([`rate_search`]).

use std::{
    collections::HashMap,
    fmt::Write,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use clap::Args;
use hyper::{Method, Uri, body::Bytes, header::HeaderValue};
use serde::Serialize;

use super::{
    Common, Env, LoadArgs,
    client::Target,
    emit,
    engine::{self, Answer, Call, RunOptions, Workload, retry_of},
    rate_search::{self, SearchArgs},
    report::LoadReport,
    sales::{self, Pick, SaleResult, SalesArgs, Tally},
    schedule::{self, parse_ratio},
    setup::Setup,
    verdict::{Convergence, Verdict},
};

/// Options of `jupang loadgen open-run`.
#[derive(Debug, Clone, Args)]
pub struct OpenRunArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    spec: Spec,
    #[command(flatten)]
    search: SearchArgs,
}

/// What an open run presses: who, how often, on how many sales.
#[derive(Debug, Clone, Copy, Args)]
pub struct Spec {
    /// People 1..=N who press "get coupon".
    #[arg(long, default_value_t = 10_000)]
    pub people: u32,
    /// Coupons on sale (on each sale, with `--sales`).
    #[arg(long, default_value_t = 1_000)]
    pub coupons: u32,
    /// Fraction of the people who press twice in a row (a double click).
    #[arg(long, default_value_t = 0.2, value_parser = parse_ratio)]
    pub double_click_ratio: f64,
    /// Retries of a retryable answer (409 CONCURRENCY_CONFLICT, 503 OVERLOADED), as a real
    /// client makes them.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// How many sales, and who presses which.
    #[command(flatten)]
    pub sales: SalesArgs,
}

/// The presses and tokens of an open run, prepared once (and reused by `compare`, the rate
/// search and `browse --with-open-run`).
pub struct Prepared {
    /// What is pressed.
    pub spec: Spec,
    /// The user of each press, in sending order.
    pub presses: Arc<Vec<u32>>,
    /// The sale (0-based) each user presses; index `u - 1` is user `u`.
    pub sale_of: Arc<Vec<u32>>,
    /// `Bearer` values; index `u - 1` is user `u`.
    pub tokens: Arc<Vec<HeaderValue>>,
}

impl Prepared {
    /// Ensures users 1..=people, mints their tokens, shuffles the presses and spreads the people
    /// over the sales.
    pub async fn new(setup: &Setup, spec: Spec) -> anyhow::Result<Prepared> {
        anyhow::ensure!(spec.people >= 1 && spec.coupons >= 1, "--people and --coupons must be at least 1");
        setup.ensure_users(spec.people).await?;
        let tokens = setup.customer_tokens(spec.people);
        let mut rng = rand::rng();
        let presses = schedule::presses(spec.people, spec.double_click_ratio, &mut rng);
        let sale_of = sales::assign(spec.people, spec.sales, &mut rng);
        Ok(Prepared { spec, presses: Arc::new(presses), sale_of: Arc::new(sale_of), tokens: Arc::new(tokens) })
    }

    /// Creates the fresh sales of a run: `--sales` coupons of `--coupons` each.
    pub async fn create_sales(&self, setup: &Setup, target: &Target) -> anyhow::Result<Vec<i64>> {
        let mut coupons = Vec::with_capacity(self.spec.sales.sales as usize);
        for _ in 0..self.spec.sales.sales {
            coupons.push(setup.create_coupon(target, self.spec.coupons).await?);
        }
        Ok(coupons)
    }
}

/// What an open run measured and concluded.
#[derive(Debug, Clone, Serialize)]
pub struct OpenRunReport {
    /// `open-run`.
    pub scenario: &'static str,
    /// People.
    pub people: u32,
    /// Coupons on sale (on each sale).
    pub coupons: u32,
    /// Fraction double-clicking.
    pub double_click_ratio: f64,
    /// Presses sent (people plus double clicks, and repeats in a run bounded by time), before
    /// retries.
    pub presses: u64,
    /// The (first) sale's coupon id.
    pub coupon_id: i64,
    /// 201 answers.
    pub issued: u64,
    /// Σ min(people of the sale, coupons): min(people, coupons) with one sale.
    pub expected_issued: u64,
    /// People answered 201 more than once.
    pub people_issued_twice: u64,
    /// Retries of retryable answers.
    pub retries: u64,
    /// With `--sales K` > 1: how people were spread over the sales.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pick: Option<Pick>,
    /// With `--sales K` > 1: each sale.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sales: Vec<SaleResult>,
    /// Throughput, latency, outcomes.
    pub load: LoadReport,
    /// Postgres catching up (absent without `DATABASE_URL`).
    pub postgres: Option<Convergence>,
    /// The checks.
    pub verdict: Verdict,
}

impl OpenRunReport {
    /// Markdown for people.
    pub fn markdown(&self) -> String {
        let what = match (self.sales.len(), self.pick) {
            (0 | 1, _) | (_, None) => {
                format!("a fresh sale of {} coupons (coupon {})", self.coupons, self.coupon_id)
            }
            (k, Some(pick)) => format!(
                "{k} fresh sales of {} coupons each, each person pressing one ({})",
                self.coupons,
                match pick {
                    Pick::Random => "chosen at random",
                    Pick::RoundRobin => "round-robin by user id",
                }
            ),
        };
        let mut s = format!(
            "## jupang loadgen open-run\n\n{} people ({:.0}% double-clicking, {} presses) on {what}.\n\n",
            self.people,
            self.double_click_ratio * 100.0,
            self.presses,
        );
        if self.sales.len() > 1 {
            s.push_str(
                "| sale (coupon) | people | issued | expected | stats say |\n| --- | ---: | ---: | ---: | ---: |\n",
            );
            for r in &self.sales {
                let stats = r.stats_issued.map_or("?".into(), |n| n.to_string());
                let _ =
                    writeln!(s, "| {} | {} | {} | {} | {stats} |", r.coupon_id, r.people, r.issued, r.expected_issued);
            }
            s.push('\n');
        }
        format!("{s}{}\n{}", self.load.markdown(), self.verdict.markdown())
    }
}

struct Plan {
    next: AtomicUsize,
    presses: Arc<Vec<u32>>,
    sale_of: Arc<Vec<u32>>,
    tokens: Arc<Vec<HeaderValue>>,
    uris: Vec<Uri>,
    retries: u32,
    /// Press again from the start of the list once everyone has pressed (a run bounded by time).
    cycle: bool,
}

/// One connection's share of the presses.
struct Presses {
    plan: Arc<Plan>,
    retry: Option<Call>,
    pressed: Vec<u32>,
    winners: Vec<u32>,
    retries: u64,
}

/// The route label of the issue call.
pub const ISSUE_ROUTE: &str = "POST /api/coupons/{id}/issue";

impl Workload for Presses {
    fn next(&mut self) -> Option<Call> {
        if let Some(retry) = self.retry.take() {
            return Some(retry);
        }
        let (i, n) = (self.plan.next.fetch_add(1, Ordering::Relaxed), self.plan.presses.len());
        if i >= n && !self.plan.cycle {
            return None;
        }
        let user = self.plan.presses[i % n];
        let sale = self.plan.sale_of[user as usize - 1] as usize;
        let mut call = Call::new(ISSUE_ROUTE, Method::POST, self.plan.uris[sale].clone());
        call.auth = Some(self.plan.tokens[user as usize - 1].clone());
        call.body = Some(Bytes::from(format!("{{\"user_id\":{user}}}")));
        call.tag = user.into();
        Some(call)
    }

    fn answered(&mut self, call: &Call, answer: &Answer<'_>) {
        if call.attempt == 0 {
            self.pressed.push(call.tag as u32);
        }
        if answer.status == Ok(201) {
            self.winners.push(call.tag as u32);
        } else if let Some(retry) = retry_of(call, answer, self.plan.retries) {
            self.retries += 1;
            self.retry = Some(retry);
        }
    }
}

/// Runs the open run on fresh sales at `target` and checks it.
pub async fn execute(
    setup: &Setup,
    target: &Target,
    prepared: &Prepared,
    options: RunOptions,
    converge_timeout: Duration,
) -> anyhow::Result<OpenRunReport> {
    let coupons = prepared.create_sales(setup, target).await?;
    execute_on(setup, target, prepared, &coupons, options, converge_timeout).await
}

/// Runs the open run on sales already created (`coupons`, one per sale) and checks it. A run
/// bounded by time (`options.duration` or `options.stop`) presses again from the start of the
/// list once everyone has pressed; the people then hear `ALREADY_ISSUED` or `COUPON_SOLD_OUT`
/// (the losers' path), and the checks hold all the same: repeated presses issue nothing more.
pub async fn execute_on(
    setup: &Setup,
    target: &Target,
    prepared: &Prepared,
    coupons: &[i64],
    options: RunOptions,
    converge_timeout: Duration,
) -> anyhow::Result<OpenRunReport> {
    anyhow::ensure!(coupons.len() == prepared.spec.sales.sales as usize, "one coupon per sale");
    let uris = coupons.iter().map(|c| format!("/api/coupons/{c}/issue").parse()).collect::<Result<_, _>>()?;
    let plan = Arc::new(Plan {
        next: AtomicUsize::new(0),
        presses: prepared.presses.clone(),
        sale_of: prepared.sale_of.clone(),
        tokens: prepared.tokens.clone(),
        uris,
        retries: prepared.spec.retries,
        cycle: options.duration.is_some() || options.stop.is_some(),
    });
    let workloads = (0..options.pacing.connections())
        .map(|_| Presses { plan: plan.clone(), retry: None, pressed: Vec::new(), winners: Vec::new(), retries: 0 })
        .collect();
    let (stats, done) = engine::run(target, options, workloads).await?;
    let load = LoadReport::new(target, &stats);

    let pressed: Vec<u32> = done.iter().flat_map(|w| w.pressed.iter().copied()).collect();
    let winners: Vec<u32> = done.iter().flat_map(|w| w.winners.iter().copied()).collect();
    let tally = Tally {
        coupons,
        sale_of: &prepared.sale_of,
        pressed: &pressed,
        winners: &winners,
        per_sale: prepared.spec.coupons,
    };
    let mut verdict = Verdict::new();
    let (sales, postgres) =
        sales::check(setup, target, &tally, stats.last_answer, converge_timeout, &mut verdict).await?;
    let mut wins: HashMap<u32, u32> = HashMap::new();
    winners.iter().for_each(|u| *wins.entry(*u).or_default() += 1);
    let many = sales.len() > 1;
    Ok(OpenRunReport {
        scenario: "open-run",
        people: prepared.spec.people,
        coupons: prepared.spec.coupons,
        double_click_ratio: prepared.spec.double_click_ratio,
        presses: pressed.len() as u64,
        coupon_id: coupons[0],
        issued: winners.len() as u64,
        expected_issued: sales.iter().map(|s| s.expected_issued).sum(),
        people_issued_twice: wins.values().filter(|n| **n > 1).count() as u64,
        retries: done.iter().map(|w| w.retries).sum(),
        pick: many.then_some(prepared.spec.sales.pick),
        sales: if many { sales } else { Vec::new() },
        load,
        postgres,
        verdict,
    })
}

/// `jupang loadgen open-run`.
pub async fn run(args: OpenRunArgs, env: &Env) -> anyhow::Result<()> {
    let target = args.common.target()?;
    let pacing = args.load.pacing()?;
    let setup = Setup::new(env).await?;
    let prepared = Prepared::new(&setup, args.spec).await?;
    if args.search.find_rate {
        return rate_search::run(&setup, &target, &prepared, &args.common, pacing.connections(), &args.search).await;
    }
    let options = args.common.options(pacing, "open-run");
    let report = execute(&setup, &target, &prepared, options, args.common.converge_timeout()).await?;
    emit(args.common.json, &report, || report.markdown())?;
    report.verdict.into_result()
}

/// `GET /health`, the ceiling: what the server answers when it does nothing.
pub const HEALTH_ROUTE: &str = "GET /health";

/// The ceiling workload: `GET /health` until `total` calls are taken.
struct Health {
    next: Arc<AtomicUsize>,
    total: usize,
}

impl Workload for Health {
    fn next(&mut self) -> Option<Call> {
        (self.next.fetch_add(1, Ordering::Relaxed) < self.total)
            .then(|| Call::new(HEALTH_ROUTE, Method::GET, Uri::from_static("/health")))
    }

    fn answered(&mut self, _: &Call, _: &Answer<'_>) {}
}

/// `requests` × `GET /health` with the given pacing: the ceiling an open run is compared with.
pub async fn ceiling(target: &Target, requests: usize, options: RunOptions) -> anyhow::Result<LoadReport> {
    let next = Arc::new(AtomicUsize::new(0));
    let workloads = (0..options.pacing.connections()).map(|_| Health { next: next.clone(), total: requests }).collect();
    let (stats, _) = engine::run(target, options, workloads).await?;
    Ok(LoadReport::new(target, &stats))
}
