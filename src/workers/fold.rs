//! The stock-ledger fold (runs with the `consumer` worker): every [`EVERY`], applies pending
//! `stock_movements` to `product_options`, one `UPDATE` per option per batch
//! ([`crate::store::pg::movements::fold`]). Several instances may run it; one folds at a time
//! (an advisory lock), the others skip the tick. Figures are exact without it (rows plus pending
//! movements), so a slow or stopped fold costs only a longer pending queue, never a wrong answer.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::store::pg::movements;

/// `stock_movements_folded_total`: ledger movements this process applied to option rows.
pub const FOLDED_TOTAL: &str = "stock_movements_folded_total";

/// How often the fold runs when the previous batch emptied the queue.
pub const EVERY: Duration = Duration::from_millis(100);

/// Movements applied per transaction: a full batch is followed at once by the next.
pub const BATCH: i64 = 5_000;

/// Describes [`FOLDED_TOTAL`] and, when the fold runs, creates it at zero.
pub fn register_metrics(running: bool) {
    metrics::describe_counter!(FOLDED_TOTAL, metrics::Unit::Count, "Stock ledger movements applied to option rows");
    if running {
        metrics::counter!(FOLDED_TOTAL).increment(0);
    }
}

/// Folds until the queue is shorter than a batch; returns how many movements were applied.
pub async fn fold_all(db: &PgPool) -> sqlx::Result<u64> {
    let mut total = 0;
    loop {
        let done = movements::fold(db, BATCH).await?;
        total += done.movements;
        if done.movements > 0 {
            metrics::counter!(FOLDED_TOTAL).increment(done.movements);
        }
        if (done.movements as i64) < BATCH {
            return Ok(total);
        }
    }
}

/// Folds every [`EVERY`] until `shutdown` is cancelled.
pub async fn run(db: PgPool, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {
                // A failed fold leaves the movements pending (nothing is lost); the next tick retries.
                if let Err(e) = fold_all(&db).await {
                    tracing::error!(error.cause = %e, "stock ledger fold failed");
                }
            }
        }
    }
}
