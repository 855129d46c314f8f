//! THE stream contract of V2: what a stream entry is, how each stream's entries decode, and what
//! persisting them into Postgres may answer.
//!
//! A V2 admission (a coupon issued, a stock reservation) is appended to a Redis Stream by the
//! same Lua script that decides it. A consumer task (`workers::consumer`) reads a stream with a
//! consumer group, hands batches to a [`StreamSink`] inside one Postgres transaction, and
//! `XACK`s only after the commit. Stale pending entries of crashed consumers are reclaimed with
//! `XAUTOCLAIM`; an entry that keeps failing is moved to a dead-letter stream after
//! [`MAX_DELIVERIES`] deliveries.
//!
//! Each stream has two halves:
//! - its [`StreamSource`] (Redis side, here): which stream keys to read, and the codec that
//!   turns an entry's fields into a typed item. The field names of each stream are defined once,
//!   in [`coupons`] (coupon issuance) and [`orders`] (order admission); the Lua scripts that
//!   `XADD` them point to those definitions in their header comments.
//! - its [`DecodedSink`] (Postgres side, `store::pg`): persists decoded items. It never parses
//!   an entry: every [`DecodedSink`] is a [`StreamSink`] through the blanket implementation
//!   below, which decodes with the source's codec and reports what does not decode as poison.

pub mod commands;
pub mod coupons;
pub mod orders;

use std::{collections::HashMap, future::Future};

use redis::RedisResult;
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

/// An entry decoded by its stream's codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<T> {
    /// The entry id, to name it when it cannot be persisted.
    pub id: String,
    /// What the entry describes.
    pub item: T,
}

/// Whether Postgres refused the data itself: SQLSTATE class 22 (data exception: a value out of
/// range, a malformed value) or 23 (integrity constraint violation: a CHECK, a foreign key, NOT
/// NULL). The same statement fails the same way every time, unlike a lost connection, a
/// timeout, a deadlock or a database that is shutting down.
pub fn is_rejection(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("22") || c.starts_with("23")))
}

/// Why a sink refused entries.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The database failed (connection lost, ...): retry the batch later, nothing is dead-lettered.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// Postgres refused the batch's data ([`is_rejection`]) without saying which entries are at
    /// fault: the consumer splits the batch until it finds them, and treats each alone-refused
    /// entry as poison.
    #[error("rejected by the database: {0}")]
    Rejected(sqlx::Error),
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

impl From<sqlx::Error> for PersistError {
    /// [`PersistError::Rejected`] for a refusal of the data, [`PersistError::Unavailable`] for
    /// anything else: a `?` in a sink classifies its errors.
    fn from(e: sqlx::Error) -> PersistError {
        if is_rejection(&e) { PersistError::Rejected(e) } else { PersistError::Unavailable(e) }
    }
}

/// The Redis half of one kind of stream: where its entries are and how they decode.
pub trait StreamSource: Send + Sync + 'static {
    /// What one entry describes.
    type Item: Send + Sync + 'static;

    /// Short name for logs and metric labels (`coupons`, `orders`).
    fn name(&self) -> &'static str;

    /// The stream keys to read now (e.g. one per coupon); asked again before each read so new
    /// sales are picked up.
    fn streams(&self) -> impl Future<Output = RedisResult<Vec<String>>> + Send;

    /// The item an entry describes, or why it describes none (the entry is then poison).
    fn decode(&self, entry: &StreamEntry) -> Result<Self::Item, String>;

    /// Where entries of `stream` that can never be persisted are moved: the stream's key with
    /// `:dead` appended, which keeps a `{hash tag}` in the key and so the same cluster slot (the
    /// move and the `XACK` then run in one `MULTI`).
    fn dead_letter_stream(&self, stream: &str) -> String {
        format!("{stream}:dead")
    }
}

