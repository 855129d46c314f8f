//! Orders across stock groups: all or nothing without a script that could span them.
//!
//! On Redis Cluster two stock groups may live on two masters, so an order whose lines sit in
//! several groups cannot be one Lua call. It is admitted in three steps, each one script call
//! in one group, and undone the same way:
//!
//! 1. **Intent** (`lua/begin_order.lua`, home group): the order's hash is written in state
//!    `reserving`, with its lines, and listed in the home group's due set at the admission
//!    deadline ([`ADMISSION_DEADLINE`]). It is written before any unit is taken, so whatever
//!    happens next, the sweeper can find what this order may hold.
//! 2. **Parts** (`lua/reserve_part.lua`, one call per group, groups in ascending order): each
//!    takes the order's lines of its group, all or none, and marks the part `held`. A short line
//!    stops the order: it is undone (below) and refused like an order of one group. A missing
//!    counter is hydrated and the order retried: the intent and the parts already held are
//!    found again (`reserving`, `held`) and the admission continues where it stopped; the
//!    idempotent retry of a crashed request continues it the same way.
//! 3. **Commit** (`lua/commit_order.lua`, home group): a `reserving` intent becomes a `pending`
//!    order in one step, with its due entry at `expires_at`, its recent entry and its stream
//!    entry, exactly what the one-group script writes. From here on the order is like any other.
//!
//! **Undoing** ([`StockStore::abort`]): `lua/abort_order.lua begin` turns a `reserving` intent
//! into `aborting`, the point of no return (a commit now refuses); then every part is released
//! (`lua/settle_part.lua`: a `held` part returns its units once; a part never taken is marked
//! `released`, a fence that refuses a late reservation of it); then `finish` marks the hash
//! `aborted` and takes it off the due set. The admitter undoes its own order on a refusal; the
//! expiry sweeper undoes any intent still there after its deadline (a process died between
//! groups, or Redis failed mid-way). Every step is idempotent, so a crash inside the undoing is
//! repaired by the next sweep: units are never held beyond the deadline plus one sweep, and never
//! given back twice.
//!
//! **Releasing** a committed order across groups (expiry, cancel) gives each part back through
//! its marker (exactly once per part) and then settles the hash in the home group; a crash in
//! between leaves the hash unsettled, in the due set, and the retry or the sweeper finishes it.
//! A refund of a paid order does not go through the parts: it has a marker of its own in each
//! group ([`StockStore::restock`]), since an order may be refunded in several parts.

use std::{sync::LazyLock, time::Duration};

use redis::Script;
use uuid::Uuid;

use super::{
    RELEASE, ReserveOutcome, SETTLED_HASH_TTL, StockStore, by_group, hash_ttl, home_of, invocation, secs, settle_keys,
    unexpected,
};
use crate::store::redis::streams::orders::Admission;

/// How long an order across groups may take to be admitted before the sweeper undoes it: far
/// beyond a normal admission (a few round trips) and a cluster failover's retries (about 10 s),
/// and beyond the idempotency claim's lease (30 s), so that a retry of a crashed request finds
/// the intent and continues it rather than finding it undone.
pub const ADMISSION_DEADLINE: Duration = Duration::from_secs(60);

static BEGIN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../../../lua/begin_order.lua")));
static PART: LazyLock<Script> = LazyLock::new(|| Script::new(take_lines_then!("reserve_part.lua")));
static SETTLE_PART: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../../../lua/settle_part.lua")));
static COMMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../../../lua/commit_order.lua")));
static ABORT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../../../../lua/abort_order.lua")));

/// The keys of one part: its marker, then the counters of the order's lines of that group.
pub fn part_keys(store: &super::StockKeys, group: i64, order_id: Uuid, options: &[i64]) -> Vec<String> {
    let mut out = vec![store.part(group, order_id)];
    out.extend(options.iter().map(|o| store.avail(*o)));
    out
}

/// The keys of the intent and of the abort gate: the order's hash and the due set, home group.
pub fn intent_keys(store: &super::StockKeys, home: i64, order_id: Uuid) -> Vec<String> {
    vec![store.order(home, order_id), store.due(home)]
}

/// The keys of the commit: the home group's stream, the hash, the due set, the recent set.
pub fn commit_keys(store: &super::StockKeys, home: i64, a: &Admission) -> Vec<String> {
    vec![store.stream(home), store.order(home, a.order_id), store.due(home), store.recent(home, a.user_id)]
}

