//! `jupang loadgen`, the real binary against real servers: its verdicts must be right (the
//! numbers it measures are not checked here; CI machines are too noisy for that). The scenarios
//! added for the benchmark issues have modules of their own below; the helpers here serve all.

mod browse;
mod open_run;
mod order_rush;
mod waiting_room;

use std::process::Stdio;

use jupang_loadgen::token::{CUSTOMER, Minter, OPS_ADMIN};
use reqwest::Method;
use serde_json::Value;

use crate::support::{JWT_SECRET, TestApp, coupon_app, spawn_app};

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

/// `jupang loadgen <scenario> --target <app> <flags>` (whitespace-separated), checking the app's
/// own database.
async fn loadgen_on(app: &TestApp, scenario: &str, flags: &str) -> Run {
    let mut args = vec![scenario, "--target", &app.base];
    args.extend(flags.split_whitespace());
    loadgen(&args, &db_url(app), &[]).await
}

/// Coupons of `coupon` in Postgres, and how many different people hold them: read directly,
/// independently of what the load generator reports.
async fn holders(app: &TestApp, coupon: i64) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT user_id) FROM user_coupons WHERE coupon_id = $1")
        .bind(coupon)
        .fetch_one(&app.db)
        .await
        .unwrap()
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
    assert_eq!(holders(&app, coupon).await, (50, 50));
}

#[tokio::test]
async fn an_open_run_fails_its_verdict_and_exits_non_zero_when_postgres_never_holds_the_issues() {
    let app = coupon_app().await;
    jupang_seed::ensure_users(&app.db, 100, 0).await.unwrap();
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

#[tokio::test]
async fn compare_runs_every_strategy_and_the_ceiling_on_its_own_server_and_each_issues_exactly_the_quantity() {
    // Only its fresh database and Redis prefix are used: compare serves from child processes.
    let app = spawn_app().await;
    let run = loadgen(
        &["compare", "--people", "300", "--coupons", "50", "--connections", "16"],
        &db_url(&app),
        &[("JUPANG_REDIS_PREFIX", &app.redis_prefix), ("RUST_LOG", "warn")],
    )
    .await;

    let r = &run.report;
    assert!(run.success, "compare failed: {}\nstderr: {}", r["rows"], run.stderr);
    assert_eq!(r["passed"], true);
    let scenarios: Vec<&str> =
        r["rows"].as_array().unwrap().iter().map(|row| row["scenario"].as_str().unwrap()).collect();
    assert_eq!(scenarios, ["ceiling (GET /health)", "db-pessimistic", "db-optimistic", "redis-lock", "redis-lua"]);
    for row in r["rows"].as_array().unwrap() {
        assert!(row["throughput_rps"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["serve_peak_rss_kib"].as_u64().unwrap() > 0, "{row}");
        assert!(
            row["ratio_to_ceiling"].as_f64().is_some() && row["ratio_to_db_pessimistic"].as_f64().is_some(),
            "{row}"
        );
    }
    let presses = r["presses"].as_u64().unwrap();
    assert_eq!(presses, 360, "300 people, 60 of them twice");
    assert_eq!(outcome(&r["ceiling"], "200"), presses, "the ceiling sends as many requests, all answered");

    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    let mut coupons = std::collections::HashSet::new();
    for run in runs {
        assert_eq!(
            (run["issued"].as_u64(), run["people_issued_twice"].as_u64()),
            (Some(50), Some(0)),
            "{}",
            run["verdict"]
        );
        assert_eq!(run["postgres"]["converged"], true);
        assert_eq!(outcome(&run["load"], "201"), 50);
        let coupon = run["coupon_id"].as_i64().unwrap();
        assert!(coupons.insert(coupon), "each strategy runs on a fresh sale");
        assert_eq!(holders(&app, coupon).await, (50, 50), "coupon {coupon} in Postgres");
    }
}

#[tokio::test]
async fn an_order_rush_sells_exactly_the_stock_once_each_and_every_sale_is_paid() {
    let app = coupon_app().await;
    let target = app.base.clone();
    let run = loadgen(
        &["order-rush", "--target", &target, "--buyers", "200", "--stock", "20", "--connections", "16"],
        &db_url(&app),
        &[],
    )
    .await;

    let r = &run.report;
    assert!(run.success, "verdict failed: {}\nstderr: {}", r["verdict"], run.stderr);
    assert_eq!((r["accepted"].as_u64(), r["paid"].as_u64()), (Some(20), Some(20)));
    let routes: Vec<&str> =
        r["load"]["routes"].as_array().unwrap().iter().map(|x| x["route"].as_str().unwrap()).collect();
    assert_eq!(routes, ["POST /api/orders", "POST /api/orders/{id}/payment"], "latency per route");
    assert_eq!(outcome(&r["load"], "400 INSUFFICIENT_STOCK"), 180, "{}", r["load"]["outcomes"]);
    // Independently of the report: sold out, nothing held, 20 different buyers paid.
    let option = r["option_id"].as_i64().unwrap();
    let stock: (i32, i32) = sqlx::query_as("SELECT stock, reserved FROM product_options WHERE id = $1")
        .bind(option)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stock, (0, 0));
    let (paid, buyers): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT o.user_id) FROM orders o JOIN order_items i ON i.order_id = o.id
         WHERE i.option_id = $1 AND o.status = 'PAID'",
    )
    .bind(option)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((paid, buyers), (20, 20));
}

