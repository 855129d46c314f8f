//! The V2 coupon path when things break: a process killed mid-burst, Postgres gone during a
//! sale, a consumer whose batches fail, a poison entry, and the reconciler's repairs. In every
//! case each coupon acknowledged with 201 ends up in Postgres exactly once.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use chrono::Utc;
use rand::seq::SliceRandom;
use serde_json::json;
use tokio::process::Child;

use crate::support::{
    TestApp, acknowledged, append_admission, assert_metric, await_metric, burst,
    child::{self, ChildServe, reconcile},
    coupon_app, coupon_child_app, coupon_keys, create_coupon, eventually, issue, json_of, open_run, persisted,
    proxy::{TcpProxy, upstream_of},
    redis_conn, redis_counters, settled, spawn_app, spawn_app_with, stored,
};

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
    let users = app.create_users(1_000, "KR", 0).await;
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
    let users = app.create_users(2_500, "KR", 0).await;
    let (mut first, base) = serve(&app).await;

    // The burst runs on; once 400 answers are in, the process is killed without warning.
    let answered = Arc::new(AtomicUsize::new(0));
    let mut order = users.clone();
    order.shuffle(&mut rand::rng());
    let burst = burst(&app, &[base], coupon, &order, 100, answered.clone());
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
    let users = app.create_users(1_000, "KR", 0).await;
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
    let users = app.create_users(20, "KR", 0).await;
    let shots = open_run(&app, std::slice::from_ref(&app.base), coupon, &users, 20).await;
    let issued = acknowledged(&shots, false);
    assert_eq!(issued.len(), 20);

    // The consumer keeps failing: what it read is delivered again and again, unacknowledged, not
    // stored. (It may have read only part of the burst: a new sale wakes it at once, and while
    // its own pending entries fail it does not read further.)
    let stream = coupon_keys(&app, coupon).stream;
    eventually(10, "a failed batch delivered again", || async {
        let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(&stream)
            .arg("persist")
            .arg("-")
            .arg("+")
            .arg(100)
            .query(&mut redis_conn())
            .unwrap_or_default();
        pending.iter().any(|(_, _, _, deliveries)| *deliveries >= 2)
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
    // A server process of its own, so its dead-letter counter holds this test's entries only.
    let app = coupon_child_app().await;
    let coupon = create_coupon(&app, 50, json!({})).await;
    let users = app.create_users(10, "KR", 0).await;
    let stream = coupon_keys(&app, coupon).stream;
    let mut conn = redis_conn();
    let mut issued =
        acknowledged(&open_run(&app, std::slice::from_ref(&app.base), coupon, &users[..5], 5).await, false);
    // Malformed, and well-formed but naming a user who does not exist.
    let _: String = redis::cmd("XADD").arg(&stream).arg("*").arg("user_id").arg("oops").query(&mut conn).unwrap();
    append_admission(&app, coupon, 987_654_321, Utc::now(), Utc::now());
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
    // Counted just after each entry is moved: await the count, then it must be exact.
    let metrics = await_metric(&app, "stream_dead_letter_total", &[r#"sink="coupons""#], 2.0).await;
    assert_metric(&metrics, "stream_dead_letter_total", &[r#"sink="orders""#], 0.0);
}

#[tokio::test]
async fn reconcile_reports_drift_per_coupon_and_repairs_only_in_the_safe_direction() {
    let app = coupon_app().await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    let users = app.create_users(4, "KR", 0).await;
    acknowledged(&open_run(&app, std::slice::from_ref(&app.base), coupon, &users, 4).await, false);
    settled(&app).await;
    // Redis lost a holder and counts three too many as remaining (as after a lost second of AOF).
    let k = coupon_keys(&app, coupon);
    let mut conn = redis_conn();
    let _: () = redis::cmd("SREM").arg(&k.users).arg(users[0]).query(&mut conn).unwrap();
    let _: () = redis::cmd("INCRBY").arg(&k.remaining).arg(3).query(&mut conn).unwrap();

    let report = reconcile(&app, &[]).await;
    let row = child::coupon_row(&report, coupon);
    assert_eq!(row, [coupon.to_string().as_str(), "10", "9", "3", "4", "0", "-3"], "{report}");
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
    let more = app.create_users(8, "KR", 0).await;
    let issued = acknowledged(&open_run(&app, std::slice::from_ref(&app.base), coupon, &more, 8).await, false);
    assert_eq!(issued.len(), 6);
}
