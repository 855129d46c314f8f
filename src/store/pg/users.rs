//! Postgres queries of users and wallets.

use sqlx::{FromRow, PgExecutor};

use crate::domain::{Currency, Market, Money};

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

/// Creates a user with an empty wallet in a market.
pub async fn create(db: impl PgExecutor<'_>, name: &str, market: Market) -> sqlx::Result<i64> {
    sqlx::query_scalar("INSERT INTO users (name, market, currency) VALUES ($1, $2, $3) RETURNING id")
        .bind(name)
        .bind(market.code())
        .bind(market.currency().code())
        .fetch_one(db)
        .await
}
