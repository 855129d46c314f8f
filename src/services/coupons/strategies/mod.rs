//! First-come coupon issuing designs: one [`Issuer`] interface, one implementation per design,
//! picked by `JUPANG_ISSUE_STRATEGY` ([`AnyIssuer::for_state`]). Every design gives the same promises (exactly `total` issued, one per
//! user, only inside the window, a `coupon.issued` event in the outbox for each); they differ in
//! how concurrent requests are kept apart and when Postgres learns of an issue:
//!
//! - [`Pessimistic`] (`db-pessimistic`): `SELECT ... FOR UPDATE` on the coupon row;
//! - [`Optimistic`] (`db-optimistic`): a version-checked `UPDATE`, retried with jittered backoff;
//! - [`RedisLockIssuer`] (`redis-lock`): a Redis mutex per coupon around the transaction;
//! - [`RedisLuaIssuer`] (`redis-lua`, V2, the default): one atomic Lua script in Redis decides
//!   and appends the issue to the coupon's stream; the consumer persists it (with its event)
//!   into Postgres shortly after, and a payment or listing that comes first persists it itself
//!   (the engine is [`crate::admission::coupons`]).
//!
//! The V1 designs first read the coupon without any lock and reject at once what is already
//! decided (closed window, already held, sold out): an answer read a moment before taking the
//! lock is as true as one read under it, and it keeps the losers of a flash sale out of the
//! queue. Only a success is decided under the design's concurrency control.

mod optimistic;
mod pessimistic;
mod redis_lock;
mod redis_lua;

use std::future::Future;

use serde_json::json;
use sqlx::PgConnection;

pub use optimistic::{COUPON_ISSUE_CONFLICTS_TOTAL, Optimistic};
pub use pessimistic::Pessimistic;
pub use redis_lock::{LOCK_KEY_PREFIX, RedisLockIssuer};
pub use redis_lua::RedisLuaIssuer;

use chrono::{DateTime, Utc};

use crate::{
    admission::coupons::{self as admission, AdmitError},
    config::IssueStrategy,
    domain::coupon::{Coupon, IssueError, IssuedCoupon},
    services::{AppState, Fault},
    store::pg::{
        outbox::{self, EventType},
        user_coupons::{self, IssueSnapshot},
    },
};

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
    Fault(#[from] Fault),
}

impl From<sqlx::Error> for IssueFailure {
    fn from(e: sqlx::Error) -> Self {
        // Lock or statement timeouts, deadlocks and serialization failures are contention, not
        // faults: the request can be retried.
        let contention = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| matches!(c.as_ref(), "57014" | "55P03" | "40P01" | "40001"));
        if contention { IssueFailure::Conflict } else { IssueFailure::Fault(e.into()) }
    }
}

impl From<AdmitError> for IssueFailure {
    fn from(e: AdmitError) -> Self {
        match e {
            AdmitError::CouponNotFound => IssueFailure::CouponNotFound,
            AdmitError::UserNotFound => IssueFailure::UserNotFound,
            AdmitError::MarketMismatch => IssueFailure::MarketMismatch,
            AdmitError::Rule(r) => IssueFailure::Rule(r),
            AdmitError::Fault(f) => IssueFailure::Fault(f),
        }
    }
}

impl From<redis::RedisError> for IssueFailure {
    fn from(e: redis::RedisError) -> Self {
        IssueFailure::Fault(e.into())
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

/// Now, at the database's precision (microseconds), so what is answered is what is stored.
fn now() -> DateTime<Utc> {
    admission::now()
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
