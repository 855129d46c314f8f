//! The `jupang` binary itself: start-up errors, migrations, signals and token minting.

use std::{
    process::{Command, Output, Stdio},
    time::Duration,
};

use jupang::http::auth::{JwtKeys, Role};
use sqlx::{Connection, Executor, PgConnection};

use crate::support::{
    JWT_SECRET,
    child::{self, ChildServe},
    json_of, spawn_app, spawn_app_with, unique,
};

const BIN: &str = env!("CARGO_BIN_EXE_jupang");

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} must be set: run the tests with scripts/test.sh"))
}

/// The binary with a clean environment (only PATH) in a directory without a `.env` file.
fn jupang(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null());
    cmd
}

/// A complete, valid environment for `serve`.
fn valid_env(cmd: &mut Command) -> &mut Command {
    cmd.env("DATABASE_URL", env("DATABASE_URL"))
        .env("REDIS_URL", env("REDIS_URL"))
        .env("JUPANG_JWT_SECRET", JWT_SECRET)
        .env("JUPANG_LISTEN", "127.0.0.1:0")
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim_end().to_owned()
}

/// Asserts a refused start: non-zero exit and exactly one stderr line naming `var`.
fn assert_refused(out: &Output, var: &str) -> String {
    let stderr = stderr_of(out);
    assert!(!out.status.success(), "exited successfully; stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "stderr is not one line: {stderr}");
    assert!(stderr.contains(var), "stderr does not name {var}: {stderr}");
    stderr
}

#[test]
fn serve_refuses_a_malformed_value_with_one_line_naming_the_variable() {
    let out = valid_env(&mut jupang(&["serve"])).env("JUPANG_ORDER_TTL_SECS", "ten").output().unwrap();
    assert_refused(&out, "JUPANG_ORDER_TTL_SECS");
}

#[test]
fn serve_refuses_an_unknown_jupang_variable_as_a_likely_typo() {
    let out = valid_env(&mut jupang(&["serve"])).env("JUPANG_ORDER_TTL_SEC", "60").output().unwrap();
    assert_refused(&out, "JUPANG_ORDER_TTL_SEC");
}

#[test]
fn serve_refuses_a_missing_database_url() {
    let out = valid_env(&mut jupang(&["serve"])).env_remove("DATABASE_URL").output().unwrap();
    assert_refused(&out, "DATABASE_URL");
}

#[test]
fn start_up_errors_never_print_secret_values() {
    let cases = [
        ("JUPANG_JWT_SECRET", "hunter2-short", "hunter2-short"),
        ("DATABASE_URL", "mysql://shop:Tr0ub4dor-pw@db.internal/shop", "Tr0ub4dor-pw"),
        ("REDIS_URL", "http://:R3dis-pw@cache.internal:6379/", "R3dis-pw"),
        ("JUPANG_DATA_PLATFORM_URL", "ftp://bot:Pl4tform-pw@events.internal/in", "Pl4tform-pw"),
    ];
    for (var, value, secret) in cases {
        let out = valid_env(&mut jupang(&["serve"])).env(var, value).output().unwrap();
        let stderr = assert_refused(&out, var);
        assert!(!stderr.contains(secret), "{var}: stderr shows the secret: {stderr}");
    }
}

/// The admin URL with another database name.
fn with_db(db: &str) -> String {
    let url = env("DATABASE_URL");
    let (head, tail) = url.rsplit_once('/').unwrap();
    let query = tail.split_once('?').map(|(_, q)| format!("?{q}")).unwrap_or_default();
    format!("{head}/{db}{query}")
}

async fn admin() -> PgConnection {
    PgConnection::connect(&env("DATABASE_URL")).await.expect("connect to Postgres")
}

#[tokio::test]
async fn serve_refuses_an_unmigrated_database_and_migrate_makes_it_ready() {
    let name = format!("jt_empty_{}", unique());
    admin().await.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await.unwrap();
    let url = with_db(&name);

    let out = valid_env(&mut jupang(&["serve"])).env("DATABASE_URL", &url).output().unwrap();
    let stderr = assert_refused(&out, "jupang migrate");
    assert!(stderr.contains("not migrated"), "{stderr}");

    let out = jupang(&["migrate"]).env("DATABASE_URL", &url).output().unwrap();
    assert!(out.status.success(), "migrate failed: {}", stderr_of(&out));
    let app = spawn_app_with(|vars| {
        vars.insert("DATABASE_URL".into(), url.clone());
    })
    .await;
    let body = json_of(app.get("/ready").await, 200).await;
    assert_eq!(body["checks"]["postgres"], "up");

    drop(app);
    // Best-effort clean-up, like the harness's own: a busy server refusing it is not what this test is about.
    let _ = admin().await.execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str()).await;
}

#[tokio::test]
async fn serve_drains_and_exits_0_on_sigterm() {
    // The test app only lends its fresh, migrated database to the binary.
    let lender = spawn_app().await;
    let ChildServe { mut child, addr, log: drain } = child::serve_app(&lender, &[]).await;

    let client = reqwest::Client::new();
    let res = client.get(format!("http://{addr}/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // The client keeps its connection open: shutdown must not wait for it.

    let pid = child.id().expect("running").to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("serve exits within 10 s of SIGTERM")
        .unwrap();
    let log = drain.await.unwrap().join("\n");
    assert!(status.success(), "exit status {status}; log:\n{log}");
    assert!(log.contains("shutdown signal received"), "{log}");
    drop(client);
}

#[test]
fn token_writes_a_csv_of_verifiable_tokens_for_a_user_range() {
    let file = std::env::temp_dir().join(format!("jupang-tokens-{}.csv", unique()));
    let out = jupang(&["token", "--users", "1..5", "--role", "customer", "--out", file.to_str().unwrap()])
        .env("JUPANG_JWT_SECRET", JWT_SECRET)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let csv = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("user_id,token"));
    let keys = JwtKeys::new(JWT_SECRET.as_bytes());
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 5, "{csv}");
    for (i, row) in rows.iter().enumerate() {
        let (user, token) = row.split_once(',').unwrap();
        assert_eq!(user.parse::<i64>().unwrap(), i as i64 + 1);
        let caller = keys.verify(token).expect("the token verifies with the secret");
        assert_eq!(caller.user_id, i as i64 + 1);
        assert_eq!(&*caller.roles, &[Role::Customer]);
    }
}

#[test]
fn token_prints_one_token_for_one_user() {
    let out =
        jupang(&["token", "--user", "7", "--role", "ops_admin"]).env("JUPANG_JWT_SECRET", JWT_SECRET).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let caller = JwtKeys::new(JWT_SECRET.as_bytes()).verify(stdout.trim()).expect("a valid token");
    assert_eq!(caller.user_id, 7);
    assert_eq!(&*caller.roles, &[Role::OpsAdmin]);
}

#[test]
fn token_refuses_to_run_without_a_secret() {
    let out = jupang(&["token", "--user", "7"]).output().unwrap();
    assert_refused(&out, "JUPANG_JWT_SECRET");
    assert!(out.stdout.is_empty(), "no token without a secret");
}
