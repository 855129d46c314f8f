//! The harness: every test gets its own application on port 0, its own database (a copy of a
//! migrated template) and its own Redis key prefix, against the real servers named by
//! `DATABASE_URL` and `REDIS_URL` (scripts/test.sh starts private ones), or on Redis Cluster
//! when `JUPANG_TEST_REDIS_TOPOLOGY=cluster` (see [`super::stores::redis_url`]).
//!
//! The application runs in the test process ([`spawn_app`]) or, where a test reads the
//! metrics, as a child `jupang serve` ([`spawn_child_app`]): the metrics recorder is global to a
//! process, so only a process of its own gives a test series no other test can move.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicI64, Ordering},
    time::Duration,
};

use jupang::{
    Application, Config,
    http::auth::{JwtKeys, Role},
    store::pg,
};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection, PgPool, postgres::PgPoolOptions};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::child::{self, ChildServe};

/// The JWT secret every test app uses.
pub const JWT_SECRET: &str = "test-secret-0123456789abcdef";

/// The first coupon id of the first test database of a process: above the ids tests use for an
/// unknown coupon (`424_242`, `987_654`, `999_999`), which so never exist.
const FIRST_COUPON_ID: i64 = 1_000_000;
/// How many coupon ids one test database owns.
const COUPON_IDS_PER_TEST: i64 = 100_000;

/// A running application and handles to what it stands on.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A keep-alive HTTP client.
    pub client: reqwest::Client,
    /// The test's own database.
    pub db: PgPool,
    /// Signs tokens the app accepts.
    pub jwt: JwtKeys,
    /// The test's Redis key prefix.
    pub redis_prefix: String,
    /// The configuration the app runs with.
    pub config: Config,
    db_name: String,
    server: Server,
}

/// Where a test app's server runs.
enum Server {
    /// In the test process, stopped by its token.
    InProcess(CancellationToken),
    /// A child `jupang serve`, killed with the app.
    Child(Box<ChildServe>),
}

/// A required environment variable.
pub fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} must be set: run the tests with scripts/test.sh"))
}

/// The server URL with another database name.
pub fn with_db(url: &str, db: &str) -> String {
    let (head, tail) = url.rsplit_once('/').expect("DATABASE_URL has a path");
    let query = tail.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    format!("{head}/{db}{query}")
}

