//! `jupang loadgen open-run`: people 1..=N press "get coupon" (`POST /api/coupons/{id}/issue`)
//! on a fresh sale of M coupons, a fraction of them twice in a row, in shuffled order. The
//! verdict: exactly min(N, M) issued, nobody twice, the server's stats agree, and (with
//! `DATABASE_URL`) Postgres holds exactly the coupons answered 201, and how soon it did.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use clap::Args;
use hyper::{Method, Uri, body::Bytes, header::HeaderValue};
use serde::Serialize;

use super::{
    Common, Env, LoadArgs,
    client::Target,
    emit,
    engine::{self, Answer, Call, RunOptions, Workload, retry_of},
    report::LoadReport,
    schedule::{self, parse_ratio},
    setup::Setup,
    verdict::{Convergence, Verdict, converge},
};

/// Options of `jupang loadgen open-run`.
#[derive(Debug, Clone, Args)]
pub struct OpenRunArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    load: LoadArgs,
    /// People 1..=N who press "get coupon".
    #[arg(long, default_value_t = 10_000)]
    people: u32,
    /// Coupons on sale.
    #[arg(long, default_value_t = 1_000)]
    coupons: u32,
    /// Fraction of the people who press twice in a row (a double click).
    #[arg(long, default_value_t = 0.2, value_parser = parse_ratio)]
    double_click_ratio: f64,
    /// Retries of a retryable answer (409 CONCURRENCY_CONFLICT, 503 OVERLOADED), as a real
    /// client makes them.
    #[arg(long, default_value_t = 5)]
    retries: u32,
}

/// The presses and tokens of an open run, prepared once (and reused by `compare`).
pub struct Prepared {
    /// People.
    pub people: u32,
    /// Coupons on sale.
    pub coupons: u32,
    /// Fraction double-clicking.
    pub double_click_ratio: f64,
    /// Retries of retryable answers.
    pub retries: u32,
    /// The user of each press, in sending order.
    pub presses: Arc<Vec<u32>>,
    /// `Bearer` values; index `u - 1` is user `u`.
    pub tokens: Arc<Vec<HeaderValue>>,
}

impl Prepared {
    /// Ensures users 1..=people, mints their tokens and shuffles the presses.
    pub async fn new(setup: &Setup, people: u32, coupons: u32, ratio: f64, retries: u32) -> anyhow::Result<Prepared> {
        anyhow::ensure!(people >= 1 && coupons >= 1, "--people and --coupons must be at least 1");
        setup.ensure_users(people).await?;
        let tokens = setup.customer_tokens(people);
        let presses = schedule::presses(people, ratio, &mut rand::rng());
        Ok(Prepared {
            people,
            coupons,
            double_click_ratio: ratio,
            retries,
            presses: Arc::new(presses),
            tokens: Arc::new(tokens),
        })
    }
}

/// What an open run measured and concluded.
#[derive(Debug, Clone, Serialize)]
pub struct OpenRunReport {
    /// `open-run`.
    pub scenario: &'static str,
    /// People.
    pub people: u32,
    /// Coupons on sale.
    pub coupons: u32,
    /// Fraction double-clicking.
    pub double_click_ratio: f64,
    /// Presses (people plus double clicks), before retries.
    pub presses: u64,
    /// The sale's coupon id.
    pub coupon_id: i64,
    /// 201 answers.
    pub issued: u64,
    /// min(people, coupons).
    pub expected_issued: u64,
    /// People answered 201 more than once.
    pub people_issued_twice: u64,
    /// Retries of retryable answers.
    pub retries: u64,
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
        format!(
            "## jupang loadgen open-run\n\n{} people ({:.0}% double-clicking, {} presses) on a fresh sale of {} \
             coupons (coupon {}).\n\n{}\n{}",
            self.people,
            self.double_click_ratio * 100.0,
            self.presses,
            self.coupons,
            self.coupon_id,
            self.load.markdown(),
            self.verdict.markdown()
        )
    }
}

struct Plan {
    next: AtomicUsize,
    presses: Arc<Vec<u32>>,
    tokens: Arc<Vec<HeaderValue>>,
    uri: Uri,
    retries: u32,
}

