//! Postgres side of guest carts: the cart rows (by the SHA-256 of their token), the atomic take
//! of a merge, and the sweep of expired carts. Their lines are `cart_items` rows owned by the
//! guest cart ([`super::cart::Owner::Guest`]), read and changed by the user cart's queries.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};

use super::{
    cart::{self, Owner},
    orders::StoreError,
};
use crate::domain::Market;

/// A live (unexpired) guest cart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestCart {
    /// Row id (what its lines point to; never shown to clients).
    pub id: i64,
    /// Prices are in this market's currency.
    pub market: Market,
}

/// Creates a guest cart for a token hash.
pub async fn create(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    market: Market,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar("INSERT INTO guest_carts (token_hash, market, expires_at) VALUES ($1, $2, $3) RETURNING id")
        .bind(token_hash)
        .bind(market.code())
        .bind(expires_at)
        .fetch_one(db)
        .await
}

/// The live cart of a token hash; `None` when unknown or expired.
pub async fn find(db: impl PgExecutor<'_>, token_hash: &[u8]) -> sqlx::Result<Option<GuestCart>> {
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT id, market FROM guest_carts WHERE token_hash = $1 AND expires_at > now()")
            .bind(token_hash)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(id, market)| GuestCart { id, market: Market::parse(&market).unwrap_or(Market::Kr) }))
}

/// One option of a merge: what the two carts asked for together and what the user's cart holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergedLine {
    /// The option.
    pub option_id: i64,
    /// The user's quantity before the merge plus the guest's.
    pub requested: i64,
    /// Sellable now in the user's currency (0 when the option is not sold there any more).
    pub available: i64,
    /// What the user's cart holds after the merge.
    pub quantity: i64,
}

/// Takes the guest cart of `token_hash` into the user's cart in one transaction: `None` when
/// there is no live cart (unknown, expired, or already merged). The guest cart row is locked
/// first, so of two merges of one token the second waits and then finds nothing: a token merges
/// once; an add racing the merge either lands before it (and is merged) or finds the cart gone.
/// Lines are taken in option order (the order every cart writer locks in).
///
/// Per option the quantities add up, capped at what is available; a user's own line already
/// beyond that is left as it is (the merge never takes away what the user chose). An option no
/// longer sold in the user's currency merges nothing.
pub async fn merge_into(
    pool: &PgPool,
    token_hash: &[u8],
    user_id: i64,
    currency: &str,
) -> Result<Option<Vec<MergedLine>>, StoreError> {
    let mut tx = pool.begin().await?;
    let cart: Option<i64> =
        sqlx::query_scalar("SELECT id FROM guest_carts WHERE token_hash = $1 AND expires_at > now() FOR UPDATE")
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(cart_id) = cart else { return Ok(None) };
    // Locked too: an add to an existing line changes no foreign key, so it does not wait for the
    // cart row's lock; it must wait here, or the delete below would drop its acknowledged units.
    let guest: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT option_id, quantity::bigint FROM cart_items WHERE guest_cart_id = $1 ORDER BY option_id FOR UPDATE",
    )
    .bind(cart_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut merged = Vec::with_capacity(guest.len());
    for (option_id, qty) in guest {
        let mine: i64 = sqlx::query_scalar(
            "SELECT quantity::bigint FROM cart_items WHERE user_id = $1 AND option_id = $2 FOR UPDATE",
        )
        .bind(user_id)
        .bind(option_id)
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or(0);
        let available = match cart::offer(&mut *tx, option_id, currency).await {
            Ok(a) => a.max(0),
            Err(StoreError::Rejected(_)) => 0,
            Err(e) => return Err(e),
        };
        let requested = mine.saturating_add(qty);
        let quantity = requested.min(available).max(mine);
        if quantity > mine {
            cart::upsert(&mut tx, Owner::User(user_id), option_id, quantity - mine).await?;
        }
        merged.push(MergedLine { option_id, requested, available, quantity });
    }
    sqlx::query("DELETE FROM guest_carts WHERE id = $1").bind(cart_id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(Some(merged))
}

/// Deletes up to `limit` guest carts expired at `now` (their lines go with them); returns how many.
pub async fn sweep_expired(db: impl PgExecutor<'_>, now: DateTime<Utc>, limit: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM guest_carts WHERE id IN \
         (SELECT id FROM guest_carts WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)",
    )
    .bind(now)
    .bind(limit)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
