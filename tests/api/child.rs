//! `jupang serve` as a real child process on a test app's database and Redis prefix: for what
//! only a separate process shows (two servers on one sale, a crash, signals, a real scraper).

use std::{process::Stdio, time::Duration};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    task::JoinHandle,
};

use crate::helpers::{JWT_SECRET, TestApp};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_jupang");

/// A running `jupang serve`.
pub struct ChildServe {
    /// The process (killed when dropped).
    pub child: Child,
    /// Its `host:port`, as it logged it.
    pub addr: String,
    /// The rest of its JSON log, read so it never blocks on a full pipe; complete once it exits.
    pub log: JoinHandle<Vec<String>>,
}

/// Starts `jupang serve` with a clean environment: `app`'s database and Redis prefix, the test
/// secret, a free port, JSON logs, plus `env` (e.g. `JUPANG_WORKERS`). Returns once the child
/// has logged the address it listens on.
pub async fn serve(database_url: &str, redis_prefix: &str, env: &[(&str, &str)]) -> ChildServe {
    let mut child = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", std::env::var("REDIS_URL").expect("REDIS_URL: run the tests with scripts/test.sh"))
        .env("JUPANG_JWT_SECRET", JWT_SECRET)
        .env("JUPANG_LISTEN", "127.0.0.1:0")
        .env("JUPANG_REDIS_PREFIX", redis_prefix)
        .env("JUPANG_LOG_FORMAT", "json")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && let Some(addr) = v["listen.addr"].as_str()
            {
                return addr.to_owned();
            }
        }
        panic!("serve ended before logging listen.addr");
    })
    .await
    .expect("serve logs listen.addr within 30 s");
    let log = tokio::spawn(async move {
        let mut rest = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push(line);
        }
        rest
    });
    ChildServe { child, addr, log }
}

/// [`serve`] on a test app's own database and Redis prefix.
pub async fn serve_app(app: &TestApp, env: &[(&str, &str)]) -> ChildServe {
    serve(app.config.database_url.expose(), &app.redis_prefix, env).await
}
