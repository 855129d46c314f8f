//! Postgres queries of the daily popular-products snapshot.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor, PgPool};

use super::catalog::LOWEST_PRICE;
use crate::domain::{Market, fx::PriceSource};

/// How far back a snapshot looks.
pub const WINDOW: TimeDelta = TimeDelta::days(3);
/// How many products a snapshot ranks.
pub const TOP_N: i64 = 5;

/// What one run of the job wrote for a market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketSnapshot {
    /// The market.
    pub market: Market,
    /// How many products were ranked (0-5).
    pub ranked: u64,
}

/// Writes the snapshot of `snapshot_date` for every market: the top 5 products by quantity sold
/// in PAID/FULFILLED orders paid within `[at - 3 days, at]`, ties broken by the more recent
/// sale, then by product id. Replaces that date's rows, so running it again is harmless; runs
/// are serialised by an advisory lock so two concurrent runs cannot interleave their rows. In the
/// caller's transaction (which then holds that lock), so a manual run commits with its audit entry.
pub async fn write_snapshot(
    tx: &mut PgConnection,
    snapshot_date: NaiveDate,
    at: DateTime<Utc>,
) -> sqlx::Result<Vec<MarketSnapshot>> {
    lock(&mut *tx).await?;
    write_locked(tx, snapshot_date, at).await
}

/// Why a scheduled run happened (`job_runs.cause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunCause {
    /// Found due by the running scheduler (the day turned).
    Schedule,
    /// Found overdue at start-up (the instances were down at midnight).
    CatchUp,
}

impl RunCause {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            RunCause::Schedule => "schedule",
            RunCause::CatchUp => "catch_up",
        }
    }
}

/// The scheduled run for `at` (filed under its UTC date), unless a snapshot of that date or a
/// later one exists; `None` when it was not due. Of several instances finding it due at once,
/// the first to take the snapshot's advisory lock writes it (and its `job_runs` row) and the
/// others, waiting on the lock, then find it written: exactly one run per day.
pub async fn run_daily(db: &PgPool, at: DateTime<Utc>, cause: RunCause) -> sqlx::Result<Option<Vec<MarketSnapshot>>> {
    let day = at.date_naive();
    let mut tx = db.begin().await?;
    lock(&mut tx).await?;
    let latest: Option<NaiveDate> =
        sqlx::query_scalar("SELECT max(snapshot_date) FROM popularity_snapshot_runs").fetch_one(&mut *tx).await?;
    if latest.is_some_and(|d| d >= day) {
        return Ok(None);
    }
    let written = write_locked(&mut tx, day, at).await?;
    sqlx::query("INSERT INTO job_runs (job, run_date, cause, due_at) VALUES ('popular_products', $1, $2, $3)")
        .bind(day)
        .bind(cause.as_str())
        .bind(at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(written))
}

/// When the latest snapshot (of any market, manual or scheduled) was generated.
pub async fn last_generated_at(db: impl PgExecutor<'_>) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar("SELECT max(generated_at) FROM popularity_snapshot_runs").fetch_one(db).await
}

/// Takes the snapshot's advisory lock for the caller's transaction: runs (manual or scheduled,
/// on any instance) then happen one after the other.
async fn lock(tx: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('jupang.popularity_snapshot'))").execute(&mut *tx).await?;
    Ok(())
}

