//! `jupang seed`: demo data. Idempotent: running it twice changes nothing the second time.
//!
//! A crate of its own, used by the `jupang` binary's `seed` subcommand and by the load
//! generator. It does not link the server library (the binary depends on both, and Cargo
//! forbids the cycle), so it writes its fixture rows with its own SQL; the API tests prove the
//! server serves them as it serves products created through its own admin API.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod catalog;

use std::{fmt, time::Duration};

use anyhow::Context;
use clap::Args;
use sqlx::{PgPool, postgres::PgPoolOptions};

/// Options of `jupang seed`.
#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// Make sure users 1..=N exist (KR market).
    #[arg(long, default_value_t = 100)]
    pub users: i64,
    /// Wallet balance (KRW) given to each user the seed creates.
    #[arg(long, default_value_t = 1_000_000)]
    pub balance: i64,
    /// Skip the demo catalog and coupon; only make the users.
    #[arg(long)]
    pub users_only: bool,
}

/// Opens a small Postgres pool for a tool (a connection waits at most 5 s).
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .context("cannot connect to Postgres (DATABASE_URL)")
}

/// What a seed run did.
#[derive(Debug, Default)]
pub struct SeedReport {
    /// Users created by this run.
    pub users_created: u64,
    /// Demo products created by this run.
    pub products_created: u64,
    /// Options of those products.
    pub options_created: u64,
    /// Flash-sale coupons created by this run (0 or 1).
    pub coupons_created: u64,
}

impl fmt::Display for SeedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed: {} user(s), {} product(s) with {} option(s), {} coupon(s) created",
            self.users_created, self.products_created, self.options_created, self.coupons_created
        )
    }
}

/// Makes sure the demo data exists: users `1..=args.users`, then (unless `--users-only`) the
/// demo catalog and the flash-sale coupon in one transaction.
pub async fn run(pool: &PgPool, args: &SeedArgs) -> anyhow::Result<SeedReport> {
    let users_created = ensure_users(pool, args.users, args.balance).await?;
    let mut report = SeedReport { users_created, ..SeedReport::default() };
    if !args.users_only {
        let mut tx = pool.begin().await?;
        let created = catalog::ensure_catalog(&mut tx).await?;
        tx.commit().await?;
        report.products_created = created.products;
        report.options_created = created.options;
        report.coupons_created = created.coupons;
    }
    Ok(report)
}

/// Makes sure users `1..=n` exist in the KR market; the ones created get `balance` KRW, recorded
/// as an ADJUSTMENT. Existing users are left as they are. One statement: 100,000 users in seconds.
pub async fn ensure_users(pool: &PgPool, n: i64, balance: i64) -> anyhow::Result<u64> {
    anyhow::ensure!(n >= 0, "--users must be at least 0");
    anyhow::ensure!(balance >= 0, "--balance must be at least 0");
    let mut tx = pool.begin().await?;
    let created: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO users (id, name, market, currency, balance)
         SELECT g, 'user-' || g, 'KR', 'KRW', $2 FROM generate_series(1, $1::bigint) g
         ON CONFLICT (id) DO NOTHING
         RETURNING id",
    )
    .bind(n)
    .bind(balance)
    .fetch_all(&mut *tx)
    .await?;
    if balance > 0 && !created.is_empty() {
        sqlx::query(
            "INSERT INTO balance_transactions (id, user_id, type, amount, balance_after, currency)
             SELECT uuid_generate_v7(), u, 'ADJUSTMENT', $2, $2, 'KRW' FROM unnest($1::bigint[]) u",
        )
        .bind(&created)
        .bind(balance)
        .execute(&mut *tx)
        .await?;
    }
    // Explicit ids bypass the identity sequence; move it past them so admin-created users never collide.
    sqlx::query("SELECT setval(pg_get_serial_sequence('users', 'id'), GREATEST((SELECT max(id) FROM users), 1))")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(created.len() as u64)
}
