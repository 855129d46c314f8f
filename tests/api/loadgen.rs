//! `jupang loadgen`, the real binary against real servers: its verdicts must be right (the
//! numbers it measures are not checked here; CI machines are too noisy for that).

use std::process::Stdio;

use serde_json::Value;

use crate::{
    coupon_support::coupon_app,
    helpers::{JWT_SECRET, TestApp, spawn_app},
};

const BIN: &str = env!("CARGO_BIN_EXE_jupang");

/// What a `jupang loadgen ... --json --quiet` run ended with.
struct Run {
    success: bool,
    report: Value,
    stderr: String,
}

/// Runs `jupang loadgen <args> --json --quiet` with a clean environment: the JWT secret, Redis,
/// and `database_url` as `DATABASE_URL` (the database it checks and makes users in).
async fn loadgen(args: &[&str], database_url: &str, extra_env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("loadgen")
        .args(args)
        .args(["--json", "--quiet"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", std::env::var("REDIS_URL").unwrap())
        .env("JUPANG_JWT_SECRET", JWT_SECRET)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("run jupang loadgen");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr).into_owned());
    let report =
        serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("no JSON report; stdout: {stdout}\nstderr: {stderr}"));
    Run { success: out.status.success(), report, stderr }
}

fn db_url(app: &TestApp) -> String {
    app.config.database_url.expose().to_owned()
}

/// The count of an outcome (`"201"`, `"400 ALREADY_ISSUED"`) in a load report.
fn outcome(load: &Value, label: &str) -> u64 {
    load["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["outcome"] == label)
        .map_or(0, |o| o["count"].as_u64().unwrap())
}

/// The names of the failed checks of a verdict.
fn failed_checks(verdict: &Value) -> Vec<String> {
    verdict["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_open_run_at_a_fixed_rate_issues_min_people_coupons_once_each_and_postgres_converges() {
    let app = coupon_app().await;
    let target = app.base.clone();
    let run = loadgen(
        &[
            "open-run",
            "--target",
            &target,
            "--people",
            "300",
            "--coupons",
            "50",
            "--double-click-ratio",
            "0.3",
            "--rate",
            "3000",
            "--connections",
            "16",
        ],
        &db_url(&app),
        &[],
    )
    .await;

    let r = &run.report;
    assert!(run.success, "verdict failed: {}\nstderr: {}", r["verdict"], run.stderr);
    assert_eq!((r["issued"].as_u64(), r["people_issued_twice"].as_u64()), (Some(50), Some(0)));
    assert_eq!(r["presses"], 390, "300 people, 90 of them twice");
    assert_eq!(r["load"]["requests"].as_u64().unwrap(), 390 + r["retries"].as_u64().unwrap());
    assert_eq!(r["load"]["correction"]["kind"], "intended_start");
    assert_eq!(outcome(&r["load"], "201"), 50);
    assert_eq!(
        outcome(&r["load"], "400 ALREADY_ISSUED") + outcome(&r["load"], "400 COUPON_SOLD_OUT"),
        340,
        "every other press is told it already has one or that the sale is over: {}",
        r["load"]["outcomes"]
    );
    assert_eq!(r["postgres"]["converged"], true);
    // Independently of the report: Postgres holds 50 coupons of 50 different people.
    let coupon = r["coupon_id"].as_i64().unwrap();
    let (rows, people): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT user_id) FROM user_coupons WHERE coupon_id = $1")
            .bind(coupon)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((rows, people), (50, 50));
}

#[tokio::test]
async fn an_open_run_fails_its_verdict_and_exits_non_zero_when_postgres_never_holds_the_issues() {
    let app = coupon_app().await;
    jupang::seed::ensure_users(&app.db, 100, 0).await.unwrap();
    // The load generator watches another database than the server writes to.
    let elsewhere = spawn_app().await;
    let target = app.base.clone();
    let run = loadgen(
        &[
            "open-run",
            "--target",
            &target,
            "--people",
            "100",
            "--coupons",
            "10",
            "--connections",
            "8",
            "--converge-timeout-secs",
            "1",
        ],
        &db_url(&elsewhere),
        &[],
    )
    .await;

    assert!(!run.success, "exit status 0 despite a failed verdict");
    assert!(run.stderr.contains("verdict FAIL"), "stderr: {}", run.stderr);
    let r = &run.report;
    assert_eq!(r["issued"], 10, "the server itself issued correctly");
    assert_eq!(r["verdict"]["passed"], false);
    assert_eq!(
        failed_checks(&r["verdict"]),
        ["Postgres converged on the 201s", "Postgres holds exactly the users answered 201"]
    );
    assert_eq!(r["postgres"]["converged"], false);
}
