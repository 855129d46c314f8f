//! `jupang loadgen order-rush`: a new product with a small stock S, and buyers 1..=N (in
//! shuffled order) who each order one unit (`POST /api/orders`) and, when accepted, pay for it
//! at once (`POST /api/orders/{id}/payment`) on the same connection. The verdict: exactly
//! min(N, S) orders accepted, every one paid, no oversell: the live `available` is S - paid and
//! (with `DATABASE_URL`) Postgres converges on stock = S - paid with nothing reserved.
//! With `--rate` the buyers arrive at that rate (the payment follows its order on the same
//! connection, not as an arrival of its own); `--retries 0` sends every call once, and the
//! report counts each route's 503 answers either way.

use std::{
    fmt::Write,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use clap::Args;
use hyper::{Method, Uri, body::Bytes, header::HeaderValue};
use serde::{Deserialize, Serialize};

use super::{
    Common, Env, LoadArgs, emit,
    engine::{self, Answer, Call, Workload, retry_of},
    report::LoadReport,
    schedule,
    setup::Setup,
    verdict::{Convergence, Verdict, converge},
};

/// Options of `jupang loadgen order-rush`.
#[derive(Debug, Clone, Args)]
pub struct OrderRushArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    load: LoadArgs,
    /// Units in stock of the new product.
    #[arg(long, default_value_t = 100)]
    stock: u32,
    /// Buyers 1..=N, each ordering one unit.
    #[arg(long, default_value_t = 1_000)]
    buyers: u32,
    /// Unit price in KRW (the users get 1,000,000 KRW when the load generator creates them).
    #[arg(long, default_value_t = 1_000)]
    price: i64,
    /// Retries of retryable answers (409 CONCURRENCY_CONFLICT, 503 OVERLOADED).
    #[arg(long, default_value_t = 5)]
    retries: u32,
}

/// Route label of order creation.
pub const ORDER_ROUTE: &str = "POST /api/orders";
/// Route label of payment.
pub const PAY_ROUTE: &str = "POST /api/orders/{id}/payment";

/// What an order rush measured and concluded.
#[derive(Debug, Clone, Serialize)]
pub struct OrderRushReport {
    /// `order-rush`.
    pub scenario: &'static str,
    /// Buyers.
    pub buyers: u32,
    /// Initial stock.
    pub stock: u32,
    /// The new product.
    pub product_id: i64,
    /// Its option (SKU).
    pub option_id: i64,
    /// Orders answered 201.
    pub accepted: u64,
    /// min(buyers, stock).
    pub expected_accepted: u64,
    /// Payments answered 200.
    pub paid: u64,
    /// Retries of retryable answers.
    pub retries: u64,
    /// Per route: requests, 503 answers and retries.
    pub per_route: Vec<RouteCounts>,
    /// `--retries`: retries allowed per call (0: none).
    pub max_retries: u32,
    /// Throughput, latency (per route), outcomes.
    pub load: LoadReport,
    /// Postgres catching up (absent without `DATABASE_URL`).
    pub postgres: Option<Convergence>,
    /// The checks.
    pub verdict: Verdict,
}

/// The answers of one route that a flash sale cares about most.
#[derive(Debug, Clone, Serialize)]
pub struct RouteCounts {
    /// Route label.
    pub route: &'static str,
    /// Requests sent on it, retries included.
    pub requests: u64,
    /// 2xx answers.
    pub succeeded: u64,
    /// 503 answers (`OVERLOADED`, `TIMEOUT`), retried or not.
    pub answered_503: u64,
    /// Retries sent (`--retries` per call at most; 0 switches them off).
    pub retries: u64,
}

struct Rush {
    next: AtomicUsize,
    order: Vec<u32>,
    tokens: Vec<HeaderValue>,
    option: i64,
    retries: u32,
}

