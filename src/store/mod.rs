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
    /// A fault shared by every reader that waited on the same load (a single-flight cache).
    #[error(transparent)]
    Shared(std::sync::Arc<Fault>),
}

impl Fault {
    /// An invariant that does not hold, described.
    pub fn invariant(what: impl Into<String>) -> Fault {
        Fault::Invariant(what.into())
    }
}

/// `From<sqlx::Error>` and `From<redis::RedisError>` for the errors of the layers above (admission,
/// services) that have a `Fault(Fault)` variant, so `?` works on store calls.
macro_rules! fault_conversions {
    ($($error:ty),+ $(,)?) => {$(
        impl From<::sqlx::Error> for $error {
            fn from(e: ::sqlx::Error) -> Self {
                Self::Fault(e.into())
            }
        }

        impl From<::redis::RedisError> for $error {
            fn from(e: ::redis::RedisError) -> Self {
                Self::Fault(e.into())
            }
        }
    )+};
}
pub(crate) use fault_conversions;
