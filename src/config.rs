//! Configuration from the environment, parsed and validated once at start-up.
//!
//! Every variable of the contract is read here and nowhere else. A malformed value, an unknown
//! `JUPANG_*` variable or a missing required one becomes a [`ConfigError`] that names the
//! variable; secrets never appear in messages or in `Debug` output.

use std::{collections::BTreeMap, fmt, net::SocketAddr, str::FromStr, time::Duration};

/// Which design hands out first-come coupons (`JUPANG_ISSUE_STRATEGY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IssueStrategy {
    /// V2: one atomic Lua script in Redis, persisted through a Redis Stream.
    RedisLua,
    /// V1: `SELECT ... FOR UPDATE` on the coupon row.
    DbPessimistic,
    /// V1: version column with bounded retries.
    DbOptimistic,
    /// V1: a Redis lock around the database transaction.
    RedisLock,
}

impl IssueStrategy {
    /// Every strategy, in the order benchmarks list them.
    pub const ALL: [IssueStrategy; 4] =
        [IssueStrategy::DbPessimistic, IssueStrategy::DbOptimistic, IssueStrategy::RedisLock, IssueStrategy::RedisLua];

    /// The configuration spelling, also used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueStrategy::RedisLua => "redis-lua",
            IssueStrategy::DbPessimistic => "db-pessimistic",
            IssueStrategy::DbOptimistic => "db-optimistic",
            IssueStrategy::RedisLock => "redis-lock",
        }
    }
}

impl FromStr for IssueStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| "expected one of redis-lua, db-pessimistic, db-optimistic, redis-lock".into())
    }
}

/// Which design reserves stock for orders (`JUPANG_ORDER_STRATEGY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStrategy {
    /// V2: all-or-nothing reservation by a Lua script in Redis.
    RedisLua,
    /// V1: row locks on the options, taken in id order.
    DbPessimistic,
}

impl OrderStrategy {
    /// The configuration spelling, also used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStrategy::RedisLua => "redis-lua",
            OrderStrategy::DbPessimistic => "db-pessimistic",
        }
    }
}

impl FromStr for OrderStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "redis-lua" => Ok(OrderStrategy::RedisLua),
            "db-pessimistic" => Ok(OrderStrategy::DbPessimistic),
            _ => Err("expected one of redis-lua, db-pessimistic".into()),
        }
    }
}

/// Log line format (`JUPANG_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// A string that must never be printed (`Debug` shows `***`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Which background tasks `serve` runs besides the HTTP API (`JUPANG_WORKERS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workers {
    /// Expires unpaid orders and returns their stock.
    pub expiry: bool,
    /// Drains the Redis Stream of V2 admissions into Postgres.
    pub consumer: bool,
    /// Delivers outbox events to the data platform.
    pub outbox: bool,
    /// Compares Redis and Postgres counters and exports the drift as metrics.
    pub reconcile: bool,
}

impl Workers {
    const NAMES: [&'static str; 4] = ["expiry", "consumer", "outbox", "reconcile"];

    /// All workers on.
    pub const ALL: Workers = Workers { expiry: true, consumer: true, outbox: true, reconcile: true };
    /// No workers: the process only serves HTTP.
    pub const NONE: Workers = Workers { expiry: false, consumer: false, outbox: false, reconcile: false };
}

impl FromStr for Workers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "all" => return Ok(Workers::ALL),
            "none" | "" => return Ok(Workers::NONE),
            _ => {}
        }
        let mut w = Workers::NONE;
        for name in s.split(',').map(str::trim) {
            match name {
                "expiry" => w.expiry = true,
                "consumer" => w.consumer = true,
                "outbox" => w.outbox = true,
                "reconcile" => w.reconcile = true,
                other => {
                    return Err(format!(
                        "unknown worker `{other}`; expected all, none or a list of {}",
                        Workers::NAMES.join(", ")
                    ));
                }
            }
        }
        Ok(w)
    }
}

