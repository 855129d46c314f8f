//! `jupang loadgen mixed`: shoppers browsing, filling carts, ordering and paying, in the
//! proportions of a shop's traffic ([`MIX`]): most requests read the catalog, a few write.
//! Each request picks a random user among 1..=`--users`; a payment pays an order this
//! connection created earlier (or, when it has none pending, becomes an order). It runs for
//! `--requests` calls or `--duration-secs`. Latency and outcomes are reported per route; the
//! verdict is that nothing failed on the server's side: no 5xx and no transport error.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use clap::Args;
use hyper::{Method, body::Bytes, header::HeaderValue};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use super::{
    Common, Env, LoadArgs, emit,
    engine::{self, Answer, Call, Workload, retry_of},
    report::LoadReport,
    setup::Setup,
    verdict::Verdict,
};

/// What a shopper does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `GET /api/products?page=1..3`: a listing page.
    BrowseList,
    /// `GET /api/products/{id}`: a product page.
    ProductDetail,
    /// `POST /api/users/{id}/cart`: one unit into the cart.
    CartAdd,
    /// `POST /api/orders`: one unit of one option.
    Order,
    /// `POST /api/orders/{id}/payment`: pay an order made earlier.
    Pay,
}

/// The traffic mix in per cent (sums to 100): a shop's funnel, where each step is taken by a
/// fraction of those before it: 60 listing views, 20 product pages, 10 cart adds, 6 orders and
/// 4 payments in every 100 requests.
pub const MIX: [(Action, u32); 5] = [
    (Action::BrowseList, 60),
    (Action::ProductDetail, 20),
    (Action::CartAdd, 10),
    (Action::Order, 6),
    (Action::Pay, 4),
];

impl Action {
    /// The action of a roll in `0..100`.
    pub fn of_roll(roll: u32) -> Action {
        let mut acc = 0;
        for (action, share) in MIX {
            acc += share;
            if roll < acc {
                return action;
            }
        }
        Action::BrowseList
    }

    fn route(self) -> &'static str {
        match self {
            Action::BrowseList => "GET /api/products",
            Action::ProductDetail => "GET /api/products/{id}",
            Action::CartAdd => "POST /api/users/{id}/cart",
            Action::Order => super::order_rush::ORDER_ROUTE,
            Action::Pay => super::order_rush::PAY_ROUTE,
        }
    }
}

/// Options of `jupang loadgen mixed`.
#[derive(Debug, Clone, Args)]
pub struct MixedArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    load: LoadArgs,
    /// Shoppers are users 1..=N.
    #[arg(long, default_value_t = 1_000)]
    users: u32,
    /// New products (one option each, plenty of stock) the shoppers buy.
    #[arg(long, default_value_t = 10)]
    products: u32,
    /// Stop after this many requests (default 10,000 unless --duration-secs is given).
    #[arg(long, conflicts_with = "duration_secs")]
    requests: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration_secs: Option<u64>,
    /// Retries of retryable answers (409 CONCURRENCY_CONFLICT, 503 OVERLOADED).
    #[arg(long, default_value_t = 5)]
    retries: u32,
}

/// What a mixed run measured and concluded.
#[derive(Debug, Clone, Serialize)]
pub struct MixedReport {
    /// `mixed`.
    pub scenario: &'static str,
    /// Shoppers.
    pub users: u32,
    /// The products created for the run.
    pub product_ids: Vec<i64>,
    /// The traffic mix, per cent.
    pub mix: Vec<(Action, u32)>,
    /// Throughput, latency and outcomes per route.
    pub load: LoadReport,
    /// The checks.
    pub verdict: Verdict,
}

struct Shop {
    taken: AtomicU64,
    limit: Option<u64>,
    users: u32,
    tokens: Vec<HeaderValue>,
    products: Vec<(i64, i64)>,
    retries: u32,
}

/// One connection's shoppers.
struct Shopper {
    shop: Arc<Shop>,
    rng: StdRng,
    retry: Option<Call>,
    pending: VecDeque<(u32, String)>,
}

#[derive(Deserialize)]
struct Created {
    order_id: String,
}

impl Shopper {
    fn call(&self, action: Action, path: String, user: Option<u32>, body: Option<String>) -> Option<Call> {
        let mut call =
            Call::new(action.route(), if body.is_some() { Method::POST } else { Method::GET }, path.parse().ok()?);
        if let Some(u) = user {
            call.auth = Some(self.shop.tokens[u as usize - 1].clone());
            call.tag = u.into();
        }
        call.body = body.map(Bytes::from);
        Some(call)
    }
}

