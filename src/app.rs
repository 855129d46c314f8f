//! Wiring: configuration -> stores -> state -> router -> background tasks, all stopped by one
//! shutdown token.

use std::{net::SocketAddr, sync::Arc};

use anyhow::{Context, bail};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    admission::{coupons::CouponAdmission, orders::OrderAdmission, user_markets::UserMarkets},
    auth::JwtKeys,
    config::{Config, IssueStrategy, OrderStrategy},
    http, metrics,
    services::{AppState, Shared},
    store::{pg, redis::RedisStore},
    workers,
};

/// A built application: stores connected, port bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
}

impl Application {
    /// Connects the stores, checks the schema and binds the listener (`JUPANG_LISTEN`; port 0
    /// picks a free port, which tests use).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let db = pg::connect_with(config.database_url.expose(), config.db_pool_size, config.db_acquire_timeout).await?;
        let pending = pg::pending_migrations(&db).await.context("reading the migration state")?;
        if !pending.is_empty() {
            if config.auto_migrate {
                pg::migrate(&db).await?;
            } else {
                bail!(
                    "the database is not migrated ({} migration(s) pending): run `jupang migrate` \
                     or set JUPANG_AUTO_MIGRATE=true",
                    pending.len()
                );
            }
        }
        let urls: Vec<&str> = config.redis_urls.iter().map(|s| s.expose()).collect();
        let redis = RedisStore::connect(&urls, &config.redis_prefix).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {} (JUPANG_LISTEN)", config.listen))?;
        let v2_orders = config.order_strategy == OrderStrategy::RedisLua;
        let users = Arc::new(UserMarkets::default());
        if v2_orders || config.issue_strategy == IssueStrategy::RedisLua {
            // Once for both V2 paths: their hot paths then never read a user's market from Postgres.
            let n = users.preload(&db).await.context("loading users' markets")?;
            tracing::info!(users.cached = n, "user markets cached");
        }
        let order_admission = OrderAdmission::new(db.clone(), &redis, users.clone(), config.order_ttl);
        if v2_orders {
            // Without it the first orders fill the caches and counters themselves, a bit slower.
            if let Err(e) = order_admission.warm_up().await {
                tracing::warn!(error.cause = %e, "could not warm up the order caches and stock counters");
            }
        }
        // Every metric described and its known series at zero before the first scrape.
        metrics::register(&config);
        let coupon_admission = CouponAdmission::new(db.clone(), redis.clone(), users);
        let state = AppState::new(Shared {
            order_admission,
            coupon_admission,
            db,
            redis,
            jwt: Arc::new(JwtKeys::new(config.jwt_secret.expose().as_bytes())),
            config: Arc::new(config),
            metrics: metrics::install(),
        });
        if state.config.issue_strategy == IssueStrategy::RedisLua {
            state.coupon_admission.start().await.context("starting coupon admission (redis-lua)")?;
        }
        Ok(Application { listener, state, shutdown: CancellationToken::new() })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The shared state (tests reach the stores through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Cancelling this token stops the API (draining in-flight requests) and every worker.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then waits for workers to finish.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application { listener, state, shutdown } = self;
        let workers = workers::spawn(&state, &shutdown);
        let router = http::router(state);
        let token = shutdown.clone();
        let served = axum::serve(listener, router).with_graceful_shutdown(async move { token.cancelled().await }).await;
        shutdown.cancel();
        for w in workers {
            if let Err(e) = w.await {
                tracing::error!(error.cause = %e, "a worker task failed");
            }
        }
        served.context("HTTP server failed")
    }
}

/// `jupang serve`: builds the application and runs it until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    let addr = app.local_addr();
    tracing::info!(listen.addr = %addr, "serving");
    let token = app.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown signal received; draining");
        token.cancel();
    });
    app.run_until_stopped().await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