#[tokio::test]
async fn a_mixed_run_exercises_every_route_of_the_mix_without_a_server_error() {
    let app = coupon_app().await;
    let target = app.base.clone();
    let run = loadgen(
        &["mixed", "--target", &target, "--users", "100", "--products", "3", "--requests", "600", "--connections", "8"],
        &db_url(&app),
        &[],
    )
    .await;

    let r = &run.report;
    assert!(run.success, "verdict failed: {}\nstderr: {}", r["verdict"], run.stderr);
    assert_eq!(r["load"]["requests"], 600);
    let mut routes: Vec<&str> =
        r["load"]["routes"].as_array().unwrap().iter().map(|x| x["route"].as_str().unwrap()).collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            "GET /api/products",
            "GET /api/products/{id}",
            "POST /api/orders",
            "POST /api/orders/{id}/payment",
            "POST /api/users/{id}/cart"
        ]
    );
    for route in r["load"]["routes"].as_array().unwrap() {
        let ok =
            route["outcomes"].as_array().unwrap().iter().all(|o| (200..300).contains(&o["status"].as_u64().unwrap()));
        assert!(ok, "every answer of {} is a success: {}", route["route"], route["outcomes"]);
    }
    // What the report says was paid is what Postgres holds as paid.
    let paid =
        r["load"]["routes"].as_array().unwrap().iter().find(|x| x["route"] == "POST /api/orders/{id}/payment").unwrap()
            ["outcomes"][0]["count"]
            .as_i64()
            .unwrap();
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'PAID'").fetch_one(&app.db).await.unwrap();
    assert_eq!(stored, paid);
}

// The load generator mints its tokens itself (it does not link the server library): the server
// must take them with the subject and the roles they name.
#[tokio::test]
async fn the_load_generators_tokens_are_accepted_with_their_subject_and_roles() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let minter = Minter::new(JWT_SECRET.as_bytes());
    let status = |path: String, token: String| {
        let app = &app;
        async move { app.request(Method::GET, &path).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    let customer = || minter.mint(user, &[CUSTOMER], 60);
    assert_eq!(status(format!("/api/users/{user}/balance"), customer()).await, 200);
    assert_eq!(status(format!("/api/users/{}/balance", user + 1), customer()).await, 403, "only its own subject");
    assert_eq!(status("/api/admin/outbox".into(), customer()).await, 403, "a customer is no admin");
    assert_eq!(status("/api/admin/outbox".into(), minter.mint(900_000_001, &[OPS_ADMIN], 60)).await, 200);
    let foreign = Minter::new(b"another-secret-0123456789").mint(user, &[CUSTOMER], 60);
    assert_eq!(status(format!("/api/users/{user}/balance"), foreign).await, 401, "signed with the server's secret");
}
