//! The composition root, the only module that imports every layer: configuration -> stores ->
//! V2 engines -> the services' state -> metrics registration -> router and background tasks,
//! all stopped by one shutdown token.

use std::{net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    admission::{self, coupons::CouponAdmission, orders::OrderAdmission, user_markets::UserMarkets},
    auth::JwtKeys,
    config::{Config, IssueStrategy, OrderStrategy},
    http, metrics,
    services::{
        self, AppState, Shared, catalog_cache::CatalogCache, payment_batch::PaymentBatches, waiting_room::WaitingRooms,
    },
    store::{
        Fault, pg,
        redis::{
            RedisStore,
            notices::{Notices, Topic},
            waiting_room::RoomStore,
        },
    },
    workers,
};

/// Why the application did not start (or stopped serving).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Postgres is unreachable.
    #[error(transparent)]
    Postgres(#[from] pg::ConnectError),
    /// The migration state could not be read.
    #[error("reading the migration state")]
    MigrationState(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error(transparent)]
    Migrate(#[from] pg::MigrateError),
    /// The schema is behind the binary and auto-migration is off.
    #[error(
        "the database is not migrated ({pending} migration(s) pending): run `jupang migrate` or set \
         JUPANG_AUTO_MIGRATE=true"
    )]
    Unmigrated {
        /// Migrations not applied yet.
        pending: usize,
    },
    /// Redis is unreachable.
    #[error(transparent)]
    Redis(#[from] crate::store::redis::ConnectError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr} (JUPANG_LISTEN)")]
    Listen {
        /// `JUPANG_LISTEN`.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The users' markets and languages could not be loaded for the caches.
    #[error("loading users' markets and languages")]
    UserMarkets(#[source] sqlx::Error),
    /// Coupon admission (redis-lua) could not start.
    #[error("starting coupon admission (redis-lua)")]
    CouponAdmission(#[source] Fault),
    /// The waiting rooms could not be read.
    #[error("loading the waiting rooms")]
    WaitingRooms(#[source] redis::RedisError),
    /// The HTTP server failed.
    #[error("HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// A built application: stores connected, port bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
    schedule: workers::jobs::Schedule,
}

impl Application {
    /// Connects the stores, checks the schema and binds the listener (`JUPANG_LISTEN`; port 0
    /// picks a free port, which tests use).
    pub async fn build(config: Config) -> Result<Application, StartError> {
        let db = pg::connect_with(config.database_url.expose(), config.db_pool_size, config.db_acquire_timeout).await?;
        let pending = pg::pending_migrations(&db).await.map_err(StartError::MigrationState)?;
        if !pending.is_empty() {
            if config.auto_migrate {
                pg::migrate(&db).await?;
            } else {
                return Err(StartError::Unmigrated { pending: pending.len() });
            }
        }
        let urls: Vec<&str> = config.redis_urls.iter().map(|s| s.expose()).collect();
        let redis = RedisStore::connect(&urls, &config.redis_prefix).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Listen { addr: config.listen, source })?;
        let v2_orders = config.order_strategy == OrderStrategy::RedisLua;
        let users = Arc::new(UserMarkets::default());
        // Once for every path: the V2 hot paths then never read a user's market from Postgres,
        // nor any answer without Accept-Language the caller's language.
        let n = users.preload(&db).await.map_err(StartError::UserMarkets)?;
        tracing::info!(users.cached = n, "user markets and languages cached");
        let order_admission = OrderAdmission::new(db.clone(), &redis, users.clone(), config.order_ttl);
        if v2_orders {
            // Without it the first orders fill the caches and counters themselves, a bit slower.
            if let Err(e) = order_admission.warm_up().await {
                tracing::warn!(error.cause = %e, "could not warm up the order caches and stock counters");
            }
        }
        // Every metric described and its known series at zero before the first scrape.
        metrics::install();
        http::register_metrics();
        services::coupons::register_metrics(config.issue_strategy);
        admission::register_metrics();
        services::waiting_room::register_metrics();
        workers::register_metrics(&config);
        let coupon_admission = CouponAdmission::new(db.clone(), redis.clone(), users.clone());
        let notices = Notices::new(&redis);
        let catalog = CatalogCache::new();
        catalog.subscribe(&notices);
        let coupons = coupon_admission.clone();
        notices.on(Topic::Coupon, move |id| coupons.forget(id));
        let orders = order_admission.clone();
        notices.on(Topic::Stock, move |id| orders.stock_rose(id));
        let pool = db.clone();
        notices.on(Topic::User, move |id| {
            users.forget(id);
            if id.is_none() {
                // Possibly anyone changed: read everyone again, the old entries answering meanwhile.
                let (users, pool) = (users.clone(), pool.clone());
                tokio::spawn(async move {
                    if let Err(e) = users.reload(&pool).await {
                        tracing::warn!(error.cause = %e, "could not reload users' languages; entries are read on demand");
                    }
                });
            }
        });
        let waiting_rooms = WaitingRooms::new(RoomStore::new(&redis), config.jwt_secret.expose().as_bytes());
        // Before the first request: a protected call must never pass for want of a loaded room.
        waiting_rooms.registry.reload().await.map_err(StartError::WaitingRooms)?;
        let rooms = waiting_rooms.registry.clone();
        notices.on(Topic::WaitingRoom, move |_| rooms.reload_soon());
        let orders = order_admission.clone();
        notices.on(Topic::Product, move |id| orders.product_changed(id));
        let payments = (config.order_strategy == OrderStrategy::RedisLua)
            .then(|| PaymentBatches::start(db.clone(), order_admission.stock().clone()));
        let state = AppState::new(Shared {
            payments,
            catalog,
            waiting_rooms,
            order_admission,
            coupon_admission,
            notices,
            db,
            redis,
            jwt: Arc::new(JwtKeys::new(config.jwt_secret.expose().as_bytes())),
            config: Arc::new(config),
            metrics: metrics::install(),
        });
        if state.config.issue_strategy == IssueStrategy::RedisLua {
            state.coupon_admission.start().await.map_err(StartError::CouponAdmission)?;
        }
        Ok(Application {
            listener,
            state,
            shutdown: CancellationToken::new(),
            schedule: workers::jobs::Schedule::system(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The shared state (tests reach the stores through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Replaces the clock of the `jobs` worker (tests run "at midnight" without waiting for it).
    pub fn set_schedule(&mut self, schedule: workers::jobs::Schedule) {
        self.schedule = schedule;
    }

    /// Cancelling this token stops the API (draining in-flight requests) and every worker.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then waits for workers to finish.
    pub async fn run_until_stopped(self) -> Result<(), StartError> {
        let Application { listener, state, shutdown, schedule } = self;
        let mut workers = workers::spawn(&state, &shutdown, schedule);
        // Always on: housekeeping of this process's own metrics, not a business worker.
        workers.push(tokio::spawn(metrics::upkeep(state.metrics.clone(), shutdown.clone())));
        // Always on: the caches of this process obey the change notices of every instance.
        workers.push(tokio::spawn(state.notices.clone().listen(shutdown.clone())));
        // Always on: admission steps of the enabled waiting rooms (none: nothing to do). Every
        // instance runs them; each step is one atomic script, so they never double-admit.
        workers.push(tokio::spawn(workers::waiting_room::run(state.clone(), shutdown.clone())));
        let router = http::router(state);
        let token = shutdown.clone();
        let served = axum::serve(listener, router).with_graceful_shutdown(async move { token.cancelled().await }).await;
        shutdown.cancel();
        for w in workers {
            if let Err(e) = w.await {
                tracing::error!(error.cause = %e, "a worker task failed");
            }
        }
        served.map_err(StartError::Serve)
    }
}

/// `jupang serve`: builds the application and runs it until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), StartError> {
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
