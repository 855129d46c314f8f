//! `jupang loadgen drain`: how fast the V2 stream consumer puts admissions into Postgres.
//!
//! 1. **Fill**, through the real admission path: a child `jupang serve` with no workers
//!    (`JUPANG_WORKERS=none`, the V2 strategies) admits N events over HTTP: users 1..=N each get
//!    one coupon of a fresh sale of N (`--kind coupons`), or order one unit of a fresh product of
//!    N units (`--kind orders`). Every admission is appended to its Redis stream by the Lua script
//!    that decides it, and nothing reaches Postgres (the check "nothing persisted before").
//!    The child is stopped.
//! 2. **Drain**: the clock starts, a consumer-only child starts (`JUPANG_WORKERS=consumer`, and
//!    `JUPANG_STREAM_CONSUMERS` with `--consumers`), and Postgres is polled every `--poll-ms`
//!    until it holds all N (coupons: the sale's `issued_quantity`, one primary-key read; orders:
//!    the order lines of the product's option).
//! 3. **Verdict**: Postgres holds exactly N (rows, counter or ledger rows, outbox events), none
//!    twice.
//!
//! Two rates: **with start-up** (N over the time from the child's spawn to the poll that saw all
//! N) and **first to last** (N over the time from the start of the first batch's transaction,
//! the earliest `created_at` of the run's outbox events, to that same poll). Both clocks are the
//! machine's own: the load generator, the server and Postgres must run on one host.
//! `--server-bin` drains with another build (a base to compare with); the load generator itself
//! only speaks HTTP and SQL.

use std::{
    fmt::Write,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use hyper::{Method, Uri, body::Bytes, header::HeaderValue};
use serde::Serialize;
use sqlx::PgPool;

use super::{
    Env, emit,
    engine::{self, Answer, Call, RunOptions, Workload, retry_of},
    schedule::Pacing,
    server::ChildServer,
    setup::Setup,
    verdict::Verdict,
};

/// Options of `jupang loadgen drain`.
#[derive(Debug, Clone, Args)]
pub struct DrainArgs {
    /// What is admitted and drained.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Admissions made before the consumer starts (users 1..=N, one each).
    #[arg(long, default_value_t = 20_000)]
    events: u32,
    /// The `jupang` binary of both children (default: this one): drain with another build.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// `JUPANG_STREAM_CONSUMERS` of the draining child (default: the binary's own default;
    /// leave it out for a build that does not know the variable).
    #[arg(long)]
    consumers: Option<u32>,
    /// Connections of the fill.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// How often Postgres is asked whether the drain is done.
    #[arg(long, default_value_t = 10)]
    poll_ms: u64,
    /// Longest the drain may take.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Print one JSON document instead of Markdown tables.
    #[arg(long)]
    json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
}

/// The stream drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Coupon issuances (`POST /api/coupons/{id}/issue`), one stream per sale.
    Coupons,
    /// Order admissions (`POST /api/orders`), the stock groups' streams.
    Orders,
}

impl Kind {
    /// `coupons` or `orders`, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Coupons => "coupons",
            Kind::Orders => "orders",
        }
    }
}

/// What a drain measured and concluded.
#[derive(Debug, Clone, Serialize)]
pub struct DrainReport {
    /// `drain`.
    pub scenario: &'static str,
    /// Coupons or orders.
    pub kind: Kind,
    /// Admissions made (answered 201) before the consumer started.
    pub events: u64,
    /// The binary of the children.
    pub server_bin: String,
    /// `JUPANG_STREAM_CONSUMERS` given to the draining child, if any.
    pub consumers: Option<u32>,
    /// The sale (coupon id) or the product's option id.
    pub subject: i64,
    /// Seconds the fill took, and its admissions per second.
    pub fill_secs: f64,
    /// Admissions per second of the fill.
    pub fill_rate: f64,
    /// Seconds from the consumer child's spawn to the poll that saw all N in Postgres.
    pub with_startup_secs: f64,
    /// Seconds from the start of the first batch's transaction to that poll.
    pub first_to_last_secs: f64,
    /// Events per second, start-up included.
    pub rate_with_startup: f64,
    /// Events per second from the first batch to the last.
    pub rate_first_to_last: f64,
    /// What Postgres holds afterwards: (check, count).
    pub persisted: Vec<(String, i64)>,
    /// The checks.
    pub verdict: Verdict,
}

/// One connection of the fill: the next user admits one event.
struct Fill {
    next: Arc<AtomicUsize>,
    tokens: Arc<Vec<HeaderValue>>,
    kind: Kind,
    subject: i64,
    follow: Option<Call>,
    admitted: u64,
}

const ISSUE_ROUTE: &str = "POST /api/coupons/{id}/issue";
const ORDER_ROUTE: &str = "POST /api/orders";

