//! V2 orders (`JUPANG_ORDER_STRATEGY=redis-lua`): stock is reserved by one Lua script in Redis,
//! and Postgres learns about the order from a stream.
//!
//! # The life of a V2 order
//! 1. **Admission** ([`OrderAdmission::create`]): the user's market and the options' prices and
//!    names come from in-process caches ([`option_cache`], [`crate::admission::user_markets`]), so `POST /orders` touches no Postgres
//!    (except to read and empty a cart). `lua/reserve_stock.lua` checks every line's counter,
//!    decrements them all or none, writes the order's hash and appends the admission to the
//!    stream, in one atomic step. A counter that does not exist yet is hydrated ([`hydrate`])
//!    and the script runs once more.
//! 2. **Persistence**: the stream consumer hands entries to
//!    [`crate::store::pg::admitted_orders::OrderSink`], which inserts the order (PENDING,
//!    `reservation = 'redis'`), its items, `reserved += qty` and `order.created`, idempotently.
//!    Whoever needs the row before the consumer got to it (payment, cancel, `GET`, the sweeper)
//!    persists it from the order's hash with the same code ([`settle::persist_from_redis`]).
//! 3. **Settlement**, always Postgres first, then Redis after the commit ([`settle`]):
//!    payment confirms the stock in Postgres and marks the hash paid (never releasable);
//!    expiry and cancel return `reserved` in Postgres and then the counters in Redis, exactly
//!    once (the hash state guards it); a refund restocks both.
//!
//! # Failure windows
//! A process dying between a Postgres commit and its Redis step leaves Redis *under*-counting
//! (units unsellable, never oversold). For releases the sweeper repairs it: the order is still in
//! the due set, and once due the sweeper finds it settled in Postgres and settles Redis the same
//! way ([`settle::repair_due`]). A lost refund restock stays as drift that reconciliation
//! ([`hydrate::reconcile`]) reports as `reconcile_drift{kind="stock"}`.

pub mod hydrate;
pub mod option_cache;
pub mod settle;
pub mod sold_out;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use self::{option_cache::OptionCache, sold_out::SoldOut};
use super::user_markets::UserMarkets;
use crate::{
    domain::order::OrderStatus,
    store::{
        Fault, fault_conversions,
        pg::{
            cart, catalog, movements,
            orders::{Order, OrderItem, OrderSource, Rejection, Reservation},
        },
        redis::{
            RedisStore,
            stock::{ReserveOutcome, StockStore},
            streams::orders::{Admission, AdmittedLine},
        },
    },
};

/// Why an order was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// A business rule refused it; nothing changed.
    #[error("rejected: {0:?}")]
    Rejected(Rejection),
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<Rejection> for AdmitError {
    fn from(r: Rejection) -> Self {
        AdmitError::Rejected(r)
    }
}

fault_conversions!(AdmitError);

/// How long an order stays in its user's recent list beyond its TTL (read-your-writes of lists).
const RECENT_GRACE: Duration = Duration::from_secs(3600);

/// The V2 order engine of one process: caches, the stock store and the pool.
#[derive(Clone)]
pub struct OrderAdmission {
    inner: Arc<Inner>,
}

struct Inner {
    db: PgPool,
    stock: StockStore,
    cache: OptionCache,
    users: Arc<UserMarkets>,
    /// Options known to be sold out: their orders are refused without Redis.
    sold_out: SoldOut,
    order_ttl: Duration,
    /// One hydration at a time per process: a burst that finds a counter missing hydrates it
    /// once instead of once per request.
    hydrating: tokio::sync::Mutex<()>,
}

/// Merges lines of the same option (a BTreeMap keeps them in option id order).
pub fn merge_lines(lines: &[(i64, i64)]) -> BTreeMap<i64, i64> {
    let mut wanted = BTreeMap::new();
    for (option_id, quantity) in lines {
        *wanted.entry(*option_id).or_default() += quantity;
    }
    wanted
}

