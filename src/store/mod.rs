//! Storage adapters: Postgres (the system of record, [`pg`]) and Redis (the hot path, [`redis`]).
//! Queries, commands and their codecs only; what to do with them is decided above (admission,
//! services). `pg` may use `redis` types (the stream contract); `redis` never uses `pg`.

pub mod pg;
pub mod redis;

/// A storage failure: Postgres, Redis, or stored data that breaks an invariant. Never the
/// client's doing: the API answers it 500 `INTERNAL` (503 `OVERLOADED` when the Postgres pool had
/// no connection in time), and workers log it and retry.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    /// Postgres failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] ::redis::RedisError),
    /// Stored data (or a store's answer) that cannot be: a bug or a manual edit.
    #[error("{0}")]
    Invariant(String),
}

impl Fault {
    /// An invariant that does not hold, described.
    pub fn invariant(what: impl Into<String>) -> Fault {
        Fault::Invariant(what.into())
    }
}
