//! The V2 (`redis-lua`) coupon flash path over real HTTP: an open run, two instances sharing a
//! sale, read-your-writes before the consumer runs, live counters, hydration and edits.

use std::collections::HashSet;

use chrono::{TimeDelta, Utc};
use rand::seq::SliceRandom;
use reqwest::Method;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::{
    TestApp, acknowledged, append_admission, assert_error, assert_metric, coupon_app, coupon_state, create_coupon,
    issue, json_of, manager, open_run, option, pay, persisted, placed, redis_conn, redis_counters, scrape, settled,
    sibling, spawn_app, spawn_app_with, stored,
};

/// `users` new users, `double_clickers` of whom ask twice, in random order.
async fn crowd(app: &TestApp, users: usize, double_clickers: usize) -> Vec<i64> {
    let users = app.create_users(users, "KR", 0).await;
    let mut requests: Vec<i64> = users.iter().chain(&users[..double_clickers]).copied().collect();
    requests.shuffle(&mut rand::rng());
    requests
}

/// A second instance on `app`'s database and Redis prefix running `workers`, serving until the
/// returned token is cancelled (or dropped with the test); returns its base URL.
async fn serving_sibling(app: &TestApp, workers: &str) -> (String, CancellationToken) {
    let built = sibling(app, |v| {
        v.insert("JUPANG_WORKERS".into(), workers.into());
    })
    .await;
    let base = format!("http://{}", built.local_addr());
    let token = built.shutdown_token();
    tokio::spawn(built.run_until_stopped());
    (base, token)
}

#[tokio::test]
async fn an_open_run_of_10000_requests_for_1000_coupons_issues_exactly_1000_once_each_and_persists_them() {
    let app = coupon_app().await;
    let coupon = create_coupon(&app, 1_000, json!({})).await;
    let requests = crowd(&app, 8_000, 2_000).await;

    let shots = open_run(&app, std::slice::from_ref(&app.base), coupon, &requests, 200).await;

    assert_eq!(shots.len(), 10_000);
    let issued = acknowledged(&shots, false);
    assert_eq!(issued.len(), 1_000, "201 answers");
    assert_eq!(redis_counters(&app, coupon), (0, 1_000), "Redis: none left, one holder per coupon");
    settled(&app).await;
    assert_eq!(stored(&app.db, coupon).await, issued, "Postgres holds exactly what was acknowledged");
    assert_eq!(persisted(&app.db, coupon).await, (1_000, 1_000, 1_000), "counter, rows, coupon.issued events");
}

#[tokio::test]
async fn two_instances_sharing_one_sale_issue_exactly_the_quantity_once_per_user() {
    let app = coupon_app().await;
    let (other, _stop) = serving_sibling(&app, "consumer").await;
    let coupon = create_coupon(&app, 300, json!({})).await;
    let requests = crowd(&app, 1_000, 300).await;

    let shots = open_run(&app, &[app.base.clone(), other], coupon, &requests, 100).await;

    let issued = acknowledged(&shots, false);
    assert_eq!(issued.len(), 300);
    settled(&app).await;
    assert_eq!(stored(&app.db, coupon).await, issued);
    assert_eq!(persisted(&app.db, coupon).await, (300, 300, 300));
}

