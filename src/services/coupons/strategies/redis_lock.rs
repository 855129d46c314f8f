//! `redis-lock`: a Redis mutex per coupon serialises issuers across every process; inside it the
//! transaction reads without `FOR UPDATE`.
//!
//! A lock that outlives its TTL would let two issuers in at once, so the TTL ([`LOCK_TTL`]) is
//! well above the longest the transaction can take (five statements of at most
//! [`super::STATEMENT_TIMEOUT_MS`] each), and the database keeps its own nets anyway: the counter
//! update is version-checked and conditional on stock, and `UNIQUE (coupon_id, user_id)` refuses
//! a second coupon per user.

use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};

use super::{BEGIN_ISSUE, IssueFailure, Issued, Issuer, STATEMENT_TIMEOUT_MS, decide, now, precheck, record};
use crate::{
    config::IssueStrategy,
    store::{
        pg::user_coupons,
        redis::{
            RedisStore,
            lock::{LockOptions, RedisLock},
        },
    },
};

/// Lock keys are `{prefix}:coupon-issue-lock:{coupon_id}` (built with [`RedisStore::key`]); the
/// value is the owner's random token.
pub const LOCK_KEY_PREFIX: &str = "coupon-issue-lock";
/// The lock frees itself after this long if its owner never releases it.
pub const LOCK_TTL: Duration = Duration::from_millis(8 * STATEMENT_TIMEOUT_MS);
/// A request waits at most this long for the lock, then answers 409 `CONCURRENCY_CONFLICT`.
pub const LOCK_MAX_WAIT: Duration = Duration::from_secs(3);

const LOCK_OPTIONS: LockOptions = LockOptions {
    ttl: LOCK_TTL,
    max_wait: LOCK_MAX_WAIT,
    retry_sleep: (Duration::from_millis(1), Duration::from_millis(4)),
};

/// The lock key of a coupon.
pub fn lock_key(redis: &RedisStore, coupon_id: i64) -> String {
    redis.key(&format!("{LOCK_KEY_PREFIX}:{coupon_id}"))
}

/// Issues inside a Redis lock per coupon.
pub struct RedisLockIssuer<'a> {
    db: &'a PgPool,
    redis: &'a RedisStore,
}

impl<'a> RedisLockIssuer<'a> {
    /// An issuer over a pool and a Redis store.
    pub fn new(db: &'a PgPool, redis: &'a RedisStore) -> Self {
        RedisLockIssuer { db, redis }
    }

    /// The critical section: runs while the lock is held.
    async fn locked(conn: &mut PgConnection, coupon_id: i64, user_id: i64) -> Result<Issued, IssueFailure> {
        let mut tx = conn.begin_with(BEGIN_ISSUE).await?;
        let snapshot = user_coupons::snapshot(&mut tx, coupon_id, user_id).await?;
        let (snapshot, after, issued) = decide(snapshot, user_id, now())?;
        record(&mut tx, &issued).await?;
        if !user_coupons::count_issue_at_version(&mut tx, coupon_id, snapshot.stored.version).await? {
            // No issuer moves the row while we hold the lock: an admin edit did (or an issuer
            // whose lock ran out). What was checked may be stale; the client can retry.
            return Err(IssueFailure::Conflict);
        }
        tx.commit().await?;
        Ok(Issued { coupon: issued, remaining: after.inventory.remaining() })
    }
}

impl Issuer for RedisLockIssuer<'_> {
    fn strategy(&self) -> IssueStrategy {
        IssueStrategy::RedisLock
    }

    async fn issue(&self, coupon_id: i64, user_id: i64) -> Result<Issued, IssueFailure> {
        // The connection is taken before the lock so that waiting for the pool never happens
        // while holding it.
        let mut conn = self.db.acquire().await?;
        precheck(&mut conn, coupon_id, user_id).await?;
        let Some(lock) = RedisLock::acquire(self.redis, lock_key(self.redis, coupon_id), LOCK_OPTIONS).await? else {
            tracing::warn!(
                coupon.id = coupon_id,
                wait_ms = LOCK_MAX_WAIT.as_millis() as u64,
                "issue lock not acquired"
            );
            return Err(IssueFailure::Conflict);
        };
        let result = Self::locked(&mut conn, coupon_id, user_id).await;
        match lock.release().await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(coupon.id = coupon_id, "issue lock expired before release"),
            // The outcome is already committed or rolled back; the TTL frees the lock.
            Err(e) => tracing::warn!(coupon.id = coupon_id, error.cause = %e, "issue lock release failed"),
        }
        result
    }
}
