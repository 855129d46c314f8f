//! `Idempotency-Key` on the wallet charge: replay, reuse, in-flight, takeover, scope, races.

use std::time::Duration;

use jupang::{
    http::idempotency::fingerprint,
    store::pg::idempotency::{self as store, ClaimOutcome},
};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    TestApp, assert_error, balance_of, count, json_of, option, order_request, pay_request, placed, send_all, spawn_app,
    stock_of,
};

fn path(user: i64) -> String {
    format!("/api/users/{user}/balance/charge")
}

async fn charge_with_key(app: &TestApp, user: i64, key: &str, body: &Value) -> Response {
    app.request(Method::POST, &path(user))
        .bearer_auth(app.customer(user))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn charges_of(app: &TestApp, user: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM balance_transactions WHERE user_id = $1")
        .bind(user)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// What the server fingerprints for a JSON body sent by reqwest (compact serde_json bytes).
fn fingerprint_of(user: i64, body: &Value) -> String {
    fingerprint(&Method::POST, &path(user), &serde_json::to_vec(body).unwrap())
}

async fn parts(res: Response) -> (StatusCode, Option<String>, String) {
    let replayed = res.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap().to_owned());
    (res.status(), replayed, res.text().await.unwrap())
}

#[tokio::test]
async fn a_repeated_request_replays_the_first_status_and_body_and_charges_once() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 1_000).await;
    let body = json!({"amount": 5_000});
    let (s1, r1, b1) = parts(charge_with_key(&app, user, "charge-1", &body).await).await;
    assert_eq!((s1, r1), (StatusCode::OK, None));
    let (s2, r2, b2) = parts(charge_with_key(&app, user, "charge-1", &body).await).await;
    assert_eq!((s2, r2.as_deref()), (StatusCode::OK, Some("true")));
    assert_eq!(b1, b2, "the replay is byte-identical");
    // The versioned path is the same route, hence the same request.
    let v1 = app
        .request(Method::POST, &format!("/api/v1/users/{user}/balance/charge"))
        .bearer_auth(app.customer(user))
        .header("Idempotency-Key", "charge-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(parts(v1).await.2, b1);
    assert_eq!(balance_of(&app, user).await, 6_000);
    assert_eq!(charges_of(&app, user).await, 1);
}

#[tokio::test]
async fn requests_without_a_key_are_each_executed() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    for _ in 0..2 {
        let res = app.send_json(Method::POST, &path(user), Some(&app.customer(user)), &json!({"amount": 10})).await;
        json_of(res, 200).await;
    }
    assert_eq!(balance_of(&app, user).await, 20);
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_422_idempotency_key_reused_and_charges_nothing_more() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    json_of(charge_with_key(&app, user, "k", &json!({"amount": 100})).await, 200).await;
    let res = charge_with_key(&app, user, "k", &json!({"amount": 200})).await;
    assert_error(res, 422, "IDEMPOTENCY_KEY_REUSED").await;
    assert_eq!(balance_of(&app, user).await, 100);
}

#[tokio::test]
async fn a_rejected_request_is_replayed_with_the_same_error() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let body = json!({"amount": 0});
    let (s1, _, b1) = parts(charge_with_key(&app, user, "bad", &body).await).await;
    let (s2, r2, b2) = parts(charge_with_key(&app, user, "bad", &body).await).await;
    assert_eq!((s1, s2, r2.as_deref()), (StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST, Some("true")));
    assert_eq!(b1, b2);
    assert!(b1.contains("VALIDATION_ERROR") && b1.contains("amount"), "{b1}");
    assert_eq!(charges_of(&app, user).await, 0);
}

#[tokio::test]
async fn the_same_key_while_the_first_is_running_is_409_idempotency_in_progress() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let body = json!({"amount": 300});
    // A fresh claim of the same request by an attempt that is still running.
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, state, claim_token, expires_at)
         VALUES ($1, 'busy', $2, 'IN_PROGRESS', $3, now() + interval '1 day')",
    )
    .bind(user)
    .bind(fingerprint_of(user, &body))
    .bind(Uuid::now_v7())
    .execute(&app.db)
    .await
    .unwrap();
    assert_error(charge_with_key(&app, user, "busy", &body).await, 409, "IDEMPOTENCY_IN_PROGRESS").await;
    assert_eq!(balance_of(&app, user).await, 0);
    let state: String = sqlx::query_scalar("SELECT state FROM idempotency_keys WHERE user_id = $1 AND key = 'busy'")
        .bind(user)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(state, "IN_PROGRESS", "the running attempt keeps its claim");
}

