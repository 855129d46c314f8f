//! The test's own handles on its Redis and Postgres, for looking behind the HTTP API: what is
//! stored, and what a test changes behind the application's back.

use std::sync::Mutex;

use jupang::store::redis::RedisStore;

use super::app::{TestApp, env};

/// A blocking connection to the test Redis server.
pub fn redis_conn() -> redis::Connection {
    redis::Client::open(env("REDIS_URL")).unwrap().get_connection().expect("connect to Redis")
}

/// Runs one Redis command on a connection of its own.
pub async fn redis_cmd<T: redis::FromRedisValue>(cmd: &mut redis::Cmd) -> T {
    let client = redis::Client::open(env("REDIS_URL")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect to Redis");
    cmd.query_async(&mut conn).await.unwrap()
}

/// The app's Redis under its prefix, as the application's own adapters see it (one connection
/// per app, reused by its test).
pub async fn redis_store(app: &TestApp) -> RedisStore {
    static STORES: Mutex<Vec<(String, RedisStore)>> = Mutex::new(Vec::new());
    if let Some((_, s)) = STORES.lock().unwrap().iter().find(|(p, _)| *p == app.redis_prefix) {
        return s.clone();
    }
    let urls: Vec<&str> = app.config.redis_urls.iter().map(|u| u.expose()).collect();
    let store = RedisStore::connect(&urls, &app.redis_prefix).await.expect("connect to Redis");
    STORES.lock().unwrap().push((app.redis_prefix.clone(), store.clone()));
    store
}
