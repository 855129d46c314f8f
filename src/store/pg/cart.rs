//! Postgres side of the cart: lines with live prices and availability, and their changes.
//!
//! The cart reserves nothing; it only refuses quantities beyond what is sellable right now
//! (stock minus reservations). The order re-checks under lock.

use sqlx::{FromRow, PgConnection, PgExecutor, PgPool};

use super::orders::{Rejection, StoreError};
use crate::domain::fx::PriceSource;

/// Whose cart: a user's, or a guest cart's (by its row id, never its token). One set of queries
/// serves both; only the owning column differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A signed-in user's cart.
    User(i64),
    /// A guest cart (`guest_carts.id`).
    Guest(i64),
}

impl Owner {
    /// The `cart_items` column naming the owner (a constant, so safe to format into SQL).
    fn column(self) -> &'static str {
        match self {
            Owner::User(_) => "user_id",
            Owner::Guest(_) => "guest_cart_id",
        }
    }

    fn id(self) -> i64 {
        match self {
            Owner::User(id) | Owner::Guest(id) => id,
        }
    }
}

/// A cart line joined with its product, price (in the user's currency) and availability.
#[derive(Debug, Clone, FromRow)]
pub struct CartLine {
    /// Cart item id.
    pub id: i64,
    /// Product id.
    pub product_id: i64,
    /// Option id.
    pub option_id: i64,
    /// Product name in Korean.
    pub name_ko: String,
    /// Product name in English.
    pub name_en: String,
    /// Option name.
    pub option_name: String,
    /// Product category (for coupon restrictions).
    pub category: String,
    /// Unit price in the user's currency (listed, or converted at the FX rate in force).
    pub unit_price: i64,
    /// Where the unit price came from.
    #[sqlx(try_from = "String")]
    pub price_source: PriceSource,
    /// Units in the cart.
    pub quantity: i32,
    /// Sellable now: stock minus reservations.
    pub available: i64,
}

impl CartLine {
    /// unit price x quantity.
    pub fn subtotal(&self) -> i64 {
        self.unit_price.saturating_mul(i64::from(self.quantity))
    }
}

const LINES: &str = "SELECT ci.id, po.product_id, ci.option_id, p.name_ko, p.name_en, po.name AS option_name, \
     p.category, op.amount AS unit_price, op.source AS price_source, ci.quantity, (s.stock - s.reserved)::bigint AS available \
     FROM cart_items ci \
     JOIN product_options po ON po.id = ci.option_id \
     JOIN option_stock s ON s.id = po.id \
     JOIN products p ON p.id = po.product_id \
     JOIN option_market_prices op ON op.option_id = po.id AND op.currency = $2";

/// The cart's lines priced in `currency`, oldest first. Lines without a price in that
/// currency cannot be added, so none are hidden in practice.
pub async fn lines(db: impl PgExecutor<'_>, owner: Owner, currency: &str) -> sqlx::Result<Vec<CartLine>> {
    sqlx::query_as(&format!("{LINES} WHERE ci.{} = $1 ORDER BY ci.created_at, ci.id", owner.column()))
        .bind(owner.id())
        .bind(currency)
        .fetch_all(db)
        .await
}

/// One line of the cart.
pub async fn line(
    db: impl PgExecutor<'_>,
    owner: Owner,
    currency: &str,
    item_id: i64,
) -> sqlx::Result<Option<CartLine>> {
    sqlx::query_as(&format!("{LINES} WHERE ci.{} = $1 AND ci.id = $3", owner.column()))
        .bind(owner.id())
        .bind(currency)
        .bind(item_id)
        .fetch_optional(db)
        .await
}

/// What an option offers a user: whether it is sold in the user's currency and how much is left.
pub(crate) async fn offer(db: impl PgExecutor<'_>, option_id: i64, currency: &str) -> Result<i64, StoreError> {
    let row: Option<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT (s.stock - s.reserved)::bigint, op.amount FROM product_options po \
         JOIN option_stock s ON s.id = po.id \
         JOIN products p ON p.id = po.product_id AND p.on_sale \
         LEFT JOIN option_market_prices op ON op.option_id = po.id AND op.currency = $2 WHERE po.id = $1",
    )
    .bind(option_id)
    .bind(currency)
    .fetch_optional(db)
    .await?;
    match row {
        None => Err(Rejection::OptionNotFound { option_id }.into()),
        Some((_, None)) => Err(Rejection::MarketMismatch { option_id }.into()),
        Some((available, Some(_))) => Ok(available),
    }
}

