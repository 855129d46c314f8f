//! Postgres queries of users and wallets.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::domain::{Currency, Lang, Market, Money};

/// A user's profile and wallet.
#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    /// User id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// `KR` or `US`.
    pub market: String,
    /// Wallet currency.
    pub currency: String,
    /// Wallet balance in minor units.
    pub balance: i64,
}

impl UserRow {
    /// The user's market.
    pub fn market(&self) -> Market {
        Market::parse(&self.market).unwrap_or(Market::Kr)
    }

    /// The wallet balance as money.
    pub fn balance(&self) -> Money {
        Money::new(self.balance, Currency::parse(&self.currency).unwrap_or(Currency::Krw))
    }
}

/// Finds a user.
pub async fn find(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as("SELECT id, name, market, currency, balance FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Every user's market and language (`(id, market code, language code)`), for the in-process
/// cache of the hot paths.
pub async fn directory(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(i64, String, String)>> {
    sqlx::query_as("SELECT id, market, language FROM users").fetch_all(db).await
}

/// [`directory`] of the users created after user `after` (ids are ascending).
pub async fn directory_after(db: impl PgExecutor<'_>, after: i64) -> sqlx::Result<Vec<(i64, String, String)>> {
    sqlx::query_as("SELECT id, market, language FROM users WHERE id > $1").bind(after).fetch_all(db).await
}

/// [`directory`] of one user; `None` when the user does not exist.
pub async fn directory_of(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<(i64, String, String)>> {
    sqlx::query_as("SELECT id, market, language FROM users WHERE id = $1").bind(id).fetch_optional(db).await
}

/// Creates a user with an empty wallet in a market, speaking the market's language.
pub async fn create(db: impl PgExecutor<'_>, name: &str, market: Market) -> sqlx::Result<i64> {
    sqlx::query_scalar("INSERT INTO users (name, market, currency, language) VALUES ($1, $2, $3, $4) RETURNING id")
        .bind(name)
        .bind(market.code())
        .bind(market.currency().code())
        .bind(Lang::of_market(market).code())
        .fetch_one(db)
        .await
}

/// A user's public profile.
#[derive(Debug, Clone, FromRow)]
pub struct ProfileRow {
    /// User id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// `KR` or `US`.
    pub market: String,
    /// `ko` or `en`.
    pub language: String,
}

/// A user's profile; `None` when the user does not exist.
pub async fn profile(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<ProfileRow>> {
    sqlx::query_as("SELECT id, name, market, language FROM users WHERE id = $1").bind(id).fetch_optional(db).await
}

/// Sets a user's language and answers the profile; `None` when the user does not exist.
pub async fn set_language(db: impl PgExecutor<'_>, id: i64, lang: Lang) -> sqlx::Result<Option<ProfileRow>> {
    sqlx::query_as(
        "UPDATE users SET language = $2, updated_at = now() WHERE id = $1 RETURNING id, name, market, language",
    )
    .bind(id)
    .bind(lang.code())
    .fetch_optional(db)
    .await
}

/// Why a wallet balance changed (`balance_transactions.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceTxKind {
    /// Money put into the wallet (positive amount).
    Charge,
    /// An order paid from the wallet (negative amount).
    Payment,
    /// A paid order refunded (positive amount).
    Refund,
    /// A manual correction (either sign).
    Adjustment,
}

impl BalanceTxKind {
    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BalanceTxKind::Charge => "CHARGE",
            BalanceTxKind::Payment => "PAYMENT",
            BalanceTxKind::Refund => "REFUND",
            BalanceTxKind::Adjustment => "ADJUSTMENT",
        }
    }
}

/// Adds `amount` (minor units, may be negative) to a wallet in one atomic statement, so
/// concurrent changes never lose an update; the row stays locked until the transaction ends.
/// `None` when the user does not exist. A balance that would go negative or overflow fails with
/// the database's check/overflow error (see [`is_out_of_range`]).
pub async fn add_to_balance(tx: &mut PgConnection, user_id: i64, amount: i64) -> sqlx::Result<Option<Money>> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "UPDATE users SET balance = balance + $2, updated_at = now() WHERE id = $1 RETURNING balance, currency",
    )
    .bind(user_id)
    .bind(amount)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(|(balance, currency)| Money::new(balance, Currency::parse(&currency).unwrap_or(Currency::Krw))))
}

/// Whether a database error is a numeric overflow or a violated CHECK (e.g. a negative balance).
pub fn is_out_of_range(e: &sqlx::Error) -> bool {
    e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "22003" || c == "23514")
}

/// A balance change to record next to the balance update, in the same transaction.
#[derive(Debug, Clone)]
pub struct NewBalanceTx {
    /// Wallet owner.
    pub user_id: i64,
    /// Why.
    pub kind: BalanceTxKind,
    /// Signed change in minor units (negative for a payment).
    pub amount: i64,
    /// The balance right after the change.
    pub balance_after: Money,
    /// The order paid or refunded, if any.
    pub order_id: Option<Uuid>,
}

/// Appends a row to `balance_transactions` and returns its id. `created_at` is the clock time
/// of the insert (not the transaction start), taken while the wallet row is locked, so the
/// history's order is the order in which the balance actually changed.
pub async fn record_balance_tx(tx: &mut PgConnection, t: &NewBalanceTx) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO balance_transactions (id, user_id, type, amount, balance_after, currency, order_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp())",
    )
    .bind(id)
    .bind(t.user_id)
    .bind(t.kind.as_str())
    .bind(t.amount)
    .bind(t.balance_after.amount)
    .bind(t.balance_after.currency.code())
    .bind(t.order_id)
    .execute(tx)
    .await?;
    Ok(id)
}

/// One row of a wallet's history.
#[derive(Debug, Clone, FromRow)]
pub struct BalanceTxRow {
    /// Transaction id (UUIDv7).
    pub id: Uuid,
    /// `CHARGE`, `PAYMENT`, `REFUND` or `ADJUSTMENT`.
    #[sqlx(rename = "type")]
    pub kind: String,
    /// Signed change in minor units.
    pub amount: i64,
    /// Balance after the change.
    pub balance_after: i64,
    /// Currency code.
    pub currency: String,
    /// Related order.
    pub order_id: Option<Uuid>,
    /// When the balance changed.
    pub created_at: DateTime<Utc>,
}

/// A page of a wallet's history, newest first, and the total count.
pub async fn list_balance_txs(
    db: &PgPool,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<BalanceTxRow>, i64)> {
    let rows = sqlx::query_as(
        "SELECT id, type, amount, balance_after, currency, order_id, created_at
         FROM balance_transactions WHERE user_id = $1
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
    )
    .bind(user_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let total = sqlx::query_scalar("SELECT count(*) FROM balance_transactions WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(db)
        .await?;
    Ok((rows, total))
}
