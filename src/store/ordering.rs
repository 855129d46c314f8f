//! The one place that decides which reservation backend serves orders
//! (`JUPANG_ORDER_STRATEGY`).

use crate::config::OrderStrategy;

/// The backend that reserves stock for new orders. Settling an existing order (payment,
/// cancel, expiry) follows where *its* reservation lives (`orders.reservation`), whatever the
/// backend of the process, so switching strategies leaves no order behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderBackend {
    /// V1: option rows locked in id order in Postgres (`store::pg::orders`).
    DbPessimistic,
    /// V2: one Lua script over Redis counters, persisted through a stream (`admission::orders`).
    RedisLua,
}

impl OrderBackend {
    /// The metric/log label.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderBackend::DbPessimistic => "db-pessimistic",
            OrderBackend::RedisLua => "redis-lua",
        }
    }
}

/// The backend for a configured strategy.
pub fn backend(configured: OrderStrategy) -> OrderBackend {
    match configured {
        OrderStrategy::DbPessimistic => OrderBackend::DbPessimistic,
        OrderStrategy::RedisLua => OrderBackend::RedisLua,
    }
}
