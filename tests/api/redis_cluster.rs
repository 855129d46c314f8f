//! V2 on a real Redis Cluster (3 masters, 3 replicas; `scripts/services.sh up --cluster`, whose
//! node list scripts/test.sh passes as `JUPANG_TEST_REDIS_CLUSTER_URL`): the same exactness
//! promises as on one node, with keys spread over the masters, through a failover and a slot
//! migration in the middle of a sale. The tests of this module take turns ([`cluster_turn`]):
//! a failover or a migration must not surprise another test's sale.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use jupang::store::redis::keys::CouponKeys;
use rand::seq::SliceRandom;
use serde_json::json;
use tokio::sync::{Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

mod orders;

use crate::support::{
    Shot, Strategy, TestApp, acknowledged, avail_of, burst, child, create_coupon, env, eventually, open_run,
    order_request, persisted, raw_orders, redis_store, sibling, spawn_app_with, stored,
};

/// The cluster's node URLs, comma-separated, as `REDIS_URL` takes them.
fn cluster_url() -> String {
    env("JUPANG_TEST_REDIS_CLUSTER_URL")
}

fn on_cluster(vars: &mut BTreeMap<String, String>) {
    vars.insert("REDIS_URL".into(), cluster_url());
}

/// One cluster test at a time.
async fn cluster_turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::const_new(());
    TURN.lock().await
}

/// A V2 coupon app on the cluster with its stream consumer.
async fn cluster_coupon_app() -> TestApp {
    spawn_app_with(|v| {
        on_cluster(v);
        v.insert("JUPANG_WORKERS".into(), "consumer".into());
    })
    .await
}

/// A connection to one node of the cluster, by port.
async fn node(port: u16) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    client.get_multiplexed_async_connection().await.expect("connect to a cluster node")
}

/// `(port, node id, master port if a replica)` of every node.
async fn nodes() -> Vec<(u16, String, Option<u16>)> {
    let first: u16 =
        cluster_url().split(',').next().unwrap().trim_end_matches('/').rsplit(':').next().unwrap().parse().unwrap();
    let text: String = redis::cmd("CLUSTER").arg("NODES").query_async(&mut node(first).await).await.unwrap();
    let lines: Vec<Vec<String>> = text.lines().map(|l| l.split(' ').map(str::to_owned).collect()).collect();
    let port_of = |addr: &str| -> u16 { addr.split('@').next().unwrap().rsplit(':').next().unwrap().parse().unwrap() };
    lines
        .iter()
        .map(|f| {
            let master = (f[3] != "-").then(|| port_of(&lines.iter().find(|m| m[0] == f[3]).expect("its master")[1]));
            (port_of(&f[1]), f[0].clone(), master)
        })
        .collect()
}

/// The slot of `key` and the port of the master serving it.
async fn master_of(key: &str) -> (i64, u16) {
    let any = nodes().await[0].0;
    let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query_async(&mut node(any).await).await.unwrap();
    let reply: Vec<Vec<redis::Value>> =
        redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut node(any).await).await.unwrap();
    // Each entry: start, end, then the master as (host, port, id, ...), then its replicas.
    let slots: Vec<(i64, i64, u16)> = reply
        .into_iter()
        .map(|e| {
            let master: Vec<redis::Value> = redis::from_redis_value(e[2].clone()).unwrap();
            let num = |v: &redis::Value| redis::from_redis_value::<i64>(v.clone()).unwrap();
            (num(&e[0]), num(&e[1]), num(&master[1]) as u16)
        })
        .collect();
    let port = slots.iter().find(|(s, e, _)| (*s..=*e).contains(&slot)).map(|s| s.2).expect("a master serves it");
    (slot, port)
}

/// `users` people, `double_clickers` of whom ask twice, in random order.
async fn crowd(app: &TestApp, users: usize, double_clickers: usize) -> Vec<i64> {
    let users = app.create_users(users, "KR", 0).await;
    let mut requests: Vec<i64> = users.iter().chain(&users[..double_clickers]).copied().collect();
    requests.shuffle(&mut rand::rng());
    requests
}

