//! The waiting room's rules that need a room under way to show (api.md "Waiting room"): the
//! estimated wait from the measured admission rate, a revoke made on one instance honoured by
//! another within the documented bound, and the real count of live passes when `max_active` is
//! lowered below it.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use jupang::http::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{
    support::{TestApp, assert_error, counts, coupon_app, create_coupon, json_of, serving_sibling, spawn_app, time_of},
    waiting_room::{admitted, configure, enter, issue_on, poll, refused, settings},
};

/// The room as an `ops_admin` reads it.
async fn room(app: &TestApp, event: &str) -> Value {
    let admin = app.token(1, &[Role::OpsAdmin]);
    let res = app.request(Method::GET, &format!("/api/admin/waiting-rooms/{event}")).bearer_auth(admin).send().await;
    json_of(res.unwrap(), 200).await
}

/// Users `users` enter one after another on `app`: their ticket ids, in arrival order.
async fn enter_all(app: &TestApp, event: &str, users: impl Iterator<Item = i64>) -> Vec<(i64, String)> {
    let mut tickets = Vec::new();
    for user in users {
        let (status, t) = enter(&app.client, &app.base, &app.customer(user), event).await;
        assert_eq!(status, 201, "{t}");
        tickets.push((user, t["ticket_id"].as_str().unwrap().to_owned()));
    }
    tickets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_estimated_wait_follows_the_measured_rate_when_the_cap_holds_admissions_below_the_configured_one() {
    let app = spawn_app().await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    let event = format!("coupon/{coupon}");
    // Configured at 200/s, but at most 10 passes of 1 s alive: about 10 admissions a second.
    configure(&app, &event, settings(200, 10, 1, TimeDelta::seconds(-1))).await;
    let tickets = enter_all(&app, &event, 1..=300).await;
    let (last_user, last_ticket) = tickets.last().unwrap().clone();
    let token = app.customer(last_user);

    // At the configured rate the back of the line would be told about 1.5 s; at the real rate
    // (~10/s) about 25 s. The measured average starts at the configured rate and follows the
    // real one within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(15);
    let seen = loop {
        let t = poll(&app.client, &app.base, &token, &event, &last_ticket).await;
        if t["estimated_wait_secs"].as_u64().unwrap() >= t["people_ahead"].as_u64().unwrap() / 20 {
            break t;
        }
        assert!(Instant::now() < deadline, "after 15 s the estimate still follows the configured rate: {t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ahead = seen["people_ahead"].as_u64().unwrap();
    let wait = seen["estimated_wait_secs"].as_u64().unwrap();
    assert!(ahead > 100, "still a long line behind the cap: {seen}");
    assert!(wait <= ahead / 5 + 1, "the estimate is near the real rate (~10/s), not below 5/s: {seen}");
    // The interval to poll at still comes from the configured rate: nobody is told to come back
    // after its turn.
    assert!(seen["poll_after_ms"].as_u64().unwrap() <= wait * 1000 / 2, "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoke_made_on_one_instance_is_honoured_by_another_within_one_second() {
    let app = coupon_app().await;
    let users = app.create_users(2, "KR", 0).await;
    let (a, c) = (users[0], users[1]);
    let coupon = create_coupon(&app, 10, json!({})).await;
    let event = format!("coupon/{coupon}");
    let body = settings(100, 100, 60, TimeDelta::seconds(-1));
    configure(&app, &event, body.clone()).await;
    // Instance B starts after the room exists (it loads it at start-up) and listens to the
    // change notices before anything below is changed.
    let (b, stop_second) = serving_sibling(&app).await;

    let mut passes = Vec::new();
    for user in [a, c] {
        let (_, t) = enter(&app.client, &app.base, &app.customer(user), &event).await;
        let t = admitted(&app, user, &event, t["ticket_id"].as_str().unwrap()).await;
        passes.push(t["pass"].as_str().unwrap().to_owned());
    }
    refused(issue_on(&app, &b, coupon, c, None).await, "missing").await;
    json_of(issue_on(&app, &b, coupon, a, Some(&passes[0])).await, 201).await;

    // Revoked on A; B is asked again and again with A's pass until it refuses it. Until then it
    // accepts the pass (and refuses the issue itself: already issued).
    let mut revoke = body;
    revoke["revoke_passes"] = json!(true);
    let sent = Instant::now();
    configure(&app, &event, revoke).await;
    let honoured = loop {
        let res = issue_on(&app, &b, coupon, a, Some(&passes[0])).await;
        if res.status() == 403 {
            let took = sent.elapsed();
            refused(res, "revoked").await;
            break took;
        }
        assert_error(res, 400, "ALREADY_ISSUED").await;
        assert!(sent.elapsed() < Duration::from_secs(5), "instance B still accepts a revoked pass after 5 s");
    };
    eprintln!("instance B refused the revoked pass {honoured:?} after the revoke was sent to A");
    assert!(honoured <= Duration::from_secs(1), "B honoured the revoke after {honoured:?} (bound: 1 s)");
    // The other holder's unused pass is refused on B as well, and nothing more was issued.
    refused(issue_on(&app, &b, coupon, c, Some(&passes[1])).await, "revoked").await;
    assert_eq!(counts(&app, coupon).await, (1, 1), "one coupon, issued before the revoke");
    stop_second.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowering_max_active_shows_the_passes_still_alive_and_admits_nobody_until_fewer_are() {
    let app = spawn_app().await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    let event = format!("coupon/{coupon}");
    let ttl_ms = 3_000;
    configure(&app, &event, settings(1_000, 50, 3, TimeDelta::seconds(-1))).await;
    let first = enter_all(&app, &event, 1..=50).await;
    let mut expiries = Vec::new();
    for (user, ticket) in &first {
        expiries.push(time_of(&admitted(&app, *user, &event, ticket).await["pass_expires_at"]).timestamp_millis());
    }
    assert_eq!(room(&app, &event).await["active"], 50);

    let lowered = configure(&app, &event, settings(1_000, 10, 3, TimeDelta::seconds(-1))).await;
    assert_eq!((&lowered["max_active"], &lowered["active"]), (&json!(10), &json!(50)), "the real count: {lowered}");
    assert!(expiries.iter().all(|e| *e > Utc::now().timestamp_millis()), "the passes outlive the change");

    let late = enter_all(&app, &event, 51..=51).await;
    let t = admitted(&app, 51, &event, &late[0].1).await;
    // Admitted at (its expiry - ttl) at the latest: by then at most 9 earlier passes were alive.
    let admitted_ms = time_of(&t["pass_expires_at"]).timestamp_millis() - ttl_ms;
    let alive = expiries.iter().filter(|e| **e > admitted_ms).count();
    assert!(alive < 10, "admitted with {alive} earlier passes alive (max_active lowered to 10)");
    let now = room(&app, &event).await;
    assert!(now["active"].as_u64().unwrap() <= 10, "{now}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admissions_never_run_ahead_of_admit_per_second_by_more_than_the_burst_with_two_instances_ticking() {
    let app = spawn_app().await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    let event = format!("coupon/{coupon}");
    // The rate binds, not the cap: 50/s, room for everyone, passes that outlive the test.
    configure(&app, &event, settings(50, 1_000, 60, TimeDelta::seconds(-1))).await;
    let (_b, stop_second) = serving_sibling(&app).await;
    let tickets = enter_all(&app, &event, 1..=200).await;
    let mut admitted_ms = Vec::new();
    for (user, ticket) in &tickets {
        let t = admitted(&app, *user, &event, ticket).await;
        admitted_ms.push((t["position"].as_u64().unwrap(), time_of(&t["pass_expires_at"]).timestamp_millis()));
    }
    stop_second.cancel();
    admitted_ms.sort();
    // A pass expires 60 s after its admission step (Redis's clock): these are admission times.
    let at: Vec<i64> = admitted_ms.iter().map(|(_, e)| e - 60_000).collect();
    assert!(at.windows(2).all(|w| w[0] <= w[1]), "admitted out of position order");
    // At most 50 a second plus the burst (100 ms worth, 5): 56 admissions need more than 1 s.
    for (i, w) in at.windows(56).enumerate() {
        assert!(w[55] - w[0] >= 1_000, "positions {}..={} admitted within {} ms", i + 1, i + 56, w[55] - w[0]);
    }
    let span = at[199] - at[0];
    assert!(span >= 3_800, "200 admissions at 50/s took {span} ms");
}