/// Creates (once per migration set, safely across processes) a migrated template database.
async fn template() -> &'static str {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            let checksum: String = pg::MIGRATOR
                .iter()
                .flat_map(|m| m.checksum.iter().take(4).map(|b| format!("{b:02x}")))
                .collect::<String>();
            let name = format!("jt_template_{}", &format!("{:x}", fxhash(&checksum)));
            let mut admin = PgConnection::connect(&env("DATABASE_URL")).await.expect("connect to Postgres");
            admin.execute("SELECT pg_advisory_lock(727274)").await.unwrap();
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut admin)
                .await
                .unwrap();
            if !exists {
                admin.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await.unwrap();
                let mut conn = PgConnection::connect(&with_db(&env("DATABASE_URL"), &name)).await.unwrap();
                pg::MIGRATOR.run(&mut conn).await.expect("migrate the template");
                conn.close().await.unwrap();
            }
            admin.execute("SELECT pg_advisory_unlock(727274)").await.unwrap();
            admin.close().await.unwrap();
            name
        })
        .await
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// A unique suffix for names of this test's resources.
pub fn unique() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// What every server of a test needs: the stores, the test secret, a free port.
pub fn base_vars() -> BTreeMap<String, String> {
    [
        ("DATABASE_URL", env("DATABASE_URL")),
        ("REDIS_URL", super::stores::redis_url()),
        ("JUPANG_JWT_SECRET", JWT_SECRET.to_owned()),
        ("JUPANG_LISTEN", "127.0.0.1:0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The configuration a test app starts from: [`base_vars`], workers off.
pub fn test_vars() -> BTreeMap<String, String> {
    let mut vars = base_vars();
    vars.insert("JUPANG_WORKERS".into(), "none".into());
    vars.insert("JUPANG_DB_POOL_SIZE".into(), "16".into());
    vars
}

/// A fresh database copied from the template, whose coupon ids start at a block of their own in
/// this process: they never restart at 1, so a series labelled with a coupon id
/// (`coupon_remaining{coupon_id}`) is one test's only. Product and option ids label no metric
/// and stay as the template numbers them (two apps of one test number their products alike).
async fn fresh_database() -> String {
    static NEXT_BLOCK: AtomicI64 = AtomicI64::new(0);
    let template = template().await;
    let db_name = format!("jt_{}", unique());
    let mut admin = PgConnection::connect(&env("DATABASE_URL")).await.unwrap();
    admin
        .execute(format!(r#"CREATE DATABASE "{db_name}" TEMPLATE "{template}""#).as_str())
        .await
        .expect("create the test database");
    admin.close().await.unwrap();
    let first = FIRST_COUPON_ID + NEXT_BLOCK.fetch_add(1, Ordering::Relaxed) * COUPON_IDS_PER_TEST;
    let mut conn = PgConnection::connect(&with_db(&env("DATABASE_URL"), &db_name)).await.unwrap();
    conn.execute(format!("ALTER TABLE coupons ALTER COLUMN id RESTART WITH {first}").as_str())
        .await
        .expect("move the coupon ids to the test's block");
    conn.close().await.unwrap();
    db_name
}

/// A fresh database and Redis prefix, and the variables of an app on them after `customize`.
async fn prepare(customize: impl FnOnce(&mut BTreeMap<String, String>)) -> (String, String, BTreeMap<String, String>) {
    let db_name = fresh_database().await;
    let redis_prefix = format!("jt:{}", unique());
    let mut vars = test_vars();
    vars.insert("DATABASE_URL".into(), with_db(&env("DATABASE_URL"), &db_name));
    vars.insert("JUPANG_REDIS_PREFIX".into(), redis_prefix.clone());
    customize(&mut vars);
    (db_name, redis_prefix, vars)
}

/// Starts an app with the default test configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an app after `customize` adjusts its variables (e.g. a strategy or a worker).
pub async fn spawn_app_with(customize: impl FnOnce(&mut BTreeMap<String, String>)) -> TestApp {
    let (db_name, redis_prefix, vars) = prepare(customize).await;
    let config = Config::from_vars(vars).expect("test configuration");
    let app = Application::build(config.clone()).await.expect("build the app");
    let base = format!("http://{}", app.local_addr());
    let (db, shutdown) = (app.state().db.clone(), app.shutdown_token());
    tokio::spawn(app.run_until_stopped());
    TestApp::assemble(base, db, redis_prefix, config, db_name, Server::InProcess(shutdown))
}

/// Starts an app with the default test configuration as a child `jupang serve`.
pub async fn spawn_child_app() -> TestApp {
    spawn_child_app_with(|_| {}).await
}

/// Like [`spawn_app_with`], but the server is a child `jupang serve` process: its `/metrics`
/// show what this test did and nothing else. `db` is a pool of the test's own.
pub async fn spawn_child_app_with(customize: impl FnOnce(&mut BTreeMap<String, String>)) -> TestApp {
    let (db_name, redis_prefix, vars) = prepare(customize).await;
    let config = Config::from_vars(vars.clone()).expect("test configuration");
    let serve = child::serve_with(&vars).await;
    let db = PgPoolOptions::new().max_connections(8).connect(config.database_url.expose()).await.unwrap();
    let base = format!("http://{}", serve.addr);
    TestApp::assemble(base, db, redis_prefix, config, db_name, Server::Child(Box::new(serve)))
}

/// Another application in this process on `app`'s database and Redis prefix, as a second
/// instance would be, after `customize` adjusts its variables; built, not yet serving.
pub async fn sibling(app: &TestApp, customize: impl FnOnce(&mut BTreeMap<String, String>)) -> Application {
    let mut vars = test_vars();
    vars.insert("DATABASE_URL".into(), app.config.database_url.expose().to_owned());
    vars.insert("JUPANG_REDIS_PREFIX".into(), app.redis_prefix.clone());
    customize(&mut vars);
    Application::build(Config::from_vars(vars).expect("sibling configuration")).await.expect("build the sibling")
}

impl TestApp {
    fn assemble(
        base: String,
        db: PgPool,
        redis_prefix: String,
        config: Config,
        db_name: String,
        server: Server,
    ) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let jwt = JwtKeys::new(JWT_SECRET.as_bytes());
        TestApp { base, client, db, jwt, redis_prefix, config, db_name, server }
    }

    /// A request to a path of this app (`/api/...`).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{}", self.base, path))
    }

    /// GET without a token.
    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("request")
    }

    /// GET with a customer token of `user_id`.
    pub async fn get_as(&self, user_id: i64, path: &str) -> Response {
        self.request(Method::GET, path).bearer_auth(self.customer(user_id)).send().await.expect("request")
    }

    /// A token for a user with roles.
    pub fn token(&self, user_id: i64, roles: &[Role]) -> String {
        self.jwt.mint(user_id, roles, 3600)
    }

    /// A customer token for a user.
    pub fn customer(&self, user_id: i64) -> String {
        self.token(user_id, &[Role::Customer])
    }

    /// Sends a JSON body with a bearer token.
    pub async fn send_json(&self, method: Method, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut req = self.request(method, path).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    /// The exit status of a child server ([`spawn_child_app_with`]) that has exited.
    pub fn server_exit(&mut self) -> Option<std::process::ExitStatus> {
        match &mut self.server {
            Server::Child(serve) => serve.child.try_wait().ok().flatten(),
            Server::InProcess(_) => None,
        }
    }

    /// Creates a user directly in the database (the admin route is tested on its own).
    pub async fn create_user(&self, market: &str, balance: i64) -> i64 {
        self.create_users(1, market, balance).await[0]
    }

    /// Creates `n` users of a market with `balance` each, in one statement; returns their ids.
    pub async fn create_users(&self, n: usize, market: &str, balance: i64) -> Vec<i64> {
        let currency = if market == "US" { "USD" } else { "KRW" };
        sqlx::query_scalar(
            "INSERT INTO users (name, market, currency, balance)
             SELECT 'u' || g, $2, $3, $4 FROM generate_series(1, $1) g RETURNING id",
        )
        .bind(n as i64)
        .bind(market)
        .bind(currency)
        .bind(balance)
        .fetch_all(&self.db)
        .await
        .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        match &mut self.server {
            Server::InProcess(shutdown) => shutdown.cancel(),
            Server::Child(serve) => {
                let _ = serve.child.start_kill();
            }
        }
        let (db_name, prefix) = (self.db_name.clone(), self.redis_prefix.clone());
        // Clean-up runs on its own thread and runtime: Drop cannot await, and the test's runtime
        // is about to end.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&env("DATABASE_URL")).await {
                    let _ =
                        admin.execute(format!(r#"DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)"#).as_str()).await;
                }
            });
            super::stores::delete_prefix(&prefix);
        })
        .join();
    }
}