#[tokio::test]
async fn a_coupon_issued_a_moment_ago_pays_an_order_before_the_consumer_runs_and_is_persisted_once() {
    // No consumer: only the payment can bring the coupon into Postgres.
    let app = spawn_app().await;
    let coupon = create_coupon(
        &app,
        10,
        json!({"discount_type": "FIXED", "discount_value": 1_000,
                                                "max_discount": null, "min_order_amount": 0}),
    )
    .await;
    let user = app.create_user("KR", 100_000).await;
    let opt = option(&app, 10_000, 5).await;
    let order = placed(&app, user, &[(opt, 1)]).await;

    let uc: Uuid =
        json_of(issue(&app, coupon, user).await, 201).await["user_coupon_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(persisted(&app.db, coupon).await, (0, 0, 0), "not persisted yet");
    let paid = json_of(pay(&app, user, &order, Some(uc)).await, 200).await;

    assert_eq!(paid["discount_amount"]["amount"], 1_000);
    assert_eq!(coupon_state(&app, uc).await, ("USED".to_owned(), true, Some(order.parse().unwrap())));
    assert_eq!(persisted(&app.db, coupon).await, (1, 1, 1));
    // The consumer, started later, finds the entry already persisted and adds nothing.
    let (_, stop) = serving_sibling(&app, "consumer").await;
    settled(&app).await;
    assert_eq!(persisted(&app.db, coupon).await, (1, 1, 1), "persisted exactly once");
    assert_eq!(coupon_state(&app, uc).await.0, "USED", "the consumer's insert did not touch the used coupon");
    stop.cancel();
}

#[tokio::test]
async fn a_users_coupon_list_includes_coupons_issued_a_moment_ago() {
    let app = spawn_app().await;
    // Three coupons: three hash tags, so three slots on a cluster (one read spans them).
    let mut coupons = Vec::new();
    for _ in 0..3 {
        coupons.push(create_coupon(&app, 10, json!({})).await);
    }
    let user = app.create_user("KR", 0).await;
    let mut issued = Vec::new();
    for coupon in &coupons {
        issued
            .push(json_of(issue(&app, *coupon, user).await, 201).await["user_coupon_id"].as_str().unwrap().to_owned());
    }
    let res = app.get_as(user, &format!("/api/users/{user}/coupons?status=AVAILABLE")).await;
    let page = json_of(res, 200).await;
    let mut listed: Vec<String> =
        page["items"].as_array().unwrap().iter().map(|i| i["user_coupon_id"].as_str().unwrap().to_owned()).collect();
    listed.sort();
    issued.sort();
    assert_eq!((page["total"].clone(), listed), (json!(3), issued));
    for coupon in coupons {
        assert_eq!(persisted(&app.db, coupon).await, (1, 1, 1), "persisted on read");
    }
}

#[tokio::test]
async fn the_coupon_views_and_stats_show_live_redis_counters_before_postgres_catches_up() {
    let app = spawn_app().await;
    // A second coupon, of another slot on a cluster: the list reads both live counters at once.
    let other = create_coupon(&app, 5, json!({})).await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    for user in app.create_users(3, "KR", 0).await {
        json_of(issue(&app, coupon, user).await, 201).await;
    }
    json_of(issue(&app, other, app.create_user("KR", 0).await).await, 201).await;
    let detail = json_of(app.get(&format!("/api/coupons/{coupon}")).await, 200).await;
    assert_eq!(detail["remaining_quantity"], 7);
    let listed = json_of(app.get("/api/coupons").await, 200).await;
    let remaining: Vec<(i64, i64)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_i64().unwrap(), i["remaining_quantity"].as_i64().unwrap()))
        .collect();
    assert!(remaining.contains(&(coupon, 7)) && remaining.contains(&(other, 4)), "{remaining:?}");
    let path = format!("/api/admin/coupons/{coupon}/stats");
    let stats = json_of(app.request(Method::GET, &path).bearer_auth(manager(&app)).send().await.unwrap(), 200).await;
    assert_eq!(
        stats,
        json!({"coupon_id": coupon, "total_quantity": 10, "issued": 3, "persisted": 0, "used": 0, "revoked": 0, "remaining": 7})
    );
    // The gauge is process-wide, but coupon ids are unique per test database: this series is
    // this test's alone, so its value is exact.
    assert_metric(&scrape(&app).await, "coupon_remaining", &[&format!(r#"coupon_id="{coupon}""#)], 7.0);
}

#[tokio::test]
async fn raising_the_total_of_a_running_sale_lets_exactly_that_many_more_in() {
    let app = spawn_app().await;
    let coupon = create_coupon(&app, 2, json!({})).await;
    let users = app.create_users(6, "KR", 0).await;
    for u in &users[..2] {
        json_of(issue(&app, coupon, *u).await, 201).await;
    }
    assert_error(issue(&app, coupon, users[2]).await, 400, "COUPON_SOLD_OUT").await;

    let path = format!("/api/admin/coupons/{coupon}");
    let raised = app.send_json(Method::PATCH, &path, Some(&manager(&app)), &json!({"total_quantity": 5})).await;
    assert_eq!(json_of(raised, 200).await["remaining_quantity"], 3);
    assert_eq!(redis_counters(&app, coupon), (3, 2));

    let answers: Vec<u16> = {
        let mut v = Vec::new();
        for u in &users[2..] {
            v.push(issue(&app, coupon, *u).await.status().as_u16());
        }
        v
    };
    assert_eq!(answers, [201, 201, 201, 400]);
    // A total below what was admitted is refused even though Postgres has persisted nothing.
    let lower = app.send_json(Method::PATCH, &path, Some(&manager(&app)), &json!({"total_quantity": 4})).await;
    assert_error(lower, 400, "COUPON_UPDATE_NOT_ALLOWED").await;
    assert_eq!(redis_counters(&app, coupon), (0, 5));
}

#[tokio::test]
async fn two_instances_hydrating_the_same_coupons_at_once_count_every_holder_once() {
    let app = spawn_app_with(|v| {
        v.insert("JUPANG_ISSUE_STRATEGY".into(), "db-pessimistic".into());
    })
    .await;
    // Coupons made under V1 (not hydrated), each with 30 persisted holders and 20 admissions in
    // its stream not yet persisted.
    let users = app.create_users(50, "KR", 0).await;
    let mut coupons = Vec::new();
    for _ in 0..8 {
        let coupon = create_coupon(&app, 100, json!({})).await;
        for u in &users[..30] {
            json_of(issue(&app, coupon, *u).await, 201).await;
        }
        for u in &users[30..] {
            let now = Utc::now();
            append_admission(&app, coupon, *u, now, now + TimeDelta::days(7));
        }
        coupons.push(coupon);
    }
    let build = || {
        sibling(&app, |v| {
            v.insert("JUPANG_ISSUE_STRATEGY".into(), "db-pessimistic".into());
        })
    };
    let (a, b) = (build().await, build().await);

    for coupon in &coupons {
        let (x, y) =
            tokio::join!(a.state().coupon_admission.hydrate(*coupon), b.state().coupon_admission.hydrate(*coupon));
        assert_eq!(x.unwrap(), y.unwrap(), "both see the published terms");
        assert_eq!(redis_counters(&app, *coupon), (50, 50), "coupon {coupon}: 100 - (30 persisted + 20 pending)");
    }
    let distinct: HashSet<i64> = coupons.iter().copied().collect();
    assert_eq!(distinct.len(), 8);
}

#[tokio::test]
async fn issuing_still_works_after_redis_forgets_its_scripts() {
    let app = spawn_app().await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    let [a, b] = app.create_users(2, "KR", 0).await[..] else { unreachable!() };
    json_of(issue(&app, coupon, a).await, 201).await;
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut redis_conn()).unwrap();
    json_of(issue(&app, coupon, b).await, 201).await;
    assert_eq!(redis_counters(&app, coupon), (8, 2));
}