impl StockStore {
    /// The admission of an order across groups (see the module docs).
    pub(super) async fn reserve_across(
        &self,
        a: &Admission,
        recent_ttl: Duration,
    ) -> redis::RedisResult<ReserveOutcome> {
        let quantities = a.quantities();
        let home = home_of(quantities.iter().map(|l| l.0)).unwrap_or(0);
        let deadline = a.created_at + chrono::Duration::from_std(ADMISSION_DEADLINE).unwrap_or_default();
        let mut begin = invocation(&BEGIN, &intent_keys(&self.keys, home, a.order_id))?;
        for arg in a.script_args() {
            begin.arg(arg);
        }
        begin.arg(deadline.timestamp_millis()).arg(secs(hash_ttl(a)));
        let begun: Vec<i64> = begin.invoke_async(&mut self.redis.conn()).await?;
        match begun.as_slice() {
            [1] | [3] => {}
            [2] => return Ok(ReserveOutcome::Admitted),
            [4] => return Ok(ReserveOutcome::Abandoned),
            other => return Err(unexpected("begin_order.lua", other)),
        }
        for (group, lines) in by_group(&quantities) {
            let options: Vec<i64> = lines.iter().map(|l| l.0).collect();
            let mut inv = invocation(&PART, &part_keys(&self.keys, group, a.order_id, &options))?;
            inv.arg(secs(hash_ttl(a)));
            for (_, quantity) in &lines {
                inv.arg(*quantity);
            }
            let reply: Vec<i64> = inv.invoke_async(&mut self.redis.conn()).await?;
            // Indices of this group's lines in the whole admission.
            let index = |i: &i64| {
                let option = lines[(*i as usize).saturating_sub(1)].0;
                quantities.iter().position(|l| l.0 == option).unwrap_or(0)
            };
            match reply.as_slice() {
                [1] | [2] => {}
                [3] => return Ok(ReserveOutcome::Abandoned),
                [0, i, available] => {
                    self.abort(home, a.order_id, &quantities).await?;
                    return Ok(ReserveOutcome::Short { line: index(i), available: *available });
                }
                [-1, ..] => {
                    // Every missing counter of the order at once (not just this group's), so one
                    // hydration is enough before the retry continues the admission.
                    let options: Vec<i64> = quantities.iter().map(|l| l.0).collect();
                    let avail = self.available(&options).await?;
                    let missing = avail.iter().enumerate().filter(|(_, a)| a.is_none()).map(|(i, _)| i).collect();
                    return Ok(ReserveOutcome::Missing(missing));
                }
                other => return Err(unexpected("reserve_part.lua", other)),
            }
        }
        let mut commit = invocation(&COMMIT, &commit_keys(&self.keys, home, a))?;
        for arg in a.script_args() {
            commit.arg(arg);
        }
        commit.arg(secs(hash_ttl(a))).arg(secs(recent_ttl));
        let committed: Vec<i64> = commit.invoke_async(&mut self.redis.conn()).await?;
        match committed.as_slice() {
            [1] | [2] => Ok(ReserveOutcome::Admitted),
            [0] => {
                // Undone meanwhile (past its deadline): make sure every part taken is back.
                self.abort(home, a.order_id, &quantities).await?;
                Ok(ReserveOutcome::Abandoned)
            }
            other => Err(unexpected("commit_order.lua", other)),
        }
    }

    /// Undoes an order across groups that is still being admitted (`reserving`) or half undone
    /// (`aborting`): every part released, then the hash `aborted` and off the due set. False
    /// when the order is not an intent (committed meanwhile, or unknown): nothing is touched.
    pub async fn abort(&self, home: i64, order_id: Uuid, lines: &[(i64, i64)]) -> redis::RedisResult<bool> {
        let gate = |mode: &'static str| -> redis::RedisResult<redis::ScriptInvocation<'static>> {
            let mut inv = invocation(&ABORT, &intent_keys(&self.keys, home, order_id))?;
            inv.arg(mode).arg(order_id.to_string()).arg(secs(SETTLED_HASH_TTL));
            Ok(inv)
        };
        let begun: i64 = gate("begin")?.invoke_async(&mut self.redis.conn()).await?;
        if begun != 1 {
            return Ok(false);
        }
        let gave = self.release_parts(order_id, lines).await?;
        let _: i64 = gate("finish")?.invoke_async(&mut self.redis.conn()).await?;
        if gave {
            self.rose(lines.iter().map(|l| l.0).collect()).await;
        }
        Ok(true)
    }

