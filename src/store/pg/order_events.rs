//! Events of orders that end without a sale: `order.cancelled` and `order.expired`
//! (order_id, user_id, amount, items, reason, occurred_at), written in the transaction that
//! ends the order, like every outbox event.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::outbox::{self, EventType, NewEvent};

/// Why a cancelled order ended: the owner (or an agent for them) asked.
pub const CANCEL_REQUESTED: &str = "cancel_requested";
/// Why an expired order ended: it was not paid within `JUPANG_ORDER_TTL_SECS`.
pub const PAYMENT_TIMEOUT: &str = "payment_timeout";

/// Writes one event of `kind` per order of `order_ids` (read with their items), in the caller's
/// transaction, which has ended them at `at`.
pub async fn ended(
    tx: &mut PgConnection,
    kind: EventType,
    order_ids: &[Uuid],
    reason: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    if order_ids.is_empty() {
        return Ok(());
    }
    let orders: Vec<(Uuid, i64, String, i64, Value)> = sqlx::query_as(
        "SELECT o.id, o.user_id, o.currency, o.final_amount, \
                json_agg(json_build_object('product_option_id', oi.option_id, 'quantity', oi.quantity) \
                         ORDER BY oi.option_id) \
         FROM orders o JOIN order_items oi ON oi.order_id = o.id \
         WHERE o.id = ANY($1) GROUP BY o.id ORDER BY o.id",
    )
    .bind(order_ids)
    .fetch_all(&mut *tx)
    .await?;
    let events = orders
        .into_iter()
        .map(|(order_id, user_id, currency, amount, items)| NewEvent {
            kind,
            occurred_at: at,
            payload: json!({
                "order_id": order_id,
                "user_id": user_id,
                "amount": { "amount": amount, "currency": currency },
                "items": items,
                "reason": reason,
            }),
        })
        .collect();
    outbox::enqueue_all(tx, events).await?;
    Ok(())
}
