//! The test's own handles on its Redis and Postgres, for looking behind the HTTP API: what is
//! stored, and what a test changes behind the application's back. They reach the Redis the
//! tests run on ([`redis_urls`]): one node, or Redis Cluster with commands routed by key, so a
//! test that inspects keys runs on both topologies.

use std::sync::Mutex;

use jupang::store::redis::RedisStore;
use redis::{Cmd, ConnectionLike, RedisResult, Value, cluster::ClusterClient};

use super::app::{TestApp, env};

/// The variable that picks the Redis topology of a test run: `cluster` runs every app (and
/// these handles) on the cluster of `JUPANG_TEST_REDIS_CLUSTER_URL`; unset or `single`, on the
/// one node of `REDIS_URL`.
pub const TOPOLOGY_VAR: &str = "JUPANG_TEST_REDIS_TOPOLOGY";

/// Whether this test run is on Redis Cluster ([`TOPOLOGY_VAR`]).
pub fn on_cluster_topology() -> bool {
    match std::env::var(TOPOLOGY_VAR).as_deref() {
        Ok("cluster") => true,
        Ok("single") | Ok("") | Err(_) => false,
        Ok(other) => panic!("{TOPOLOGY_VAR}={other}: expected `single` or `cluster`"),
    }
}

/// `REDIS_URL` as the apps of this run take it: the one node, or the cluster's node list.
pub fn redis_url() -> String {
    if on_cluster_topology() { env("JUPANG_TEST_REDIS_CLUSTER_URL") } else { env("REDIS_URL") }
}

/// The node URLs of [`redis_url`].
pub fn redis_urls() -> Vec<String> {
    redis_url().split(',').map(|u| u.trim().to_owned()).collect()
}

/// A blocking connection to the tests' Redis. On the cluster each command goes to the master of
/// its key (a multi-key `DEL` is split, `KEYS` asks every master); pipelines there need one slot
/// and the async [`redis_store`] connection, so tests send single commands through this one.
pub enum TestRedis {
    /// One node.
    Single(redis::Connection),
    /// Redis Cluster.
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl TestRedis {
    fn inner(&mut self) -> &mut dyn ConnectionLike {
        match self {
            TestRedis::Single(c) => c,
            TestRedis::Cluster(c) => c.as_mut(),
        }
    }
}

impl ConnectionLike for TestRedis {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.inner().req_packed_command(cmd)
    }

    fn req_packed_commands(&mut self, cmd: &[u8], offset: usize, count: usize) -> RedisResult<Vec<Value>> {
        self.inner().req_packed_commands(cmd, offset, count)
    }

    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        self.inner().req_command(cmd)
    }

    fn get_db(&self) -> i64 {
        match self {
            TestRedis::Single(c) => c.get_db(),
            TestRedis::Cluster(c) => c.get_db(),
        }
    }

    fn supports_pipelining(&self) -> bool {
        matches!(self, TestRedis::Single(_))
    }

    fn check_connection(&mut self) -> bool {
        self.inner().check_connection()
    }

    fn is_open(&self) -> bool {
        match self {
            TestRedis::Single(c) => c.is_open(),
            TestRedis::Cluster(c) => c.is_open(),
        }
    }
}

/// A blocking connection to the tests' Redis (one node or the cluster).
pub fn try_redis_conn() -> RedisResult<TestRedis> {
    if on_cluster_topology() {
        Ok(TestRedis::Cluster(Box::new(ClusterClient::new(redis_urls())?.get_connection()?)))
    } else {
        Ok(TestRedis::Single(redis::Client::open(env("REDIS_URL"))?.get_connection()?))
    }
}

/// A blocking connection to the tests' Redis (one node or the cluster).
pub fn redis_conn() -> TestRedis {
    try_redis_conn().expect("connect to Redis")
}

/// Runs one Redis command on a connection of its own (routed by key on the cluster).
pub async fn redis_cmd<T: redis::FromRedisValue>(cmd: &mut redis::Cmd) -> T {
    if on_cluster_topology() {
        let client = ClusterClient::new(redis_urls()).unwrap();
        let mut conn = client.get_async_connection().await.expect("connect to Redis Cluster");
        cmd.query_async(&mut conn).await.unwrap()
    } else {
        let client = redis::Client::open(env("REDIS_URL")).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.expect("connect to Redis");
        cmd.query_async(&mut conn).await.unwrap()
    }
}

/// The app's Redis under its prefix, as the application's own adapters see it (one connection
/// per app, reused by its test).
pub async fn redis_store(app: &TestApp) -> RedisStore {
    static STORES: Mutex<Vec<(String, RedisStore)>> = Mutex::new(Vec::new());
    if let Some((_, s)) = STORES.lock().unwrap().iter().find(|(p, _)| *p == app.redis_prefix) {
        return s.clone();
    }
    let store = connect_store(app).await;
    STORES.lock().unwrap().push((app.redis_prefix.clone(), store.clone()));
    store
}

/// A new Redis adapter of its own on the app's Redis and prefix, as another instance has.
pub async fn connect_store(app: &TestApp) -> RedisStore {
    let urls: Vec<&str> = app.config.redis_urls.iter().map(|u| u.expose()).collect();
    RedisStore::connect(&urls, &app.redis_prefix).await.expect("connect to Redis")
}

/// Deletes every key under `prefix` on the tests' Redis (every master of a cluster).
pub fn delete_prefix(prefix: &str) {
    if let Ok(mut conn) = try_redis_conn() {
        let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query(&mut conn).unwrap_or_default();
        if !keys.is_empty() {
            let _: RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    }
}
