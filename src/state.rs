//! The state every handler shares.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use crate::{config::Config, http::auth::JwtKeys, issue::flash::FlashCache, store::redis::RedisStore};

/// Handles to the stores and the configuration; cheap to clone.
#[derive(Clone)]
pub struct AppState {
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
    /// The V2 coupon issuer's in-process caches (users, coupon terms).
    pub flash: Arc<FlashCache>,
}