/// The whole configuration of one process.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: Postgres, the system of record.
    pub database_url: Secret,
    /// `REDIS_URL`: one `redis://` URL, or several comma-separated for Redis Cluster.
    pub redis_urls: Vec<Secret>,
    /// `JUPANG_LISTEN`: the HTTP address (port 0 picks a free one).
    pub listen: SocketAddr,
    /// `JUPANG_JWT_SECRET`: HS256 key for bearer tokens.
    pub jwt_secret: Secret,
    /// `JUPANG_ISSUE_STRATEGY`.
    pub issue_strategy: IssueStrategy,
    /// `JUPANG_ORDER_STRATEGY`.
    pub order_strategy: OrderStrategy,
    /// `JUPANG_DATA_PLATFORM_URL`: where outbox events are POSTed; none keeps them pending.
    pub data_platform_url: Option<String>,
    /// `JUPANG_ORDER_TTL_SECS`: how long a PENDING order holds its stock.
    pub order_ttl: Duration,
    /// `JUPANG_EXPIRY_SWEEP_SECS`: how often the expiry sweeper runs.
    pub expiry_sweep: Duration,
    /// `JUPANG_REDIS_PREFIX`: prefix of every Redis key, so several deployments share a server.
    pub redis_prefix: String,
    /// `JUPANG_DB_POOL_SIZE`: Postgres connections of this process.
    pub db_pool_size: u32,
    /// `JUPANG_DB_ACQUIRE_TIMEOUT_MS`: longest a request waits for a pooled Postgres connection
    /// before it answers 503 `OVERLOADED`; always shorter than the request timeout.
    pub db_acquire_timeout: Duration,
    /// `JUPANG_MAX_IN_FLIGHT`: requests handled at once; any beyond answer 503 `OVERLOADED` at once.
    pub max_in_flight: usize,
    /// `JUPANG_MAX_CHARGE`: largest single wallet charge, in minor units.
    pub max_charge: i64,
    /// `JUPANG_REQUEST_TIMEOUT_MS`: a request running longer answers 503.
    pub request_timeout: Duration,
    /// `JUPANG_WORKERS`: background tasks to run in `serve`.
    pub workers: Workers,
    /// `JUPANG_AUTO_MIGRATE`: apply pending migrations at start-up instead of refusing.
    pub auto_migrate: bool,
    /// `JUPANG_LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `JUPANG_OUTBOX_BACKOFF_MS`: wait before the first retry of a failed event delivery; each
    /// further retry waits twice as long.
    pub outbox_backoff: Duration,
    /// `JUPANG_OUTBOX_MAX_RETRIES`: retries after the first failed delivery before an event is
    /// marked FAILED (re-sendable by an operator).
    pub outbox_max_retries: u32,
    /// `JUPANG_STREAM_CLAIM_IDLE_MS`: a stream entry delivered to a consumer and not acknowledged
    /// for this long is taken over by another consumer (`XAUTOCLAIM`): its owner probably died.
    pub stream_claim_idle: Duration,
}

/// Why the configuration was refused: names the variable, never its (possibly secret) value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid configuration: {var}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: String,
    /// What was wrong with it.
    pub reason: String,
}

fn err(var: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError { var: var.into(), reason: reason.into() }
}

