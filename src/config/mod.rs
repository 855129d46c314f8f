//! Configuration from the environment, parsed and validated once at start-up.
//!
//! Every variable of the contract is read here and nowhere else: `serve`'s whole [`Config`],
//! the few variables a command-line tool needs ([`ToolEnv`]), and `RUST_LOG` ([`log_filter`]).
//! A malformed value, an unknown `JUPANG_*` variable or a missing required one becomes a
//! [`ConfigError`] that names the variable; secrets never appear in messages or in `Debug`
//! output.

mod choices;
#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

pub use self::choices::{IssueStrategy, LogFormat, OrderStrategy, Secret, Workers};

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
    /// `JUPANG_DATA_PLATFORM_URL`: where outbox events are POSTed (`http://` or `https://`);
    /// none keeps them pending.
    pub data_platform_url: Option<String>,
    /// `JUPANG_DATA_PLATFORM_CA`: an extra CA bundle (PEM) the `https://` platform's certificate
    /// may chain to, besides the bundled public roots; read and checked at start-up.
    pub data_platform_ca: Option<CaBundle>,
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
    /// `JUPANG_OUTBOX_BREAKER_FAILURES`: consecutive failed deliveries that open the relay's
    /// circuit breaker.
    pub outbox_breaker_failures: u32,
    /// `JUPANG_OUTBOX_BREAKER_OPEN_SECS`: how long an open breaker sends nothing before it
    /// probes with one event.
    pub outbox_breaker_open: Duration,
    /// `JUPANG_STREAM_CLAIM_IDLE_MS`: a stream entry delivered to a consumer and not acknowledged
    /// for this long is taken over by another consumer (`XAUTOCLAIM`): its owner probably died.
    pub stream_claim_idle: Duration,
    /// `JUPANG_STREAM_BATCH`: most entries a stream consumer reads and persists per transaction
    /// (`XREADGROUP COUNT`). Larger batches spend fewer commits and round trips per entry.
    pub stream_batch: usize,
    /// `JUPANG_STREAM_CONSUMERS`: consumer tasks per stream sink in this process, each a member
    /// of the one consumer group under its own name; their batches commit in parallel.
    pub stream_consumers: usize,
}

/// The PEM bundle of `JUPANG_DATA_PLATFORM_CA`, as read at start-up.
#[derive(Clone, PartialEq, Eq)]
pub struct CaBundle {
    /// Where it was read from (shown in `Debug`, unlike the bytes).
    pub path: PathBuf,
    /// The PEM text: one or more certificates.
    pub pem: Vec<u8>,
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaBundle").field("path", &self.path).field("bytes", &self.pem.len()).finish()
    }
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
    "JUPANG_DATA_PLATFORM_CA",
    "JUPANG_OUTBOX_BREAKER_FAILURES",
    "JUPANG_OUTBOX_BREAKER_OPEN_SECS",
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
    "JUPANG_STREAM_BATCH",
    "JUPANG_STREAM_CONSUMERS",
    // Read by the scripts, not by the binary; accepted so one environment serves both.
    "JUPANG_PG_PORT",
    "JUPANG_REDIS_PORT",
    "JUPANG_DATA_DIR",
    "JUPANG_SEED_USERS",
    "JUPANG_TEST_THREADS",
    "JUPANG_REDIS_MODE",
    "JUPANG_REDIS_CLUSTER_PORT",
    "JUPANG_REDIS_APPENDFSYNC",
    "JUPANG_FUZZ_ENFORCE",
    "JUPANG_FUZZ_SECONDS",
];

/// What the command-line tools read from the environment, one variable at a time: unlike
/// `serve`, a subcommand needs only a few variables and must not refuse to run over others.
#[derive(Debug, Clone)]
pub struct ToolEnv {
    vars: BTreeMap<String, String>,
}

impl ToolEnv {
    /// Reads the process environment.
    pub fn from_env() -> ToolEnv {
        ToolEnv::from_vars(std::env::vars().collect())
    }

    /// A set of variables; the process environment is only one source of them.
    pub fn from_vars(vars: BTreeMap<String, String>) -> ToolEnv {
        ToolEnv { vars }
    }

    /// A variable that must be set to something other than blanks (returned as given).
    pub fn required(&self, var: &str) -> Result<String, ConfigError> {
        self.optional(var).ok_or_else(|| err(var, "is required"))
    }

    /// A variable, unless it is unset or blank (returned as given).
    pub fn optional(&self, var: &str) -> Option<String> {
        self.vars.get(var).filter(|v| !v.trim().is_empty()).cloned()
    }

    /// `DATABASE_URL`.
    pub fn database_url(&self) -> Result<String, ConfigError> {
        self.required("DATABASE_URL")
    }

    /// `REDIS_URL`: one node URL, or several comma-separated for Redis Cluster (as `serve` reads
    /// it, so a tool reaches the same deployment).
    pub fn redis_urls(&self) -> Result<Vec<String>, ConfigError> {
        redis_node_urls(&self.required("REDIS_URL")?)
    }

