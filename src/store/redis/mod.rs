//! Redis: the shared connection and the key layout.
//!
//! One multiplexed [`ConnectionManager`] serves every request (a pool's per-checkout round trips
//! measured 2.6x slower on the coupon hot path). Blocking stream reads get their own connection.

pub mod coupons;
pub mod keys;
pub mod lock;
pub mod notices;
pub mod stock;
pub mod streams;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Longest a reply on a [`RedisStore::dedicated`] connection may take.
pub const DEDICATED_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why Redis could not be reached (the URL is never part of the message: it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Several URLs were given.
    #[error("REDIS_URL: Redis Cluster (several URLs) is not supported by this build yet")]
    Cluster,
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

/// The shared Redis handle and the key prefix of this deployment.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    client: redis::Client,
    prefix: String,
}

impl RedisStore {
    /// Connects to one Redis node.
    pub async fn connect(urls: &[&str], prefix: &str) -> Result<RedisStore, ConnectError> {
        let [url] = urls else {
            return Err(ConnectError::Cluster);
        };
        let client = redis::Client::open(*url).map_err(ConnectError::Url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2);
        let conn =
            tokio::time::timeout(Duration::from_secs(5), ConnectionManager::new_with_config(client.clone(), config))
                .await
                .map_err(|_| ConnectError::Timeout)?
                .map_err(ConnectError::Refused)?;
        Ok(RedisStore { conn, client, prefix: prefix.to_owned() })
    }

    /// The shared multiplexed connection (cheap to clone).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A dedicated connection, for blocking commands that must not stall the shared one. Its
    /// replies may take up to [`DEDICATED_RESPONSE_TIMEOUT`] (the client's default of 500 ms would
    /// cut every `BLOCK` longer than that short); keep blocking commands well below it.
    pub async fn dedicated(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(DEDICATED_RESPONSE_TIMEOUT));
        self.client.get_multiplexed_async_connection_with_config(&config).await
    }

    /// A pub/sub connection of its own (subscriptions cannot share the multiplexed connection).
    pub async fn pubsub(&self) -> redis::RedisResult<redis::aio::PubSub> {
        self.client.get_async_pubsub().await
    }

    /// A key under this deployment's prefix: `{prefix}:{suffix}`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    /// The key prefix (without the trailing colon).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether Redis answers a PING within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> bool {
        let mut conn = self.conn.clone();
        matches!(tokio::time::timeout(timeout, redis::cmd("PING").query_async::<String>(&mut conn)).await, Ok(Ok(_)))
    }
}
