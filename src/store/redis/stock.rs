//! Redis side of the V2 stock reservation (`JUPANG_ORDER_STRATEGY=redis-lua`): the key layout
//! and one call per Lua script.
//!
//! # Keys
//! Every key carries the same hash tag `{stock}`, so a multi-item order's script touches a
//! single slot and runs unchanged on Redis Cluster (the price: all stock traffic of one
//! deployment lives on one shard). With `P` the deployment prefix (`JUPANG_REDIS_PREFIX`):
//!
//! | Key | Type | Holds |
//! | --- | --- | --- |
//! | `P:{stock}:avail:<option_id>` | string | sellable units: stock - reserved (Postgres) - reservations Redis holds that Postgres does not count yet |
//! | `P:{stock}:stream` | stream | one entry per admitted order (fields of [`Admission`]) |
//! | `P:{stock}:order:<order_id>` | hash | the admission plus `state`: `pending`, `paid`, `released`, `refunded` |
//! | `P:{stock}:due` | sorted set | pending orders by `expires_at` (ms): the sweeper's list of what Redis still holds |
//! | `P:{stock}:recent:<user_id>` | sorted set | a user's latest order ids by creation, for read-your-writes of order lists |
//! | `P:{stock}:options` | set | option ids whose counter was hydrated (what reconciliation checks) |
//! | `P:{stock}:refund:<refund_id>` | hash | `state: refunded` once a refund's units were put back (exactly once per refund) |
//!
//! Every call that raises a counter (release, restock, a positive adjustment) then publishes a
//! [`Topic::Stock`] notice per option (hydration: one for the whole topic), so every instance forgets that the option was
//! sold out (`admission::orders::sold_out`).

