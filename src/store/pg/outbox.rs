//! The transactional outbox: events are written in the same transaction as the change they
//! describe, and delivered to the data platform later by the outbox worker.

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
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
    /// `stock.changed`: product_option_id, delta, reason (and reserved_delta, movement,
    /// order_id: see `movements`).
    StockChanged,
    /// `order.cancelled`: order_id, amount, items, reason.
    OrderCancelled,
    /// `order.expired`: order_id, amount, items, reason.
    OrderExpired,
    /// `order.refunded`: order_id, amount, items (product_option_id, quantity), reason, occurred_at.
    OrderRefunded,
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
            EventType::OrderCancelled => "order.cancelled",
            EventType::OrderExpired => "order.expired",
            EventType::OrderRefunded => "order.refunded",
        }
    }
}

/// One event to append: its type, when the change happened, and the type's fields.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event type.
    pub kind: EventType,
    /// When the change it describes happened.
    pub occurred_at: DateTime<Utc>,
    /// The type's fields.
    pub payload: Value,
}

/// Appends an event inside the caller's transaction (see [`enqueue_all`]); returns its id.
pub async fn enqueue(
    tx: &mut PgConnection,
    kind: EventType,
    occurred_at: DateTime<Utc>,
    payload: Value,
) -> sqlx::Result<Uuid> {
    let ids = enqueue_all(tx, vec![NewEvent { kind, occurred_at, payload }]).await?;
    Ok(ids[0])
}

/// Appends events inside the caller's transaction, in one statement; returns their ids in order.
/// A payload holds the type's fields; the envelope (`event_id`, `type`, `occurred_at`) is added
/// at delivery, and `occurred_at` is also put into the payload as the contract lists it among
/// the fields.
pub async fn enqueue_all(tx: &mut PgConnection, events: Vec<NewEvent>) -> sqlx::Result<Vec<Uuid>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = events.iter().map(|_| Uuid::now_v7()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    // Postgres keeps microseconds: truncating first makes the payload's `occurred_at` and the
    // envelope's (read back from the column) the very same instant.
    let occurred: Vec<DateTime<Utc>> = events.iter().map(|e| e.occurred_at.trunc_subsecs(6)).collect();
    let payloads: Vec<String> = events
        .into_iter()
        .zip(&occurred)
        .map(|(mut e, at)| {
            if let Value::Object(map) = &mut e.payload {
                map.insert("occurred_at".into(), Value::String(at.to_rfc3339()));
            }
            e.payload.to_string()
        })
        .collect();
    sqlx::query(
        "INSERT INTO outbox_events (id, type, payload, occurred_at)
         SELECT e.id, e.type, e.payload::jsonb, e.occurred_at
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) AS e(id, type, payload, occurred_at)",
    )
    .bind(&ids)
    .bind(&kinds)
    .bind(&payloads)
    .bind(&occurred)
    .execute(tx)
    .await?;
    Ok(ids)
}

// ------------------------------------------------------------------ delivery (the outbox worker)

/// An event claimed for one delivery attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedEvent {
    /// The event id, also the delivery's `Idempotency-Key`.
    pub id: Uuid,
    /// The wire type (`order.created`, ...).
    #[sqlx(rename = "type")]
    pub kind: String,
    /// The type's fields.
    pub payload: Value,
    /// When the change happened.
    pub occurred_at: DateTime<Utc>,
    /// Delivery attempts made before this one.
    pub attempts: i32,
}

