//! V2, the Redis-Lua admission engine: the one home of what `redis-lua` means for coupons and
//! orders.
//!
//! A request is *admitted* in Redis by one atomic Lua script (coupon issued, stock reserved),
//! which also appends the admission to a Redis Stream; the stream consumer (`workers::consumer`)
//! persists it into Postgres shortly after, and whoever needs the row first persists it itself
//! with the same idempotent code (read-your-writes). Postgres stays the system of record.
//!
//! - [`coupons`]: issue via script, hydration, the terms cache, read-your-writes, reconcile.
//! - [`orders`]: reserve, the option cache, hydration of stock counters, settle/repair after
//!   Postgres changed an order, reconcile.
//! - [`user_markets`]: each user's market, shared by both.
//! - [`refusals`]: the core of both engines' memories of refusals (losers answered without Redis).
//!
//! The Redis side (keys, scripts, stream codecs) is `store::redis`; the Postgres side of
//! persistence is `store::pg::admitted_coupons` / `admitted_orders`.

pub mod coupons;
pub mod orders;
pub mod refusals;
pub mod user_markets;

/// `reconcile_drift{kind}` gauge: what the reconcilers found, as of their last round. Coupon
/// kinds are listed by [`coupons::reconcile::drift_by_kind`]; `stock` is the total absolute
/// difference between the Redis stock counters and what Postgres says they should be (units).
pub const RECONCILE_DRIFT: &str = "reconcile_drift";

/// Every `kind` of [`RECONCILE_DRIFT`].
pub fn drift_kinds() -> impl Iterator<Item = &'static str> {
    coupons::reconcile::drift_by_kind(&[]).map(|(kind, _)| kind).into_iter().chain(["stock", "ledger"])
}

/// Describes the admission engines' metrics (the `reconcile` worker creates the drift series it
/// maintains; stock counters count as they are hydrated).
pub fn register_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_gauge!(RECONCILE_DRIFT, Unit::Count, "Drift between Redis and Postgres counters, by kind");
    describe_counter!(
        orders::hydrate::STOCK_HYDRATED_TOTAL,
        Unit::Count,
        "Stock counters loaded into Redis from Postgres"
    );
}
