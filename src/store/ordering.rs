//! The one place that decides which reservation backend serves orders
//! (`JUPANG_ORDER_STRATEGY`). Until the V2 (redis-lua) backend exists, asking for it runs the
//! V1 Postgres backend with a warning, logged once per process.

use std::sync::Once;

use crate::config::OrderStrategy;

/// The backend that actually reserves stock for orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderBackend {
    /// V1: option rows locked in id order in Postgres (`store::pg::orders`).
    DbPessimistic,
}

impl OrderBackend {
    /// The metric/log label.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderBackend::DbPessimistic => "db-pessimistic",
        }
    }
}

/// The backend for a configured strategy.
pub fn backend(configured: OrderStrategy) -> OrderBackend {
    match configured {
        OrderStrategy::DbPessimistic => OrderBackend::DbPessimistic,
        OrderStrategy::RedisLua => {
            static WARNED: Once = Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    order.strategy = "redis-lua",
                    order.backend = "db-pessimistic",
                    "the redis-lua order strategy is not available yet; orders use db-pessimistic"
                );
            });
            OrderBackend::DbPessimistic
        }
    }
}
