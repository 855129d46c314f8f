//! The contract between the V2 stream consumer and what it persists.
//!
//! A V2 admission (a coupon issued, a stock reservation) is appended to a Redis Stream by the
//! same Lua script that decides it. A consumer task per [`StreamSink`] reads its streams with a
//! consumer group (`XREADGROUP BLOCK` on a dedicated connection), hands batches to
//! [`StreamSink::persist`] inside one Postgres transaction, and `XACK`s only after the commit.
//! Stale pending entries of crashed consumers are reclaimed with `XAUTOCLAIM`; an entry that
//! keeps failing is moved to the sink's dead-letter stream after [`MAX_DELIVERIES`] deliveries.

use std::{collections::HashMap, future::Future};

use sqlx::PgConnection;

/// Deliveries after which an entry that still cannot be persisted is dead-lettered.
pub const MAX_DELIVERIES: u64 = 5;

/// One stream entry as read from Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// The stream key it was read from.
    pub stream: String,
    /// The entry id (`<ms>-<seq>`).
    pub id: String,
    /// Its field/value pairs.
    pub fields: HashMap<String, String>,
    /// How many times it has been delivered (1 on first read).
    pub deliveries: u64,
}

/// Why a sink refused entries.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The database failed (connection lost, ...): retry the batch later, nothing is dead-lettered.
    #[error("database unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
    /// These entries can never be persisted (malformed, referring to nothing): candidates for
    /// the dead-letter stream once they reach [`MAX_DELIVERIES`].
    #[error("poison entries: {ids:?}: {reason}")]
    Poison {
        /// Entry ids at fault.
        ids: Vec<String>,
        /// Why.
        reason: String,
    },
}

/// What a consumer task persists: one kind of admission, from its own streams.
pub trait StreamSink: Send + Sync + 'static {
    /// Short name for logs and metric labels (`coupons`, `orders`).
    fn name(&self) -> &'static str;

    /// The stream keys to read now (e.g. one per coupon); asked again before each read so new
    /// sales are picked up.
    fn streams(&self) -> impl Future<Output = anyhow::Result<Vec<String>>> + Send;

    /// Persists a batch inside the consumer's transaction. Must be idempotent: an entry may be
    /// delivered again after a crash between commit and `XACK` (use `ON CONFLICT DO NOTHING`).
    fn persist<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        entries: &'a [StreamEntry],
    ) -> impl Future<Output = Result<(), PersistError>> + Send + 'a;

    /// Where entries of `stream` that can never be persisted are moved: by default the stream's
    /// key with `:dead` appended, which keeps a `{hash tag}` in the key and so the same cluster
    /// slot (the move and the `XACK` then run in one `MULTI`).
    fn dead_letter_stream(&self, stream: &str) -> String {
        format!("{stream}:dead")
    }
}

impl StreamEntry {
    /// A field's value, if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// The milliseconds part of the entry id: when Redis appended it.
    pub fn appended_ms(&self) -> Option<u64> {
        self.id.split_once('-').and_then(|(ms, _)| ms.parse().ok())
    }
}
