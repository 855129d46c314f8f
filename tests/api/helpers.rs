//! The test harness: every test gets its own application on port 0, its own database (a copy
//! of a migrated template) and its own Redis key prefix, against the real servers named by
//! `DATABASE_URL` and `REDIS_URL` (scripts/test.sh starts private ones).

#![allow(dead_code)] // A toolbox shared by every test module; not each one uses every tool.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use jupang::{
    Application, Config,
    http::auth::{JwtKeys, Role},
    store::pg,
};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// The JWT secret every test app uses.
pub const JWT_SECRET: &str = "test-secret-0123456789abcdef";

/// A running application and handles to what it stands on.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The bound address.
    pub addr: SocketAddr,
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
    shutdown: CancellationToken,
}

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} must be set: run the tests with scripts/test.sh"))
}

/// The server URL with another database name.
fn with_db(url: &str, db: &str) -> String {
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

/// The configuration a test app starts from: real stores, port 0, workers off.
pub fn test_vars() -> BTreeMap<String, String> {
    [
        ("DATABASE_URL", env("DATABASE_URL")),
        ("REDIS_URL", env("REDIS_URL")),
        ("JUPANG_JWT_SECRET", JWT_SECRET.to_owned()),
        ("JUPANG_LISTEN", "127.0.0.1:0".to_owned()),
        ("JUPANG_WORKERS", "none".to_owned()),
        ("JUPANG_DB_POOL_SIZE", "16".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Starts an app with the default test configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an app after `customize` adjusts its variables (e.g. a strategy or a worker).
pub async fn spawn_app_with(customize: impl FnOnce(&mut BTreeMap<String, String>)) -> TestApp {
    let template = template().await;
    let db_name = format!("jt_{}", unique());
    let mut admin = PgConnection::connect(&env("DATABASE_URL")).await.unwrap();
    admin
        .execute(format!(r#"CREATE DATABASE "{db_name}" TEMPLATE "{template}""#).as_str())
        .await
        .expect("create the test database");
    admin.close().await.unwrap();

    let redis_prefix = format!("jt:{}", unique());
    let mut vars = test_vars();
    vars.insert("DATABASE_URL".into(), with_db(&env("DATABASE_URL"), &db_name));
    vars.insert("JUPANG_REDIS_PREFIX".into(), redis_prefix.clone());
    customize(&mut vars);
    let config = Config::from_vars(vars).expect("test configuration");
    let app = Application::build(config.clone()).await.expect("build the app");
    let addr = app.local_addr();
    let db = app.state().db.clone();
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base: format!("http://{addr}"),
        addr,
        client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        db,
        jwt: JwtKeys::new(JWT_SECRET.as_bytes()),
        redis_prefix,
        config,
        db_name,
        shutdown,
    }
}

impl TestApp {
    /// A request to a path of this app (`/api/...`).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{}", self.base, path))
    }

    /// GET without a token.
    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("request")
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

    /// Creates a user directly in the database (the admin route is tested on its own).
    pub async fn create_user(&self, market: &str, balance: i64) -> i64 {
        let currency = if market == "US" { "USD" } else { "KRW" };
        sqlx::query_scalar("INSERT INTO users (name, market, currency, balance) VALUES ('t', $1, $2, $3) RETURNING id")
            .bind(market)
            .bind(currency)
            .bind(balance)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Stops the app (draining in-flight requests).
    pub fn stop(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
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
            if let Ok(mut conn) = redis::Client::open(env("REDIS_URL")).and_then(|c| c.get_connection()) {
                let keys: Vec<String> =
                    redis::cmd("KEYS").arg(format!("{prefix}:*")).query(&mut conn).unwrap_or_default();
                if !keys.is_empty() {
                    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
                }
            }
        })
        .join();
    }
}

/// Reads a response as JSON, asserting its status; the body is shown when the status is wrong.
pub async fn json_of(res: Response, status: u16) -> Value {
    let actual = res.status().as_u16();
    let text = res.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts an error response: status, code, and the contract's body shape.
pub async fn assert_error(res: Response, status: u16, code: &str) -> Value {
    let body = json_of(res, status).await;
    assert_eq!(body["code"], code, "body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "body: {body}");
    assert!(body["details"].is_object(), "body: {body}");
    body
}

/// The sum of the samples of `name` in a Prometheus exposition whose labels contain every one
/// of `labels` (e.g. `outcome="issued"`); 0 when there is none. Series are created at zero on
/// start-up, so tests assert on values, never on a series merely being there.
pub fn metric_value(exposition: &str, name: &str, labels: &[&str]) -> f64 {
    exposition
        .lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name) && labels.iter().all(|lbl| l.contains(lbl)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
