//! First-come coupon issuing: one [`Issuer`] interface, one implementation per design, picked by
//! `JUPANG_ISSUE_STRATEGY`. Every design gives the same promises (exactly `total` issued, one per
//! user, only inside the window, a `coupon.issued` event in the outbox for each); they differ in
//! how concurrent requests are kept apart and when Postgres learns of an issue:
//!
//! - [`Pessimistic`] (`db-pessimistic`): `SELECT ... FOR UPDATE` on the coupon row;
//! - [`Optimistic`] (`db-optimistic`): a version-checked `UPDATE`, retried with jittered backoff;
//! - [`RedisLockIssuer`] (`redis-lock`): a Redis mutex per coupon around the transaction;
//! - [`RedisLuaIssuer`] (`redis-lua`, V2, the default): one atomic Lua script in Redis decides
//!   and appends the issue to the coupon's stream; the consumer persists it (with its event)
//!   into Postgres shortly after, and a payment or listing that comes first persists it itself
//!   ([`crate::admission::coupons`]).
//!
//! The V1 designs first read the coupon without any lock and reject at once what is already
//! decided (closed window, already held, sold out): an answer read a moment before taking the
//! lock is as true as one read under it, and it keeps the losers of a flash sale out of the
//! queue. Only a success is decided under the design's concurrency control.

mod optimistic;
mod pessimistic;
mod redis_lock;
mod redis_lua;

use std::{
    collections::HashMap,
    future::Future,
    sync::{LazyLock, OnceLock, PoisonError, RwLock},
};

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::json;
use sqlx::PgConnection;

pub use optimistic::Optimistic;
pub use pessimistic::Pessimistic;
pub use redis_lock::{LOCK_KEY_PREFIX, RedisLockIssuer};
pub use redis_lua::RedisLuaIssuer;

use crate::{
    admission::coupons::AdmitError,
    config::IssueStrategy,
    domain::coupon::{Coupon, IssueError, IssuedCoupon},
    state::AppState,
    store::pg::{
        outbox::{self, EventType},
        user_coupons::{self, IssueSnapshot},
    },
};

/// `coupon_issue_total{strategy,outcome}`: issue attempts by design and outcome
/// (`issued`, `already_issued`, `sold_out`, `not_active`, `error`).
pub const COUPON_ISSUE_TOTAL: &str = "coupon_issue_total";
/// `coupon_remaining{coupon_id}`: what this process last saw left of a coupon.
pub const COUPON_REMAINING: &str = "coupon_remaining";
/// The `outcome` label values of [`COUPON_ISSUE_TOTAL`], in the contract's order.
pub const OUTCOMES: [&str; 5] = ["issued", "already_issued", "sold_out", "not_active", "error"];
/// `coupon_issue_conflicts_total{strategy}`: optimistic version conflicts (each one a retry).
pub const COUPON_ISSUE_CONFLICTS_TOTAL: &str = "coupon_issue_conflicts_total";

/// Longest any statement of an issue transaction may run (lock waits included). Bounds how long a
/// row or Redis lock can be held, so the Redis lock's TTL can be chosen above it.
pub const STATEMENT_TIMEOUT_MS: u64 = 1_000;
/// Opens an issue transaction with its statement timeout, in one round trip.
const BEGIN_ISSUE: &str = "BEGIN; SET LOCAL statement_timeout = 1000";

/// Why a coupon was not issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueFailure {
    /// No coupon with this id.
    #[error("no such coupon")]
    CouponNotFound,
    /// No user with this id.
    #[error("no such user")]
    UserNotFound,
    /// The user's market is not the coupon's.
    #[error("the coupon belongs to another market")]
    MarketMismatch,
    /// A business rule said no.
    #[error(transparent)]
    Rule(#[from] IssueError),
    /// Too much contention: retries or lock waits ran out; the client may retry.
    #[error("too much contention")]
    Conflict,
    /// A store failed.
    #[error(transparent)]
    Store(anyhow::Error),
}

impl From<sqlx::Error> for IssueFailure {
    fn from(e: sqlx::Error) -> Self {
        // Lock or statement timeouts, deadlocks and serialization failures are contention, not
        // faults: the request can be retried.
        let contention = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| matches!(c.as_ref(), "57014" | "55P03" | "40P01" | "40001"));
        if contention { IssueFailure::Conflict } else { IssueFailure::Store(e.into()) }
    }
}