/// Every `JUPANG_*` variable this program reads; any other is refused as a likely typo.
pub const KNOWN_VARS: &[&str] = &[
    "JUPANG_LISTEN",
    "JUPANG_JWT_SECRET",
    "JUPANG_ISSUE_STRATEGY",
    "JUPANG_ORDER_STRATEGY",
    "JUPANG_DATA_PLATFORM_URL",
    "JUPANG_ORDER_TTL_SECS",
    "JUPANG_EXPIRY_SWEEP_SECS",
    "JUPANG_REDIS_PREFIX",
    "JUPANG_DB_POOL_SIZE",
    "JUPANG_DB_ACQUIRE_TIMEOUT_MS",
    "JUPANG_MAX_IN_FLIGHT",
    "JUPANG_MAX_CHARGE",
    "JUPANG_REQUEST_TIMEOUT_MS",
    "JUPANG_WORKERS",
    "JUPANG_AUTO_MIGRATE",
    "JUPANG_LOG_FORMAT",
    "JUPANG_OUTBOX_BACKOFF_MS",
    "JUPANG_OUTBOX_MAX_RETRIES",
    "JUPANG_STREAM_CLAIM_IDLE_MS",
    // Read by the scripts, not by the binary; accepted so one environment serves both.
    "JUPANG_PG_PORT",
    "JUPANG_REDIS_PORT",
    "JUPANG_DATA_DIR",
    "JUPANG_SEED_USERS",
    "JUPANG_TEST_THREADS",
];

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(std::env::vars().collect())
    }

    /// Parses a set of variables; the process environment is only one source of them.
    pub fn from_vars(vars: BTreeMap<String, String>) -> Result<Config, ConfigError> {
        if let Some(unknown) = vars.keys().find(|k| k.starts_with("JUPANG_") && !KNOWN_VARS.contains(&k.as_str())) {
            return Err(err(unknown, "unknown variable (see README, Configuration)"));
        }
        let get = |k: &str| vars.get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let parse = |k: &str, default: &str| -> String { get(k).unwrap_or_else(|| default.into()) };

        let database_url = get("DATABASE_URL").ok_or_else(|| err("DATABASE_URL", "is required"))?;
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(err("DATABASE_URL", "must start with postgres:// or postgresql://"));
        }
        let redis_urls = get("REDIS_URL")
            .ok_or_else(|| err("REDIS_URL", "is required"))?
            .split(',')
            .map(|u| u.trim().to_owned())
            .collect::<Vec<_>>();
        if redis_urls.iter().any(|u| !(u.starts_with("redis://") || u.starts_with("rediss://"))) {
            return Err(err("REDIS_URL", "each URL must start with redis:// or rediss://"));
        }
        let jwt_secret = get("JUPANG_JWT_SECRET").ok_or_else(|| err("JUPANG_JWT_SECRET", "is required"))?;
        if jwt_secret.len() < 16 {
            return Err(err("JUPANG_JWT_SECRET", "must be at least 16 bytes"));
        }
        let data_platform_url = get("JUPANG_DATA_PLATFORM_URL");
        if let Some(u) = &data_platform_url {
            // Checked before parsing: the message must not echo a URL that may hold credentials.
            if u.starts_with("https://") {
                return Err(err(
                    "JUPANG_DATA_PLATFORM_URL",
                    "https:// is not supported by this build (no TLS stack); use http:// to a TLS-terminating proxy",
                ));
            }
            if !u.starts_with("http://") || reqwest::Url::parse(u).is_err() {
                return Err(err("JUPANG_DATA_PLATFORM_URL", "must be an http:// URL"));
            }
        }
        let redis_prefix = parse("JUPANG_REDIS_PREFIX", "jupang");
        if !redis_prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c)) {
            return Err(err("JUPANG_REDIS_PREFIX", "may hold only letters, digits and - _ : ."));
        }
        let request_timeout =
            Duration::from_millis(positive(&parse("JUPANG_REQUEST_TIMEOUT_MS", "10000"), "JUPANG_REQUEST_TIMEOUT_MS")?);
        let db_acquire_timeout = acquire_timeout(get("JUPANG_DB_ACQUIRE_TIMEOUT_MS"), request_timeout)?;
        let log_format = match parse("JUPANG_LOG_FORMAT", "text").as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(err("JUPANG_LOG_FORMAT", "expected text or json")),
        };
        Ok(Config {
            database_url: Secret::new(database_url),
            redis_urls: redis_urls.into_iter().map(Secret::new).collect(),
            listen: typed(&parse("JUPANG_LISTEN", "127.0.0.1:8080"), "JUPANG_LISTEN")?,
            jwt_secret: Secret::new(jwt_secret),
            issue_strategy: typed(&parse("JUPANG_ISSUE_STRATEGY", "redis-lua"), "JUPANG_ISSUE_STRATEGY")?,
            order_strategy: typed(&parse("JUPANG_ORDER_STRATEGY", "redis-lua"), "JUPANG_ORDER_STRATEGY")?,
            data_platform_url,
            order_ttl: Duration::from_secs(positive(&parse("JUPANG_ORDER_TTL_SECS", "600"), "JUPANG_ORDER_TTL_SECS")?),
            expiry_sweep: Duration::from_secs(positive(
                &parse("JUPANG_EXPIRY_SWEEP_SECS", "60"),
                "JUPANG_EXPIRY_SWEEP_SECS",
            )?),
            redis_prefix,
            db_pool_size: positive(&parse("JUPANG_DB_POOL_SIZE", "32"), "JUPANG_DB_POOL_SIZE")? as u32,
            max_charge: positive(&parse("JUPANG_MAX_CHARGE", "100000000"), "JUPANG_MAX_CHARGE")? as i64,
            db_acquire_timeout,
            max_in_flight: permits(&parse("JUPANG_MAX_IN_FLIGHT", "1024"), "JUPANG_MAX_IN_FLIGHT")?,
            request_timeout,
            workers: typed(&parse("JUPANG_WORKERS", "all"), "JUPANG_WORKERS")?,
            auto_migrate: typed::<bool>(&parse("JUPANG_AUTO_MIGRATE", "false"), "JUPANG_AUTO_MIGRATE")?,
            log_format,
            outbox_backoff: Duration::from_millis(positive(
                &parse("JUPANG_OUTBOX_BACKOFF_MS", "5000"),
                "JUPANG_OUTBOX_BACKOFF_MS",
            )?),
            outbox_max_retries: retries(&parse("JUPANG_OUTBOX_MAX_RETRIES", "3"), "JUPANG_OUTBOX_MAX_RETRIES")?,
            stream_claim_idle: Duration::from_millis(positive(
                &parse("JUPANG_STREAM_CLAIM_IDLE_MS", "30000"),
                "JUPANG_STREAM_CLAIM_IDLE_MS",
            )?),
        })
    }
}