use std::{
    sync::{Arc, LazyLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use redis::Script;
use uuid::Uuid;

use super::{
    RedisStore,
    notices::{Notices, Topic},
    stock_reads::GroupedReads,
    streams::orders::Admission,
};

/// The hash tag of every stock key.
pub const HASH_TAG: &str = "{stock}";
/// `P:{stock}:avail:<option_id>`: sellable units of an option.
pub const AVAIL: &str = "avail";
/// `P:{stock}:stream`: the admission stream the consumer persists.
pub const STREAM: &str = "stream";
/// `P:{stock}:order:<order_id>`: an admitted order's hash.
pub const ORDER: &str = "order";
/// `P:{stock}:due`: pending orders by expiry.
pub const DUE: &str = "due";
/// `P:{stock}:recent:<user_id>`: a user's latest orders.
pub const RECENT: &str = "recent";
/// `P:{stock}:options`: the hydrated options.
pub const HYDRATED: &str = "options";
/// `P:{stock}:refund:<refund_id>`: the marker that a refund's units went back on sale.
pub const REFUND: &str = "refund";

/// How long the hash of a settled order (paid, released, refunded) is kept: long enough to
/// absorb retries and repair passes, short enough to free memory.
pub const SETTLED_HASH_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a pending order's hash outlives its expiry (the sweeper settles it well before).
pub const PENDING_HASH_GRACE: Duration = Duration::from_secs(24 * 3600);

static RESERVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../../lua/reserve_stock.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../../lua/release_stock.lua")));
static CONFIRM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../../lua/confirm_stock.lua")));
static RESTOCK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../../lua/restock_stock.lua")));
static ADJUST: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../../lua/adjust_stock.lua")));

/// The names of the stock keys of one deployment.
#[derive(Debug, Clone)]
pub struct StockKeys {
    base: String,
}

impl StockKeys {
    /// Keys under `prefix` (the deployment's `JUPANG_REDIS_PREFIX`).
    pub fn new(prefix: &str) -> StockKeys {
        StockKeys { base: format!("{prefix}:{HASH_TAG}") }
    }
    /// `P:{stock}:avail:<option_id>`.
    pub fn avail(&self, option_id: i64) -> String {
        format!("{}:{AVAIL}:{option_id}", self.base)
    }
    /// `P:{stock}:stream`.
    pub fn stream(&self) -> String {
        format!("{}:{STREAM}", self.base)
    }
    /// `P:{stock}:order:<order_id>`.
    pub fn order(&self, order_id: Uuid) -> String {
        format!("{}:{ORDER}:{order_id}", self.base)
    }
    /// `P:{stock}:due`.
    pub fn due(&self) -> String {
        format!("{}:{DUE}", self.base)
    }
    /// `P:{stock}:recent:<user_id>`.
    pub fn recent(&self, user_id: i64) -> String {
        format!("{}:{RECENT}:{user_id}", self.base)
    }
    /// `P:{stock}:refund:<refund_id>`.
    pub fn refund(&self, refund_id: Uuid) -> String {
        format!("{}:{REFUND}:{refund_id}", self.base)
    }
    /// `P:{stock}:options`.
    pub fn hydrated(&self) -> String {
        format!("{}:{HYDRATED}", self.base)
    }
}

/// What the reservation script decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Every line reserved, the hash written and the admission appended to the stream.
    Admitted,
    /// The line at this index (0-based) is short: only `available` is left. Nothing changed.
    Short {
        /// Index into the admission's lines.
        line: usize,
        /// What is left of that option.
        available: i64,
    },
    /// These lines (0-based) have no counter yet: hydrate them and try again. Nothing changed.
    Missing(Vec<usize>),
}

/// The stock keys and scripts of one deployment over the shared Redis connection.
#[derive(Clone)]
pub struct StockStore {
    redis: RedisStore,
    keys: StockKeys,
    notices: Notices,
    /// Product pages' reads, grouped (`stock_reads`).
    grouped: Arc<GroupedReads>,
}

fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

impl StockStore {
    /// The stock store of the deployment `redis` is configured for.
    pub fn new(redis: &RedisStore) -> StockStore {
        StockStore {
            redis: redis.clone(),
            keys: StockKeys::new(redis.prefix()),
            notices: Notices::new(redis),
            grouped: Arc::default(),
        }
    }

    /// Announces that the counters of `option_ids` rose (after the increment). The increment
    /// stands whatever happens here: a notice that cannot be published is logged, and the
    /// instances' sold-out memory forgets the option within its TTL anyway.
    async fn rose(&self, option_ids: Vec<i64>) {
        for id in option_ids {
            if let Err(e) = self.notices.publish(Topic::Stock, Some(id)).await {
                tracing::warn!(option.id = id, error.cause = %e, "stock notice not published");
            }
        }
    }

    /// The key names.
    pub fn keys(&self) -> &StockKeys {
        &self.keys
    }

    /// Runs the all-or-nothing reservation of an admission (lines must be distinct options).
    /// `recent_ttl` bounds how long the order stays in the user's recent list.
    pub async fn reserve(&self, a: &Admission, recent_ttl: Duration) -> redis::RedisResult<ReserveOutcome> {
        let mut inv = RESERVE.prepare_invoke();
        inv.key(self.keys.stream())
            .key(self.keys.order(a.order_id))
            .key(self.keys.due())
            .key(self.keys.recent(a.user_id));
        for l in &a.lines {
            inv.key(self.keys.avail(l.option_id));
        }
        for arg in a.script_args() {
            inv.arg(arg);
        }
        let hash_ttl = (a.expires_at - a.created_at).to_std().unwrap_or_default() + PENDING_HASH_GRACE;
        inv.arg(secs(hash_ttl)).arg(secs(recent_ttl));
        for l in &a.lines {
            inv.arg(l.quantity);
        }
        let reply: Vec<i64> = inv.invoke_async(&mut self.redis.conn()).await?;
        Ok(match reply.as_slice() {
            [1] | [2] => ReserveOutcome::Admitted,
            [0, line, available] => {
                ReserveOutcome::Short { line: (*line as usize).saturating_sub(1), available: *available }
            }
            [-1, missing @ ..] => {
                ReserveOutcome::Missing(missing.iter().map(|i| (*i as usize).saturating_sub(1)).collect())
            }
            other => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "unexpected reply of reserve_stock.lua",
                    format!("{other:?}"),
                )));
            }
        })
    }

    fn settle_invocation<'a>(
        &self,
        script: &'a Script,
        order_id: Uuid,
        lines: &[(i64, i64)],
    ) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        inv.key(self.keys.order(order_id)).key(self.keys.due()).arg(order_id.to_string()).arg(secs(SETTLED_HASH_TTL));
        for (option_id, quantity) in lines {
            inv.key(self.keys.avail(*option_id)).arg(*quantity);
        }
        inv
    }

    /// Returns a pending order's lines to the counters, exactly once; false when there was
    /// nothing to release (already released, paid, or unknown).
    pub async fn release(&self, order_id: Uuid, lines: &[(i64, i64)]) -> redis::RedisResult<bool> {
        let released: i64 =
            self.settle_invocation(&RELEASE, order_id, lines).invoke_async(&mut self.redis.conn()).await?;
        if released == 1 {
            self.rose(lines.iter().map(|l| l.0).collect()).await;
        }
        Ok(released == 1)
    }

    /// Marks an order paid so it can never be released: 1 confirmed, 0 already settled or
    /// unknown, -1 it had been released (an anomaly the caller reports).
    pub async fn confirm(&self, order_id: Uuid) -> redis::RedisResult<i64> {
        self.settle_invocation(&CONFIRM, order_id, &[]).invoke_async(&mut self.redis.conn()).await
    }

    /// Puts the units of one refund of a paid order back on sale, exactly once per refund (an
    /// order may be refunded in parts, so the marker is the refund's own hash, not the order's).
    /// False when already done.
    pub async fn restock(&self, refund_id: Uuid, order_id: Uuid, lines: &[(i64, i64)]) -> redis::RedisResult<bool> {
        let mut inv = RESTOCK.prepare_invoke();
        inv.key(self.keys.refund(refund_id)).key(self.keys.due()).arg(order_id.to_string()).arg(secs(SETTLED_HASH_TTL));
        for (option_id, quantity) in lines {
            inv.key(self.keys.avail(*option_id)).arg(*quantity);
        }
        let done: i64 = inv.invoke_async(&mut self.redis.conn()).await?;
        if done == 1 {
            self.rose(lines.iter().map(|l| l.0).collect()).await;
        }
        Ok(done == 1)
    }

    /// Adds `(option, delta)` to the counters that exist. With `floor`, refuses (changing
    /// nothing) when one would fall below zero: `Err((option_id, available))`.
    pub async fn adjust(&self, deltas: &[(i64, i64)], floor: bool) -> redis::RedisResult<Result<(), (i64, i64)>> {
        if deltas.is_empty() {
            return Ok(Ok(()));
        }
        let mut inv = ADJUST.prepare_invoke();
        inv.arg(if floor { "1" } else { "0" });
        for (option_id, delta) in deltas {
            inv.key(self.keys.avail(*option_id)).arg(*delta);
        }
        let reply: Vec<i64> = inv.invoke_async(&mut self.redis.conn()).await?;
        Ok(match reply.as_slice() {
            [0, i, available] => Err((deltas[(*i as usize).saturating_sub(1)].0, *available)),
            _ => {
                self.rose(deltas.iter().filter(|d| d.1 > 0).map(|d| d.0).collect()).await;
                Ok(())
            }
        })
    }

    /// Sets counters that do not exist yet (`SET NX`), and records the options as hydrated;
    /// returns, per value, whether this call set it (another instance may have been first).
    pub async fn set_if_absent(&self, values: &[(i64, i64)]) -> redis::RedisResult<Vec<bool>> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (option_id, avail) in values {
            pipe.cmd("SET").arg(self.keys.avail(*option_id)).arg(*avail).arg("NX");
        }
        pipe.cmd("SADD").arg(self.keys.hydrated()).arg(values.iter().map(|v| v.0).collect::<Vec<_>>()).ignore();
        let set: Vec<Option<String>> = pipe.query_async(&mut self.redis.conn()).await?;
        if set.iter().any(Option::is_some) {
            // Counters appeared (possibly many at start-up): one notice for the whole topic.
            if let Err(e) = self.notices.publish(Topic::Stock, None).await {
                tracing::warn!(error.cause = %e, "stock notice after hydration not published");
            }
        }
        Ok(set.iter().map(Option::is_some).collect())
    }

    /// The counters of some options (None: not hydrated).
    pub async fn available(&self, option_ids: &[i64]) -> redis::RedisResult<Vec<Option<i64>>> {
        if option_ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = option_ids.iter().map(|id| self.keys.avail(*id)).collect();
        redis::cmd("MGET").arg(keys).query_async(&mut self.redis.conn()).await
    }

    /// [`StockStore::available`] as of now, grouped with the reads other tasks of this process
    /// ask at the same time into one `MGET` (see `stock_reads`): what a reader that must see
    /// every change completed before it asked (a product page) uses under load.
    pub async fn available_now(&self, option_ids: &[i64]) -> redis::RedisResult<Vec<Option<i64>>> {
        if option_ids.is_empty() {
            return Ok(Vec::new());
        }
        let (ticket, opened) = self.grouped.join(option_ids);
        if opened {
            let me = self.clone();
            tokio::spawn(self.grouped.clone().send(move |ids| async move { me.available(&ids).await }));
        }
        match ticket.counters().await {
            Some(answer) => {
                answer.map_err(|e| redis::RedisError::from((e.kind(), "grouped MGET failed", e.to_string())))
            }
            None => self.available(option_ids).await,
        }
    }

    /// How many `MGET`s [`StockStore::available_now`] sent in this process (fewer than its
    /// calls when reads were grouped).
    pub fn grouped_sends(&self) -> u64 {
        self.grouped.sends()
    }

    /// One atomic snapshot of the counters of `option_ids` (at least one) and of every order
    /// Redis still holds (the due set), for reconciliation.
    pub async fn snapshot(&self, option_ids: &[i64]) -> redis::RedisResult<(Vec<Option<i64>>, Vec<Uuid>)> {
        let keys: Vec<String> = option_ids.iter().map(|id| self.keys.avail(*id)).collect();
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("MGET").arg(&keys).cmd("ZRANGE").arg(self.keys.due()).arg(0).arg(-1);
        let (avail, due): (Vec<Option<i64>>, Vec<String>) = pipe.query_async(&mut self.redis.conn()).await?;
        Ok((avail, parse_ids(due)))
    }

    /// The hash of an admitted order (empty when unknown or expired).
    pub async fn order(&self, order_id: Uuid) -> redis::RedisResult<std::collections::HashMap<String, String>> {
        redis::cmd("HGETALL").arg(self.keys.order(order_id)).query_async(&mut self.redis.conn()).await
    }

    /// `state` and `lines` of some orders' hashes (None where the hash is gone).
    pub async fn states(&self, order_ids: &[Uuid]) -> redis::RedisResult<Vec<(Option<String>, Option<String>)>> {
        if order_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in order_ids {
            pipe.cmd("HMGET").arg(self.keys.order(*id)).arg("state").arg("lines");
        }
        pipe.query_async(&mut self.redis.conn()).await
    }

    /// Pending orders due at `until` (oldest first), at most `limit`.
    pub async fn due(&self, until: DateTime<Utc>, limit: usize) -> redis::RedisResult<Vec<Uuid>> {
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.due())
            .arg("-inf")
            .arg(until.timestamp_millis())
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(parse_ids(ids))
    }

    /// Every order Redis still holds as pending.
    pub async fn held(&self) -> redis::RedisResult<Vec<Uuid>> {
        let ids: Vec<String> =
            redis::cmd("ZRANGE").arg(self.keys.due()).arg(0).arg(-1).query_async(&mut self.redis.conn()).await?;
        Ok(parse_ids(ids))
    }

    /// Forgets a due entry whose hash is gone (nothing left to settle).
    pub async fn forget_due(&self, order_id: Uuid) -> redis::RedisResult<()> {
        redis::cmd("ZREM").arg(self.keys.due()).arg(order_id.to_string()).query_async(&mut self.redis.conn()).await
    }

    /// A user's latest admitted orders.
    pub async fn recent(&self, user_id: i64) -> redis::RedisResult<Vec<Uuid>> {
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.recent(user_id))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(parse_ids(ids))
    }

    /// The options whose counters were hydrated.
    pub async fn hydrated_options(&self) -> redis::RedisResult<Vec<i64>> {
        redis::cmd("SMEMBERS").arg(self.keys.hydrated()).query_async(&mut self.redis.conn()).await
    }
}

fn parse_ids(ids: Vec<String>) -> Vec<Uuid> {
    ids.iter().filter_map(|s| s.parse().ok()).collect()
}
