//! The values of the configuration that are more than a number: the designs, the log format,
//! the workers to run, and secrets.

use std::{fmt, str::FromStr};

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
    /// Drains the Redis Stream of V2 admissions into Postgres, and folds the stock ledger
    /// into the option rows.
    pub consumer: bool,
    /// Delivers outbox events to the data platform.
    pub outbox: bool,
    /// Compares Redis and Postgres counters and exports the drift as metrics.
    pub reconcile: bool,
    /// Runs the scheduled jobs (the daily popular-products snapshot at UTC 00:00, once across
    /// every instance, caught up at start-up when overdue).
    pub jobs: bool,
}

impl Workers {
    const NAMES: [&'static str; 5] = ["expiry", "consumer", "outbox", "reconcile", "jobs"];

    /// All workers on.
    pub const ALL: Workers = Workers { expiry: true, consumer: true, outbox: true, reconcile: true, jobs: true };
    /// No workers: the process only serves HTTP.
    pub const NONE: Workers = Workers { expiry: false, consumer: false, outbox: false, reconcile: false, jobs: false };
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
                "jobs" => w.jobs = true,
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