/// A second instance of `app` serving in this process, once its change-notice listener has
/// subscribed (so nothing announced from here on is missed); answers its base URL. It stops when
/// the token is cancelled.
pub async fn serving_sibling(app: &TestApp) -> (String, CancellationToken) {
    serving_sibling_with(app, |_| {}).await
}

/// Like [`serving_sibling`], after `customize` adjusts the sibling's variables (e.g. the order
/// strategy of `app`).
pub async fn serving_sibling_with(
    app: &TestApp,
    customize: impl FnOnce(&mut BTreeMap<String, String>),
) -> (String, CancellationToken) {
    let b = sibling(app, customize).await;
    let (base, stop) = (format!("http://{}", b.local_addr()), b.shutdown_token());
    let mut subscribed = forward_notices(&b.state().notices, jupang::store::redis::notices::Topic::Product);
    tokio::spawn(b.run_until_stopped());
    tokio::time::timeout(Duration::from_secs(5), subscribed.recv()).await.expect("the sibling subscribed");
    (base, stop)
}

/// Registers a handler for `topic` on `notices` that forwards every id it is given.
pub fn forward_notices(
    notices: &jupang::store::redis::notices::Notices,
    topic: jupang::store::redis::notices::Topic,
) -> tokio::sync::mpsc::UnboundedReceiver<Option<i64>> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    notices.on(topic, move |id| {
        let _ = tx.send(id);
    });
    rx
}
