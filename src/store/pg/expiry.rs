//! Expiring unpaid orders: the sweeper's batches, and the single order a late payment finds.
//!
//! Orders of both reservation kinds are expired here: Postgres returns `reserved` in the
//! transaction, and the caller applies the returned [`HeldStock`] to Redis after the commit
//! (`admission::orders::settle::released`).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{
    movements::Kind,
    order_events,
    orders::{HeldStock, Reservation},
    outbox::EventType,
    reservations,
};

/// Marks already-locked PENDING orders EXPIRED and returns their reserved stock, inside the
/// caller's transaction; returns what each held, for the Redis step after the commit.
pub async fn expire_locked(
    tx: &mut PgConnection,
    orders: &[(Uuid, String)],
    now: DateTime<Utc>,
) -> sqlx::Result<Vec<HeldStock>> {
    if orders.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = orders.iter().map(|o| o.0).collect();
    let lines: Vec<(Uuid, i64, i64)> = sqlx::query_as(
        "SELECT order_id, option_id, quantity::bigint FROM order_items WHERE order_id = ANY($1) ORDER BY order_id, option_id",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let held: Vec<(Uuid, Reservation)> = orders.iter().map(|(id, r)| (*id, Reservation::parse(r))).collect();
    reservations::release(tx, &held, Kind::Expire).await?;
    sqlx::query("UPDATE orders SET status = 'EXPIRED', updated_at = $2 WHERE id = ANY($1) AND status = 'PENDING'")
        .bind(&ids)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    order_events::ended(tx, EventType::OrderExpired, &ids, order_events::PAYMENT_TIMEOUT, now).await?;
    Ok(orders
        .iter()
        .map(|(id, reservation)| HeldStock {
            order_id: *id,
            reservation: Reservation::parse(reservation),
            lines: lines.iter().filter(|l| l.0 == *id).map(|l| (l.1, l.2)).collect(),
        })
        .collect())
}

/// Expires one order now if it is still PENDING and overdue (what a late payment found), in its
/// own transaction; the sweeper would do the same within one sweep interval.
pub async fn expire_if_overdue(pool: &PgPool, order_id: Uuid, now: DateTime<Utc>) -> sqlx::Result<Vec<HeldStock>> {
    let mut tx = pool.begin().await?;
    let orders: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, reservation FROM orders WHERE id = $1 AND status = 'PENDING' AND expires_at <= $2 \
         FOR NO KEY UPDATE",
    )
    .bind(order_id)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let held = expire_locked(&mut tx, &orders, now).await?;
    tx.commit().await?;
    Ok(held)
}

/// Expires at most `limit` PENDING orders due at `now` in one transaction and returns what
/// they held.
///
/// `SKIP LOCKED` lets several sweepers (several instances) share the work without waiting on
/// each other, and skips an order a payment is holding: the payment itself then decides, under
/// the same lock, whether the order is paid or already expired, so an order is never both.
pub async fn expire_due_batch(pool: &PgPool, now: DateTime<Utc>, limit: i64) -> sqlx::Result<Vec<HeldStock>> {
    let mut tx = pool.begin().await?;
    let orders: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, reservation FROM orders WHERE status = 'PENDING' AND expires_at <= $1 \
         ORDER BY expires_at LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let held = expire_locked(&mut tx, &orders, now).await?;
    tx.commit().await?;
    Ok(held)
}
