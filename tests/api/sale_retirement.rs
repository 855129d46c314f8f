//! Old sales (issue 13, item 8): a coupon whose window is over and whose admissions are all in
//! Postgres loses its Redis keys to the consumer's housekeeping; a sale still running, or one
//! with an entry not yet acknowledged, keeps them; `coupon_sale_keys` counts what remains.

use chrono::{TimeDelta, Utc};
use jupang::{store::redis::keys::HYDRATED_COUPONS, workers::consumer::GROUP};
use serde_json::json;
use uuid::Uuid;

use crate::support::{
    TestApp, assert_error, await_metric, coupon_child_app, coupon_keys, create_coupon, eventually, issue, json_of,
    redis_conn, redis_store, settled, stored,
};

/// How many of a coupon's keys exist, and whether the hydrated index lists it.
fn in_redis(app: &TestApp, coupon_id: i64) -> (u64, bool) {
    let mut r = redis_conn();
    let keys: u64 = redis::cmd("EXISTS").arg(&coupon_keys(app, coupon_id).all()[..]).query(&mut r).unwrap();
    let index = format!("{}:{HYDRATED_COUPONS}", app.redis_prefix);
    let listed: bool = redis::cmd("SISMEMBER").arg(index).arg(coupon_id).query(&mut r).unwrap();
    (keys, listed)
}

fn pending(app: &TestApp, coupon_id: i64) -> u64 {
    let summary: (u64, Option<String>, Option<String>, redis::Value) =
        redis::cmd("XPENDING").arg(coupon_keys(app, coupon_id).stream).arg(GROUP).query(&mut redis_conn()).unwrap();
    summary.0
}

#[tokio::test]
async fn a_closed_sale_loses_its_keys_once_persisted_while_a_running_or_unsettled_one_keeps_them() {
    let app = coupon_child_app().await;
    let users = app.create_users(2, "KR", 0).await;
    let ends = Utc::now() + TimeDelta::seconds(3);
    let closing = create_coupon(&app, 10, json!({ "issue_ends_at": ends })).await;
    let unsettled = create_coupon(&app, 10, json!({ "issue_ends_at": ends })).await;
    let running = create_coupon(&app, 10, json!({})).await;
    for coupon in [closing, unsettled, running] {
        for user in &users {
            json_of(issue(&app, coupon, *user).await, 201).await;
        }
    }
    settled(&app).await;
    // One entry of `unsettled` stays unacknowledged: a consumer that stalls reads it in the same
    // transaction as it is appended, before the app's blocked reader is served (it would be
    // claimed only after 30 s). A second admission of a holder: persisting it changes nothing.
    // (Through the app's adapter: on a cluster a transaction goes to its one slot's master.)
    let stream = coupon_keys(&app, unsettled).stream;
    let now = Utc::now();
    let _: redis::Value = redis::pipe()
        .atomic()
        .cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("user_coupon_id")
        .arg(Uuid::now_v7().to_string())
        .arg("coupon_id")
        .arg(unsettled)
        .arg("user_id")
        .arg(users[0])
        .arg("issued_at")
        .arg(now.to_rfc3339())
        .arg("expires_at")
        .arg((now + TimeDelta::days(7)).to_rfc3339())
        .ignore()
        .cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg("stalled")
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut redis_store(&app).await.conn())
        .await
        .unwrap();
    assert_eq!(pending(&app, unsettled), 1);

    eventually(10, "the two windows are over", || async { Utc::now() > ends }).await;
    eventually(20, "the closed, persisted sale leaves Redis", || async { in_redis(&app, closing) == (0, false) }).await;
    let (unsettled_keys, listed) = in_redis(&app, unsettled);
    assert!(listed && unsettled_keys >= 4, "unsettled keeps its keys ({unsettled_keys})");
    // The round that removed `closing` saw `unsettled` with its entry pending (still pending now).
    assert_eq!(pending(&app, unsettled), 1);
    let (running_keys, listed) = in_redis(&app, running);
    assert!(listed && running_keys >= 4, "running keeps its keys ({running_keys})");
    await_metric(&app, "coupon_sale_keys", &[], (unsettled_keys + running_keys) as f64).await;
    // Postgres keeps the sale, and the coupon is still answered as closed (which hydrates it
    // again, for the next round to remove).
    assert_eq!(stored(&app.db, closing).await.len(), 2);
    let latecomer = app.create_user("KR", 0).await;
    assert_error(issue(&app, closing, latecomer).await, 400, "COUPON_NOT_ACTIVE").await;

    // Once its entry is acknowledged, the other closed sale goes too.
    let ids: Vec<(String, String, u64, u64)> =
        redis::cmd("XPENDING").arg(&stream).arg(GROUP).arg("-").arg("+").arg(10).query(&mut redis_conn()).unwrap();
    let _: u64 = redis::cmd("XACK").arg(&stream).arg(GROUP).arg(&ids[0].0).query(&mut redis_conn()).unwrap();
    eventually(20, "both closed sales are out of Redis", || async {
        in_redis(&app, unsettled) == (0, false) && in_redis(&app, closing) == (0, false)
    })
    .await;
    await_metric(&app, "coupon_sale_keys", &[], running_keys as f64).await;
    assert_eq!(in_redis(&app, running), (running_keys, true));
    assert_eq!(stored(&app.db, unsettled).await.len(), 2);
}
