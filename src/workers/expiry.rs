//! The `expiry` worker: every `JUPANG_EXPIRY_SWEEP_SECS`, expires the PENDING orders not paid in
//! time and returns their stock ([`crate::services::orders::expiry`]); the same pass reclaims
//! idempotency records past their 24 h retention and guest carts past their 30 days.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use crate::services::orders::expiry::BATCH;
use crate::{
    services::{AppState, Fault, catalog, orders::expiry},
    store::{
        pg::{guest_carts, idempotency},
        redis::{notices::Topic, stock::StockStore},
    },
};

/// `order_expired_total`: orders the sweeper expired.
pub const ORDER_EXPIRED_TOTAL: &str = "order_expired_total";

/// Describes [`ORDER_EXPIRED_TOTAL`] and, when the sweeper runs, creates it at zero.
pub fn register_metrics(running: bool) {
    metrics::describe_counter!(
        ORDER_EXPIRED_TOTAL,
        metrics::Unit::Count,
        "Unpaid orders expired and their stock returned"
    );
    if running {
        metrics::counter!(ORDER_EXPIRED_TOTAL).increment(0);
    }
}

/// Expires every PENDING order due at `now` and returns how many; counted in
/// [`ORDER_EXPIRED_TOTAL`]. Tests call this directly instead of waiting for the timer.
pub async fn sweep(db: &PgPool, stock: &StockStore, now: DateTime<Utc>) -> Result<u64, Fault> {
    let total = expiry::expire_due(db, stock, now).await?;
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
                match sweep(&state.db, state.order_admission.stock(), Utc::now()).await {
                    // Stock returned: availability that V1 reservations held changed.
                    Ok(n) if n > 0 => catalog::changed(&state, Topic::Stock, None).await,
                    Ok(_) => {}
                    Err(e) => tracing::error!(error.cause = %e, "expiry sweep failed"),
                }
                // Bounded per pass so a large backlog never holds a long transaction.
                if let Err(e) = idempotency::purge_expired(&state.db, 10_000).await {
                    tracing::error!(error.cause = %e, "idempotency purge failed");
                }
                // Expired guest carts are already invisible; this only reclaims their rows.
                if let Err(e) = guest_carts::sweep_expired(&state.db, Utc::now(), 10_000).await {
                    tracing::error!(error.cause = %e, "guest cart sweep failed");
                }
            }
        }
    }
}
