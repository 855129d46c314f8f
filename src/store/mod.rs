//! Storage adapters: Postgres (the system of record) and Redis (the hot path).

pub mod flash;
pub mod ordering;
pub mod pg;
pub mod redis;
pub mod user_markets;