/// Adds `quantity` of an option, accumulating onto an existing line; returns the line as
/// committed (read in the same transaction: a guest cart merged right after the commit must not
/// turn an applied add into a "not found" answer). Refused (nothing changed) when the resulting
/// quantity is more than is available.
pub async fn add(
    pool: &PgPool,
    owner: Owner,
    currency: &str,
    option_id: i64,
    quantity: i64,
) -> Result<CartLine, StoreError> {
    let mut tx = pool.begin().await?;
    let available = offer(&mut *tx, option_id, currency).await?;
    let (id, total) = upsert(&mut tx, owner, option_id, quantity).await?;
    if i64::from(total) > available {
        // Dropping the transaction rolls the upsert back.
        return Err(
            Rejection::InsufficientStock { option_id, available: available.max(0), requested: total.into() }.into()
        );
    }
    let line = line(&mut *tx, owner, currency, id).await?.ok_or(Rejection::CartItemNotFound)?;
    tx.commit().await?;
    Ok(line)
}

/// Adds `quantity` onto the owner's line of an option (creating it); returns the line's id and
/// its new quantity. The upsert is one atomic step on the (owner, option) row, so concurrent
/// adds accumulate; the sum is clamped to the column's range (a stock check then refuses it).
pub(crate) async fn upsert(
    tx: &mut PgConnection,
    owner: Owner,
    option_id: i64,
    quantity: i64,
) -> sqlx::Result<(i64, i32)> {
    let col = owner.column();
    sqlx::query_as(&format!(
        "INSERT INTO cart_items ({col}, option_id, quantity) VALUES ($1, $2, $3) \
         ON CONFLICT ({col}, option_id) DO UPDATE \
         SET quantity = LEAST(cart_items.quantity::bigint + EXCLUDED.quantity, 2147483647)::int, updated_at = now() \
         RETURNING id, quantity"
    ))
    .bind(owner.id())
    .bind(option_id)
    .bind(quantity.clamp(1, i64::from(i32::MAX)) as i32)
    .fetch_one(tx)
    .await
}

/// Sets a line's quantity after re-checking availability.
pub async fn set_quantity(
    pool: &PgPool,
    owner: Owner,
    currency: &str,
    item_id: i64,
    quantity: i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let option_id: i64 = sqlx::query_scalar(&format!(
        "SELECT option_id FROM cart_items WHERE id = $1 AND {} = $2 FOR UPDATE",
        owner.column()
    ))
    .bind(item_id)
    .bind(owner.id())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Rejection::CartItemNotFound)?;
    let available = offer(&mut *tx, option_id, currency).await?;
    if quantity > available {
        return Err(Rejection::InsufficientStock { option_id, available: available.max(0), requested: quantity }.into());
    }
    sqlx::query("UPDATE cart_items SET quantity = $2, updated_at = now() WHERE id = $1")
        .bind(item_id)
        .bind(quantity as i32)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The `(option, quantity)` lines of the user's cart in option order (for an order of the cart).
pub async fn quantities(db: impl PgExecutor<'_>, user_id: i64) -> sqlx::Result<Vec<(i64, i64)>> {
    sqlx::query_as(QUANTITIES).bind(user_id).fetch_all(db).await
}

/// [`quantities`], locking the lines until the transaction ends, so a concurrent cart edit waits
/// for the order instead of racing its clean-up.
pub async fn lock_quantities(tx: &mut PgConnection, user_id: i64) -> sqlx::Result<Vec<(i64, i64)>> {
    sqlx::query_as(&format!("{QUANTITIES} FOR UPDATE")).bind(user_id).fetch_all(tx).await
}

const QUANTITIES: &str = "SELECT option_id, quantity::bigint FROM cart_items WHERE user_id = $1 ORDER BY option_id";

/// Removes the lines of `option_ids` from the user's cart (what an order of the cart took).
pub async fn remove_options(db: impl PgExecutor<'_>, user_id: i64, option_ids: &[i64]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM cart_items WHERE user_id = $1 AND option_id = ANY($2)")
        .bind(user_id)
        .bind(option_ids)
        .execute(db)
        .await?;
    Ok(())
}

/// Removes a line; false when the owner has no such line.
pub async fn remove(db: impl PgExecutor<'_>, owner: Owner, item_id: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(&format!("DELETE FROM cart_items WHERE id = $1 AND {} = $2", owner.column()))
        .bind(item_id)
        .bind(owner.id())
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}