/// One connection's buyers.
struct Buyers {
    rush: Arc<Rush>,
    follow: Option<Call>,
    accepted: u64,
    paid: u64,
    /// Retries of orders, of payments.
    retries: [u64; 2],
}

#[derive(Deserialize)]
struct Created {
    order_id: String,
}

impl Workload for Buyers {
    fn next(&mut self) -> Option<Call> {
        if let Some(call) = self.follow.take() {
            return Some(call);
        }
        let user = *self.rush.order.get(self.rush.next.fetch_add(1, Ordering::Relaxed))?;
        let mut call = Call::new(ORDER_ROUTE, Method::POST, Uri::from_static("/api/orders"));
        call.auth = Some(self.rush.tokens[user as usize - 1].clone());
        call.body = Some(Bytes::from(format!(
            r#"{{"user_id":{user},"items":[{{"product_option_id":{},"quantity":1}}]}}"#,
            self.rush.option
        )));
        call.tag = user.into();
        Some(call)
    }

    fn answered(&mut self, call: &Call, answer: &Answer<'_>) {
        match (call.route, answer.status) {
            (ORDER_ROUTE, Ok(201)) => {
                self.accepted += 1;
                let Ok(created) = serde_json::from_slice::<Created>(answer.body) else { return };
                let Ok(uri) = format!("/api/orders/{}/payment", created.order_id).parse() else { return };
                // The buyer pays right away, on the same connection.
                let mut pay = Call::new(PAY_ROUTE, Method::POST, uri);
                // Part of the buyer's arrival, not a new one: in the open model (`--rate`) the
                // rate counts buyers.
                pay.follow_up = true;
                pay.auth = call.auth.clone();
                pay.body = Some(Bytes::from(format!(r#"{{"user_id":{}}}"#, call.tag)));
                pay.tag = call.tag;
                self.follow = Some(pay);
            }
            (PAY_ROUTE, Ok(200)) => self.paid += 1,
            _ => {
                if let Some(retry) = retry_of(call, answer, self.rush.retries) {
                    self.retries[usize::from(call.route == PAY_ROUTE)] += 1;
                    self.follow = Some(retry);
                }
            }
        }
    }
}

/// `jupang loadgen order-rush`.
pub async fn run(args: OrderRushArgs, env: &Env) -> anyhow::Result<()> {
    anyhow::ensure!(args.buyers >= 1 && args.stock >= 1, "--buyers and --stock must be at least 1");
    anyhow::ensure!(args.price >= 0, "--price must not be negative");
    let target = args.common.target()?;
    let pacing = args.load.pacing()?;
    let setup = Setup::new(env).await?;
    setup.ensure_users(args.buyers).await?;
    let (product, option) = setup.create_product(&target, "loadgen", args.stock, args.price).await?;
    let rush = Arc::new(Rush {
        next: AtomicUsize::new(0),
        order: schedule::presses(args.buyers, 0.0, &mut rand::rng()),
        tokens: setup.customer_tokens(args.buyers),
        option,
        retries: args.retries,
    });
    let workloads = (0..pacing.connections())
        .map(|_| Buyers { rush: rush.clone(), follow: None, accepted: 0, paid: 0, retries: [0; 2] })
        .collect();
    let (stats, done) = engine::run(&target, args.common.options(pacing, "order-rush"), workloads).await?;
    let load = LoadReport::new(&target, &stats);
    let accepted: u64 = done.iter().map(|b| b.accepted).sum();
    let paid: u64 = done.iter().map(|b| b.paid).sum();
    let expected = u64::from(args.buyers.min(args.stock));
    let sold_left = i64::from(args.stock) - paid as i64;

    let mut verdict = Verdict::new();
    verdict.check(
        "orders accepted == min(buyers, stock)",
        accepted == expected,
        format!("{accepted} answered 201, {expected} expected"),
    );
    verdict.check("every accepted order was paid", paid == accepted, format!("{paid} of {accepted} paid"));
    let detail = setup.admin_get(&target, &format!("/api/products/{product}")).await?;
    let available = detail["options"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["id"] == option))
        .and_then(|o| o["available"].as_i64());
    verdict.check(
        "no oversell: available == stock - paid",
        available == Some(sold_left),
        format!("available {}, stock - paid = {sold_left}", available.map_or("?".into(), |a| a.to_string())),
    );
    let postgres = match &setup.db {
        None => {
            verdict.check("Postgres converged", true, "not checked: DATABASE_URL is not set");
            None
        }
        Some(db) => {
            let c = converge(stats.last_answer, args.common.converge_timeout(), || async {
                let (stock, reserved, paid_orders): (i32, i32, i64) = sqlx::query_as(
                    "SELECT stock, reserved,
                            (SELECT count(*) FROM order_items i JOIN orders o ON o.id = i.order_id
                              WHERE i.option_id = $1 AND o.status = 'PAID')
                     FROM product_options WHERE id = $1",
                )
                .bind(option)
                .fetch_optional(db)
                .await?
                .unwrap_or((-1, -1, 0));
                let seen = format!("stock {stock}, reserved {reserved}, {paid_orders} paid orders; {paid} paid");
                Ok((i64::from(stock) == sold_left && reserved == 0 && paid_orders as u64 == paid, seen))
            })
            .await?;
            verdict.check(
                "Postgres converged: stock == S - paid, nothing reserved, every payment stored",
                c.converged,
                format!("{} after {:.0} ms from the last answer", c.last_seen, c.after_last_response_ms),
            );
            Some(c)
        }
    };
    let report = OrderRushReport {
        scenario: "order-rush",
        buyers: args.buyers,
        stock: args.stock,
        product_id: product,
        option_id: option,
        accepted,
        expected_accepted: expected,
        paid,
        retries: done.iter().map(|b| b.retries.iter().sum::<u64>()).sum(),
        per_route: route_counts(&load, &done),
        max_retries: args.retries,
        load,
        postgres,
        verdict,
    };
    emit(args.common.json, &report, || {
        format!(
            "## jupang loadgen order-rush\n\n{} buyers, one unit each, for a stock of {} (product {}, option {}); \
             each accepted order is paid at once.\n\n{}\n{}\n{}",
            report.buyers,
            report.stock,
            report.product_id,
            report.option_id,
            routes_markdown(&report.per_route, report.max_retries),
            report.load.markdown(),
            report.verdict.markdown()
        )
    })?;
    report.verdict.into_result()
}

/// Requests, successes, 503s and retries of the order route, then of the payment route.
fn route_counts(load: &LoadReport, done: &[Buyers]) -> Vec<RouteCounts> {
    let routes = [ORDER_ROUTE, PAY_ROUTE].into_iter().enumerate();
    routes
        .map(|(i, route)| {
            let r = load.routes.iter().find(|r| r.route == route);
            let answered = |accept: fn(u16) -> bool| -> u64 {
                r.map_or(0, |r| r.outcomes.iter().filter(|o| accept(o.status)).map(|o| o.count).sum())
            };
            RouteCounts {
                route,
                requests: r.map_or(0, |r| r.requests),
                succeeded: answered(|s| (200..300).contains(&s)),
                answered_503: answered(|s| s == 503),
                retries: done.iter().map(|b| b.retries[i]).sum(),
            }
        })
        .collect()
}

/// The per-route table: requests, successes, 503s and retries.
fn routes_markdown(routes: &[RouteCounts], max_retries: u32) -> String {
    let mut s = format!(
        "| route | requests | 2xx | 503 | retries (at most {max_retries} per call) |\n| --- | ---: | ---: | ---: | ---: |\n"
    );
    for r in routes {
        let _ =
            writeln!(s, "| `{}` | {} | {} | {} | {} |", r.route, r.requests, r.succeeded, r.answered_503, r.retries);
    }
    s
}
