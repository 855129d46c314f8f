//! Redis: the shared connection and the key layout.
//!
//! One multiplexed connection ([`RedisConn`]) serves every request: a pool's checkout costs a
//! round trip (`UNWATCH` + `PING`), measured 2.6x slower on the coupon hot path, and a multiplexed
//! connection pipelines every request's commands with nothing to exhaust. Where a connection must
//! be one's own, a `deadpool-redis` pool hands them out ([`DedicatedConn`]): the consumers'
//! blocking stream reads ([`READER_POOL_SIZE`]) and the V1 `redis-lock` holders ([`LOCK_POOL_SIZE`]:
//! a holder keeps one connection from `SET NX` to the unlock; its cost beside the multiplexed
//! connection is not measured yet). `REDIS_URL` with one URL is a single node; several
//! comma-separated node URLs are Redis Cluster, served by the redis crate's cluster client through
//! the same [`RedisConn`].

pub mod conn;
pub mod coupons;
pub mod keys;
pub mod lock;
pub mod notices;
pub mod sales;
pub mod spread;
pub mod stock;
mod stock_reads;
pub mod streams;
pub mod waiting_room;

use std::time::Duration;

use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
};

pub use conn::{DedicatedConn, RedisConn};

/// Longest a reply on a [`RedisStore::dedicated`] connection may take.
pub const DEDICATED_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections of the blocking-read pool at most: one per stream consumer of the process (up to
/// 16 per stream kind, the maximum of `JUPANG_STREAM_CONSUMERS`, and two kinds), with room for
/// consumers restarted after an error while the old one drops. deadpool opens connections on
/// demand, so the default of 4 per kind holds 8 of them, not 40.
pub const READER_POOL_SIZE: usize = 2 * 16 + 8;
/// Connections of the lock pool: lock holders and waiters at once, per process. A waiter beyond
/// it waits for a connection at most [`POOL_WAIT`], then fails like an unreachable Redis (503).
pub const LOCK_POOL_SIZE: usize = 64;
/// Longest wait for a pooled connection.
pub const POOL_WAIT: Duration = Duration::from_secs(2);

/// Why Redis could not be reached (the URL is never part of the message: it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL does not parse.
    #[error("REDIS_URL is not a valid Redis URL")]
    Url(#[source] redis::RedisError),
    /// No answer in time.
    #[error("timed out connecting to Redis (REDIS_URL)")]
    Timeout,
    /// Redis refused or failed.
    #[error("cannot connect to Redis (REDIS_URL)")]
    Refused(#[source] redis::RedisError),
}

/// Retries of one cluster command on `MOVED`/`ASK`/`TRYAGAIN`/`CLUSTERDOWN` and lost nodes, with
/// exponential waits between [`CLUSTER_MIN_RETRY_WAIT_MS`] and [`CLUSTER_MAX_RETRY_WAIT_MS`]: about
/// 10 s in all, longer than a failover takes on the private cluster (7.5 to 9 s with a 5 s node
/// timeout, README "Redis Cluster"), so a command issued during a failover waits for the new
/// master instead of failing.
pub const CLUSTER_RETRIES: u32 = 12;
/// Shortest wait between two tries of a cluster command (ms).
pub const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 50;
/// Longest wait between two tries of a cluster command (ms).
pub const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 1_000;

/// The shared Redis handle and the key prefix of this deployment.
#[derive(Clone)]
pub struct RedisStore {
    conn: RedisConn,
    /// Single node only: connections for blocking reads.
    readers: Option<deadpool_redis::Pool>,
    /// Single node only: connections for lock holders.
    lockers: Option<deadpool_redis::Pool>,
    /// A plain client per listed node: the one node, or the cluster's seed nodes (for pub/sub, a
    /// message published on any node reaches subscribers on every node).
    nodes: Vec<redis::Client>,
    cluster: bool,
    prefix: String,
}

impl RedisStore {
    /// Connects to one Redis node (one URL) or to Redis Cluster (several node URLs; the others
    /// are discovered).
    pub async fn connect(urls: &[&str], prefix: &str) -> Result<RedisStore, ConnectError> {
        let nodes =
            urls.iter().map(|u| redis::Client::open(*u)).collect::<Result<Vec<_>, _>>().map_err(ConnectError::Url)?;
        let conn = match &nodes[..] {
            [] => return Err(ConnectError::Url((redis::ErrorKind::InvalidClientConfig, "no URL").into())),
            [client] => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(2)))
                    .set_number_of_retries(2);
                let conn = within_connect_timeout(ConnectionManager::new_with_config(client.clone(), config)).await?;
                RedisConn::Single(conn)
            }
            _ => {
                let client = cluster_client(&nodes, Duration::from_secs(2)).map_err(ConnectError::Url)?;
                RedisConn::Cluster(within_connect_timeout(client.get_async_connection()).await?)
            }
        };
        let cluster = nodes.len() > 1;
        let (readers, lockers) = if cluster {
            (None, None)
        } else {
            let info = nodes[0].get_connection_info();
            (
                Some(pool(info, READER_POOL_SIZE, DEDICATED_RESPONSE_TIMEOUT).map_err(ConnectError::Url)?),
                Some(pool(info, LOCK_POOL_SIZE, Duration::from_secs(2)).map_err(ConnectError::Url)?),
            )
        };
        Ok(RedisStore { conn, readers, lockers, nodes, cluster, prefix: prefix.to_owned() })
    }

    /// Whether this deployment runs on Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The shared multiplexed connection (cheap to clone).
    pub fn conn(&self) -> RedisConn {
        self.conn.clone()
    }

    /// A dedicated connection, for blocking commands that must not stall the shared one. Its
    /// replies may take up to [`DEDICATED_RESPONSE_TIMEOUT`] (the client's default of 500 ms would
    /// cut every `BLOCK` longer than that short); keep blocking commands well below it. On a
    /// cluster it is a cluster connection of its own, with the same reply timeout.
    pub async fn dedicated(&self) -> redis::RedisResult<DedicatedConn> {
        match &self.readers {
            Some(pool) => checkout(pool).await,
            None => {
                let client = cluster_client(&self.nodes, DEDICATED_RESPONSE_TIMEOUT)?;
                client.get_async_connection().await.map(DedicatedConn::Cluster)
            }
        }
    }

    /// A connection for a lock holder, from the lock pool (at most [`POOL_WAIT`] of waiting). On
    /// a cluster, the shared cluster connection: its commands are routed per key anyway.
    pub async fn locking(&self) -> redis::RedisResult<DedicatedConn> {
        match (&self.lockers, &self.conn) {
            (Some(pool), _) => checkout(pool).await,
            (None, RedisConn::Cluster(c)) => Ok(DedicatedConn::Cluster(c.clone())),
            (None, RedisConn::Single(_)) => unreachable!("a single node always has a lock pool"),
        }
    }

    /// A pub/sub connection of its own (subscriptions cannot share the multiplexed connection).
    /// On a cluster: to the first listed node that answers.
    pub async fn pubsub(&self) -> redis::RedisResult<redis::aio::PubSub> {
        let mut last = None;
        for node in &self.nodes {
            match node.get_async_pubsub().await {
                Ok(p) => return Ok(p),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| (redis::ErrorKind::Io, "no Redis node listed").into()))
    }

    /// A key under this deployment's prefix: `{prefix}:{suffix}`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    /// The key prefix (without the trailing colon).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether Redis answers a PING within `timeout` (on a cluster: every master).
    pub async fn ping(&self, timeout: Duration) -> bool {
        let mut conn = self.conn.clone();
        matches!(tokio::time::timeout(timeout, redis::cmd("PING").query_async::<String>(&mut conn)).await, Ok(Ok(_)))
    }
}