/// One connection's share of the presses.
struct Presses {
    plan: Arc<Plan>,
    retry: Option<Call>,
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
        let i = self.plan.next.fetch_add(1, Ordering::Relaxed);
        let user = *self.plan.presses.get(i)?;
        let mut call = Call::new(ISSUE_ROUTE, Method::POST, self.plan.uri.clone());
        call.auth = Some(self.plan.tokens[user as usize - 1].clone());
        call.body = Some(Bytes::from(format!("{{\"user_id\":{user}}}")));
        call.tag = user.into();
        Some(call)
    }

    fn answered(&mut self, call: &Call, answer: &Answer<'_>) {
        if answer.status == Ok(201) {
            self.winners.push(call.tag as u32);
        } else if let Some(retry) = retry_of(call, answer, self.plan.retries) {
            self.retries += 1;
            self.retry = Some(retry);
        }
    }
}

/// Runs the open run on a fresh sale at `target` and checks it.
pub async fn execute(
    setup: &Setup,
    target: &Target,
    prepared: &Prepared,
    options: RunOptions,
    converge_timeout: std::time::Duration,
) -> anyhow::Result<OpenRunReport> {
    let coupon = setup.create_coupon(target, prepared.coupons).await?;
    let plan = Arc::new(Plan {
        next: AtomicUsize::new(0),
        presses: prepared.presses.clone(),
        tokens: prepared.tokens.clone(),
        uri: format!("/api/coupons/{coupon}/issue").parse()?,
        retries: prepared.retries,
    });
    let workloads = (0..options.pacing.connections())
        .map(|_| Presses { plan: plan.clone(), retry: None, winners: Vec::new(), retries: 0 })
        .collect();
    let (stats, done) = engine::run(target, options, workloads).await?;
    let load = LoadReport::new(target, &stats);

    let mut wins: HashMap<u32, u32> = HashMap::new();
    done.iter().flat_map(|w| &w.winners).for_each(|u| *wins.entry(*u).or_default() += 1);
    let issued: u64 = wins.values().map(|n| u64::from(*n)).sum();
    let twice = wins.values().filter(|n| **n > 1).count() as u64;
    let expected = u64::from(prepared.people.min(prepared.coupons));

    let mut verdict = Verdict::new();
    verdict.check(
        "issued == min(people, coupons)",
        issued == expected,
        format!("{issued} answered 201, {expected} expected"),
    );
    verdict.check("nobody was issued twice", twice == 0, format!("{twice} people answered 201 more than once"));
    let stats_issued = setup.admin_get(target, &format!("/api/admin/coupons/{coupon}/stats")).await?["issued"].as_u64();
    verdict.check(
        "the server's coupon stats count the same issues",
        stats_issued == Some(issued),
        format!("stats say issued = {}", stats_issued.map_or("?".into(), |n| n.to_string())),
    );
    let postgres = match &setup.db {
        None => {
            verdict.check("Postgres converged", true, "not checked: DATABASE_URL is not set");
            None
        }
        Some(db) => {
            let c = converge(stats.last_answer, converge_timeout, || async {
                // No row at all (a database other than the server's) is simply not converged.
                let (rows, counter): (i64, i32) = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM user_coupons WHERE coupon_id = $1), issued_quantity
                     FROM coupons WHERE id = $1",
                )
                .bind(coupon)
                .fetch_optional(db)
                .await?
                .unwrap_or((0, 0));
                let seen = format!("{rows} rows, issued_quantity {counter}, {issued} answered 201");
                Ok((rows as u64 == issued && counter as u64 == issued, seen))
            })
            .await?;
            verdict.check(
                "Postgres converged on the 201s",
                c.converged,
                format!("{} after {:.0} ms from the last answer", c.last_seen, c.after_last_response_ms),
            );
            let held: HashSet<u32> =
                sqlx::query_scalar::<_, i64>("SELECT user_id FROM user_coupons WHERE coupon_id = $1")
                    .bind(coupon)
                    .fetch_all(db)
                    .await?
                    .into_iter()
                    .map(|u| u as u32)
                    .collect();
            let answered: HashSet<u32> = wins.keys().copied().collect();
            let (extra, missing) = (held.difference(&answered).count(), answered.difference(&held).count());
            verdict.check(
                "Postgres holds exactly the users answered 201",
                extra == 0 && missing == 0,
                format!("{missing} answered but not stored, {extra} stored but not answered"),
            );
            Some(c)
        }
    };
    Ok(OpenRunReport {
        scenario: "open-run",
        people: prepared.people,
        coupons: prepared.coupons,
        double_click_ratio: prepared.double_click_ratio,
        presses: prepared.presses.len() as u64,
        coupon_id: coupon,
        issued,
        expected_issued: expected,
        people_issued_twice: twice,
        retries: done.iter().map(|w| w.retries).sum(),
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
    let prepared = Prepared::new(&setup, args.people, args.coupons, args.double_click_ratio, args.retries).await?;
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
