//! A single-node Redis mutex: `SET key token NX PX ttl` to take it, a compare-and-delete Lua
//! script (`lua/unlock.lua`) to release it only while it is still ours.
//!
//! The TTL frees the lock if its owner dies; callers must keep their critical section well inside
//! it and must not rely on the lock alone for correctness (the V1 `redis-lock` issuer keeps the
//! database's own guards as a net for the case where the TTL runs out mid-section).

use std::{
    sync::LazyLock,
    time::{Duration, Instant},
};

use rand::Rng;

use super::{DedicatedConn, RedisStore};

static UNLOCK: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("../../../lua/unlock.lua")));

/// How long to keep trying to take a lock, and how long to hold it at most.
#[derive(Debug, Clone, Copy)]
pub struct LockOptions {
    /// The lock frees itself after this long, should its owner never release it.
    pub ttl: Duration,
    /// Give up after waiting this long.
    pub max_wait: Duration,
    /// Each retry sleeps a random time between these bounds (jitter keeps waiters from retrying
    /// in lockstep).
    pub retry_sleep: (Duration, Duration),
}

/// A held lock. Release it with [`RedisLock::release`]; if it is dropped instead (the request
/// was cancelled), the release is sent from a spawned task, and failing that the TTL frees it.
pub struct RedisLock {
    /// The connection the lock was taken on, kept until it is released.
    conn: Option<DedicatedConn>,
    key: String,
    token: String,
}

impl RedisLock {
    /// Takes the lock at `key` (a full key, built with [`RedisStore::key`]), waiting at most
    /// `opts.max_wait`; `Ok(None)` when it could not be had in time.
    pub async fn acquire(store: &RedisStore, key: String, opts: LockOptions) -> redis::RedisResult<Option<RedisLock>> {
        let token = format!("{:032x}", rand::rng().random::<u128>());
        let ttl_ms = u64::try_from(opts.ttl.as_millis()).unwrap_or(u64::MAX);
        let deadline = Instant::now() + opts.max_wait;
        let mut conn = store.locking().await?;
        loop {
            let taken: Option<String> =
                redis::cmd("SET").arg(&key).arg(&token).arg("NX").arg("PX").arg(ttl_ms).query_async(&mut conn).await?;
            if taken.is_some() {
                return Ok(Some(RedisLock { conn: Some(conn), key, token }));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            // Polling is the price of a plain SET NX lock; the sleep is short and jittered.
            let (lo, hi) = opts.retry_sleep;
            let pause = rand::rng().random_range(lo..=hi.max(lo)).min(deadline - now);
            tokio::time::sleep(pause).await;
        }
    }

    /// Releases the lock if it is still ours; `Ok(false)` when its TTL had already run out.
    pub async fn release(mut self) -> redis::RedisResult<bool> {
        // Always Some here: only release and drop take the connection, and both consume the lock.
        let Some(mut conn) = self.conn.take() else { return Ok(false) };
        let deleted: i64 = UNLOCK.key(&self.key).arg(&self.token).invoke_async(&mut conn).await?;
        Ok(deleted == 1)
    }
}

impl Drop for RedisLock {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        let (key, token) = (std::mem::take(&mut self.key), std::mem::take(&mut self.token));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _: redis::RedisResult<i64> = UNLOCK.key(&key).arg(&token).invoke_async(&mut conn).await;
            });
        }
    }
}
