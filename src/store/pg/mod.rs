//! Postgres: pool, migrations and the queries of each domain.

pub mod admitted_coupons;
pub mod admitted_orders;
pub mod audit;
pub mod cart;
pub mod catalog;
pub mod catalog_edit;
pub mod coupons;
pub mod expiry;
pub mod fx;
pub mod guest_carts;
pub mod idempotency;
pub mod inventory;
pub mod movements;
pub mod order_events;
pub mod orders;
pub mod outbox;
pub mod payment;
pub mod payment_batch;
pub mod payment_records;
pub mod plain_payments;
pub mod popular;
pub mod redemption;
pub mod refunds;
pub mod reservations;
pub mod revocations;
pub mod user_coupons;
pub mod users;

use std::time::Duration;

use sqlx::{PgPool, postgres::PgPoolOptions};

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Postgres did not accept a connection (the URL is never part of the message: it may hold a
/// password).
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to Postgres (DATABASE_URL)")]
pub struct ConnectError(#[source] sqlx::Error);

/// Applying the embedded migrations failed.
#[derive(Debug, thiserror::Error)]
#[error("applying migrations")]
pub struct MigrateError(#[source] sqlx::migrate::MigrateError);

/// Opens a pool for a command-line tool: a connection is waited for at most 5 s.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, ConnectError> {
    connect_with(url, max_connections, Duration::from_secs(5)).await
}

/// Opens the pool. Acquiring waits at most `acquire_timeout` (`JUPANG_DB_ACQUIRE_TIMEOUT_MS` for
/// `serve`), so a burst fails fast (the API answers 503 `OVERLOADED`, see `http::error`) instead
/// of queueing on an exhausted pool until the request times out.
pub async fn connect_with(url: &str, max_connections: u32, acquire_timeout: Duration) -> Result<PgPool, ConnectError> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(acquire_timeout)
        .connect(url)
        .await
        .map_err(ConnectError)
}

/// Versions of embedded migrations the database has not applied (or applied differently).
pub async fn pending_migrations(pool: &PgPool) -> sqlx::Result<Vec<i64>> {
    let table_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(pool).await?;
    let applied: Vec<(i64, Vec<u8>)> = if table_exists {
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success").fetch_all(pool).await?
    } else {
        Vec::new()
    };
    Ok(MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .filter(|m| !applied.iter().any(|(v, c)| *v == m.version && c.as_slice() == &*m.checksum))
        .map(|m| m.version)
        .collect())
}

/// Applies every pending migration.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await.map_err(MigrateError)
}