#[tokio::test]
async fn a_claim_abandoned_past_its_lease_is_taken_over_and_the_retry_charges_once() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let body = json!({"amount": 700});
    // What a process that crashed mid-request leaves: a claim, no charge (its transaction died).
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, state, claim_token, claimed_at, expires_at)
         VALUES ($1, 'crashed', $2, 'IN_PROGRESS', $3, now() - interval '10 minutes', now() + interval '1 day')",
    )
    .bind(user)
    .bind(fingerprint_of(user, &body))
    .bind(Uuid::now_v7())
    .execute(&app.db)
    .await
    .unwrap();
    let first = parts(charge_with_key(&app, user, "crashed", &body).await).await;
    assert_eq!((first.0, first.1.as_deref()), (StatusCode::OK, None));
    let again = parts(charge_with_key(&app, user, "crashed", &body).await).await;
    assert_eq!((again.0, again.1.as_deref(), &again.2), (StatusCode::OK, Some("true"), &first.2));
    assert_eq!(balance_of(&app, user).await, 700);
}

#[tokio::test]
async fn an_expired_answer_counts_as_absent() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    sqlx::query(
        "INSERT INTO idempotency_keys
             (user_id, key, request_hash, state, response_status, response_body, created_at, expires_at)
         VALUES ($1, 'old', 'another request', 'COMPLETED', 200, '{}', now() - interval '2 days',
                 now() - interval '1 day')",
    )
    .bind(user)
    .execute(&app.db)
    .await
    .unwrap();
    let res = charge_with_key(&app, user, "old", &json!({"amount": 50})).await;
    assert_eq!(json_of(res, 200).await["balance"]["amount"], 50);
}

