//! The `jupang` command line: thin parsing that calls into the library.

use std::{io::Write, path::PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::{
    config::{Config, ConfigError},
    http::auth::{JwtKeys, Role},
    seed, store, telemetry,
};

/// Jupang: flash-sale e-commerce backend.
#[derive(Debug, Parser)]
#[command(name = "jupang", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API and the background workers.
    Serve,
    /// Apply database migrations.
    Migrate,
    /// Load demo data: a catalog for both markets, users and a flash-sale coupon (idempotent).
    Seed(SeedArgs),
    /// Mint JWTs for scripts and load tests.
    Token(TokenArgs),
    /// The built-in load generator and benchmark (open run, order rush, mixed, compare).
    Loadgen(crate::loadgen::LoadgenArgs),
    /// Compare the V2 coupon state in Redis with Postgres, one line per coupon.
    Reconcile(ReconcileArgs),
}

/// Options of `jupang reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Also apply the safe repairs (add persisted users missing in Redis, lower `remaining`
    /// to what the users set allows; never raise it).
    #[arg(long)]
    pub repair: bool,
}

/// Options of `jupang seed`.
#[derive(Debug, Args)]
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

#[derive(Debug, Args)]
struct TokenArgs {
    /// The user id (token subject).
    #[arg(long, conflicts_with = "users")]
    user: Option<i64>,
    /// Mint one token per user of an inclusive range `A..B` (e.g. `1..10000`), one `user_id,token` line each.
    #[arg(long, value_parser = parse_range)]
    users: Option<(i64, i64)>,
    /// Role(s) of the token: customer, cs_agent, inventory_manager, marketing_manager, ops_admin, data_platform.
    #[arg(long = "role", default_value = "customer", value_parser = parse_role)]
    roles: Vec<Role>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    ttl_secs: i64,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("unknown role `{s}`"))
}

fn parse_range(s: &str) -> Result<(i64, i64), String> {
    let (a, b) = s.split_once("..").ok_or("expected A..B, e.g. 1..10000")?;
    let (a, b): (i64, i64) = (a.parse().map_err(|_| "bad start")?, b.parse().map_err(|_| "bad end")?);
    if a < 1 || b < a {
        return Err("expected 1 <= A <= B".into());
    }
    Ok((a, b))
}

/// Reads one required variable for the subcommands that do not need the whole configuration.
fn required(var: &str) -> anyhow::Result<String> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ConfigError { var: var.into(), reason: "is required".into() }.into())
}

impl Cli {
    /// Runs the chosen subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve => {
                let config = Config::from_env()?;
                telemetry::init(config.log_format);
                Ok(crate::run(config).await?)
            }
            Command::Migrate => {
                let pool = store::pg::connect(&required("DATABASE_URL")?, 2).await?;
                store::pg::migrate(&pool).await?;
                eprintln!("migrations applied");
                Ok(())
            }
            Command::Seed(args) => {
                let pool = store::pg::connect(&required("DATABASE_URL")?, 4).await?;
                let report = seed::run(&pool, &args).await?;
                eprintln!("{report}");
                Ok(())
            }
            Command::Token(args) => token(args),
            Command::Loadgen(args) => crate::loadgen::run(args).await,
            Command::Reconcile(args) => reconcile(args).await,
        }
    }
}

async fn reconcile(args: ReconcileArgs) -> anyhow::Result<()> {
    let pool = store::pg::connect(&required("DATABASE_URL")?, 2).await?;
    let url = required("REDIS_URL")?;
    let prefix = std::env::var("JUPANG_REDIS_PREFIX").ok().filter(|p| !p.trim().is_empty());
    let redis = store::redis::RedisStore::connect(&[url.trim()], prefix.as_deref().unwrap_or("jupang").trim()).await?;
    let (reports, repaired) = crate::admission::coupons::reconcile::run(&pool, &redis, args.repair).await?;
    print!("{}", crate::admission::coupons::reconcile::table(&reports));
    // The order TTL plays no part in comparing counters; any value builds the stock store.
    let stock = crate::admission::orders::hydrate::reconcile(
        &pool,
        crate::admission::orders::OrderAdmission::new(
            pool.clone(),
            &redis,
            Default::default(),
            std::time::Duration::from_secs(600),
        )
        .stock(),
    )
    .await?;
    println!("stock: {} hydrated option(s) checked, {} drifted", stock.checked, stock.drifted.len());
    for d in &stock.drifted {
        println!("  option {}: redis {} expected {} (stock - reserved - held)", d.option_id, d.redis, d.expected);
    }
    if args.repair {
        println!(
            "repaired: {} users added to Redis, remaining lowered by {}, {} coupon terms re-applied",
            repaired.users_added, repaired.remaining_lowered, repaired.terms_synced
        );
    }
    Ok(())
}

fn token(args: TokenArgs) -> anyhow::Result<()> {
    let keys = JwtKeys::new(required("JUPANG_JWT_SECRET")?.as_bytes());
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    match (args.user, args.users) {
        (Some(user), _) => writeln!(out, "{}", keys.mint(user, &args.roles, args.ttl_secs))?,
        (None, Some((a, b))) => {
            writeln!(out, "user_id,token")?;
            for user in a..=b {
                writeln!(out, "{user},{}", keys.mint(user, &args.roles, args.ttl_secs))?;
            }
        }
        (None, None) => anyhow::bail!("give --user N or --users A..B"),
    }
    out.flush()?;
    Ok(())
}
