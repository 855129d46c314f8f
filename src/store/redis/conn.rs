//! One connection type for a single Redis node and for Redis Cluster.
//!
//! Every adapter talks to Redis through [`RedisConn`], which is a [`ConnectionLike`]: commands,
//! pipelines and scripts are written once. On a single node it is the multiplexed
//! [`ConnectionManager`] (reconnects on its own); on a cluster it is the redis crate's own
//! cluster client ([`ClusterConnection`], feature `cluster-async`), which routes each command by
//! the slot of its keys, follows `MOVED` and `ASK` redirections and refreshes the topology after
//! a reshard or a failover. A script's keys must share one slot (one hash tag): the key layout
//! tables in `keys.rs` and `stock.rs` guarantee it, and a test checks it.
//!
//! A connection that must be one's own (a blocking read, a lock holder's conversation) is a
//! [`DedicatedConn`]: on a single node it is checked out of a `deadpool-redis` pool and goes back
//! to it when dropped; on a cluster it is a cluster connection.

use redis::{
    Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager},
    cluster_async::ClusterConnection,
};

/// A connection to the deployment's Redis: one node, or a cluster.
#[derive(Clone)]
pub enum RedisConn {
    /// The shared multiplexed connection to one node.
    Single(ConnectionManager),
    /// Redis Cluster through the crate's cluster client.
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(cmd, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

/// A connection of one's own: pooled on a single node, a cluster connection on a cluster.
pub enum DedicatedConn {
    /// Checked out of a pool of single-node connections; back in the pool when dropped.
    Pooled(deadpool_redis::Connection),
    /// Redis Cluster through the crate's cluster client.
    Cluster(ClusterConnection),
}

impl DedicatedConn {
    /// Closes the connection instead of handing it back to its pool: for one that may still be
    /// blocked server-side (an abandoned `BLOCK` read) or broken, which the pool's next checkout
    /// would otherwise wait behind (its `PING` queues after the blocked command).
    pub fn discard(self) {
        if let DedicatedConn::Pooled(c) = self {
            drop(deadpool_redis::Connection::take(c));
        }
    }
}

impl ConnectionLike for DedicatedConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            DedicatedConn::Pooled(c) => c.req_packed_command(cmd),
            DedicatedConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            DedicatedConn::Pooled(c) => c.req_packed_commands(cmd, offset, count),
            DedicatedConn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            DedicatedConn::Pooled(c) => c.get_db(),
            DedicatedConn::Cluster(c) => c.get_db(),
        }
    }
}