impl From<AdmitError> for IssueFailure {
    fn from(e: AdmitError) -> Self {
        match e {
            AdmitError::CouponNotFound => IssueFailure::CouponNotFound,
            AdmitError::UserNotFound => IssueFailure::UserNotFound,
            AdmitError::MarketMismatch => IssueFailure::MarketMismatch,
            AdmitError::Rule(r) => IssueFailure::Rule(r),
            AdmitError::Fault(f) => IssueFailure::Store(f.into()),
        }
    }
}

impl From<redis::RedisError> for IssueFailure {
    fn from(e: redis::RedisError) -> Self {
        IssueFailure::Store(e.into())
    }
}

/// A coupon handed out.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The issued coupon as stored.
    pub coupon: IssuedCoupon,
    /// How many are left after this one.
    pub remaining: u32,
}

/// One way of issuing first-come coupons under concurrency.
pub trait Issuer: Send + Sync {
    /// The design, as configured and as the metric label.
    fn strategy(&self) -> IssueStrategy;

    /// Issues one `coupon_id` to `user_id`, or says why not. On success the coupon is usable by
    /// the user's very next request, and it reaches Postgres with its `coupon.issued` event
    /// (V1: already committed; V2: recorded in Redis, persisted by the consumer).
    fn issue(&self, coupon_id: i64, user_id: i64) -> impl Future<Output = Result<Issued, IssueFailure>> + Send;
}

