//! Redis side of the V2 stock reservation (`JUPANG_ORDER_STRATEGY=redis-lua`): one call per
//! Lua script, over the key layout of [`keys`] (stock spread over [`GROUPS`] hash tags).
//!
//! An order whose lines all sit in one stock group is reserved by one call of
//! `lua/reserve_stock.lua`, all or nothing, and released or confirmed by one
//! call each; a refund puts its units back by one call per stock group of its lines, each
//! with the refund's own marker. An order across groups follows the protocol of [`across`]: a durable intent in its
//! home group, one part per group in ascending group order, then a commit; a refusal or an
//! abandoned admission is undone part by part, exactly once.
//!
//! Every script call is built by [`invocation`], which refuses keys of more than one Redis
//! Cluster slot before anything is sent (and panics in debug builds, so a test that takes the
//! path fails): `CROSSSLOT` is a bug a test catches, never a runtime answer under load.
//!
//! Every call that raises a counter (release, restock, a positive adjustment) then publishes a
//! [`Topic::Stock`] notice per option (hydration: one for the whole topic), so every instance forgets that the option was
//! sold out (`admission::orders::sold_out`).

/// The source of a reserving script (`lua/<name>`) with `lua/take_lines.lua` in front of it: the
/// all-or-nothing take of an order's lines has one home, and a Redis script cannot load another.
macro_rules! take_lines_then {
    ($script:literal) => {
        concat!(include_str!("../../../../lua/take_lines.lua"), include_str!(concat!("../../../../lua/", $script)))
    };
}

pub mod across;
pub mod keys;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, LazyLock},
    time::Duration,
};

use futures_util::future::try_join_all;
use redis::{Script, ScriptInvocation};
use uuid::Uuid;

pub use self::keys::{GROUPS, StockKeys, group_of, groups_of, home_of};
use super::{
    RedisStore,
    notices::{Notices, Topic},
    stock_reads::GroupedReads,
    streams::orders::Admission,
};

/// How long the hash of a settled order (paid, released) or a refund's marker is kept: long enough to
/// absorb retries and repair passes, short enough to free memory.
pub const SETTLED_HASH_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a pending order's hash outlives its expiry (the sweeper settles it well before).
pub const PENDING_HASH_GRACE: Duration = Duration::from_secs(24 * 3600);

static RESERVE: LazyLock<Script> = LazyLock::new(|| Script::new(take_lines_then!("reserve_stock.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../../../lua/release_stock.lua")));
static CONFIRM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../../../lua/confirm_stock.lua")));
static RESTOCK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../../../lua/restock_stock.lua")));
static ADJUST: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../../../lua/adjust_stock.lua")));

/// An order Redis holds, where it lives: its home group and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderRef {
    /// The home group (where its hash and due entry are).
    pub group: i64,
    /// The order id.
    pub id: Uuid,
}

/// What the reservation decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Every line reserved, the hash written and the admission appended to the stream.
    Admitted,
    /// The line at this index (0-based) is short: only `available` is left. Nothing is held.
    Short {
        /// Index into the admission's lines.
        line: usize,
        /// What is left of that option.
        available: i64,
    },
    /// These lines (0-based) have no counter yet: hydrate them and try again. Nothing changed
    /// (an order across groups keeps the parts it took and its intent: the retry continues it).
    Missing(Vec<usize>),
    /// An earlier admission of this order id across groups ran past its deadline and was undone
    /// by the sweeper: this id can no longer be admitted.
    Abandoned,
}

/// A script call over `keys`, refused before anything is sent when they do not all hash to one
/// Redis Cluster slot (a debug build panics: the test that took the path fails).
pub fn invocation<'a>(script: &'a Script, keys: &[String]) -> redis::RedisResult<ScriptInvocation<'a>> {
    let one = keys::one_slot(keys);
    debug_assert!(one, "a script's keys span Redis Cluster slots: {keys:?}");
    if !one {
        return Err((redis::ErrorKind::Client, "a script's keys span Redis Cluster slots", format!("{keys:?}")).into());
    }
    let mut inv = script.prepare_invoke();
    for k in keys {
        inv.key(k);
    }
    Ok(inv)
}

/// The keys of `lua/reserve_stock.lua` for an order of one group: stream, hash, due set and
/// recent set of the group, then each line's counter.
pub fn reserve_keys(keys: &StockKeys, a: &Admission) -> Vec<String> {
    let home = home_of(a.lines.iter().map(|l| l.option_id)).unwrap_or(0);
    let mut out = vec![keys.stream(home), keys.order(home, a.order_id), keys.due(home), keys.recent(home, a.user_id)];
    out.extend(a.lines.iter().map(|l| keys.avail(l.option_id)));
    out
}