/// Waits for a first connection at most 5 s.
async fn within_connect_timeout<T>(connecting: impl Future<Output = redis::RedisResult<T>>) -> Result<T, ConnectError> {
    tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .map_err(|_| ConnectError::Timeout)?
        .map_err(ConnectError::Refused)
}

/// A pool of up to `size` connections to one node, each with the reply timeout given.
fn pool(
    node: &redis::ConnectionInfo,
    size: usize,
    response_timeout: Duration,
) -> redis::RedisResult<deadpool_redis::Pool> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(response_timeout));
    let manager = deadpool_redis::Manager::new_with_config(node.clone(), config)?;
    deadpool_redis::Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(Duration::from_secs(2)))
        .runtime(deadpool_redis::Runtime::Tokio1)
        .build()
        .map_err(|e| (redis::ErrorKind::InvalidClientConfig, "Redis pool", e.to_string()).into())
}

/// A connection out of `pool`; a pool failure reads as the Redis error behind it, or as an I/O
/// error (Redis unreachable or every connection busy), which callers answer like one.
async fn checkout(pool: &deadpool_redis::Pool) -> redis::RedisResult<DedicatedConn> {
    match pool.get().await {
        Ok(c) => Ok(DedicatedConn::Pooled(c)),
        Err(deadpool_redis::PoolError::Backend(e)) => Err(e),
        Err(e) => Err((redis::ErrorKind::Io, "Redis pool", e.to_string()).into()),
    }
}

/// A cluster client seeded with the listed nodes: timeouts, and retries that outlast a failover.
fn cluster_client(nodes: &[redis::Client], response_timeout: Duration) -> redis::RedisResult<ClusterClient> {
    ClusterClient::builder(nodes.iter().map(|n| n.get_connection_info().clone()))
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(response_timeout)
        .retries(CLUSTER_RETRIES)
        .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
        .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
        .build()
}
