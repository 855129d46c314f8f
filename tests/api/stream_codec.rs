//! The stream contract against the real Lua scripts: what `issue_coupon.lua` and
//! `reserve_stock.lua` `XADD` (and keep in the held record and the order hash) decodes, through
//! the Rust codecs of `store::redis::streams`, into exactly what the engine answered. A field the
//! script names differently from the Rust definition fails here.

use std::collections::{BTreeSet, HashMap};

use chrono::{TimeDelta, Utc};
use jupang::{
    admission::{coupons::CouponAdmission, orders::OrderAdmission},
    http::auth::Role,
    services::orders::OrderSource,
    store::redis::{
        RedisStore,
        keys::CouponKeys,
        stock::{StockKeys, home_of},
        streams::{
            StreamEntry, StreamSource,
            coupons::{self, CouponStreams},
            orders::{self, OrderStream},
        },
    },
};
use reqwest::Method;
use serde_json::json;

use crate::support::{TestApp, connect_store, json_of, spawn_app_with};

/// An app with no workers, so no consumer acknowledges and trims what the test reads.
async fn quiet_app() -> (TestApp, RedisStore) {
    let app = spawn_app_with(|vars| {
        vars.insert("JUPANG_WORKERS".into(), "none".into());
    })
    .await;
    let redis = connect_store(&app).await;
    (app, redis)
}

/// Every entry of a stream, as the consumer reads them.
async fn entries(redis: &RedisStore, stream: &str) -> Vec<StreamEntry> {
    let reply: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(stream).arg("-").arg("+").query_async(&mut redis.conn()).await.unwrap();
    reply
        .ids
        .into_iter()
        .map(|e| StreamEntry {
            stream: stream.to_owned(),
            id: e.id,
            fields: e.map.into_iter().map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap())).collect(),
            deliveries: 1,
        })
        .collect()
}

fn names(fields: &HashMap<String, String>) -> BTreeSet<&str> {
    fields.keys().map(String::as_str).collect()
}

#[tokio::test]
async fn what_the_issue_script_appends_decodes_into_the_coupon_it_answered() {
    let (app, redis) = quiet_app().await;
    let manager = app.token(1, &[Role::MarketingManager]);
    let now = Utc::now();
    let body = json!({
        "name": "codec", "discount_type": "FIXED", "discount_value": 1_000, "market": "KR",
        "total_quantity": 5, "issue_starts_at": now - TimeDelta::hours(1),
        "issue_ends_at": now + TimeDelta::days(1), "valid_days": 7,
    });
    let coupon_id = json_of(app.send_json(Method::POST, "/api/admin/coupons", Some(&manager), &body).await, 201).await
        ["id"]
        .as_i64()
        .unwrap();
    let user = app.create_user("KR", 0).await;
    let engine = CouponAdmission::new(app.db.clone(), redis.clone(), Default::default());

    let (issued, remaining) = engine.issue(coupon_id, user).await.expect("the script admits the issue");
    assert_eq!(remaining, 4);

    let keys = CouponKeys::new(&app.redis_prefix, coupon_id);
    let written = entries(&redis, &keys.stream).await;
    assert_eq!(written.len(), 1, "one entry per admission");
    assert_eq!(names(&written[0].fields), coupons::FIELDS.into_iter().collect(), "the script writes exactly FIELDS");
    assert_eq!(coupons::decode(&written[0].fields), Ok(issued.clone()));
    assert_eq!(CouponStreams::new(redis.clone()).decode(&written[0]), Ok(issued.clone()), "the sink's source agrees");

    let held: Option<String> =
        redis::cmd("HGET").arg(&keys.held).arg(user).query_async(&mut redis.conn()).await.unwrap();
    let held = held.expect("the script keeps a held record");
    assert_eq!(held, coupons::held_record(&issued));
    assert_eq!(coupons::parse_held_record(coupon_id, user, &held), Some(issued));
}

#[tokio::test]
async fn what_the_reservation_script_appends_decodes_into_the_order_it_answered() {
    let (app, redis) = quiet_app().await;
    let staff = app.token(1, &[Role::InventoryManager]);
    let body = json!({
        "name": {"ko": "코덱", "en": "Codec \"quoted\""}, "category": "general",
        "options": [{"name": "A", "prices": {"KRW": 1_500}, "stock": 9}, {"name": "옵션 B", "prices": {"KRW": 700}, "stock": 9}],
    });
    let product = json_of(app.send_json(Method::POST, "/api/admin/products", Some(&staff), &body).await, 201).await;
    let option = |i: usize| product["options"][i]["id"].as_i64().unwrap();
    let user = app.create_user("KR", 0).await;
    let engine = OrderAdmission::new(app.db.clone(), &redis, Default::default(), app.config.order_ttl);

    let order = engine
        .create(
            uuid::Uuid::now_v7(),
            user,
            OrderSource::Items(vec![(option(1), 1), (option(0), 2), (option(1), 1)]),
            Utc::now(),
        )
        .await
        .expect("the script admits the order");

    // Two options of one product: consecutive ids, so two stock groups, and the entry is the
    // commit's (`commit_order.lua`), in the home group's stream.
    let home = home_of([option(0), option(1)]).unwrap();
    let stream = StockKeys::new(&app.redis_prefix).stream(home);
    let written = entries(&redis, &stream).await;
    assert_eq!(written.len(), 1, "one entry per admission");
    assert_eq!(names(&written[0].fields), orders::FIELDS.into_iter().collect(), "the script writes exactly FIELDS");
    let admission = OrderStream::new(vec![stream]).decode(&written[0]).expect("the entry decodes");
    assert_eq!((admission.order_id, admission.user_id), (order.id, user));
    assert_eq!(
        (admission.total, admission.created_at, admission.expires_at),
        (order.total_amount, order.created_at, order.expires_at)
    );
    assert_eq!((admission.market.code(), admission.currency.code()), ("KR", "KRW"));
    let lines: Vec<_> = admission
        .lines
        .iter()
        .map(|l| (l.option_id, l.quantity, l.unit_price, l.product_name.as_str(), l.option_name.as_str()))
        .collect();
    let items: Vec<_> = order
        .items
        .iter()
        .map(|i| (i.option_id, i64::from(i.quantity), i.unit_price, i.product_name.as_str(), i.option_name.as_str()))
        .collect();
    assert_eq!(lines, items);
    assert_eq!(lines, [(option(0), 2, 1_500, "코덱", "A"), (option(1), 2, 700, "코덱", "옵션 B")]);

    let hash: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(StockKeys::new(&app.redis_prefix).order(home, order.id))
        .query_async(&mut redis.conn())
        .await
        .unwrap();
    assert_eq!(hash.get("state").map(String::as_str), Some("pending"));
    assert_eq!(orders::Admission::from_fields(&hash), Ok(admission), "the order hash holds the same fields");
}
