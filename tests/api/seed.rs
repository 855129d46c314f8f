//! `jupang seed`: the demo catalog, the flash-sale coupon and users, idempotently.

use jupang::http::auth::Role;
use jupang_seed::{
    self as seed, SeedArgs,
    catalog::{COUPON_NAME, Demo, demo_products},
};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::support::{TestApp, json_of, spawn_app};

fn args(users: i64, users_only: bool) -> SeedArgs {
    SeedArgs { users, balance: 1_000_000, users_only }
}

/// Row counts of everything the seed writes.
async fn counts(app: &TestApp) -> Vec<i64> {
    let mut out = Vec::new();
    for table in ["users", "products", "product_options", "option_prices", "coupons", "balance_transactions"] {
        out.push(sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&app.db).await.unwrap());
    }
    out
}

#[tokio::test]
async fn seeding_twice_creates_the_demo_data_once_and_nothing_the_second_time() {
    let app = spawn_app().await;
    let first = seed::run(&app.db, &args(10, false)).await.unwrap();
    assert_eq!(first.users_created, 10);
    assert_eq!(first.products_created as usize, seed::catalog::demo_product_count());
    assert!((40..=60).contains(&first.products_created), "about 50 products: {first}");
    assert!(first.options_created >= first.products_created);
    assert_eq!(first.coupons_created, 1);
    let after_first = counts(&app).await;
    assert_eq!(after_first[1], first.products_created as i64);
    assert_eq!(after_first[2], first.options_created as i64);

    let second = seed::run(&app.db, &args(10, false)).await.unwrap();
    assert_eq!(
        (second.users_created, second.products_created, second.options_created, second.coupons_created),
        (0, 0, 0, 0)
    );
    assert_eq!(counts(&app).await, after_first);
}

#[tokio::test]
async fn users_only_seeds_no_catalog_and_no_coupon() {
    let app = spawn_app().await;
    let report = seed::run(&app.db, &args(3, true)).await.unwrap();
    assert_eq!((report.users_created, report.products_created, report.coupons_created), (3, 0, 0));
    assert_eq!(counts(&app).await[..5], [3, 0, 0, 0, 0]);
}

#[tokio::test]
async fn ensure_users_with_100000_creates_exactly_100000_then_none() {
    let app = spawn_app().await;
    assert_eq!(seed::ensure_users(&app.db, 100_000, 500).await.unwrap(), 100_000);
    let (count, max, balances): (i64, i64, i64) =
        sqlx::query_as("SELECT count(*), max(id), count(*) FILTER (WHERE balance = 500 AND market = 'KR') FROM users")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((count, max, balances), (100_000, 100_000, 100_000));
    assert_eq!(seed::ensure_users(&app.db, 100_000, 500).await.unwrap(), 0);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.db).await.unwrap();
    assert_eq!(count, 100_000);
}

#[tokio::test]
async fn the_seeded_coupon_is_a_kr_flash_sale_open_now_for_30_days() {
    let app = spawn_app().await;
    seed::run(&app.db, &args(0, false)).await.unwrap();
    let row: (String, i64, String, i32, i32, bool, bool) = sqlx::query_as(
        "SELECT discount_type, discount_value, market, total_quantity, valid_days,
                issue_starts_at <= now() AND issue_ends_at > now() + interval '29 days',
                issue_ends_at <= now() + interval '30 days'
         FROM coupons WHERE name = $1",
    )
    .bind(COUPON_NAME)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(row, ("FIXED".into(), 5000, "KR".into(), 1000, 7, true, true));
}