/// The keys of a settlement script (release, confirm) in the home group: the hash, the
/// due set, then the counters of `options` (all of that group; none for an order across groups,
/// whose counters are settled part by part).
pub fn settle_keys(keys: &StockKeys, home: i64, order_id: Uuid, options: &[i64]) -> Vec<String> {
    let mut out = vec![keys.order(home, order_id), keys.due(home)];
    out.extend(options.iter().map(|o| keys.avail(*o)));
    out
}

/// The keys of `lua/restock_stock.lua` for a refund's lines of one group: the refund's marker
/// and the due set of that group (where the order's due entry is when it is the home group),
/// then the counters of `options` (all of that group).
pub fn restock_keys(keys: &StockKeys, group: i64, refund_id: Uuid, options: &[i64]) -> Vec<String> {
    let mut out = vec![keys.refund(group, refund_id), keys.due(group)];
    out.extend(options.iter().map(|o| keys.avail(*o)));
    out
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

/// `(option, value)` pairs by stock group, ascending.
fn by_group(pairs: &[(i64, i64)]) -> BTreeMap<i64, Vec<(i64, i64)>> {
    let mut out: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for p in pairs {
        out.entry(group_of(p.0)).or_default().push(*p);
    }
    out
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

    /// Runs the all-or-nothing reservation of an admission (lines must be distinct options):
    /// one script call when its lines sit in one group, the protocol of [`across`] otherwise.
    /// `recent_ttl` bounds how long the order stays in the user's recent list.
    pub async fn reserve(&self, a: &Admission, recent_ttl: Duration) -> redis::RedisResult<ReserveOutcome> {
        if groups_of(a.lines.iter().map(|l| l.option_id)).len() > 1 {
            return self.reserve_across(a, recent_ttl).await;
        }
        let mut inv = invocation(&RESERVE, &reserve_keys(&self.keys, a))?;
        for arg in a.script_args() {
            inv.arg(arg);
        }
        inv.arg(secs(hash_ttl(a))).arg(secs(recent_ttl));
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
            other => return Err(unexpected("reserve_stock.lua", other)),
        })
    }

    /// Runs a settlement script in the order's home group; with the counters when the order
    /// sits in one group.
    async fn settle_home(
        &self,
        script: &Script,
        home: i64,
        order_id: Uuid,
        lines: &[(i64, i64)],
    ) -> redis::RedisResult<i64> {
        let options: Vec<i64> = lines.iter().map(|l| l.0).collect();
        let mut inv = invocation(script, &settle_keys(&self.keys, home, order_id, &options))?;
        inv.arg(order_id.to_string()).arg(secs(SETTLED_HASH_TTL));
        for (_, quantity) in lines {
            inv.arg(*quantity);
        }
        inv.invoke_async(&mut self.redis.conn()).await
    }

    /// The home group of an order: from its lines, or found by its id when none are given.
    async fn home(&self, order_id: Uuid, lines: &[(i64, i64)]) -> redis::RedisResult<Option<i64>> {
        match home_of(lines.iter().map(|l| l.0)) {
            Some(home) => Ok(Some(home)),
            None => Ok(self.locate(order_id).await?.map(|(g, _)| g)),
        }
    }

    /// Returns a pending order's lines to the counters, exactly once; false when there was
    /// nothing to release (already released, paid, or unknown). One script call for an order of
    /// one group, part by part otherwise; then the notices of the options whose counters rose.
    pub async fn release(&self, order_id: Uuid, lines: &[(i64, i64)]) -> redis::RedisResult<bool> {
        let Some(home) = self.home(order_id, lines).await? else { return Ok(false) };
        let done = if by_group(lines).len() > 1 {
            self.release_across(home, order_id, lines).await?
        } else {
            self.settle_home(&RELEASE, home, order_id, lines).await? == 1
        };
        if done {
            self.rose(lines.iter().map(|l| l.0).collect()).await;
        }
        Ok(done)
    }

    /// Marks an order paid so it can never be released: 1 confirmed, 0 already settled or
    /// unknown, -1 it had been released (an anomaly the caller reports).
    pub async fn confirm(&self, order_id: Uuid, lines: &[(i64, i64)]) -> redis::RedisResult<i64> {
        let Some(home) = self.home(order_id, lines).await? else { return Ok(0) };
        self.settle_home(&CONFIRM, home, order_id, &[]).await
    }

    /// Puts the units of one refund of a paid order back on sale, exactly once per refund (an
    /// order may be refunded in parts, so the marker is the refund's own, not the order's). One
    /// script call per stock group of the lines, each with the refund's marker in that group, so
    /// a call repeated after a crash between groups gives back only the groups not done yet.
    /// False when every group was already done.
    pub async fn restock(&self, refund_id: Uuid, order_id: Uuid, lines: &[(i64, i64)]) -> redis::RedisResult<bool> {
        let mut done = false;
        for (group, lines) in by_group(lines) {
            let options: Vec<i64> = lines.iter().map(|l| l.0).collect();
            let mut inv = invocation(&RESTOCK, &restock_keys(&self.keys, group, refund_id, &options))?;
            inv.arg(order_id.to_string()).arg(secs(SETTLED_HASH_TTL));
            for (_, quantity) in &lines {
                inv.arg(*quantity);
            }
            let n: i64 = inv.invoke_async(&mut self.redis.conn()).await?;
            done |= n == 1;
        }
        if done {
            self.rose(lines.iter().map(|l| l.0).collect()).await;
        }
        Ok(done)
    }

    /// Adds `(option, delta)` to the counters that exist. With `floor`, refuses (changing
    /// nothing) when one would fall below zero: `Err((option_id, available))`. One script call
    /// per stock group; with `floor` over several groups, the groups already applied are taken
    /// back when a later one refuses.
    pub async fn adjust(&self, deltas: &[(i64, i64)], floor: bool) -> redis::RedisResult<Result<(), (i64, i64)>> {
        let mut applied: Vec<&[(i64, i64)]> = Vec::new();
        let groups = by_group(deltas);
        for group in groups.values() {
            let keys: Vec<String> = group.iter().map(|d| self.keys.avail(d.0)).collect();
            let mut inv = invocation(&ADJUST, &keys)?;
            inv.arg(if floor { "1" } else { "0" });
            for (_, delta) in group {
                inv.arg(*delta);
            }
            let reply: Vec<i64> = inv.invoke_async(&mut self.redis.conn()).await?;
            if let [0, i, available] = reply.as_slice() {
                for undo in applied {
                    let back: Vec<(i64, i64)> = undo.iter().map(|(o, d)| (*o, -d)).collect();
                    Box::pin(self.adjust(&back, false)).await?.ok();
                }
                return Ok(Err((group[(*i as usize).saturating_sub(1)].0, *available)));
            }
            applied.push(group);
        }
        self.rose(deltas.iter().filter(|d| d.1 > 0).map(|d| d.0).collect()).await;
        Ok(Ok(()))
    }

    /// Sets counters that do not exist yet (`SET NX`), and records the options as hydrated;
    /// returns, per value, whether this call set it (another instance may have been first).
    pub async fn set_if_absent(&self, values: &[(i64, i64)]) -> redis::RedisResult<Vec<bool>> {
        let mut set = HashMap::new();
        for (group, values) in by_group(values) {
            let mut pipe = redis::pipe();
            for (option_id, avail) in &values {
                pipe.cmd("SET").arg(self.keys.avail(*option_id)).arg(*avail).arg("NX");
            }
            pipe.cmd("SADD")
                .arg(self.keys.hydrated(group))
                .arg(values.iter().map(|v| v.0).collect::<Vec<_>>())
                .ignore();
            let done: Vec<Option<String>> = pipe.query_async(&mut self.redis.conn()).await?;
            set.extend(values.iter().zip(done).map(|(v, d)| (v.0, d.is_some())));
        }
        if set.values().any(|s| *s) {
            // Counters appeared (possibly many at start-up): one notice for the whole topic.
            if let Err(e) = self.notices.publish(Topic::Stock, None).await {
                tracing::warn!(error.cause = %e, "stock notice after hydration not published");
            }
        }
        Ok(values.iter().map(|v| set.get(&v.0).copied().unwrap_or(false)).collect())
    }

    /// The counters of some options (None: not hydrated). One `MGET`, which the cluster client
    /// splits by slot.
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

    /// Finds an order's hash by its id alone: one probe per group, all at once (an order
    /// admitted moments ago that Postgres does not have yet). None when no group holds it.
    pub async fn locate(&self, order_id: Uuid) -> redis::RedisResult<Option<(i64, HashMap<String, String>)>> {
        let probes = (0..GROUPS).map(|g| {
            let mut conn = self.redis.conn();
            let key = self.keys.order(g, order_id);
            async move {
                let h: HashMap<String, String> = redis::cmd("HGETALL").arg(key).query_async(&mut conn).await?;
                redis::RedisResult::Ok((g, h))
            }
        });
        Ok(try_join_all(probes).await?.into_iter().find(|(_, h)| !h.is_empty()))
    }

    /// The hash of an admitted order (empty when unknown or expired).
    pub async fn order(&self, order_id: Uuid) -> redis::RedisResult<HashMap<String, String>> {
        Ok(self.locate(order_id).await?.map(|(_, h)| h).unwrap_or_default())
    }
}

/// How long an order's hash (and its part markers) live: its reservation, then a day of grace.
fn hash_ttl(a: &Admission) -> Duration {
    (a.expires_at - a.created_at).to_std().unwrap_or_default() + PENDING_HASH_GRACE
}

fn unexpected(script: &str, reply: &[i64]) -> redis::RedisError {
    (redis::ErrorKind::UnexpectedReturnType, "unexpected reply of a stock script", format!("{script}: {reply:?}"))
        .into()
}

fn parse_ids(ids: Vec<String>) -> Vec<Uuid> {
    ids.iter().filter_map(|s| s.parse().ok()).collect()
}

mod held;
