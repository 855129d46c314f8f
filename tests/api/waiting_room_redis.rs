//! The waiting room through a crash of Redis: a `redis-server` of the test's own with
//! `appendfsync always`, killed with `kill -9` in the middle of admissions and started again on
//! its AOF. (A `kill -9` of `serve` is in `waiting_room.rs`.)

use chrono::TimeDelta;
use jupang::http::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    support::{PrivateRedis, TestApp, create_coupon, eventually, json_of, spawn_app_with},
    waiting_room::{admitted, configure, enter, issue_on, poll, settings},
};

/// The room as an `ops_admin` reads it, if the server can answer (`None` while Redis is away).
async fn room(app: &TestApp, event: &str) -> Option<Value> {
    let admin = app.token(1, &[Role::OpsAdmin]);
    let res = app.request(Method::GET, &format!("/api/admin/waiting-rooms/{event}")).bearer_auth(admin).send().await;
    let res = res.ok().filter(|r| r.status() == 200)?;
    res.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_appendfsync_always_a_kill_9_of_redis_keeps_every_ticket_admission_and_pass_of_the_room() {
    let mut redis = PrivateRedis::start("always").await;
    let url = redis.url();
    let app = spawn_app_with(|v| {
        v.insert("REDIS_URL".into(), url);
    })
    .await;
    let coupon = create_coupon(&app, 200, json!({})).await;
    let event = format!("coupon/{coupon}");
    // 20 admissions a second: 100 entrants take 5 s, so Redis dies with most of them waiting.
    configure(&app, &event, settings(20, 1_000, 60, TimeDelta::seconds(-1))).await;
    let users = app.create_users(101, "KR", 0).await;
    let mut tickets = Vec::new();
    for &user in &users[..100] {
        let (status, t) = enter(&app.client, &app.base, &app.customer(user), &event).await;
        assert_eq!(status, 201, "{t}");
        tickets.push((user, t["ticket_id"].as_str().unwrap().to_owned(), t["position"].as_u64().unwrap()));
    }
    let first = admitted(&app, users[0], &event, &tickets[0].1).await;
    let before = room(&app, &event).await.expect("the room before the kill");
    let admitted_before = before["admitted"].as_u64().unwrap();
    assert!(before["waiting"].as_u64().unwrap() > 0, "Redis dies while people wait: {before}");

    redis.kill9();
    redis.restart().await;

    // Everything acknowledged before the kill is still there: the room, its line, every ticket.
    eventually(10, "the room answers again", || async { room(&app, &event).await.is_some() }).await;
    let after = room(&app, &event).await.expect("the room after the restart");
    assert_eq!(after["epoch"], before["epoch"], "{after}");
    let admitted_after = after["admitted"].as_u64().unwrap();
    assert!(admitted_after >= admitted_before, "admissions lost: {admitted_before} -> {admitted_after}");
    assert_eq!(admitted_after + after["waiting"].as_u64().unwrap(), 100, "every entrant still in line: {after}");
    for (user, ticket, position) in &tickets {
        let (status, t) = enter(&app.client, &app.base, &app.customer(*user), &event).await;
        assert_eq!((status, t["ticket_id"].as_str()), (200, Some(ticket.as_str())), "the same ticket: {t}");
        assert_eq!(t["position"].as_u64(), Some(*position));
    }
    // The admitted ticket keeps its pass (same expiry), and the pass opens the coupon.
    let again = poll(&app.client, &app.base, &app.customer(users[0]), &event, &tickets[0].1).await;
    assert_eq!((&again["status"], &again["pass_expires_at"]), (&json!("ADMITTED"), &first["pass_expires_at"]));
    json_of(issue_on(&app, &app.base, coupon, users[0], first["pass"].as_str()).await, 201).await;
    // The line goes on: a newcomer queues behind, and the last one before the kill gets in.
    let (status, t) = enter(&app.client, &app.base, &app.customer(users[100]), &event).await;
    assert_eq!((status, t["position"].as_u64()), (201, Some(101)), "{t}");
    let (last_user, last_ticket, _) = tickets.last().unwrap();
    admitted(&app, *last_user, &event, last_ticket).await;
}
