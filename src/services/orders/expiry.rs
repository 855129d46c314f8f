//! Expiring unpaid orders: PENDING orders not paid before `expires_at` become EXPIRED and their
//! reserved stock returns (the `expiry` worker runs [`expire_due`] every
//! `JUPANG_EXPIRY_SWEEP_SECS`).
//!
//! Safe to run in several instances at once: each batch takes its orders with
//! `FOR NO KEY UPDATE SKIP LOCKED`, so instances share the work and never expire an order twice.
//!
//! V2 orders (reservation in Redis) are expired the same way in Postgres; their counters are
//! released after each batch's commit, exactly once (the order hash's state guards it). Before
//! that, a Redis pass ([`settle::repair_due`]) persists due orders the stream consumer has not
//! persisted yet (so they expire like the others) and settles in Redis the orders Postgres had
//! already settled when a process died before its Redis step.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::{
    admission::orders::settle,
    store::{Fault, pg::expiry, redis::stock::StockStore},
};

/// Orders expired per transaction: small enough to keep locks short under load.
pub const BATCH: i64 = 200;

/// Due orders the Redis pass looks at per sweep (the rest wait for the next one).
const REDIS_PASS_LIMIT: usize = 10 * BATCH as usize;

/// Expires every PENDING order due at `now`, batch after batch, and returns how many.
pub async fn expire_due(db: &PgPool, stock: &StockStore, now: DateTime<Utc>) -> Result<u64, Fault> {
    let repaired = settle::repair_due(db, stock, now, REDIS_PASS_LIMIT).await?;
    if repaired.settled > 0 {
        tracing::warn!(order.settled = repaired.settled, "settled stock counters a crashed step had left behind");
    }
    if repaired.undone > 0 {
        tracing::warn!(order.undone = repaired.undone, "undid admissions across stock groups abandoned mid-way");
    }
    let mut total = 0;
    loop {
        let held = expiry::expire_due_batch(db, now, BATCH).await?;
        let n = held.len() as u64;
        for h in &held {
            settle::released(stock, h).await;
        }
        total += n;
        // A short batch means nothing due is left (or what is left is locked by a payment,
        // which settles it itself).
        if n < BATCH as u64 {
            break;
        }
    }
    Ok(total)
}
