//! V2 on a real Redis Cluster (3 masters, 3 replicas; `scripts/services.sh up --cluster`, whose
//! node list scripts/test.sh passes as `JUPANG_TEST_REDIS_CLUSTER_URL`): the same exactness
//! promises as on one node, with keys spread over the masters and redirections followed by the
//! redis crate's cluster client.

use std::collections::{BTreeMap, HashSet};

use jupang::store::redis::keys::CouponKeys;
use serde_json::json;

use crate::support::{
    Strategy, TestApp, acknowledged, avail_of, create_coupon, env, eventually, open_run, order_request, persisted,
    raw_orders, redis_store, spawn_app_with, stored,
};

/// The cluster's node URLs, comma-separated, as `REDIS_URL` takes them.
fn cluster_url() -> String {
    env("JUPANG_TEST_REDIS_CLUSTER_URL")
}

fn on_cluster(vars: &mut BTreeMap<String, String>) {
    vars.insert("REDIS_URL".into(), cluster_url());
}

/// The master port serving `key`'s slot, from `CLUSTER SHARDS` of any node.
async fn master_of(app: &TestApp, key: &str) -> u16 {
    let mut conn = redis_store(app).await.conn();
    let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query_async(&mut conn).await.unwrap();
    let slots: Vec<(i64, i64, (String, u16))> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async::<Vec<redis::Value>>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|v| {
            let redis::Value::Array(parts) = v else { panic!("CLUSTER SLOTS entry") };
            let start: i64 = redis::from_redis_value(parts[0].clone()).unwrap();
            let end: i64 = redis::from_redis_value(parts[1].clone()).unwrap();
            let redis::Value::Array(master) = parts[2].clone() else { panic!("master") };
            let host: String = redis::from_redis_value(master[0].clone()).unwrap();
            let port: u16 = redis::from_redis_value(master[1].clone()).unwrap();
            (start, end, (host, port))
        })
        .collect();
    slots.into_iter().find(|(s, e, _)| (*s..=*e).contains(&slot)).map(|(_, _, (_, p))| p).expect("a master serves it")
}

#[tokio::test]
async fn coupon_open_runs_on_redis_cluster_issue_exactly_their_quantities_on_several_masters_and_persist_them() {
    let app = spawn_app_with(|v| {
        on_cluster(v);
        v.insert("JUPANG_WORKERS".into(), "consumer".into());
    })
    .await;
    assert!(redis_store(&app).await.is_cluster());
    // Coupons until two of them live on different masters: the consumer must drain streams that
    // no single XREADGROUP can name together.
    let mut coupons = Vec::new();
    let mut masters = HashSet::new();
    while masters.len() < 2 {
        let id = create_coupon(&app, 150, json!({})).await;
        masters.insert(master_of(&app, &CouponKeys::new(&app.redis_prefix, id).meta).await);
        coupons.push(id);
        assert!(coupons.len() < 20, "20 coupons all on one master");
    }
    let users = app.create_users(400, "KR", 0).await;

    let runs = coupons.iter().map(|&c| {
        let (app, users) = (&app, &users);
        async move { (c, open_run(app, std::slice::from_ref(&app.base), c, users, 64).await) }
    });
    for (coupon, shots) in futures_util::future::join_all(runs).await {
        let sold_out = |s: &&crate::support::Shot| s.status == 400 && s.body["code"] == "COUPON_SOLD_OUT";
        let odd: Vec<_> = shots.iter().filter(|s| s.status != 201 && !sold_out(s)).take(3).collect();
        assert!(odd.is_empty(), "only issued or sold out, coupon {coupon}: {odd:?}");
        let issued = acknowledged(&shots, false);
        assert_eq!(issued.len(), 150, "coupon {coupon}: exactly its quantity");
        eventually(15, "Postgres holds every issued coupon", || async {
            persisted(&app.db, coupon).await == (150, 150, 150)
        })
        .await;
        assert_eq!(stored(&app.db, coupon).await, issued, "coupon {coupon}: Postgres holds what was acknowledged");
    }
}

#[tokio::test]
async fn a_v2_order_rush_on_redis_cluster_sells_exactly_the_stock_and_persists_every_order() {
    let app = Strategy::RedisLua
        .spawn_with(|v| {
            on_cluster(v);
            v.insert("JUPANG_WORKERS".into(), "consumer".into());
        })
        .await;
    let opt = crate::support::option(&app, 1_000, 40).await;
    let buyers = app.create_users(120, "KR", 0).await;

    let answers = futures_util::future::join_all(buyers.iter().map(|&u| {
        let app = &app;
        async move { order_request(app, u, &[(opt, 1)]).send().await.unwrap().status().as_u16() }
    }))
    .await;

    assert_eq!(answers.iter().filter(|&&s| s == 201).count(), 40, "exactly the stock: {answers:?}");
    assert_eq!(answers.iter().filter(|&&s| s == 400).count(), 80, "the rest: INSUFFICIENT_STOCK");
    assert_eq!(avail_of(&app, opt).await, Some(0));
    eventually(15, "Postgres holds every admitted order", || async { raw_orders(&app).await == 40 }).await;
}
