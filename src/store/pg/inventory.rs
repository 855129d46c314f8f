//! Postgres queries of stock adjustments, and their audit entries as the stock audit route shows
//! them (the view `inventory_audit_log` over the one `audit_log`, migration 0006).

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor, PgPool};

/// An option's stock figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct StockLevel {
    /// Physical stock.
    pub stock: i32,
    /// Held by PENDING orders.
    pub reserved: i32,
}

impl StockLevel {
    /// Sellable quantity.
    pub fn available(self) -> i32 {
        self.stock - self.reserved
    }
}

/// Reads an option's stock and locks its row until the transaction ends, so an adjustment and
/// concurrent reservations are serialised on it.
pub async fn lock_stock(tx: &mut PgConnection, option_id: i64) -> sqlx::Result<Option<StockLevel>> {
    // NO KEY: the adjustment never changes the key, so order items referencing the option
    // (their foreign-key check takes KEY SHARE) are never held up by it.
    sqlx::query_as("SELECT stock, reserved FROM product_options WHERE id = $1 FOR NO KEY UPDATE")
        .bind(option_id)
        .fetch_optional(tx)
        .await
}

/// Sets an option's physical stock (its row must be locked by [`lock_stock`]).
pub async fn set_stock(tx: &mut PgConnection, option_id: i64, stock: i32) -> sqlx::Result<()> {
    sqlx::query("UPDATE product_options SET stock = $2, updated_at = now() WHERE id = $1")
        .bind(option_id)
        .bind(stock)
        .execute(tx)
        .await?;
    Ok(())
}

/// One entry of the audit log.
#[derive(Debug, Clone, FromRow)]
pub struct AuditRow {
    /// Entry id.
    pub id: i64,
    /// The option changed.
    pub option_id: i64,
    /// Who changed it.
    pub actor_user_id: i64,
    /// Why.
    pub reason: String,
    /// Signed change.
    pub delta: i32,
    /// Stock before.
    pub stock_before: i32,
    /// Stock after.
    pub stock_after: i32,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A page of the audit log (of one option, or of all), newest first, and the total count.
pub async fn list_audit(
    db: &PgPool,
    option_id: Option<i64>,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<AuditRow>, i64)> {
    let rows = sqlx::query_as(
        "SELECT id, option_id, actor_user_id, reason, delta, stock_before, stock_after, created_at
         FROM inventory_audit_log WHERE ($1::bigint IS NULL OR option_id = $1)
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
    )
    .bind(option_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let total =
        sqlx::query_scalar("SELECT count(*) FROM inventory_audit_log WHERE ($1::bigint IS NULL OR option_id = $1)")
            .bind(option_id)
            .fetch_one(db)
            .await?;
    Ok((rows, total))
}

/// Whether an option exists.
pub async fn option_exists(db: impl PgExecutor<'_>, option_id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM product_options WHERE id = $1)")
        .bind(option_id)
        .fetch_one(db)
        .await
}