/// `JUPANG_DB_ACQUIRE_TIMEOUT_MS`: 2 s by default, or half the request timeout when that is
/// shorter. It must stay below the request timeout: a request waiting for a connection should
/// hear 503 `OVERLOADED` (retry later) rather than wait until it times out.
fn acquire_timeout(raw: Option<String>, request_timeout: Duration) -> Result<Duration, ConfigError> {
    const VAR: &str = "JUPANG_DB_ACQUIRE_TIMEOUT_MS";
    let Some(raw) = raw else {
        return Ok(Duration::from_secs(2).min(request_timeout / 2));
    };
    let timeout = Duration::from_millis(positive(&raw, VAR)?);
    if timeout >= request_timeout {
        return Err(err(
            VAR,
            format!("must be shorter than JUPANG_REQUEST_TIMEOUT_MS ({} ms)", request_timeout.as_millis()),
        ));
    }
    Ok(timeout)
}

/// A semaphore's permit count: positive, and no more than a Tokio semaphore can hold.
fn permits(raw: &str, var: &str) -> Result<usize, ConfigError> {
    usize::try_from(positive(raw, var)?)
        .ok()
        .filter(|&n| n <= tokio::sync::Semaphore::MAX_PERMITS)
        .ok_or_else(|| err(var, format!("`{raw}` is too large")))
}

fn typed<T: FromStr>(raw: &str, var: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    raw.parse::<T>().map_err(|e| err(var, format!("cannot parse `{raw}`: {e}")))
}

fn positive(raw: &str, var: &str) -> Result<u64, ConfigError> {
    match raw.parse::<u64>() {
        Ok(0) => Err(err(var, "must be greater than 0")),
        Ok(v) if v <= i64::MAX as u64 / 1000 => Ok(v),
        _ => Err(err(var, format!("expected a positive whole number, got `{raw}`"))),
    }
}

