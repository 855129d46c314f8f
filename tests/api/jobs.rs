//! The `jobs` worker: the daily popular-products snapshot runs by itself at UTC 00:00 in
//! exactly one instance, and catches up at start-up after downtime. Instances run with a clock
//! of the test's own ([`Schedule`]), so "midnight" and "two days later" need no waiting.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use jupang::workers::jobs::Schedule;
use tokio_util::sync::CancellationToken;

use crate::support::{
    TestApp, await_metric, eventually, json_of, option, sale, sibling, spawn_app, spawn_child_app_with,
};

/// A clock the test sets (Unix microseconds).
#[derive(Clone)]
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn at(t: DateTime<Utc>) -> TestClock {
        TestClock(Arc::new(AtomicI64::new(t.timestamp_micros())))
    }

    fn set(&self, t: DateTime<Utc>) {
        self.0.store(t.timestamp_micros(), Ordering::SeqCst);
    }

    fn schedule(&self) -> Schedule {
        let micros = self.0.clone();
        let now = move || DateTime::from_timestamp_micros(micros.load(Ordering::SeqCst)).expect("a valid instant");
        Schedule { now: Arc::new(now), tick: Duration::from_millis(20) }
    }
}

/// Another instance of `app` running only the `jobs` worker on `clock`; stopped by the token.
async fn scheduler(app: &TestApp, clock: &TestClock) -> (String, CancellationToken) {
    let mut instance = sibling(app, |v| {
        v.insert("JUPANG_WORKERS".into(), "jobs".into());
    })
    .await;
    instance.set_schedule(clock.schedule());
    let (base, stop) = (format!("http://{}", instance.local_addr()), instance.shutdown_token());
    tokio::spawn(instance.run_until_stopped());
    (base, stop)
}

/// `(run_date, cause)` of every recorded run, oldest first.
async fn runs(app: &TestApp) -> Vec<(NaiveDate, String)> {
    sqlx::query_as("SELECT run_date, cause FROM job_runs WHERE job = 'popular_products' ORDER BY run_date")
        .fetch_all(&app.db)
        .await
        .unwrap()
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap().and_utc()
}

#[tokio::test]
async fn two_instances_at_midnight_write_the_snapshot_once() {
    let app = spawn_app().await;
    let today = Utc::now().date_naive();
    let yesterday = today - TimeDelta::days(1);
    // Both start yesterday evening: the first look catches up yesterday's snapshot, once.
    let clock = TestClock::at(midnight(today) - TimeDelta::seconds(5));
    let (_, stop_a) = scheduler(&app, &clock).await;
    let (_, stop_b) = scheduler(&app, &clock).await;
    eventually(10, "yesterday's catch-up run", || async { runs(&app).await.len() == 1 }).await;
    assert_eq!(runs(&app).await, [(yesterday, "catch_up".to_owned())]);

    // Midnight: both instances find the day due at the same tick; one writes it.
    clock.set(midnight(today));
    eventually(10, "the midnight run", || async { runs(&app).await.len() >= 2 }).await;
    let generated: Vec<(NaiveDate, DateTime<Utc>)> = sqlx::query_as(
        "SELECT DISTINCT snapshot_date, generated_at FROM popularity_snapshot_runs ORDER BY snapshot_date",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    stop_a.cancel();
    stop_b.cancel();
    assert_eq!(runs(&app).await, [(yesterday, "catch_up".to_owned()), (today, "schedule".to_owned())]);
    assert_eq!(generated, [(yesterday, midnight(today) - TimeDelta::seconds(5)), (today, midnight(today))]);
}

#[tokio::test]
async fn a_start_up_after_two_days_of_downtime_catches_up_with_the_recent_sales() {
    let app = spawn_app().await;
    let now = Utc::now();
    let first = TestClock::at(now - TimeDelta::days(2));
    let (_, stop) = scheduler(&app, &first).await;
    eventually(10, "the first run", || async { runs(&app).await.len() == 1 }).await;
    stop.cancel();

    // While every instance is down, a product sells.
    let sold = option(&app, 1000, 10).await;
    sale(&app, sold, 3, "PAID", "KR", 1.0).await;

    let back = TestClock::at(now);
    let (base, stop) = scheduler(&app, &back).await;
    eventually(10, "the catch-up run", || async { runs(&app).await.len() == 2 }).await;
    let top = json_of(reqwest::get(format!("{base}/api/products/top?market=KR")).await.unwrap(), 200).await;
    stop.cancel();
    assert_eq!(
        runs(&app).await,
        [((now - TimeDelta::days(2)).date_naive(), "catch_up".to_owned()), (now.date_naive(), "catch_up".to_owned())]
    );
    assert_eq!(top["items"][0]["sold_quantity"], 3, "{top}");
    let generated: DateTime<Utc> = top["generated_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(generated, crate::support::micros(now));
}

#[tokio::test]
async fn the_job_runs_by_itself_at_start_up_and_exports_when_it_last_succeeded() {
    let app = spawn_child_app_with(|v| {
        v.insert("JUPANG_WORKERS".into(), "jobs".into());
    })
    .await;
    eventually(20, "the start-up run", || async { runs(&app).await.len() == 1 }).await;
    let generated: DateTime<Utc> =
        sqlx::query_scalar("SELECT max(generated_at) FROM popularity_snapshot_runs").fetch_one(&app.db).await.unwrap();
    await_metric(
        &app,
        "jobs_last_success_timestamp_seconds",
        &["job=\"popular_products\""],
        generated.timestamp() as f64,
    )
    .await;
}
