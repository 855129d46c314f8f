//! What Redis holds, read across the stock groups: the due sets, the orders' states, the parts
//! of orders across groups, the users' recent orders and the hydrated options. Each read names
//! keys of one group per command (or per atomic pipeline); the groups are read side by side.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use uuid::Uuid;

use super::{GROUPS, OrderRef, StockStore, by_group, parse_ids};

impl StockStore {
    /// `ZRANGE` arguments over the due set of every group, concatenated as order references.
    async fn due_sets(&self, range: impl Fn(&mut redis::Cmd) + Sync) -> redis::RedisResult<Vec<OrderRef>> {
        let reads = (0..GROUPS).map(|group| {
            let mut cmd = redis::cmd("ZRANGE");
            cmd.arg(self.keys.due(group));
            range(&mut cmd);
            let mut conn = self.redis.conn();
            async move {
                let ids: Vec<String> = cmd.query_async(&mut conn).await?;
                redis::RedisResult::Ok(parse_ids(ids).into_iter().map(move |id| OrderRef { group, id }))
            }
        });
        Ok(try_join_all(reads).await?.into_iter().flatten().collect())
    }

    /// The counters of `option_ids` and every order Redis still holds (the due sets), for
    /// reconciliation: each group's counters and due set are read in one atomic step; the
    /// groups one after another (at rest the whole is exact; under traffic a settlement between
    /// two groups' reads shows as a transient drift).
    pub async fn snapshot(&self, option_ids: &[i64]) -> redis::RedisResult<(Vec<Option<i64>>, Vec<OrderRef>)> {
        let pairs: Vec<(i64, i64)> = option_ids.iter().map(|id| (*id, 0)).collect();
        let wanted = by_group(&pairs);
        let mut counters = HashMap::new();
        let mut held = Vec::new();
        for group in 0..GROUPS {
            let ids: Vec<i64> = wanted.get(&group).map(|v| v.iter().map(|p| p.0).collect()).unwrap_or_default();
            let mut pipe = redis::pipe();
            pipe.atomic();
            if !ids.is_empty() {
                pipe.cmd("MGET").arg(ids.iter().map(|id| self.keys.avail(*id)).collect::<Vec<_>>());
            }
            pipe.cmd("ZRANGE").arg(self.keys.due(group)).arg(0).arg(-1);
            let (avail, due): (Vec<Option<i64>>, Vec<String>) = if ids.is_empty() {
                let (due,): (Vec<String>,) = pipe.query_async(&mut self.redis.conn()).await?;
                (Vec::new(), due)
            } else {
                pipe.query_async(&mut self.redis.conn()).await?
            };
            counters.extend(ids.into_iter().zip(avail));
            held.extend(parse_ids(due).into_iter().map(|id| OrderRef { group, id }));
        }
        Ok((option_ids.iter().map(|id| counters.get(id).copied().flatten()).collect(), held))
    }

    /// `state` and `lines` of some orders' hashes (None where the hash is gone), in order.
    pub async fn states(&self, orders: &[OrderRef]) -> redis::RedisResult<Vec<(Option<String>, Option<String>)>> {
        let mut out = HashMap::new();
        let mut groups: HashMap<i64, Vec<Uuid>> = HashMap::new();
        for o in orders {
            groups.entry(o.group).or_default().push(o.id);
        }
        for (group, ids) in groups {
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("HMGET").arg(self.keys.order(group, *id)).arg("state").arg("lines");
            }
            let rows: Vec<(Option<String>, Option<String>)> = pipe.query_async(&mut self.redis.conn()).await?;
            out.extend(ids.into_iter().map(|id| OrderRef { group, id }).zip(rows));
        }
        Ok(orders.iter().map(|o| out.remove(o).unwrap_or((None, None))).collect())
    }

    /// The state of an order's part in each of `groups` (None: no marker).
    pub async fn parts(&self, order_id: Uuid, groups: &[i64]) -> redis::RedisResult<Vec<Option<String>>> {
        let reads = groups.iter().map(|g| {
            let mut conn = self.redis.conn();
            let key = self.keys.part(*g, order_id);
            async move { redis::cmd("GET").arg(key).query_async::<Option<String>>(&mut conn).await }
        });
        try_join_all(reads).await
    }

    /// Orders due at `until` (admission deadlines and expiries), at most `limit` per group.
    pub async fn due(&self, until: DateTime<Utc>, limit: usize) -> redis::RedisResult<Vec<OrderRef>> {
        let until = until.timestamp_millis();
        self.due_sets(|c| {
            c.arg("-inf").arg(until).arg("BYSCORE").arg("LIMIT").arg(0).arg(limit);
        })
        .await
    }

    /// Every order Redis still holds: pending, or being admitted across groups.
    pub async fn held(&self) -> redis::RedisResult<Vec<OrderRef>> {
        self.due_sets(|c| {
            c.arg(0).arg(-1);
        })
        .await
    }

    /// Forgets a due entry whose hash is gone (nothing left to settle).
    pub async fn forget_due(&self, order: OrderRef) -> redis::RedisResult<()> {
        redis::cmd("ZREM")
            .arg(self.keys.due(order.group))
            .arg(order.id.to_string())
            .query_async(&mut self.redis.conn())
            .await
    }

    /// A user's latest admitted orders, of every group.
    pub async fn recent(&self, user_id: i64) -> redis::RedisResult<Vec<Uuid>> {
        let reads = (0..GROUPS).map(|g| {
            let mut conn = self.redis.conn();
            let key = self.keys.recent(g, user_id);
            async move { redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).query_async::<Vec<String>>(&mut conn).await }
        });
        Ok(try_join_all(reads).await?.into_iter().flat_map(parse_ids).collect())
    }

    /// The options whose counters were hydrated, of every group.
    pub async fn hydrated_options(&self) -> redis::RedisResult<Vec<i64>> {
        let reads = (0..GROUPS).map(|g| {
            let mut conn = self.redis.conn();
            let key = self.keys.hydrated(g);
            async move { redis::cmd("SMEMBERS").arg(key).query_async::<Vec<i64>>(&mut conn).await }
        });
        Ok(try_join_all(reads).await?.into_iter().flatten().collect())
    }
}