/// The Postgres half of a stream: persists decoded items. Implementations receive only what
/// decoded; the blanket [`StreamSink`] implementation does the decoding.
pub trait DecodedSink: Send + Sync + 'static {
    /// The stream it persists.
    type Source: StreamSource;

    /// Its source.
    fn source(&self) -> &Self::Source;

    /// Persists a batch inside the consumer's transaction. Must be idempotent: an entry may be
    /// delivered again after a crash between commit and `XACK` (use `ON CONFLICT DO NOTHING`).
    fn persist_decoded<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        items: &'a [Decoded<<Self::Source as StreamSource>::Item>],
    ) -> impl Future<Output = Result<(), PersistError>> + Send + 'a;

    /// See [`StreamSink::restore`]; receives what decoded. Default: nothing to restore.
    fn restore_decoded<'a>(
        &'a self,
        _items: &'a [<Self::Source as StreamSource>::Item],
    ) -> impl Future<Output = RedisResult<()>> + Send + 'a {
        async { Ok(()) }
    }
}

/// What a consumer task drives: one kind of admission, from its own streams, persisted from raw
/// entries. Implemented by every [`DecodedSink`]; tests implement it directly for a stream of
/// their own.
pub trait StreamSink: Send + Sync + 'static {
    /// Short name for logs and metric labels (`coupons`, `orders`).
    fn name(&self) -> &'static str;

    /// The stream keys to read now.
    fn streams(&self) -> impl Future<Output = RedisResult<Vec<String>>> + Send;

    /// Persists a batch inside the consumer's transaction (idempotently); entries that can
    /// never be persisted are named in [`PersistError::Poison`].
    fn persist<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        entries: &'a [StreamEntry],
    ) -> impl Future<Output = Result<(), PersistError>> + Send + 'a;

    /// Where entries of `stream` that can never be persisted are moved (`<stream>:dead`).
    fn dead_letter_stream(&self, stream: &str) -> String {
        format!("{stream}:dead")
    }

    /// Called after `XACK` found fewer of the persisted `entries` pending than were sent: Redis no
    /// longer knows some of them (it restarted and lost its last writes after the consumer read
    /// them, or another consumer acknowledged them first). The sink makes Redis account for what
    /// Postgres now holds; harmless when nothing was lost. Default: nothing to restore.
    fn restore<'a>(&'a self, _entries: &'a [&'a StreamEntry]) -> impl Future<Output = RedisResult<()>> + Send + 'a {
        async { Ok(()) }
    }
}

impl<S: DecodedSink> StreamSink for S {
    fn name(&self) -> &'static str {
        self.source().name()
    }

    fn streams(&self) -> impl Future<Output = RedisResult<Vec<String>>> + Send {
        self.source().streams()
    }

    /// Decodes every entry; if any does not decode, nothing is persisted and those entries are
    /// named as poison (the consumer persists the rest in a new transaction).
    async fn persist<'a>(&'a self, tx: &'a mut PgConnection, entries: &'a [StreamEntry]) -> Result<(), PersistError> {
        let mut items = Vec::with_capacity(entries.len());
        let (mut poison, mut reasons) = (Vec::new(), Vec::new());
        for e in entries {
            match self.source().decode(e) {
                Ok(item) => items.push(Decoded { id: e.id.clone(), item }),
                Err(reason) => {
                    reasons.push(format!("{}: {reason}", e.id));
                    poison.push(e.id.clone());
                }
            }
        }
        if !poison.is_empty() {
            return Err(PersistError::Poison { ids: poison, reason: reasons.join("; ") });
        }
        self.persist_decoded(tx, &items).await
    }

    fn dead_letter_stream(&self, stream: &str) -> String {
        self.source().dead_letter_stream(stream)
    }

    async fn restore<'a>(&'a self, entries: &'a [&'a StreamEntry]) -> RedisResult<()> {
        let items: Vec<_> = entries.iter().filter_map(|e| self.source().decode(e).ok()).collect();
        self.restore_decoded(&items).await
    }
}