impl Workload for Shopper {
    fn next(&mut self) -> Option<Call> {
        if let Some(retry) = self.retry.take() {
            return Some(retry);
        }
        if self.shop.limit.is_some_and(|l| self.shop.taken.fetch_add(1, Ordering::Relaxed) >= l) {
            return None;
        }
        let user = self.rng.random_range(1..=self.shop.users);
        let (product, option) = self.shop.products[self.rng.random_range(0..self.shop.products.len())];
        let mut action = Action::of_roll(self.rng.random_range(0..100));
        if action == Action::Pay && self.pending.is_empty() {
            action = Action::Order;
        }
        match action {
            Action::BrowseList => {
                let page = self.rng.random_range(1..=3);
                self.call(action, format!("/api/products?page={page}&size=20"), None, None)
            }
            Action::ProductDetail => self.call(action, format!("/api/products/{product}"), None, None),
            Action::CartAdd => self.call(
                action,
                format!("/api/users/{user}/cart"),
                Some(user),
                Some(format!(r#"{{"product_option_id":{option},"quantity":1}}"#)),
            ),
            Action::Order => self.call(
                action,
                "/api/orders".into(),
                Some(user),
                Some(format!(r#"{{"user_id":{user},"items":[{{"product_option_id":{option},"quantity":1}}]}}"#)),
            ),
            Action::Pay => {
                let (owner, order) = self.pending.pop_front()?;
                self.call(
                    action,
                    format!("/api/orders/{order}/payment"),
                    Some(owner),
                    Some(format!(r#"{{"user_id":{owner}}}"#)),
                )
            }
        }
    }

    fn answered(&mut self, call: &Call, answer: &Answer<'_>) {
        if call.route == Action::Order.route() && answer.status == Ok(201) {
            if let Ok(created) = serde_json::from_slice::<Created>(answer.body) {
                self.pending.push_back((call.tag as u32, created.order_id));
            }
        } else if let Some(retry) = retry_of(call, answer, self.shop.retries) {
            self.retry = Some(retry);
        }
    }
}

/// `jupang loadgen mixed`.
pub async fn run(args: MixedArgs, env: &Env) -> anyhow::Result<()> {
    anyhow::ensure!(args.users >= 1 && args.products >= 1, "--users and --products must be at least 1");
    let target = args.common.target()?;
    let pacing = args.load.pacing()?;
    let setup = Setup::new(env).await?;
    setup.ensure_users(args.users).await?;
    let mut products = Vec::new();
    for _ in 0..args.products {
        // Stock enough that the mix never runs out: this scenario measures, order-rush sells out.
        products.push(setup.create_product(&target, "loadgen", 1_000_000, 1_000).await?);
    }
    let limit = match (args.requests, args.duration_secs) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(10_000),
    };
    let shop = Arc::new(Shop {
        taken: AtomicU64::new(0),
        limit,
        users: args.users,
        tokens: setup.customer_tokens(args.users),
        products: products.clone(),
        retries: args.retries,
    });
    let workloads = (0..pacing.connections())
        .map(|_| Shopper {
            shop: shop.clone(),
            rng: StdRng::from_rng(&mut rand::rng()),
            retry: None,
            pending: VecDeque::new(),
        })
        .collect();
    let mut options = args.common.options(pacing, "mixed");
    options.duration = args.duration_secs.map(Duration::from_secs);
    let (stats, _) = engine::run(&target, options, workloads).await?;
    let load = LoadReport::new(&target, &stats);

    let mut verdict = Verdict::new();
    let server_errors = load.server_errors();
    verdict.check("no 5xx answer", server_errors == 0, format!("{server_errors} answers 5xx"));
    verdict.check(
        "no transport error",
        load.transport_errors == 0,
        format!("{} transport errors", load.transport_errors),
    );
    let report = MixedReport {
        scenario: "mixed",
        users: args.users,
        product_ids: products.iter().map(|(p, _)| *p).collect(),
        mix: MIX.to_vec(),
        load,
        verdict,
    };
    emit(args.common.json, &report, || {
        let mix: Vec<String> = MIX.iter().map(|(a, p)| format!("{p}% {}", a.route())).collect();
        format!(
            "## jupang loadgen mixed\n\n{} shoppers; mix: {}.\n\n{}\n{}",
            report.users,
            mix.join(", "),
            report.load.markdown(),
            report.verdict.markdown()
        )
    })?;
    report.verdict.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_adds_up_to_a_hundred_and_rolls_map_onto_it() {
        assert_eq!(MIX.iter().map(|(_, p)| p).sum::<u32>(), 100);
        let mut counts = std::collections::HashMap::new();
        for roll in 0..100 {
            *counts.entry(Action::of_roll(roll)).or_insert(0u32) += 1;
        }
        for (action, share) in MIX {
            assert_eq!(counts[&action], share, "{action:?}");
        }
    }
}
