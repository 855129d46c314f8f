//! The transactional outbox: events are written in the same transaction as the change they
//! describe, and delivered to the data platform later by the outbox worker.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// The event types of the contract (api.md, "Events to the external data platform").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `order.created`: order_id, items (product_option_id, quantity), total_amount.
    OrderCreated,
    /// `payment.completed`: order_id, amount, method.
    PaymentCompleted,
    /// `coupon.issued`: coupon_id, user_id, user_coupon_id.
    CouponIssued,
    /// `coupon.used`: coupon_id, user_coupon_id, order_id, discount_amount.
    CouponUsed,
    /// `stock.changed`: product_option_id, delta, reason.
    StockChanged,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderCreated => "order.created",
            EventType::PaymentCompleted => "payment.completed",
            EventType::CouponIssued => "coupon.issued",
            EventType::CouponUsed => "coupon.used",
            EventType::StockChanged => "stock.changed",
        }
    }
}

/// Appends an event inside the caller's transaction. `payload` holds the type's fields; the
/// envelope (`event_id`, `type`, `occurred_at`) is added at delivery, and `occurred_at` is also
/// put into the payload as the contract lists it among the fields.
pub async fn enqueue(
    tx: &mut PgConnection,
    kind: EventType,
    occurred_at: DateTime<Utc>,
    mut payload: Value,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    if let Value::Object(map) = &mut payload {
        map.insert("occurred_at".into(), Value::String(occurred_at.to_rfc3339()));
    }
    sqlx::query("INSERT INTO outbox_events (id, type, payload, occurred_at) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(kind.as_str())
        .bind(payload)
        .bind(occurred_at)
        .execute(tx)
        .await?;
    Ok(id)
}