/// A second instance on `app`'s database and Redis, serving until the token is cancelled.
async fn second_instance(app: &TestApp) -> (String, CancellationToken) {
    let built = sibling(app, |v| {
        on_cluster(v);
        v.insert("JUPANG_WORKERS".into(), "consumer".into());
    })
    .await;
    let base = format!("http://{}", built.local_addr());
    let token = built.shutdown_token();
    tokio::spawn(built.run_until_stopped());
    (base, token)
}

/// Asserts an open run's outcome: exactly `total` issued once each, nothing but 201 and the
/// issue rules' 400s, and Postgres (once the consumers drained) holding exactly that.
async fn assert_exact(app: &TestApp, coupon: i64, total: i32, shots: &[Shot]) {
    let issued = acknowledged(shots, false);
    assert_eq!(issued.len(), total as usize, "coupon {coupon}: exactly its quantity");
    let all = i64::from(total);
    eventually(20, "Postgres holds every issued coupon", || async {
        persisted(&app.db, coupon).await == (total, all, all)
    })
    .await;
    assert_eq!(stored(&app.db, coupon).await, issued, "coupon {coupon}: Postgres holds what was acknowledged");
}

#[tokio::test]
async fn coupon_open_runs_on_redis_cluster_issue_exactly_their_quantities_on_several_masters_and_persist_them() {
    let _turn = cluster_turn().await;
    let app = cluster_coupon_app().await;
    assert!(redis_store(&app).await.is_cluster());
    // Coupons until two of them live on different masters: the consumer must drain streams that
    // no single XREADGROUP can name together.
    let mut coupons = Vec::new();
    let mut masters = HashSet::new();
    while masters.len() < 2 {
        let id = create_coupon(&app, 150, json!({})).await;
        masters.insert(master_of(&CouponKeys::new(&app.redis_prefix, id).meta).await.1);
        coupons.push(id);
        assert!(coupons.len() < 20, "20 coupons all on one master");
    }
    let users = app.create_users(400, "KR", 0).await;

    let runs = coupons.iter().map(|&c| {
        let (app, users) = (&app, &users);
        async move { (c, open_run(app, std::slice::from_ref(&app.base), c, users, 64).await) }
    });
    for (coupon, shots) in futures_util::future::join_all(runs).await {
        assert_exact(&app, coupon, 150, &shots).await;
    }
}

#[tokio::test]
async fn two_instances_on_redis_cluster_issue_exactly_1000_of_10000_requests_once_each() {
    let _turn = cluster_turn().await;
    let app = cluster_coupon_app().await;
    let (other, _stop) = second_instance(&app).await;
    let coupon = create_coupon(&app, 1_000, json!({})).await;
    let requests = crowd(&app, 8_000, 2_000).await;

    let shots = open_run(&app, &[app.base.clone(), other], coupon, &requests, 128).await;

    assert_eq!(shots.len(), 10_000);
    assert_exact(&app, coupon, 1_000, &shots).await;
}

/// A sale of 500 coupons for 5,000 people under way: the coupon, how many were answered so far
/// (at least 300 when this returns) and the run itself.
struct SaleUnderWay {
    coupon: i64,
    people: usize,
    answered: Arc<AtomicUsize>,
    run: tokio::task::JoinHandle<Vec<Shot>>,
}

impl SaleUnderWay {
    async fn start(app: &TestApp) -> SaleUnderWay {
        let coupon = create_coupon(app, 500, json!({})).await;
        let requests = crowd(app, 5_000, 0).await;
        let answered = Arc::new(AtomicUsize::new(0));
        let run = burst(app, std::slice::from_ref(&app.base), coupon, &requests, 32, answered.clone());
        eventually(20, "the sale under way", || async { answered.load(Ordering::Relaxed) >= 300 }).await;
        SaleUnderWay { coupon, people: requests.len(), answered, run }
    }