#[tokio::test]
async fn the_seeded_catalog_sells_in_both_markets_and_shows_low_stock_and_sold_out_products() {
    let app = spawn_app().await;
    seed::run(&app.db, &args(0, false)).await.unwrap();
    let all = |market: &'static str| {
        let app = &app;
        async move {
            let page = json_of(app.get(&format!("/api/products?market={market}&size=100")).await, 200).await;
            page["items"].as_array().unwrap().clone()
        }
    };
    let (kr, us) = (all("KR").await, all("US").await);
    let on_sale: i64 =
        sqlx::query_scalar("SELECT count(*) FROM products WHERE on_sale").fetch_one(&app.db).await.unwrap();
    assert_eq!(kr.len() as i64, on_sale, "every product on sale has a KRW price");
    assert!(us.len() < kr.len() && us.len() >= 30, "a few are sold in Korea only: {} vs {}", us.len(), kr.len());
    assert!(us.iter().all(|p| p["price"]["currency"] == "USD"));
    let categories: std::collections::BTreeSet<_> = kr.iter().map(|p| p["category"].as_str().unwrap()).collect();
    assert_eq!(
        categories.into_iter().collect::<Vec<_>>(),
        ["beauty", "electronics", "fashion", "food", "home", "sports"]
    );
    for status in ["IN_STOCK", "LOW_STOCK", "SOLD_OUT"] {
        for (market, items, least) in [("KR", &kr, 3), ("US", &us, 2)] {
            let n = items.iter().filter(|p| p["stock_status"] == status).count();
            assert!(n >= least, "{market}: {n} product(s) {status}");
        }
    }
    assert!(kr.iter().filter(|p| p["stock_status"] == "SOLD_OUT").all(|p| p["purchasable"] == false));
    // Names are localised: Korean by default, English on request.
    let id = &kr[0]["id"];
    let en: Value = json_of(
        app.request(reqwest::Method::GET, &format!("/api/products/{id}?market=KR"))
            .header("accept-language", "en")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert!(en["name"].as_str().unwrap().is_ascii(), "{en}");
    assert!(!kr[0]["name"].as_str().unwrap().is_ascii());
    assert!(en["image_url"].as_str().unwrap().starts_with("https://img.jupang.example/p/"));
}

/// A demo product as the body of `POST /api/admin/products`.
fn admin_body(demo: &Demo) -> Value {
    let options: Vec<Value> = demo
        .options
        .iter()
        .map(|o| {
            let mut prices = Map::new();
            prices.insert("KRW".into(), o.krw.into());
            if let Some(usd) = o.usd {
                prices.insert("USD".into(), usd.into());
            }
            json!({"name": o.name, "prices": prices, "stock": o.stock})
        })
        .collect();
    json!({
        "name": {"ko": demo.name.0, "en": demo.name.1},
        "description": {"ko": demo.description.0, "en": demo.description.1},
        "category": demo.category,
        "image_url": demo.image_url(),
        "on_sale": demo.on_sale,
        "options": options,
    })
}

/// Status and body of a product page, without the fields that record when it was written and
/// the ids (the two apps number alike, but that is not what is compared).
async fn page(app: &TestApp, id: i64, market: &str, language: &str) -> (u16, Value) {
    let res = app
        .request(Method::GET, &format!("/api/products/{id}?market={market}"))
        .header("accept-language", language)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let mut body: Value = res.json().await.unwrap();
    if let Some(fields) = body.as_object_mut() {
        for volatile in ["id", "created_at", "updated_at"] {
            fields.remove(volatile);
        }
    }
    for option in body["options"].as_array_mut().into_iter().flatten() {
        option.as_object_mut().unwrap().remove("id");
    }
    (status, body)
}

// The seeder writes its rows with its own SQL (it does not link the server library): this proves
// the server accepts every demo row through its own rules and serves the seeded copy exactly as
// the one its admin API created.
#[tokio::test]
async fn every_seeded_product_is_served_exactly_like_the_same_product_created_through_the_admin_api() {
    let (seeded, created) = (spawn_app().await, spawn_app().await);
    seed::run(&seeded.db, &args(0, false)).await.unwrap();
    let seeded_ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM products ORDER BY id").fetch_all(&seeded.db).await.unwrap();
    assert_eq!(seeded_ids.len(), demo_products().len());

    let token = created.token(1, &[Role::InventoryManager]);
    for (demo, seeded_id) in demo_products().iter().zip(seeded_ids) {
        let res = created.send_json(Method::POST, "/api/admin/products", Some(&token), &admin_body(demo)).await;
        let id = json_of(res, 201).await["id"].as_i64().unwrap();
        for (market, language) in [("KR", "ko"), ("US", "en")] {
            let want = page(&created, id, market, language).await;
            let got = page(&seeded, seeded_id, market, language).await;
            assert_eq!(got, want, "{} in {market}: seeded (left) vs created by the admin API (right)", demo.slug);
        }
    }
}