    /// Gives every `held` part of an order back (exactly once each); whether any units returned.
    async fn release_parts(&self, order_id: Uuid, lines: &[(i64, i64)]) -> redis::RedisResult<bool> {
        let mut gave = false;
        for (group, lines) in by_group(lines) {
            let options: Vec<i64> = lines.iter().map(|l| l.0).collect();
            let mut inv = invocation(&SETTLE_PART, &part_keys(&self.keys, group, order_id, &options))?;
            inv.arg(secs(SETTLED_HASH_TTL));
            for (_, quantity) in &lines {
                inv.arg(*quantity);
            }
            let n: i64 = inv.invoke_async(&mut self.redis.conn()).await?;
            gave |= n == 1;
        }
        Ok(gave)
    }

    /// Releases a committed order across groups: only a `pending` one (as `release_stock.lua`
    /// decides for an order of one group), each part through its marker, then the hash in the
    /// home group.
    pub(super) async fn release_across(
        &self,
        home: i64,
        order_id: Uuid,
        lines: &[(i64, i64)],
    ) -> redis::RedisResult<bool> {
        let state: Option<String> = redis::cmd("HGET")
            .arg(self.keys.order(home, order_id))
            .arg("state")
            .query_async(&mut self.redis.conn())
            .await?;
        if state.as_deref() != Some("pending") {
            return Ok(false);
        }
        self.release_parts(order_id, lines).await?;
        let mut inv = invocation(&RELEASE, &settle_keys(&self.keys, home, order_id, &[]))?;
        inv.arg(order_id.to_string()).arg(secs(SETTLED_HASH_TTL));
        let n: i64 = inv.invoke_async(&mut self.redis.conn()).await?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::{
        domain::{Currency, Market},
        store::redis::{
            stock::{StockKeys, groups_of, keys::one_slot, reserve_keys, restock_keys},
            streams::orders::AdmittedLine,
        },
    };

    fn admission(options: &[i64]) -> Admission {
        let line = |option_id: i64| AdmittedLine {
            option_id,
            product_id: 1,
            quantity: 1,
            unit_price: 100,
            product_name: "p".into(),
            option_name: "o".into(),
            price_source: Default::default(),
        };
        Admission {
            order_id: Uuid::now_v7(),
            user_id: 9,
            market: Market::Kr,
            currency: Currency::Krw,
            total: 100 * options.len() as i64,
            created_at: Utc.timestamp_millis_opt(1_700_000_000_000).unwrap(),
            expires_at: Utc.timestamp_millis_opt(1_700_000_600_000).unwrap(),
            lines: options.iter().copied().map(line).collect(),
        }
    }

    /// Every script call an order makes, by the same key builders the calls use: the one-group
    /// reservation, or the intent, each part, the commit and the abort gate; then its
    /// settlement, and the restock of a refund of it (one call per group). Each call's keys
    /// must hash to one slot, whatever the options.
    #[test]
    fn every_script_call_of_an_order_names_keys_of_one_slot() {
        let keys = StockKeys::new("jupang-test");
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 10_000) as i64 + 1
        };
        for n in 1..=6 {
            for _ in 0..200 {
                let mut options: Vec<i64> = (0..n).map(|_| next()).collect();
                options.sort_unstable();
                options.dedup();
                let a = admission(&options);
                let groups = groups_of(options.iter().copied());
                let home = home_of(options.iter().copied()).unwrap();
                let mut calls: Vec<Vec<String>> = Vec::new();
                if groups.len() == 1 {
                    calls.push(reserve_keys(&keys, &a));
                    calls.push(settle_keys(&keys, home, a.order_id, &options));
                } else {
                    calls.push(intent_keys(&keys, home, a.order_id));
                    for (group, lines) in by_group(&a.quantities()) {
                        let opts: Vec<i64> = lines.iter().map(|l| l.0).collect();
                        calls.push(part_keys(&keys, group, a.order_id, &opts));
                    }
                    calls.push(commit_keys(&keys, home, &a));
                    calls.push(settle_keys(&keys, home, a.order_id, &[]));
                }
                let refund_id = Uuid::now_v7();
                for (group, lines) in by_group(&a.quantities()) {
                    let opts: Vec<i64> = lines.iter().map(|l| l.0).collect();
                    calls.push(restock_keys(&keys, group, refund_id, &opts));
                }
                for call in calls {
                    assert!(one_slot(&call), "{options:?}: {call:?}");
                }
            }
        }
    }
}