    /// `JUPANG_REDIS_PREFIX`, `jupang` when unset.
    pub fn redis_prefix(&self) -> String {
        self.optional("JUPANG_REDIS_PREFIX").map_or_else(|| "jupang".to_owned(), |p| p.trim().to_owned())
    }

    /// `JUPANG_JWT_SECRET`.
    pub fn jwt_secret(&self) -> Result<String, ConfigError> {
        self.required("JUPANG_JWT_SECRET")
    }
}

/// The node URLs of a `REDIS_URL` value: one for a single node, several (comma-separated) for
/// Redis Cluster; each must be a `redis://` or `rediss://` URL.
fn redis_node_urls(value: &str) -> Result<Vec<String>, ConfigError> {
    let urls: Vec<String> = value.split(',').map(|u| u.trim().to_owned()).collect();
    if urls.iter().any(|u| !(u.starts_with("redis://") || u.starts_with("rediss://"))) {
        return Err(err("REDIS_URL", "each URL must start with redis:// or rediss://"));
    }
    Ok(urls)
}

/// The log filter of `RUST_LOG` ([`EnvFilter`] syntax), if set; the caller picks the default.
///
/// [`EnvFilter`]: https://docs.rs/tracing-subscriber/latest/tracing_subscriber/filter/struct.EnvFilter.html
pub fn log_filter() -> Option<String> {
    std::env::var("RUST_LOG").ok()
}

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
        let redis_urls = redis_node_urls(&get("REDIS_URL").ok_or_else(|| err("REDIS_URL", "is required"))?)?;
        let jwt_secret = get("JUPANG_JWT_SECRET").ok_or_else(|| err("JUPANG_JWT_SECRET", "is required"))?;
        if jwt_secret.len() < 16 {
            return Err(err("JUPANG_JWT_SECRET", "must be at least 16 bytes"));
        }
        let data_platform_url = get("JUPANG_DATA_PLATFORM_URL");
        if let Some(u) = &data_platform_url {
            // Checked before parsing: the message must not echo a URL that may hold credentials.
            if !(u.starts_with("http://") || u.starts_with("https://")) || reqwest::Url::parse(u).is_err() {
                return Err(err("JUPANG_DATA_PLATFORM_URL", "must be an http:// or https:// URL"));
            }
        }
        let data_platform_ca = get("JUPANG_DATA_PLATFORM_CA").map(|p| ca_bundle(PathBuf::from(p))).transpose()?;
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
            data_platform_ca,
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
            outbox_breaker_failures: u32::try_from(positive(
                &parse("JUPANG_OUTBOX_BREAKER_FAILURES", "5"),
                "JUPANG_OUTBOX_BREAKER_FAILURES",
            )?)
            .map_err(|_| err("JUPANG_OUTBOX_BREAKER_FAILURES", "is too large"))?,
            outbox_breaker_open: Duration::from_secs(positive(
                &parse("JUPANG_OUTBOX_BREAKER_OPEN_SECS", "30"),
                "JUPANG_OUTBOX_BREAKER_OPEN_SECS",
            )?),
            stream_claim_idle: Duration::from_millis(positive(
                &parse("JUPANG_STREAM_CLAIM_IDLE_MS", "30000"),
                "JUPANG_STREAM_CLAIM_IDLE_MS",
            )?),
            stream_batch: whole_in(&parse("JUPANG_STREAM_BATCH", "500"), "JUPANG_STREAM_BATCH", 1..=10_000)?,
            stream_consumers: whole_in(&parse("JUPANG_STREAM_CONSUMERS", "4"), "JUPANG_STREAM_CONSUMERS", 1..=16)?,
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

/// `JUPANG_DATA_PLATFORM_CA`: the file must be readable and hold at least one PEM certificate,
/// so a wrong path stops start-up instead of failing every delivery later.
fn ca_bundle(path: PathBuf) -> Result<CaBundle, ConfigError> {
    const VAR: &str = "JUPANG_DATA_PLATFORM_CA";
    let pem = std::fs::read(&path).map_err(|e| err(VAR, format!("cannot read {}: {e}", path.display())))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(CaBundle { path, pem }),
        Ok(_) => Err(err(VAR, format!("{} holds no PEM certificate", path.display()))),
        Err(e) => Err(err(VAR, format!("{} is not a PEM certificate bundle: {e}", path.display()))),
    }
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

/// A whole number within `range`: `JUPANG_STREAM_BATCH` (1 to 10,000: one batch is one
/// transaction and one reply in memory), `JUPANG_STREAM_CONSUMERS` (1 to 16: each consumer holds
/// a Postgres connection while it persists, out of the pool requests share).
fn whole_in(raw: &str, var: &str, range: std::ops::RangeInclusive<usize>) -> Result<usize, ConfigError> {
    match raw.parse::<usize>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(err(var, format!("expected a whole number from {} to {}, got `{raw}`", range.start(), range.end()))),
    }
}

/// A retry count: 0 (no retries) up to 20 (beyond that the doubling backoff spans months).
fn retries(raw: &str, var: &str) -> Result<u32, ConfigError> {
    match raw.parse::<u32>() {
        Ok(v) if v <= 20 => Ok(v),
        _ => Err(err(var, format!("expected a whole number from 0 to 20, got `{raw}`"))),
    }
}
