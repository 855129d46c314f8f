//! The V2 coupon path when things break: a process killed mid-burst, Postgres gone during a
//! sale, a consumer whose batches fail, a poison entry, and the reconciler's repairs. In every
//! case each coupon acknowledged with 201 ends up in Postgres exactly once.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use rand::seq::SliceRandom;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::{
    child::{self, ChildServe},
    coupon_support::{
        Shot, acknowledged, coupon_app, create_coupon, create_users, issue, open_run, persisted, redis_counters,
        settled, stored,
    },
    helpers::{TestApp, json_of, spawn_app, spawn_app_with},
    proxy::{TcpProxy, upstream_of},
};

const BIN: &str = env!("CARGO_BIN_EXE_jupang");

fn redis_conn() -> redis::Connection {
    redis::Client::open(std::env::var("REDIS_URL").unwrap()).unwrap().get_connection().unwrap()
}

/// Polls `check` every 20 ms until it holds, failing the test after `secs`.
async fn eventually<F: Future<Output = bool>>(secs: u64, what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "not within {secs} s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `jupang serve` as a child process on `app`'s database and Redis prefix, with the consumer on
/// and a short claim threshold. Returns the child and its base URL once it logs its address.
async fn serve(app: &TestApp) -> (Child, String) {
    let ChildServe { child, addr, .. } =
        child::serve_app(app, &[("JUPANG_WORKERS", "consumer"), ("JUPANG_STREAM_CLAIM_IDLE_MS", "500")]).await;
    (child, format!("http://{addr}"))
}

#[tokio::test]
async fn two_serve_processes_sharing_one_sale_issue_exactly_the_quantity_once_per_user() {
    let app = coupon_app().await;
    let coupon = create_coupon(&app, 300, json!({})).await;
    let users = create_users(&app, 1_000, "KR").await;
    // 1,000 people, 300 of whom double-click, spread over two real `jupang serve` processes.
    let requests: Vec<i64> = users.iter().chain(&users[..300]).copied().collect();
    let ((mut first, a), (mut second, b)) = (serve(&app).await, serve(&app).await);

    let shots = open_run(&app, &[a, b], coupon, &requests, 100).await;

    let issued = acknowledged(&shots, false);
    assert_eq!(issued.len(), 300, "201 answers across both processes");
    settled(&app).await;
    assert_eq!(stored(&app.db, coupon).await, issued, "Postgres holds exactly what was acknowledged");
    assert_eq!(persisted(&app.db, coupon).await, (300, 300, 300), "counter, rows, coupon.issued events");
    let _ = first.kill().await;
    let _ = second.kill().await;
}

#[tokio::test]
async fn a_process_killed_mid_burst_loses_no_acknowledged_coupon_and_never_issues_beyond_the_quantity() {
    let app = spawn_app().await;
    let coupon = create_coupon(&app, 1_000, json!({})).await;
    let users = create_users(&app, 2_500, "KR").await;
    let (mut first, base) = serve(&app).await;

    // The burst runs on; once 400 answers are in, the process is killed without warning.
    let answered = Arc::new(AtomicUsize::new(0));
    let mut order = users.clone();
    order.shuffle(&mut rand::rng());
    let burst = {
        let (client, answered) = (app.client.clone(), answered.clone());
        let requests: Vec<_> = order
            .iter()
            .map(|&u| {
                let req = client
                    .post(format!("{base}/api/coupons/{coupon}/issue"))
                    .bearer_auth(app.customer(u))
                    .json(&json!({ "user_id": u }));
                (u, req)
            })
            .collect();
        tokio::spawn(async move {
            let gate = Arc::new(tokio::sync::Semaphore::new(100));
            let mut tasks = tokio::task::JoinSet::new();
            for (user, req) in requests {
                let (permit, answered) = (gate.clone().acquire_owned().await.unwrap(), answered.clone());
                tasks.spawn(async move {
                    let _permit = permit;
                    let shot = match req.send().await {
                        Ok(res) => {
                            let status = res.status().as_u16();
                            Shot { user, status, body: res.json().await.unwrap_or(Value::Null) }
                        }
                        Err(_) => Shot { user, status: 0, body: Value::Null },
                    };
                    answered.fetch_add(1, Ordering::Relaxed);
                    shot
                });
            }
            tasks.join_all().await
        })
    };
    eventually(30, "400 answers", || async { answered.load(Ordering::Relaxed) >= 400 }).await;
    first.kill().await.unwrap();
    let before_kill = burst.await.unwrap();
    let mut issued = acknowledged(&before_kill, true);
    assert!(!issued.is_empty() && issued.len() < 1_000, "the kill landed mid-sale: {} issued", issued.len());

    // Restarted, it takes over what the dead consumer held and the sale goes on to the end.
    let (_second, base) = serve(&app).await;
    let after = open_run(&app, &[base], coupon, &users, 100).await;
    for (user, id) in acknowledged(&after, false) {
        assert!(issued.insert(user, id).is_none(), "user {user} issued again after the restart");
    }

    settled(&app).await;
    let held = stored(&app.db, coupon).await;
    assert_eq!(held.len(), 1_000, "exactly the quantity, across the crash");
    for (user, id) in &issued {
        assert_eq!(held.get(user), Some(id), "acknowledged coupon of user {user} missing in Postgres");
    }
    // The rest were admitted by Redis while the process died before answering: their requests
    // got no answer, and the users hold the coupon (the second burst told them ALREADY_ISSUED).
    let unanswered: std::collections::HashSet<i64> =
        before_kill.iter().filter(|s| s.status == 0).map(|s| s.user).collect();
    for user in held.keys().filter(|u| !issued.contains_key(u)) {
        assert!(unanswered.contains(user), "user {user} holds a coupon nobody acknowledged nor lost an answer for");
    }
    assert_eq!(persisted(&app.db, coupon).await, (1_000, 1_000, 1_000));
}

#[tokio::test]
async fn with_postgres_gone_issuing_keeps_answering_and_the_backlog_drains_once_it_is_back() {
    let pg = std::env::var("DATABASE_URL").unwrap();
    let mut proxy = TcpProxy::start(upstream_of(&pg).await).await;
    let mut direct = String::new();
    let app = spawn_app_with(|v| {
        direct = v["DATABASE_URL"].clone();
        v.insert("DATABASE_URL".into(), proxy.url_through(&direct));
        v.insert("JUPANG_WORKERS".into(), "consumer".into());
    })
    .await;
    let db = sqlx::PgPool::connect(&direct).await.unwrap();
    let coupon = create_coupon(&app, 500, json!({})).await;
    let users = create_users(&app, 1_000, "KR").await;
    // The sale has begun: users and the coupon are cached, as they are during an open run.
    json_of(issue(&app, coupon, users[0]).await, 201).await;

    proxy.kill().await;
    let mut requests: Vec<i64> = users[1..].iter().chain(&users[1..201]).copied().collect();
    requests.shuffle(&mut rand::rng());
    let shots = open_run(&app, std::slice::from_ref(&app.base), coupon, &requests, 100).await;

    let mut issued = acknowledged(&shots, false);
    assert_eq!(issued.len(), 499, "issuing answered 201/400 only, and sold out");
    let rows_during: i64 = sqlx::query_scalar("SELECT count(*) FROM user_coupons").fetch_one(&db).await.unwrap();
    assert!(rows_during <= 1, "nothing reaches Postgres while it is gone ({rows_during} rows)");

    proxy.revive().await;
    settled(&app).await;
    let first = stored(&db, coupon).await[&users[0]].clone();
    issued.insert(users[0], first);
    assert_eq!(stored(&db, coupon).await, issued);
    assert_eq!(persisted(&db, coupon).await, (500, 500, 500));
}

#[tokio::test]
async fn batches_failing_in_postgres_are_retried_until_they_commit_and_nothing_is_lost_or_doubled() {
    let app = coupon_app().await;
    sqlx::raw_sql(
        "CREATE FUNCTION fail_issued() RETURNS trigger AS $$
         BEGIN IF NEW.type = 'coupon.issued' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$
         LANGUAGE plpgsql;
         CREATE TRIGGER fail_issued BEFORE INSERT ON outbox_events FOR EACH ROW EXECUTE FUNCTION fail_issued();",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let coupon = create_coupon(&app, 50, json!({})).await;
    let users = create_users(&app, 20, "KR").await;
    let shots = open_run(&app, std::slice::from_ref(&app.base), coupon, &users, 20).await;
    let issued = acknowledged(&shots, false);
    assert_eq!(issued.len(), 20);

    // The consumer has read them all and keeps failing: delivered, unacknowledged, not stored.
    let stream = jupang::store::redis::keys::CouponKeys::new(&app.redis_prefix, coupon).stream;
    eventually(10, "all 20 delivered", || async {
        let pending: (u64, Option<String>, Option<String>, redis::Value) = redis::cmd("XPENDING")
            .arg(&stream)
            .arg("persist")
            .query(&mut redis_conn())
            .unwrap_or((0, None, None, redis::Value::Nil));
        pending.0 == 20
    })
    .await;
    assert_eq!(persisted(&app.db, coupon).await, (0, 0, 0), "each failed batch rolled back whole");

    sqlx::raw_sql("DROP TRIGGER fail_issued ON outbox_events").execute(&app.db).await.unwrap();
    settled(&app).await;
    assert_eq!(stored(&app.db, coupon).await, issued);
    assert_eq!(persisted(&app.db, coupon).await, (20, 20, 20));
}

#[tokio::test]
async fn poison_entries_go_to_the_dead_letter_stream_after_max_deliveries_and_the_rest_is_persisted() {
    let app = coupon_app().await;
    let coupon = create_coupon(&app, 50, json!({})).await;
    let users = create_users(&app, 10, "KR").await;
    let stream = jupang::store::redis::keys::CouponKeys::new(&app.redis_prefix, coupon).stream;
    let mut conn = redis_conn();
    let mut issued =
        acknowledged(&open_run(&app, std::slice::from_ref(&app.base), coupon, &users[..5], 5).await, false);
    // Malformed, and well-formed but naming a user who does not exist.
    let _: String = redis::cmd("XADD").arg(&stream).arg("*").arg("user_id").arg("oops").query(&mut conn).unwrap();
    let now = chrono::Utc::now().to_rfc3339();
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("user_coupon_id")
        .arg(uuid::Uuid::now_v7().to_string())
        .arg("coupon_id")
        .arg(coupon)
        .arg("user_id")
        .arg(987_654_321)
        .arg("issued_at")
        .arg(&now)
        .arg("expires_at")
        .arg(&now)
        .query(&mut conn)
        .unwrap();
    issued.extend(acknowledged(&open_run(&app, std::slice::from_ref(&app.base), coupon, &users[5..], 5).await, false));

    let dead = format!("{stream}:dead");
    eventually(15, "two dead letters", || async {
        let len: u64 = redis::cmd("XLEN").arg(&dead).query(&mut redis_conn()).unwrap();
        len == 2
    })
    .await;
    settled(&app).await;
    assert_eq!(stored(&app.db, coupon).await, issued, "the ten good entries are persisted");
    assert_eq!(persisted(&app.db, coupon).await, (10, 10, 10));
    let letters: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg(&dead).arg("-").arg("+").query(&mut conn).unwrap();
    for (_, fields) in letters {
        let fields: std::collections::HashMap<_, _> = fields.into_iter().collect();
        assert_eq!(fields["dead.deliveries"], jupang::store::redis::streams::MAX_DELIVERIES.to_string(), "{fields:?}");
        assert_eq!(fields["dead.source_stream"], stream);
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"stream_dead_letter_total{sink="coupons"}"#), "{metrics}");
}

/// `jupang reconcile [args]` on `app`'s stores; returns stdout.
pub(crate) async fn reconcile(app: &TestApp, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("reconcile")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .env("DATABASE_URL", app.config.database_url.expose())
        .env("REDIS_URL", std::env::var("REDIS_URL").unwrap())
        .env("JUPANG_REDIS_PREFIX", &app.redis_prefix)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn reconcile_reports_drift_per_coupon_and_repairs_only_in_the_safe_direction() {
    let app = coupon_app().await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    let users = create_users(&app, 4, "KR").await;
    acknowledged(&open_run(&app, std::slice::from_ref(&app.base), coupon, &users, 4).await, false);
    settled(&app).await;
    // Redis lost a holder and counts three too many as remaining (as after a lost second of AOF).
    let k = jupang::store::redis::keys::CouponKeys::new(&app.redis_prefix, coupon);
    let mut conn = redis_conn();
    let _: () = redis::pipe().srem(&k.users, users[0]).incr(&k.remaining, 3).query(&mut conn).unwrap();

    let report = reconcile(&app, &[]).await;
    let row: Vec<&str> = report
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&coupon.to_string()))
        .unwrap_or_else(|| panic!("no line for coupon {coupon}:\n{report}"))
        .split_whitespace()
        .collect();
    // coupon, total, remaining, users, persisted, pending, drift
    assert_eq!(row[..7], [coupon.to_string().as_str(), "10", "9", "3", "4", "0", "-3"], "{report}");
    assert_eq!(redis_counters(&app, coupon), (9, 3), "a report changes nothing");

    let repaired = reconcile(&app, &["--repair"]).await;
    assert!(repaired.contains("1 users added to Redis, remaining lowered by 3"), "{repaired}");
    assert_eq!(redis_counters(&app, coupon), (6, 4));
    let held: u64 = redis::cmd("HLEN").arg(&k.held).query(&mut conn).unwrap();
    assert_eq!(held, 0, "read-your-writes records of persisted coupons are dropped");
    let again = reconcile(&app, &[]).await;
    assert!(
        again.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()[..7]
            == [coupon.to_string().as_str(), "10", "6", "4", "4", "0", "0"]),
        "{again}"
    );
    // The repaired counters let exactly six more in.
    let more = create_users(&app, 8, "KR").await;
    let issued = acknowledged(&open_run(&app, std::slice::from_ref(&app.base), coupon, &more, 8).await, false);
    assert_eq!(issued.len(), 6);
}