#[tokio::test]
async fn a_malformed_key_is_400_validation_error_naming_the_header_and_charges_nothing() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    for key in [String::new(), "k".repeat(256)] {
        let err =
            assert_error(charge_with_key(&app, user, &key, &json!({"amount": 1})).await, 400, "VALIDATION_ERROR").await;
        assert_eq!(err["details"]["field"], "Idempotency-Key", "key of {} chars", key.len());
    }
    let non_ascii = app
        .request(Method::POST, &path(user))
        .bearer_auth(app.customer(user))
        .header("Idempotency-Key", reqwest::header::HeaderValue::from_bytes("키".as_bytes()).unwrap())
        .json(&json!({"amount": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(assert_error(non_ascii, 400, "VALIDATION_ERROR").await["details"]["field"], "Idempotency-Key");
    json_of(charge_with_key(&app, user, &"k".repeat(255), &json!({"amount": 1})).await, 200).await;
    assert_eq!(balance_of(&app, user).await, 1);
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys").fetch_one(&app.db).await.unwrap();
    assert_eq!(keys, 1, "refused keys are not stored");
}

#[tokio::test]
async fn keys_are_scoped_per_user() {
    let app = spawn_app().await;
    let alice = app.create_user("KR", 0).await;
    let bob = app.create_user("KR", 0).await;
    let body = json!({"amount": 400});
    json_of(charge_with_key(&app, alice, "shared-key", &body).await, 200).await;
    let res = charge_with_key(&app, bob, "shared-key", &body).await;
    assert!(res.headers().get("idempotent-replayed").is_none());
    assert_eq!(json_of(res, 200).await["user_id"], bob);
    assert_eq!((balance_of(&app, alice).await, balance_of(&app, bob).await), (400, 400));
}

#[tokio::test]
async fn twenty_concurrent_requests_with_one_key_charge_exactly_once() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let token = app.customer(user);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let req = app
                .request(Method::POST, &path(user))
                .bearer_auth(&token)
                .header("Idempotency-Key", "double-click")
                .json(&json!({"amount": 1_000}));
            tokio::spawn(async move { parts(req.send().await.unwrap()).await })
        })
        .collect();
    let mut bodies = Vec::new();
    for t in tasks {
        let (status, _, body) = t.await.unwrap();
        match status {
            StatusCode::OK => bodies.push(body),
            StatusCode::CONFLICT => assert!(body.contains("IDEMPOTENCY_IN_PROGRESS"), "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(!bodies.is_empty());
    assert!(bodies.iter().all(|b| *b == bodies[0]), "every 200 is the same answer");
    assert_eq!(balance_of(&app, user).await, 1_000);
    assert_eq!(charges_of(&app, user).await, 1);
}

#[tokio::test]
async fn a_server_error_releases_the_key_so_a_retry_runs_and_charges_once() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    // Make the history insert fail for this amount: the charge's transaction rolls back (500).
    sqlx::raw_sql(
        "CREATE FUNCTION fail_777() RETURNS trigger AS $$
         BEGIN IF NEW.amount = 777 THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$
         LANGUAGE plpgsql;
         CREATE TRIGGER fail_777 BEFORE INSERT ON balance_transactions FOR EACH ROW EXECUTE FUNCTION fail_777();",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let body = json!({"amount": 777});
    assert_error(charge_with_key(&app, user, "flaky", &body).await, 500, "INTERNAL").await;
    assert_eq!(balance_of(&app, user).await, 0, "the failed attempt changed nothing");
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys").fetch_one(&app.db).await.unwrap();
    assert_eq!(kept, 0, "the claim was released");
    sqlx::raw_sql("DROP TRIGGER fail_777 ON balance_transactions").execute(&app.db).await.unwrap();
    json_of(charge_with_key(&app, user, "flaky", &body).await, 200).await;
    let replay = charge_with_key(&app, user, "flaky", &body).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(balance_of(&app, user).await, 777);
}

#[tokio::test]
async fn an_attempt_whose_claim_was_taken_over_cannot_complete() {
    let app = spawn_app().await;
    let (lease, keep) = (Duration::from_secs(30), Duration::from_secs(86_400));
    let (slow, fresh) = (Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(store::claim(&app.db, 1, "k", "fp", slow, lease, keep).await.unwrap().0, ClaimOutcome::Claimed);
    assert_eq!(store::claim(&app.db, 1, "k", "fp", fresh, lease, keep).await.unwrap().0, ClaimOutcome::InProgress);
    // The slow attempt overruns its lease; a retry takes the key over.
    sqlx::query("UPDATE idempotency_keys SET claimed_at = now() - interval '1 minute'").execute(&app.db).await.unwrap();
    assert_eq!(store::claim(&app.db, 1, "k", "fp", fresh, lease, keep).await.unwrap().0, ClaimOutcome::Claimed);
    let mut tx = app.db.begin().await.unwrap();
    assert!(!store::complete(&mut *tx, 1, "k", slow, 200, b"late", keep).await.unwrap(), "the slow one must roll back");
    tx.rollback().await.unwrap();
    store::release(&app.db, 1, "k", slow).await.unwrap();
    assert!(store::complete(&app.db, 1, "k", fresh, 201, b"{}", keep).await.unwrap());
    assert_eq!(
        store::claim(&app.db, 1, "k", "fp", Uuid::now_v7(), lease, keep).await.unwrap().0,
        ClaimOutcome::Replay { status: 201, body: b"{}".to_vec() }
    );
    assert_eq!(
        store::claim(&app.db, 1, "k", "other", Uuid::now_v7(), lease, keep).await.unwrap().0,
        ClaimOutcome::KeyReused
    );
}

#[tokio::test]
async fn a_retried_order_with_the_same_key_reserves_once_and_replays_the_same_order() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let opt = option(&app, 10_000, 10).await;
    let send = || order_request(&app, user, &[(opt, 3)]).header("Idempotency-Key", "order-1").send();
    let first = send().await.unwrap();
    let (status, _, body) = parts(first).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, replayed, again) = parts(send().await.unwrap()).await;
    assert_eq!((status, replayed.as_deref(), &again), (StatusCode::CREATED, Some("true"), &body));
    assert_eq!(count(&app, "orders").await, 1);
    assert_eq!(stock_of(&app, opt).await, (10, 3), "reserved once");
}

#[tokio::test]
async fn concurrent_payments_with_one_key_charge_once_and_all_succeed_or_wait() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 100_000).await;
    let opt = option(&app, 30_000, 10).await;
    let order = placed(&app, user, &[(opt, 1)]).await;
    let requests = (0..10).map(|_| pay_request(&app, user, &order, None).header("Idempotency-Key", "pay-1")).collect();
    let mut bodies = Vec::new();
    for res in send_all(requests).await {
        let (status, _, body) = parts(res).await;
        match status.as_u16() {
            200 => bodies.push(body),
            409 => assert!(body.contains("IDEMPOTENCY_IN_PROGRESS"), "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(!bodies.is_empty());
    assert!(bodies.iter().all(|b| b == &bodies[0]), "every 200 is the same answer");
    assert_eq!(balance_of(&app, user).await, 70_000, "charged once");
    let (status, replayed, body) =
        parts(pay_request(&app, user, &order, None).header("Idempotency-Key", "pay-1").send().await.unwrap()).await;
    assert_eq!((status, replayed.as_deref(), &body), (StatusCode::OK, Some("true"), &bodies[0]));
}