impl Workload for Fill {
    fn next(&mut self) -> Option<Call> {
        if let Some(call) = self.follow.take() {
            return Some(call);
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let auth = self.tokens.get(i)?.clone();
        let user = i + 1;
        let mut call = match self.kind {
            Kind::Coupons => {
                let uri: Uri = format!("/api/coupons/{}/issue", self.subject).parse().expect("a valid path");
                let mut call = Call::new(ISSUE_ROUTE, Method::POST, uri);
                call.body = Some(Bytes::from(format!(r#"{{"user_id":{user}}}"#)));
                call
            }
            Kind::Orders => {
                let mut call = Call::new(ORDER_ROUTE, Method::POST, Uri::from_static("/api/orders"));
                call.body = Some(Bytes::from(format!(
                    r#"{{"user_id":{user},"items":[{{"product_option_id":{},"quantity":1}}]}}"#,
                    self.subject
                )));
                call
            }
        };
        call.auth = Some(auth);
        call.tag = user as u64;
        Some(call)
    }

    fn answered(&mut self, call: &Call, answer: &Answer<'_>) {
        if answer.status.as_ref().is_ok_and(|s| *s == 201) {
            self.admitted += 1;
        } else {
            self.follow = retry_of(call, answer, 5);
        }
    }
}

/// `jupang loadgen drain`.
pub async fn run(args: DrainArgs, env: &Env) -> anyhow::Result<()> {
    anyhow::ensure!(args.events >= 1, "--events must be at least 1");
    anyhow::ensure!(args.connections >= 1, "--connections must be at least 1");
    anyhow::ensure!(args.consumers.is_none_or(|c| c >= 1), "--consumers must be at least 1");
    let setup = Setup::new(env).await?;
    let db = setup.db.clone().context("drain needs DATABASE_URL: it counts what the consumer persisted")?;
    let bin = match &args.server_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("cannot locate this binary; give --server-bin")?,
    };
    let n = u64::from(args.events);
    // Users first: the children cache users' markets when they start.
    setup.ensure_users(args.events).await?;
    let tokens = Arc::new(setup.customer_tokens(args.events));

    let fill_vars =
        [("JUPANG_WORKERS", "none"), ("JUPANG_ISSUE_STRATEGY", "redis-lua"), ("JUPANG_ORDER_STRATEGY", "redis-lua")];
    let filler = ChildServer::start_with(&bin, &fill_vars, "drain-fill").await?;
    let subject = match args.kind {
        Kind::Coupons => setup.create_coupon(&filler.target, args.events).await?,
        Kind::Orders => setup.create_product(&filler.target, "loadgen", args.events, 1_000).await?.1,
    };
    let next = Arc::new(AtomicUsize::new(0));
    let workloads = (0..args.connections)
        .map(|_| Fill {
            next: next.clone(),
            tokens: tokens.clone(),
            kind: args.kind,
            subject,
            follow: None,
            admitted: 0,
        })
        .collect();
    let mut options = RunOptions::new(Pacing::Closed { connections: args.connections }, Duration::from_secs(30));
    options.progress = (!args.quiet).then(|| "drain fill".to_owned());
    let filled = engine::run(&filler.target, options, workloads).await;
    filler.stop().await?;
    let (stats, done) = filled?;
    let admitted: u64 = done.iter().map(|f| f.admitted).sum();
    let before = progress(&db, args.kind, subject).await?;

    let mut drain_vars = vec![("JUPANG_WORKERS", "consumer")];
    let consumers = args.consumers.map(|c| c.to_string());
    if let Some(c) = &consumers {
        drain_vars.push(("JUPANG_STREAM_CONSUMERS", c));
    }
    let started_at = Utc::now();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(args.timeout_secs);
    let poll = async {
        loop {
            let seen = progress(&db, args.kind, subject).await?;
            if seen >= admitted as i64 {
                return anyhow::Ok((Instant::now(), Utc::now()));
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {seen} of {admitted} persisted after {}s",
                args.timeout_secs
            );
            tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
        }
    };
    let (drainer, polled) = tokio::join!(ChildServer::start_with(&bin, &drain_vars, "drain-consume"), poll);
    let drainer = drainer?;
    let stopped = drainer.stop().await;
    let (done_at, done_wall) = polled?;
    stopped?;

    let first_batch = first_batch(&db, args.kind, subject).await?;
    let with_startup = done_at.duration_since(t0).as_secs_f64();
    let first_to_last = first_batch.map_or(with_startup, |f| (done_wall - f).as_seconds_f64().max(1e-6));
    let persisted = persisted(&db, args.kind, subject).await?;

    let mut verdict = Verdict::new();
    verdict.check("every admission answered 201", admitted == n, format!("{admitted} of {n}"));
    verdict.check("nothing persisted before the consumer started", before == 0, format!("{before} already there"));
    for (what, count) in &persisted {
        verdict.check(format!("{what} == admissions"), *count == admitted as i64, format!("{count} of {admitted}"));
    }
    verdict.check(
        "the first batch began after the consumer's spawn",
        first_batch.is_some_and(|f| f >= started_at),
        format!("{first_batch:?} vs spawn {started_at}"),
    );
    let report = DrainReport {
        scenario: "drain",
        kind: args.kind,
        events: admitted,
        server_bin: bin.display().to_string(),
        consumers: args.consumers,
        subject,
        fill_secs: stats.elapsed.as_secs_f64(),
        fill_rate: admitted as f64 / stats.elapsed.as_secs_f64().max(1e-6),
        with_startup_secs: with_startup,
        first_to_last_secs: first_to_last,
        rate_with_startup: admitted as f64 / with_startup,
        rate_first_to_last: admitted as f64 / first_to_last,
        persisted,
        verdict,
    };
    emit(args.json, &report, || markdown(&report))?;
    report.verdict.into_result()
}

/// How many of the run's admissions Postgres holds now: the poll, cheap on purpose (it runs
/// every few milliseconds beside the consumer).
async fn progress(db: &PgPool, kind: Kind, subject: i64) -> anyhow::Result<i64> {
    let sql = match kind {
        Kind::Coupons => "SELECT issued_quantity::bigint FROM coupons WHERE id = $1",
        Kind::Orders => "SELECT count(*) FROM order_items WHERE option_id = $1",
    };
    Ok(sqlx::query_scalar(sql).bind(subject).fetch_one(db).await?)
}

/// The run's outbox events: `coupon.issued` of the sale, or `order.created` of the option.
const RUN_EVENTS: &str = "FROM outbox_events WHERE CASE WHEN $1 THEN type = 'coupon.issued' AND payload->>'coupon_id' = $2::text \
     ELSE type = 'order.created' AND payload @> jsonb_build_object('items', jsonb_build_array(jsonb_build_object('product_option_id', $2::bigint))) END";

/// When the first batch's transaction began (its events' `created_at` is `now()`).
async fn first_batch(db: &PgPool, kind: Kind, subject: i64) -> anyhow::Result<Option<DateTime<Utc>>> {
    let sql = format!("SELECT min(created_at) {RUN_EVENTS}");
    Ok(sqlx::query_scalar(&sql).bind(kind == Kind::Coupons).bind(subject).fetch_one(db).await?)
}

/// What Postgres holds of the run, each of which must equal the admissions.
async fn persisted(db: &PgPool, kind: Kind, subject: i64) -> anyhow::Result<Vec<(String, i64)>> {
    let events: i64 = sqlx::query_scalar(&format!("SELECT count(*) {RUN_EVENTS}"))
        .bind(kind == Kind::Coupons)
        .bind(subject)
        .fetch_one(db)
        .await?;
    let mut out = match kind {
        Kind::Coupons => {
            let (counter, rows, users): (i64, i64, i64) = sqlx::query_as(
                "SELECT (SELECT issued_quantity::bigint FROM coupons WHERE id = $1), count(*), count(DISTINCT user_id)
                   FROM user_coupons WHERE coupon_id = $1",
            )
            .bind(subject)
            .fetch_one(db)
            .await?;
            vec![
                ("issued_quantity".to_owned(), counter),
                ("user_coupons rows".into(), rows),
                ("distinct holders".into(), users),
            ]
        }
        Kind::Orders => {
            let (lines, orders, reserves): (i64, i64, i64) = sqlx::query_as(
                "SELECT count(*), count(DISTINCT order_id),
                        (SELECT count(*) FROM stock_movements WHERE option_id = $1 AND kind = 'reserve')
                   FROM order_items WHERE option_id = $1",
            )
            .bind(subject)
            .fetch_one(db)
            .await?;
            vec![
                ("order lines".to_owned(), lines),
                ("distinct orders".into(), orders),
                ("reserve movements".into(), reserves),
            ]
        }
    };
    out.push(("outbox events".into(), events));
    Ok(out)
}

/// The report as Markdown.
pub fn markdown(r: &DrainReport) -> String {
    let mut s = String::from("## jupang loadgen drain\n\n");
    let consumers = r.consumers.map_or("binary default".to_owned(), |c| c.to_string());
    let _ = writeln!(
        s,
        "{} {} admissions (subject {}), `{}`, consumers: {consumers}\n",
        r.events,
        r.kind.as_str(),
        r.subject,
        r.server_bin
    );
    s.push_str("| phase | seconds | events/s |\n| --- | ---: | ---: |\n");
    let _ = writeln!(s, "| fill (HTTP, no consumer) | {:.2} | {:.0} |", r.fill_secs, r.fill_rate);
    let _ =
        writeln!(s, "| drain, first batch to last | {:.3} | **{:.0}** |", r.first_to_last_secs, r.rate_first_to_last);
    let _ = writeln!(s, "| drain, start-up included | {:.3} | **{:.0}** |", r.with_startup_secs, r.rate_with_startup);
    s.push('\n');
    s.push_str(&r.verdict.markdown());
    s
}
