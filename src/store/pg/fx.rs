//! The FX rate table (`fx_rates`, migration 0005). Prices converted with it are read through the
//! view `option_market_prices`, never computed here.

use sqlx::{PgConnection, PgExecutor};

/// Every rate in force: `(pair, rate as written)`, by pair.
pub async fn rates(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as("SELECT pair, rate::text FROM fx_rates ORDER BY pair").fetch_all(db).await
}

/// Sets the rate of `pair` (`rate` is an exact decimal string, already validated); returns the
/// rate it replaced, if any. A numerically equal rate (`1385.2` for `1385.20`) is left as it
/// was written, with its `updated_at`: setting a rate to its value is no change.
pub async fn set(tx: &mut PgConnection, pair: &str, rate: &str) -> sqlx::Result<Option<String>> {
    let before: Option<String> = sqlx::query_scalar("SELECT rate::text FROM fx_rates WHERE pair = $1 FOR UPDATE")
        .bind(pair)
        .fetch_optional(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO fx_rates (pair, rate, updated_at) VALUES ($1, $2::numeric, now()) \
         ON CONFLICT (pair) DO UPDATE SET rate = EXCLUDED.rate, updated_at = now() \
         WHERE fx_rates.rate <> EXCLUDED.rate",
    )
    .bind(pair)
    .bind(rate)
    .execute(tx)
    .await?;
    Ok(before)
}