/// Claims up to `limit` due PENDING events for one delivery attempt each.
///
/// `FOR UPDATE SKIP LOCKED` lets several instances claim concurrently without waiting on each
/// other, and the claim is a lease: `next_attempt_at` moves `lease_ms` ahead, so no other
/// instance picks the event up while it is being sent, and a process that dies mid-delivery
/// leaves it to be retried once the lease runs out (the `Idempotency-Key` makes that safe).
pub async fn claim_due(pool: &PgPool, limit: i64, lease_ms: i64) -> sqlx::Result<Vec<ClaimedEvent>> {
    sqlx::query_as(
        "UPDATE outbox_events o SET next_attempt_at = now() + $2 * interval '1 millisecond'
         FROM (SELECT id FROM outbox_events
               WHERE status = 'PENDING' AND next_attempt_at <= now()
               ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
         WHERE o.id = due.id
         RETURNING o.id, o.type, o.payload, o.occurred_at, o.attempts",
    )
    .bind(limit)
    .bind(lease_ms)
    .fetch_all(pool)
    .await
}

/// Records a successful delivery.
pub async fn mark_delivered(pool: &PgPool, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE outbox_events SET status = 'DELIVERED', attempts = attempts + 1, delivered_at = now(),
                last_error = NULL
         WHERE id = $1 AND status = 'PENDING'",
    )
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Records a failed attempt: retried after `retry_in_ms`, or FAILED for good when `None`.
/// `error` must hold no secrets (no URLs: they may carry credentials).
pub async fn record_failure(pool: &PgPool, id: Uuid, error: &str, retry_in_ms: Option<i64>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE outbox_events SET attempts = attempts + 1, last_error = $2,
                status = CASE WHEN $3::bigint IS NULL THEN 'FAILED' ELSE 'PENDING' END,
                next_attempt_at = now() + COALESCE($3::bigint, 0) * interval '1 millisecond'
         WHERE id = $1 AND status = 'PENDING'",
    )
    .bind(id)
    .bind(error)
    .bind(retry_in_ms)
    .execute(pool)
    .await
    .map(|_| ())
}

/// The events waiting for delivery (including those being sent and those backing off).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pending {
    /// How many.
    pub count: i64,
    /// Seconds since the oldest of them was written; 0 when there is none.
    pub oldest_age_secs: f64,
}

/// How many events wait for delivery, and how long the oldest has waited, in one statement.
pub async fn pending(pool: &PgPool) -> sqlx::Result<Pending> {
    let (count, oldest_age_secs): (i64, f64) = sqlx::query_as(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
         FROM outbox_events WHERE status = 'PENDING'",
    )
    .fetch_one(pool)
    .await?;
    Ok(Pending { count, oldest_age_secs: oldest_age_secs.max(0.0) })
}

/// An outbox event as operators see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxEvent {
    /// The event id.
    pub id: Uuid,
    /// The wire type.
    #[sqlx(rename = "type")]
    pub kind: String,
    /// `PENDING`, `DELIVERED` or `FAILED`.
    pub status: String,
    /// Delivery attempts made in the current round (a redelivery starts a new round).
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the change happened.
    pub occurred_at: DateTime<Utc>,
    /// When the next attempt is due (meaningful while PENDING).
    pub next_attempt_at: DateTime<Utc>,
    /// When the platform acknowledged it.
    pub delivered_at: Option<DateTime<Utc>>,
    /// The type's fields.
    pub payload: Value,
}

const EVENT_COLUMNS: &str =
    "id, type, status, attempts, last_error, occurred_at, next_attempt_at, delivered_at, payload";

/// One page of events, newest first, optionally of one status; with the total count.
pub async fn list(
    pool: &PgPool,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<OutboxEvent>, i64)> {
    let items = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM outbox_events WHERE ($1::text IS NULL OR status = $1)
         ORDER BY occurred_at DESC, id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(status)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar("SELECT count(*) FROM outbox_events WHERE ($1::text IS NULL OR status = $1)")
        .bind(status)
        .fetch_one(pool)
        .await?;
    Ok((items, total))
}

/// Queues a FAILED or DELIVERED event for a new round of delivery attempts, due now; a PENDING
/// event is left as it is (it is already on its way). Answers the event before and after, under
/// its row lock; `None` when there is no such event.
pub async fn redeliver(tx: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<(OutboxEvent, OutboxEvent)>> {
    let before: Option<OutboxEvent> =
        sqlx::query_as(&format!("SELECT {EVENT_COLUMNS} FROM outbox_events WHERE id = $1 FOR UPDATE"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(before) = before else { return Ok(None) };
    if before.status == "PENDING" {
        return Ok(Some((before.clone(), before)));
    }
    let after: OutboxEvent = sqlx::query_as(&format!(
        "UPDATE outbox_events SET status = 'PENDING', attempts = 0, next_attempt_at = now(), delivered_at = NULL
         WHERE id = $1 RETURNING {EVENT_COLUMNS}"
    ))
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(Some((before, after)))
}
