//! Reading payments (`payments` joined with their order): one by id, or a user's, newest first.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor, PgPool};
use uuid::Uuid;

/// A payment as its record shows it.
#[derive(Debug, Clone, FromRow)]
pub struct PaymentRecord {
    /// Payment id (UUIDv7).
    pub id: Uuid,
    /// The order paid.
    pub order_id: Uuid,
    /// Who paid.
    pub user_id: i64,
    /// Charged to the wallet, minor units.
    pub amount: i64,
    /// The coupon discount of the order, minor units.
    pub discount_amount: i64,
    /// Currency code of both amounts.
    pub currency: String,
    /// `WALLET`.
    pub method: String,
    /// `COMPLETED`, `REFUNDED` (or `PENDING`, `FAILED`).
    pub status: String,
    /// When the order was paid.
    pub paid_at: DateTime<Utc>,
    /// Returned to the wallet so far, minor units.
    pub refunded_amount: i64,
}

/// What a record shows of its payment. `refunded_amount` is the order's own (one home: every
/// refund, partial or whole, and the cancel of a paid order add to it in `store::pg::refunds`).
const SELECT: &str = "SELECT p.id, p.order_id, p.user_id, p.amount, o.discount_amount, p.currency, p.method, \
     p.status, COALESCE(o.paid_at, p.created_at) AS paid_at, o.refunded_amount \
     FROM payments p JOIN orders o ON o.id = p.order_id";

/// One payment.
pub async fn find(db: impl PgExecutor<'_>, payment_id: Uuid) -> sqlx::Result<Option<PaymentRecord>> {
    sqlx::query_as(&format!("{SELECT} WHERE p.id = $1")).bind(payment_id).fetch_optional(db).await
}

/// A page of a user's payments, newest first, and how many there are.
pub async fn list_for_user(
    db: &PgPool,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<PaymentRecord>, i64)> {
    let rows = sqlx::query_as(&format!(
        "{SELECT} WHERE p.user_id = $1 ORDER BY p.created_at DESC, p.id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(user_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let total =
        sqlx::query_scalar("SELECT count(*) FROM payments WHERE user_id = $1").bind(user_id).fetch_one(db).await?;
    Ok((rows, total))
}
