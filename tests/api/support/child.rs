//! The `jupang` binary as a real child process: `serve` on a test's database and Redis prefix,
//! for what only a separate process shows (two servers on one sale, a crash, signals, a real
//! scraper, metrics of its own), and the other subcommands with a clean environment.

use std::{collections::BTreeMap, process::Stdio, time::Duration};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    task::JoinHandle,
};

use super::app::{TestApp, base_vars};

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

/// `jupang <subcommand>` with a clean environment (only `PATH`), in a directory without a
/// `.env` file, killed if the test drops it.
pub fn jupang(subcommand: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg(subcommand)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Starts `jupang serve` with exactly `vars` (plus JSON logs) as its environment. Returns once
/// the child has logged the address it listens on.
pub async fn serve_with(vars: &BTreeMap<String, String>) -> ChildServe {
    let mut child = jupang("serve")
        .envs(vars)
        .env("JUPANG_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
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

/// Starts `jupang serve` on a test app's own database and Redis prefix with [`base_vars`] plus
/// `extra` (e.g. `JUPANG_WORKERS`); the other settings are the binary's defaults.
pub async fn serve_app(app: &TestApp, extra: &[(&str, &str)]) -> ChildServe {
    let mut vars = base_vars();
    vars.insert("DATABASE_URL".into(), app.config.database_url.expose().to_owned());
    vars.insert("JUPANG_REDIS_PREFIX".into(), app.redis_prefix.clone());
    vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    serve_with(&vars).await
}

/// `jupang reconcile [args]` on `app`'s stores; returns stdout, asserting success.
pub async fn reconcile(app: &TestApp, args: &[&str]) -> String {
    let out = jupang("reconcile")
        .args(args)
        .env("DATABASE_URL", app.config.database_url.expose())
        .env("REDIS_URL", app.config.redis_urls.iter().map(|u| u.expose()).collect::<Vec<_>>().join(","))
        .env("JUPANG_REDIS_PREFIX", &app.redis_prefix)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The first seven columns of `coupon`'s line in a `reconcile` report: coupon, total,
/// remaining, users, persisted, pending, drift.
pub fn coupon_row(report: &str, coupon: i64) -> Vec<String> {
    let line = report
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&coupon.to_string()))
        .unwrap_or_else(|| panic!("no line for coupon {coupon}:\n{report}"));
    line.split_whitespace().take(7).map(str::to_owned).collect()
}