/// A retry count: 0 (no retries) up to 20 (beyond that the doubling backoff spans months).
fn retries(raw: &str, var: &str) -> Result<u32, ConfigError> {
    match raw.parse::<u32>() {
        Ok(v) if v <= 20 => Ok(v),
        _ => Err(err(var, format!("expected a whole number from 0 to 20, got `{raw}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> BTreeMap<String, String> {
        [
            ("DATABASE_URL", "postgres://u:p@localhost/db"),
            ("REDIS_URL", "redis://localhost/"),
            ("JUPANG_JWT_SECRET", "0123456789abcdef0123"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn with(k: &str, v: &str) -> Result<Config, ConfigError> {
        let mut vars = base();
        vars.insert(k.into(), v.into());
        Config::from_vars(vars)
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = Config::from_vars(base()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.issue_strategy, IssueStrategy::RedisLua);
        assert_eq!(c.order_strategy, OrderStrategy::RedisLua);
        assert_eq!(c.order_ttl, Duration::from_secs(600));
        assert_eq!(c.expiry_sweep, Duration::from_secs(60));
        assert_eq!(c.workers, Workers::ALL);
        assert_eq!(c.outbox_backoff, Duration::from_secs(5));
        assert_eq!(c.outbox_max_retries, 3);
        assert_eq!(c.stream_claim_idle, Duration::from_secs(30));
        assert_eq!(c.max_in_flight, 1024);
        assert_eq!(c.db_acquire_timeout, Duration::from_secs(2));
    }

    #[test]
    fn the_pool_acquire_timeout_stays_below_the_request_timeout() {
        let short = with("JUPANG_REQUEST_TIMEOUT_MS", "1000").unwrap();
        assert_eq!(short.db_acquire_timeout, Duration::from_millis(500), "the default follows a short request timeout");
        let mut vars = base();
        vars.insert("JUPANG_REQUEST_TIMEOUT_MS".into(), "1000".into());
        vars.insert("JUPANG_DB_ACQUIRE_TIMEOUT_MS".into(), "1000".into());
        assert_eq!(Config::from_vars(vars).unwrap_err().var, "JUPANG_DB_ACQUIRE_TIMEOUT_MS");
        assert_eq!(with("JUPANG_DB_ACQUIRE_TIMEOUT_MS", "250").unwrap().db_acquire_timeout, Duration::from_millis(250));
    }

    #[test]
    fn a_malformed_value_names_its_variable() {
        assert_eq!(with("JUPANG_ORDER_TTL_SECS", "ten").unwrap_err().var, "JUPANG_ORDER_TTL_SECS");
        assert_eq!(with("JUPANG_ISSUE_STRATEGY", "fast").unwrap_err().var, "JUPANG_ISSUE_STRATEGY");
        assert_eq!(with("JUPANG_LISTEN", "nowhere").unwrap_err().var, "JUPANG_LISTEN");
        assert_eq!(with("REDIS_URL", "localhost:6379").unwrap_err().var, "REDIS_URL");
        assert_eq!(with("JUPANG_WORKERS", "expiry,cron").unwrap_err().var, "JUPANG_WORKERS");
        assert_eq!(with("JUPANG_OUTBOX_MAX_RETRIES", "-1").unwrap_err().var, "JUPANG_OUTBOX_MAX_RETRIES");
        assert_eq!(with("JUPANG_OUTBOX_BACKOFF_MS", "0").unwrap_err().var, "JUPANG_OUTBOX_BACKOFF_MS");
        assert_eq!(with("JUPANG_STREAM_CLAIM_IDLE_MS", "soon").unwrap_err().var, "JUPANG_STREAM_CLAIM_IDLE_MS");
        assert_eq!(with("JUPANG_DATA_PLATFORM_URL", "ftp://x/").unwrap_err().var, "JUPANG_DATA_PLATFORM_URL");
        assert_eq!(with("JUPANG_MAX_IN_FLIGHT", "0").unwrap_err().var, "JUPANG_MAX_IN_FLIGHT");
        assert_eq!(with("JUPANG_DB_ACQUIRE_TIMEOUT_MS", "2s").unwrap_err().var, "JUPANG_DB_ACQUIRE_TIMEOUT_MS");
    }

    #[test]
    fn a_data_platform_url_with_credentials_is_never_echoed() {
        let e = with("JUPANG_DATA_PLATFORM_URL", "https://bot:pa55word@example.com/events").unwrap_err();
        assert_eq!(e.var, "JUPANG_DATA_PLATFORM_URL");
        assert!(!e.to_string().contains("pa55word"));
        assert_eq!(
            with("JUPANG_DATA_PLATFORM_URL", "http://127.0.0.1:9/e").unwrap().data_platform_url.as_deref(),
            Some("http://127.0.0.1:9/e")
        );
    }

    #[test]
    fn an_unknown_jupang_variable_is_refused() {
        assert_eq!(with("JUPANG_ISSUE_STRATEGYY", "redis-lua").unwrap_err().var, "JUPANG_ISSUE_STRATEGYY");
    }

    #[test]
    fn secrets_never_show_in_errors_or_debug() {
        let e = with("JUPANG_JWT_SECRET", "short-secret").unwrap_err();
        assert!(!e.to_string().contains("short-secret"));
        let c = Config::from_vars(base()).unwrap();
        assert!(!format!("{c:?}").contains("0123456789abcdef0123"));
        assert!(!format!("{c:?}").contains("u:p@"));
    }

    #[test]
    fn a_worker_list_switches_each_worker() {
        let w: Workers = "expiry, outbox".parse().unwrap();
        assert!(w.expiry && w.outbox && !w.consumer && !w.reconcile);
    }
}