impl OrderAdmission {
    /// An engine over the pool and Redis; the option cache starts empty
    /// ([`OrderAdmission::warm_up`] fills it); `users` is the process's shared user-market cache.
    pub fn new(db: PgPool, redis: &RedisStore, users: Arc<UserMarkets>, order_ttl: Duration) -> OrderAdmission {
        OrderAdmission {
            inner: Arc::new(Inner {
                db,
                stock: StockStore::new(redis),
                cache: OptionCache::default(),
                users,
                sold_out: SoldOut::default(),
                order_ttl,
                hydrating: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The Redis stock keys and scripts.
    pub fn stock(&self) -> &StockStore {
        &self.inner.stock
    }

    /// The process's cache of users' markets.
    pub fn users(&self) -> &UserMarkets {
        &self.inner.users
    }

    /// The Postgres pool.
    pub fn db(&self) -> &PgPool {
        &self.inner.db
    }

    /// The distinct products of `option_ids` (unknown options are left out: the order itself
    /// refuses them), from the option cache.
    pub async fn products_of(&self, option_ids: &[i64]) -> Result<BTreeSet<i64>, Fault> {
        let options = self.inner.cache.options(&self.inner.db, option_ids).await?;
        Ok(options.values().map(|o| o.product_id).collect())
    }

    /// Start-up: loads the option cache and hydrates every option that has no counter yet.
    pub async fn warm_up(&self) -> Result<(), Fault> {
        self.inner.cache.load_all(&self.inner.db).await?;
        let ids = catalog::option_ids(&self.inner.db).await?;
        let mut missing = Vec::new();
        for chunk in ids.chunks(1_000) {
            let avail = self.inner.stock.available(chunk).await?;
            missing.extend(chunk.iter().zip(avail).filter(|(_, a)| a.is_none()).map(|(id, _)| *id));
        }
        for chunk in missing.chunks(1_000) {
            hydrate::hydrate(&self.inner.db, &self.inner.stock, chunk).await?;
        }
        Ok(())
    }

    /// Hydrates the counters of `option_ids` that are still missing (one at a time per process).
    pub async fn hydrate(&self, option_ids: &[i64]) -> Result<(), Fault> {
        let _one = self.inner.hydrating.lock().await;
        // Another request may have hydrated them while this one waited.
        let avail = self.inner.stock.available(option_ids).await?;
        let missing: Vec<i64> = option_ids.iter().zip(avail).filter(|(_, a)| a.is_none()).map(|(id, _)| *id).collect();
        hydrate::hydrate(&self.inner.db, &self.inner.stock, &missing).await
    }

    /// Forgets that an option (`None`: every option) was sold out: its counter rose. Every
    /// instance calls it on each `Topic::Stock` notice.
    pub fn stock_rose(&self, option_id: Option<i64>) {
        self.inner.sold_out.forget(option_id);
    }

    /// Forgets the cached options of a product (`None`: of every product): its prices, names or
    /// sale flag changed, or the FX rate pricing it. Every instance calls it on each `Topic::Product` notice, the editing
    /// one before it answers, so an order admitted after that reads the edit (a product taken
    /// off sale is refused at once).
    pub fn product_changed(&self, product_id: Option<i64>) {
        self.inner.cache.forget_product(product_id);
    }

    /// Compares every hydrated stock counter with Postgres and sets
    /// `reconcile_drift{kind="stock"}` (for the `reconcile` worker and `jupang reconcile`).
    pub async fn reconcile(&self) -> Result<hydrate::StockDrift, Fault> {
        hydrate::reconcile(&self.inner.db, &self.inner.stock).await
    }

    /// Checks Postgres against its own stock ledger (see
    /// [`crate::store::pg::movements::check`]) and sets `reconcile_drift{kind="ledger"}` to the
    /// number of options that disagree.
    pub async fn check_ledger(&self) -> Result<Vec<movements::LedgerDrift>, Fault> {
        let drift = movements::check(&self.inner.db).await?;
        metrics::gauge!(crate::admission::RECONCILE_DRIFT, "kind" => "ledger").set(drift.len() as f64);
        Ok(drift)
    }

    /// Admits a PENDING order with the id `order_id` (chosen by the caller, so it can be bound to
    /// an idempotency key first): every line reserved in Redis or none. Admitting an id that is
    /// already admitted changes nothing (the script answers "already admitted"). Postgres is read
    /// only for a cart order (the cart lives there) and on a cache miss.
    pub async fn create(
        &self,
        order_id: Uuid,
        user_id: i64,
        source: OrderSource,
        now: DateTime<Utc>,
    ) -> Result<Order, AdmitError> {
        let db = &self.inner.db;
        let market = self.inner.users.market(db, user_id).await?.ok_or(Rejection::UserNotFound)?;
        let currency = market.currency();
        let raw: Vec<(i64, i64)> = match &source {
            OrderSource::Items(items) => items.clone(),
            OrderSource::Cart => cart::quantities(db, user_id).await?,
        };
        let wanted = merge_lines(&raw);
        if wanted.is_empty() {
            return Err(Rejection::EmptyOrder.into());
        }
        let ids: Vec<i64> = wanted.keys().copied().collect();
        let options = self.inner.cache.options(db, &ids).await?;
        let mut lines = Vec::with_capacity(wanted.len());
        for (&option_id, &quantity) in &wanted {
            let o = options.get(&option_id).filter(|o| o.on_sale).ok_or(Rejection::OptionNotFound { option_id })?;
            let (unit_price, price_source) = o.price(currency).ok_or(Rejection::MarketMismatch { option_id })?;
            lines.push(AdmittedLine {
                option_id,
                product_id: o.product_id,
                quantity,
                unit_price,
                product_name: o.product_name(market).to_owned(),
                option_name: o.option_name.clone(),
                price_source,
            });
        }
        // Millisecond precision: what the stream carries, so the persisted row says the same.
        let created_at = now.trunc_subsecs(3);
        let ttl = chrono::Duration::from_std(self.inner.order_ttl).unwrap_or(chrono::Duration::minutes(10));
        let admission = Admission {
            order_id,
            user_id,
            market,
            currency,
            total: lines.iter().map(AdmittedLine::subtotal).sum(),
            created_at,
            expires_at: created_at + ttl,
            lines,
        };
        let stock = &self.inner.stock;
        let sold_out = &self.inner.sold_out;
        if let Some(option_id) = sold_out.known(admission.lines.iter().map(|l| l.option_id)) {
            let requested = admission.lines.iter().find(|l| l.option_id == option_id).map_or(0, |l| l.quantity);
            return Err(Rejection::InsufficientStock { option_id, available: 0, requested }.into());
        }
        let mut hydrated = false;
        loop {
            let epoch = sold_out.epoch();
            match stock.reserve(&admission, self.inner.order_ttl + RECENT_GRACE).await? {
                ReserveOutcome::Admitted => break,
                ReserveOutcome::Short { line, available } => {
                    let l = &admission.lines[line];
                    if available <= 0 {
                        sold_out.remember(l.option_id, epoch);
                    }
                    return Err(Rejection::InsufficientStock {
                        option_id: l.option_id,
                        available: available.max(0),
                        requested: l.quantity,
                    }
                    .into());
                }
                ReserveOutcome::Missing(missing) if !hydrated => {
                    let ids: Vec<i64> = missing.iter().map(|i| admission.lines[*i].option_id).collect();
                    self.hydrate(&ids).await?;
                    hydrated = true;
                }
                ReserveOutcome::Missing(_) => {
                    return Err(Fault::invariant("stock counters still missing after hydration").into());
                }
                ReserveOutcome::Abandoned => {
                    // Only an earlier attempt of this very id that outlived its deadline.
                    return Err(Fault::invariant("an admission of this order id was abandoned and undone").into());
                }
            }
        }
        if matches!(source, OrderSource::Cart) {
            // The order stands whatever happens here; a cart left full is only an inconvenience.
            if let Err(e) = cart::remove_options(db, user_id, &ids).await {
                tracing::warn!(user.id = user_id, error.cause = %e, "could not empty the ordered cart");
            }
        }
        Ok(order_of(admission))
    }
}

/// The order an admission describes, as Postgres will hold it once persisted.
pub fn order_of(a: Admission) -> Order {
    let items = a
        .lines
        .iter()
        .map(|l| OrderItem {
            order_id: a.order_id,
            product_id: l.product_id,
            option_id: l.option_id,
            product_name: l.product_name.clone(),
            option_name: l.option_name.clone(),
            unit_price: l.unit_price,
            quantity: l.quantity as i32,
            subtotal: l.subtotal(),
            price_source: l.price_source,
            refunded_quantity: 0,
        })
        .collect();
    Order {
        id: a.order_id,
        user_id: a.user_id,
        status: OrderStatus::Pending,
        currency: a.currency,
        total_amount: a.total,
        discount_amount: 0,
        final_amount: a.total,
        refunded_amount: 0,
        user_coupon_id: None,
        reservation: Reservation::Redis,
        expires_at: a.expires_at,
        created_at: a.created_at,
        paid_at: None,
        cancelled_at: None,
        items,
    }
}