/// The snapshot's rows, in the caller's transaction, which holds [`lock`].
async fn write_locked(
    tx: &mut PgConnection,
    snapshot_date: NaiveDate,
    at: DateTime<Utc>,
) -> sqlx::Result<Vec<MarketSnapshot>> {
    let since = at - WINDOW;
    let mut written = Vec::new();
    for market in [Market::Kr, Market::Us] {
        sqlx::query("DELETE FROM popularity_snapshots WHERE snapshot_date = $1 AND market = $2")
            .bind(snapshot_date)
            .bind(market.code())
            .execute(&mut *tx)
            .await?;
        let ranked = sqlx::query(
            "WITH sold AS (
                 SELECT oi.product_id, sum(oi.quantity)::bigint AS qty, max(o.paid_at) AS last_sold_at
                 FROM orders o JOIN order_items oi ON oi.order_id = o.id
                 WHERE o.status IN ('PAID', 'FULFILLED') AND o.market = $2
                   AND o.paid_at >= $3 AND o.paid_at <= $4
                 GROUP BY oi.product_id
             )
             INSERT INTO popularity_snapshots
                 (snapshot_date, market, rank, product_id, sold_quantity, last_sold_at, generated_at)
             SELECT $1, $2, row_number() OVER (ORDER BY qty DESC, last_sold_at DESC, product_id),
                    product_id, qty, last_sold_at, $4
             FROM sold ORDER BY qty DESC, last_sold_at DESC, product_id LIMIT $5",
        )
        .bind(snapshot_date)
        .bind(market.code())
        .bind(since)
        .bind(at)
        .bind(TOP_N)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "INSERT INTO popularity_snapshot_runs (snapshot_date, market, window_start, generated_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (snapshot_date, market)
             DO UPDATE SET window_start = EXCLUDED.window_start, generated_at = EXCLUDED.generated_at",
        )
        .bind(snapshot_date)
        .bind(market.code())
        .bind(since)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        written.push(MarketSnapshot { market, ranked });
    }
    Ok(written)
}

/// One ranked product of a snapshot, with what the listing shows of it.
#[derive(Debug, Clone, FromRow)]
pub struct RankedProduct {
    /// 1-5.
    pub rank: i32,
    /// The product.
    pub product_id: i64,
    /// Korean name.
    pub name_ko: String,
    /// English name.
    pub name_en: String,
    /// Category.
    pub category: String,
    /// Lowest option price in the market's currency (minor units), if it has one: its own or
    /// FX-converted, as the catalog shows it.
    pub price: Option<i64>,
    /// Where that price came from (`list` or `fx`); None with the price.
    pub price_source: Option<String>,
    /// Units sold in the window.
    pub sold_quantity: i64,
    /// The most recent sale in the window.
    pub last_sold_at: DateTime<Utc>,
}

impl RankedProduct {
    /// The price with where it came from, if the product has one in the market.
    pub fn priced(&self) -> Option<(i64, PriceSource)> {
        self.price.map(|p| (p, PriceSource::from_column(self.price_source.clone())))
    }
}

/// The latest snapshot of a market: when it was generated and its ranked products (possibly
/// none); `None` when the job never ran for the market.
pub async fn latest(db: &PgPool, market: Market) -> sqlx::Result<Option<(DateTime<Utc>, Vec<RankedProduct>)>> {
    let run: Option<(NaiveDate, DateTime<Utc>)> = sqlx::query_as(
        "SELECT snapshot_date, generated_at FROM popularity_snapshot_runs
         WHERE market = $1 ORDER BY snapshot_date DESC LIMIT 1",
    )
    .bind(market.code())
    .fetch_optional(db)
    .await?;
    let Some((date, generated_at)) = run else { return Ok(None) };
    // Priced exactly as the catalog prices a product (`catalog::LOWEST_PRICE`, FX included).
    let items = sqlx::query_as(&format!(
        "SELECT s.rank, s.product_id, p.name_ko, p.name_en, p.category, s.sold_quantity, s.last_sold_at,
                lp.price, lp.price_source
         FROM popularity_snapshots s JOIN products p ON p.id = s.product_id
         LEFT JOIN LATERAL (
             SELECT {LOWEST_PRICE} FROM product_options o
             JOIN option_market_prices pr ON pr.option_id = o.id AND pr.currency = $3
             WHERE o.product_id = p.id
         ) lp ON true
         WHERE s.snapshot_date = $1 AND s.market = $2
         ORDER BY s.rank"
    ))
    .bind(date)
    .bind(market.code())
    .bind(market.currency().code())
    .fetch_all(db)
    .await?;
    Ok(Some((generated_at, items)))
}