/// The design in use, dispatched statically.
pub enum AnyIssuer<'a> {
    /// `db-pessimistic`.
    Pessimistic(Pessimistic<'a>),
    /// `db-optimistic`.
    Optimistic(Optimistic<'a>),
    /// `redis-lock`.
    RedisLock(RedisLockIssuer<'a>),
    /// `redis-lua`.
    RedisLua(RedisLuaIssuer<'a>),
}

impl<'a> AnyIssuer<'a> {
    /// The issuer for the configured strategy over the application's stores.
    pub fn for_state(state: &'a AppState) -> AnyIssuer<'a> {
        match state.config.issue_strategy {
            IssueStrategy::DbPessimistic => AnyIssuer::Pessimistic(Pessimistic::new(&state.db)),
            IssueStrategy::DbOptimistic => AnyIssuer::Optimistic(Optimistic::new(&state.db)),
            IssueStrategy::RedisLock => AnyIssuer::RedisLock(RedisLockIssuer::new(&state.db, &state.redis)),
            IssueStrategy::RedisLua => AnyIssuer::RedisLua(RedisLuaIssuer::new(&state.coupon_admission)),
        }
    }
}

impl Issuer for AnyIssuer<'_> {
    fn strategy(&self) -> IssueStrategy {
        match self {
            AnyIssuer::Pessimistic(i) => i.strategy(),
            AnyIssuer::Optimistic(i) => i.strategy(),
            AnyIssuer::RedisLock(i) => i.strategy(),
            AnyIssuer::RedisLua(i) => i.strategy(),
        }
    }

    async fn issue(&self, coupon_id: i64, user_id: i64) -> Result<Issued, IssueFailure> {
        match self {
            AnyIssuer::Pessimistic(i) => i.issue(coupon_id, user_id).await,
            AnyIssuer::Optimistic(i) => i.issue(coupon_id, user_id).await,
            AnyIssuer::RedisLock(i) => i.issue(coupon_id, user_id).await,
            AnyIssuer::RedisLua(i) => i.issue(coupon_id, user_id).await,
        }
    }
}

/// Issues with the application's configured design and records the outcome metrics.
pub async fn issue(state: &AppState, coupon_id: i64, user_id: i64) -> Result<Issued, IssueFailure> {
    let issuer = AnyIssuer::for_state(state);
    let result = issuer.issue(coupon_id, user_id).await;
    let outcome = match &result {
        Ok(_) => 0,
        Err(IssueFailure::Rule(IssueError::AlreadyIssued)) => 1,
        Err(IssueFailure::Rule(IssueError::SoldOut)) => 2,
        Err(IssueFailure::Rule(IssueError::NotActive)) => 3,
        Err(_) => 4,
    };
    issue_counter(issuer.strategy(), outcome).increment(1);
    let remaining = match &result {
        Ok(issued) => Some(issued.remaining),
        Err(IssueFailure::Rule(IssueError::SoldOut)) => Some(0),
        _ => None,
    };
    if let Some(remaining) = remaining {
        set_remaining(coupon_id, remaining);
    }
    result
}

/// Creates `coupon_issue_total{strategy,outcome}` at zero for `strategy` and every outcome.
pub fn register_metrics(strategy: IssueStrategy) {
    for outcome in 0..OUTCOMES.len() {
        issue_counter(strategy, outcome).increment(0);
    }
}

/// The counter of one strategy and outcome (an index into [`OUTCOMES`]), built once: issuing is
/// the hottest path, and building a labelled key per request costs an allocation and a hash.
fn issue_counter(strategy: IssueStrategy, outcome: usize) -> &'static metrics::Counter {
    static COUNTERS: [[OnceLock<metrics::Counter>; OUTCOMES.len()]; IssueStrategy::ALL.len()] =
        [const { [const { OnceLock::new() }; OUTCOMES.len()] }; IssueStrategy::ALL.len()];
    let s = IssueStrategy::ALL.iter().position(|&s| s == strategy).expect("ALL lists every strategy");
    COUNTERS[s][outcome].get_or_init(|| {
        // A handle taken before the recorder exists would count into nothing, forever.
        crate::metrics::install();
        metrics::counter!(COUPON_ISSUE_TOTAL, "strategy" => strategy.as_str(), "outcome" => OUTCOMES[outcome])
    })
}

/// Sets `coupon_remaining{coupon_id}` through a handle cached per coupon, so an issue does not
/// format the id and build a key each time (one entry per coupon, as in the registry itself).
fn set_remaining(coupon_id: i64, remaining: u32) {
    static GAUGES: LazyLock<RwLock<HashMap<i64, metrics::Gauge>>> = LazyLock::new(Default::default);
    if let Some(gauge) = GAUGES.read().unwrap_or_else(PoisonError::into_inner).get(&coupon_id) {
        gauge.set(f64::from(remaining));
        return;
    }
    crate::metrics::install();
    let gauge = metrics::gauge!(COUPON_REMAINING, "coupon_id" => coupon_id.to_string());
    gauge.set(f64::from(remaining));
    GAUGES.write().unwrap_or_else(PoisonError::into_inner).insert(coupon_id, gauge);
}

/// Now, at the database's precision (microseconds), so what is answered is what is stored.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Applies the rules to a snapshot: existence, user, market, then the aggregate's own rules
/// (window, duplicate, stock). Returns the snapshot, the coupon after the issue and the issued
/// coupon.
fn decide(
    snapshot: Option<IssueSnapshot>,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<(IssueSnapshot, Coupon, IssuedCoupon), IssueFailure> {
    let snapshot = snapshot.ok_or(IssueFailure::CouponNotFound)?;
    let user_market = snapshot.user_market.ok_or(IssueFailure::UserNotFound)?;
    if user_market != snapshot.stored.coupon.terms.market {
        return Err(IssueFailure::MarketMismatch);
    }
    let (after, issued) = snapshot.stored.coupon.issue(user_id, now, snapshot.already_holds)?;
    Ok((snapshot, after, issued))
}

/// Rejects, without any lock, a request whose answer is already decided.
async fn precheck(conn: &mut PgConnection, coupon_id: i64, user_id: i64) -> Result<(), IssueFailure> {
    let snapshot = user_coupons::snapshot(conn, coupon_id, user_id).await?;
    decide(snapshot, user_id, now()).map(|_| ())
}

/// Stores the issued coupon and its `coupon.issued` event in the caller's transaction. A
/// concurrent issue to the same user (a double click) surfaces here as `AlreadyIssued`.
async fn record(tx: &mut PgConnection, issued: &IssuedCoupon) -> Result<(), IssueFailure> {
    if !user_coupons::insert(tx, issued).await? {
        return Err(IssueError::AlreadyIssued.into());
    }
    let payload = json!({
        "coupon_id": issued.coupon_id,
        "user_id": issued.user_id,
        "user_coupon_id": issued.id,
    });
    outbox::enqueue(tx, EventType::CouponIssued, issued.issued_at, payload).await?;
    Ok(())
}