    /// Asserts the sale is still running, then waits for its end and checks it was exact.
    async fn finish_exactly(self, app: &TestApp, what: &str) {
        assert!(self.answered.load(Ordering::Relaxed) < self.people, "{what} while the sale ran");
        let shots = self.run.await.unwrap();
        // What clients saw: nothing but the sale's own answers (acknowledged() refuses any other).
        assert_exact(app, self.coupon, 500, &shots).await;
    }
}

#[tokio::test]
async fn a_manual_failover_of_the_hot_coupons_master_mid_sale_loses_no_acknowledged_coupon() {
    let _turn = cluster_turn().await;
    let app = cluster_coupon_app().await;
    let sale = SaleUnderWay::start(&app).await;
    let hot = CouponKeys::new(&app.redis_prefix, sale.coupon).meta;
    let (_, master) = master_of(&hot).await;
    let replica = nodes().await.into_iter().find(|n| n.2 == Some(master)).expect("a replica of the hot master").0;

    // The replica takes over in a coordinated switch: the master stops taking writes, the
    // replica catches up, then answers for the slots; clients are redirected (MOVED).
    let ok: String = redis::cmd("CLUSTER").arg("FAILOVER").query_async(&mut node(replica).await).await.unwrap();
    assert_eq!(ok, "OK");
    eventually(20, "the replica is master", || async { master_of(&hot).await.1 == replica }).await;
    sale.finish_exactly(&app, "the switch happened").await;
}

#[tokio::test]
async fn moving_the_hot_coupons_slot_to_another_master_mid_sale_keeps_the_sale_exact() {
    let _turn = cluster_turn().await;
    let app = cluster_coupon_app().await;
    let sale = SaleUnderWay::start(&app).await;
    let hot = CouponKeys::new(&app.redis_prefix, sale.coupon).meta;
    let (slot, source) = master_of(&hot).await;
    let all = nodes().await;
    let id_of = |port: u16| all.iter().find(|n| n.0 == port).unwrap().1.clone();
    let target = all.iter().find(|n| n.2.is_none() && n.0 != source).expect("another master").0;

    // What `redis-cli --cluster reshard` does for one slot: mark it importing and migrating, move
    // its keys, then give it to the target everywhere.
    let (mut src, mut dst) = (node(source).await, node(target).await);
    let setslot = |state: &str, id: String| redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg(state).arg(id).clone();
    let _: () = setslot("IMPORTING", id_of(source)).query_async(&mut dst).await.unwrap();
    let _: () = setslot("MIGRATING", id_of(target)).query_async(&mut src).await.unwrap();
    loop {
        let keys: Vec<String> =
            redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(100).query_async(&mut src).await.unwrap();
        if keys.is_empty() {
            break;
        }
        let _: () = redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(target)
            .arg("")
            .arg(0)
            .arg(5_000)
            .arg("KEYS")
            .arg(&keys)
            .query_async(&mut src)
            .await
            .unwrap();
    }
    for n in all.iter().filter(|n| n.2.is_none()) {
        let _: () = setslot("NODE", id_of(target)).query_async(&mut node(n.0).await).await.unwrap();
    }
    assert_eq!(master_of(&hot).await, (slot, target));
    sale.finish_exactly(&app, "the slot moved").await;
}

#[tokio::test]
async fn a_v2_order_rush_on_redis_cluster_sells_exactly_the_stock_and_persists_every_order() {
    let _turn = cluster_turn().await;
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

#[tokio::test]
async fn jupang_reconcile_reads_a_cluster_redis_url_and_finds_no_drift_after_a_sale() {
    let _turn = cluster_turn().await;
    let app = cluster_coupon_app().await;
    let coupon = create_coupon(&app, 5, json!({})).await;
    let users = app.create_users(8, "KR", 0).await;
    let shots = open_run(&app, std::slice::from_ref(&app.base), coupon, &users, 8).await;
    assert_exact(&app, coupon, 5, &shots).await;

    // The child gets REDIS_URL as the comma-separated node list the app was given.
    assert!(app.config.redis_urls.len() > 1);
    let report = child::reconcile(&app, &[]).await;
    let row = child::coupon_row(&report, coupon);
    assert_eq!(row, [coupon.to_string().as_str(), "5", "0", "5", "5", "0", "0"], "{report}");
}
