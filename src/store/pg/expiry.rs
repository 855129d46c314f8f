//! Expiring unpaid orders: the sweeper's batches, and the single order a late payment finds.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::reservations;

/// Marks already-locked PENDING orders EXPIRED and returns their reserved stock, inside the
/// caller's transaction.
pub async fn expire_locked(tx: &mut PgConnection, order_ids: &[Uuid], now: DateTime<Utc>) -> sqlx::Result<()> {
    if order_ids.is_empty() {
        return Ok(());
    }
    reservations::release(tx, order_ids).await?;
    sqlx::query("UPDATE orders SET status = 'EXPIRED', updated_at = $2 WHERE id = ANY($1) AND status = 'PENDING'")
        .bind(order_ids)
        .bind(now)
        .execute(tx)
        .await?;
    Ok(())
}

/// Expires one order now if it is still PENDING and overdue (what a late payment found), in its
/// own transaction; the sweeper would do the same within one sweep interval.
pub async fn expire_if_overdue(pool: &PgPool, order_id: Uuid, now: DateTime<Utc>) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE id = $1 AND status = 'PENDING' AND reservation = 'db' AND expires_at <= $2 \
         FOR NO KEY UPDATE",
    )
    .bind(order_id)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    expire_locked(&mut tx, &ids, now).await?;
    tx.commit().await
}

/// Expires at most `limit` PENDING orders due at `now` in one transaction and returns how many.
///
/// `SKIP LOCKED` lets several sweepers (several instances) share the work without waiting on
/// each other, and skips an order a payment is holding: the payment itself then decides, under
/// the same lock, whether the order is paid or already expired, so an order is never both.
/// Only orders whose reservation lives in Postgres (`reservation = 'db'`) are swept here.
pub async fn expire_due_batch(pool: &PgPool, now: DateTime<Utc>, limit: i64) -> sqlx::Result<u64> {
    let mut tx = pool.begin().await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE status = 'PENDING' AND reservation = 'db' AND expires_at <= $1 \
         ORDER BY expires_at LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    expire_locked(&mut tx, &ids, now).await?;
    tx.commit().await?;
    Ok(ids.len() as u64)
}
