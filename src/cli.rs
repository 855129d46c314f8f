//! The `jupang` command line: thin parsing that calls into the server library (`serve`,
//! `migrate`, `token`, `reconcile`) and the tool crates (`seed`: `jupang_seed`, `loadgen`:
//! `jupang_loadgen`). A module of the binary: the server library contains no CLI.

use std::{io::Write, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use jupang::{
    admission::{coupons::reconcile as coupon_reconcile, orders},
    auth::{JwtKeys, Role},
    config::{Config, ToolEnv},
    store, telemetry,
};
use jupang_loadgen::LoadgenArgs;
use jupang_seed::SeedArgs;

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
    Loadgen(LoadgenArgs),
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

impl Cli {
    /// Runs the chosen subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        // The subcommands other than `serve` read only the few variables they need (blank counts
        // as unset); `serve` reads everything through `Config::from_env`.
        let env = ToolEnv::from_env();
        match self.command {
            Command::Serve => {
                let config = Config::from_env()?;
                telemetry::init(config.log_format);
                Ok(jupang::run(config).await?)
            }
            Command::Migrate => {
                let pool = store::pg::connect(&env.database_url()?, 2).await?;
                store::pg::migrate(&pool).await?;
                eprintln!("migrations applied");
                Ok(())
            }
            Command::Seed(args) => {
                let pool = jupang_seed::connect(&env.database_url()?, 4).await?;
                let report = jupang_seed::run(&pool, &args).await?;
                eprintln!("{report}");
                Ok(())
            }
            Command::Token(args) => token(args, &env),
            Command::Loadgen(args) => {
                let tool_env = jupang_loadgen::Env {
                    jwt_secret: env.optional("JUPANG_JWT_SECRET"),
                    database_url: env.optional("DATABASE_URL"),
                    redis_url: env.optional("REDIS_URL"),
                };
                jupang_loadgen::run(args, &tool_env).await
            }
            Command::Reconcile(args) => reconcile(args, &env).await,
        }
    }
}

async fn reconcile(args: ReconcileArgs, env: &ToolEnv) -> anyhow::Result<()> {
    let pool = store::pg::connect(&env.database_url()?, 2).await?;
    // The same adapter as `serve`: one node, or Redis Cluster for a comma-separated list.
    let urls = env.redis_urls()?;
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let redis = store::redis::RedisStore::connect(&urls, &env.redis_prefix()).await?;
    let (reports, repaired) = coupon_reconcile::run(&pool, &redis, args.repair).await?;
    print!("{}", coupon_reconcile::table(&reports));
    // The order TTL plays no part in comparing counters; any value builds the stock store.
    let engine = orders::OrderAdmission::new(pool.clone(), &redis, Default::default(), Duration::from_secs(600));
    let stock = engine.reconcile().await?;
    println!("stock: {} hydrated option(s) checked, {} drifted", stock.checked, stock.drifted.len());
    for d in &stock.drifted {
        println!("  option {}: redis {} expected {} (stock - reserved - held)", d.option_id, d.redis, d.expected);
    }
    let ledger = engine.check_ledger().await?;
    println!("ledger: {} option(s) disagree with their orders", ledger.len());
    for d in &ledger {
        println!(
            "  option {}: reserved {} but pending orders hold {}; {} unit(s) of movements their orders do not explain",
            d.option_id, d.reserved, d.pending_units, d.unexplained
        );
    }
    if args.repair {
        if repaired != coupon_reconcile::Repaired::default() {
            // The running instances' loser memory forgets what the repair may have changed.
            store::redis::notices::Notices::new(&redis).publish(store::redis::notices::Topic::Coupon, None).await?;
        }
        println!(
            "repaired: {} users added to Redis, remaining lowered by {}, {} coupon terms re-applied",
            repaired.users_added, repaired.remaining_lowered, repaired.terms_synced
        );
    }
    Ok(())
}

fn token(args: TokenArgs, env: &ToolEnv) -> anyhow::Result<()> {
    let keys = JwtKeys::new(env.jwt_secret()?.as_bytes());
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
