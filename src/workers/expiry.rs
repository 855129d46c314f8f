//! The expiry sweeper: PENDING orders not paid before `expires_at` become EXPIRED and their
//! reserved stock returns, every `JUPANG_EXPIRY_SWEEP_SECS`. The same pass reclaims idempotency
//! records past their 24 h retention.
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
use tokio_util::sync::CancellationToken;

use crate::{
    admission::orders::settle,
    state::AppState,
    store::{
        pg::{expiry, idempotency},
        redis::stock::StockStore,
    },
};

/// Orders expired per transaction: small enough to keep locks short under load.
pub const BATCH: i64 = 200;

/// `order_expired_total`: orders the sweeper expired.
pub const ORDER_EXPIRED_TOTAL: &str = "order_expired_total";

/// Due orders the Redis pass looks at per sweep (the rest wait for the next one).
const REDIS_PASS_LIMIT: usize = 10 * BATCH as usize;

/// Expires every PENDING order due at `now`, batch after batch, and returns how many.
/// Tests call this directly instead of waiting for the timer.
pub async fn sweep(db: &PgPool, stock: &StockStore, now: DateTime<Utc>) -> anyhow::Result<u64> {
    let repaired = settle::repair_due(db, stock, now, REDIS_PASS_LIMIT).await?;
    if repaired.settled > 0 {
        tracing::warn!(order.settled = repaired.settled, "settled stock counters a crashed step had left behind");
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
    if total > 0 {
        metrics::counter!(ORDER_EXPIRED_TOTAL).increment(total);
        tracing::info!(order.expired = total, "expired unpaid orders");
    }
    Ok(total)
}

/// Sweeps every `config.expiry_sweep` until `shutdown` is cancelled.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(state.config.expiry_sweep);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {
                // A failed sweep is retried at the next tick; the orders stay due until then.
                if let Err(e) = sweep(&state.db, state.order_admission.stock(), Utc::now()).await {
                    tracing::error!(error.cause = %e, "expiry sweep failed");
                }
                // Bounded per pass so a large backlog never holds a long transaction.
                if let Err(e) = idempotency::purge_expired(&state.db, 10_000).await {
                    tracing::error!(error.cause = %e, "idempotency purge failed");
                }
            }
        }
    }
}
