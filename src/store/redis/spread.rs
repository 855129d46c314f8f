//! Pipelines whose commands name keys of many hash tags (one command per coupon, say).
//!
//! On a single node such a pipeline is one round trip. On Redis Cluster a pipeline goes to one
//! node: the crate refuses one whose commands name two slots (`CROSSSLOT`), and sends one made
//! only of multi-key commands (`EXISTS a b`, `MGET a b`), which have no route of their own, to a
//! random node, which answers for keys it does not hold. [`SpreadPipe`] takes every command with
//! the key that routes it and, on a cluster, runs one pipeline per slot, concurrently, each sent
//! to the master of its slot. Replies come back in the order the commands were added.

use std::collections::HashMap;

use futures_util::future::try_join_all;
use redis::{
    Cmd, FromRedisValue, RedisResult, Value,
    cluster_routing::{Route, SingleNodeRoutingInfo, Slot, SlotAddr},
};

use super::{RedisStore, conn::RedisConn};

/// Commands, each with the key whose slot it belongs to; see the module documentation.
#[derive(Default)]
pub struct SpreadPipe {
    cmds: Vec<(Slot, Cmd)>,
}

impl SpreadPipe {
    /// An empty pipeline.
    pub fn new() -> SpreadPipe {
        SpreadPipe::default()
    }

    /// Adds `cmd`, every key of which shares the slot of `routing_key`.
    pub fn add(&mut self, routing_key: &str, cmd: Cmd) -> &mut SpreadPipe {
        self.cmds.push((Slot::for_key(routing_key), cmd));
        self
    }

    /// Runs the commands and returns one reply per command, in order. A command refused by
    /// Redis fails the whole call.
    pub async fn query<T: FromRedisValue>(self, redis: &RedisStore) -> RedisResult<Vec<T>> {
        if self.cmds.is_empty() {
            return Ok(Vec::new());
        }
        let replies = match redis.conn() {
            RedisConn::Single(mut conn) => {
                let mut pipe = redis::pipe();
                for (_, cmd) in self.cmds {
                    pipe.add_command(cmd);
                }
                pipe.query_async::<Vec<Value>>(&mut conn).await?
            }
            RedisConn::Cluster(conn) => {
                let total = self.cmds.len();
                let mut by_slot: HashMap<Slot, (Vec<usize>, redis::Pipeline)> = HashMap::new();
                for (i, (slot, cmd)) in self.cmds.into_iter().enumerate() {
                    let (indices, pipe) = by_slot.entry(slot).or_insert_with(|| (Vec::new(), redis::pipe()));
                    indices.push(i);
                    pipe.add_command(cmd);
                }
                let runs = by_slot.into_iter().map(|(slot, (indices, pipe))| {
                    let mut conn = conn.clone();
                    async move {
                        let route = SingleNodeRoutingInfo::SpecificNode(Route::with_slot(slot, SlotAddr::Master));
                        let count = pipe.len();
                        conn.route_pipeline(pipe, 0, count, route).await.map(|values| (indices, values))
                    }
                });
                let mut replies = vec![Value::Nil; total];
                for (indices, values) in try_join_all(runs).await? {
                    for (i, value) in indices.into_iter().zip(values) {
                        replies[i] = value;
                    }
                }
                replies
            }
        };
        replies.into_iter().map(|v| Ok(redis::from_redis_value(v.extract_error()?)?)).collect()
    }
}
