//! The state every handler, service and worker shares (built by `app`, never importing `http`).

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use crate::{
    admission::{coupons::CouponAdmission, orders::OrderAdmission},
    auth::JwtKeys,
    config::Config,
    services::{catalog_cache::CatalogCache, payment_batch::PaymentBatches, waiting_room::WaitingRooms},
    store::redis::{RedisStore, notices::Notices},
};

/// Handles to the stores and the configuration: one pointer, so cloning it (which axum does for
/// every request, once per route service and once per `State` extractor) is one atomic increment
/// rather than a copy of every handle (the Redis client alone owns several strings).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wraps the shared handles.
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] points to.
pub struct Shared {
    /// Postgres pool: the system of record.
    pub db: PgPool,
    /// Redis: the hot path.
    pub redis: RedisStore,
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Token keys.
    pub jwt: Arc<JwtKeys>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// V2 orders: caches, stock counters and their scripts.
    pub order_admission: OrderAdmission,
    /// V2 coupons: the issue script, hydration and the cache of coupon terms.
    pub coupon_admission: CouponAdmission,
    /// Change notices: what every instance's caches obey (publish after a committed change).
    pub notices: Notices,
    /// The catalog in memory (subscribed to the notices).
    pub catalog: CatalogCache,
    /// The waiting rooms: their Redis state, signing, and the rooms cached in process.
    pub waiting_rooms: WaitingRooms,
    /// V2 payments' group commit (none with V1 orders, whose payments stay one per transaction).
    pub payments: Option<PaymentBatches>,
}
