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
//!
//! The Redis side (keys, scripts, stream codecs) is `store::redis`; the Postgres side of
//! persistence is `store::pg::admitted_coupons` / `admitted_orders`.

pub mod coupons;
pub mod orders;
pub mod user_markets;

/// `reconcile_drift{kind}` gauge: what the reconcilers found, as of their last round. Coupon
/// kinds are listed by [`coupons::reconcile::drift_by_kind`]; `stock` is the total absolute
/// difference between the Redis stock counters and what Postgres says they should be (units).
pub const RECONCILE_DRIFT: &str = "reconcile_drift";
