//! Popular products (seed 001 US-003): the daily snapshot job and the top-5 read.

use jupang::http::auth::Role;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::support::{
    Opt, TestApp, assert_error, json_of, krw_opt, product, products_page, sale, set_fx_rate, spawn_app,
};

/// A "food" product on sale with one option priced in both currencies and 1,000 in stock;
/// returns (product, option).
async fn food(app: &TestApp, name: &str, krw: i64, usd: i64) -> (i64, i64) {
    let priced = Opt { krw: Some(krw), usd: Some(usd), stock: 1_000, reserved: 0 };
    let (product, options) = product(app, name, "food", true, &[priced]).await;
    (product, options[0])
}

async fn run_job(app: &TestApp) -> Value {
    let res = app
        .request(Method::POST, "/api/admin/jobs/popular-products")
        .bearer_auth(app.token(1, &[Role::OpsAdmin]))
        .send()
        .await
        .unwrap();
    json_of(res, 200).await
}

async fn top(app: &TestApp, query: &str, lang: &str) -> Value {
    let res: Response = app
        .request(Method::GET, &format!("/api/products/top{query}"))
        .header("accept-language", lang)
        .send()
        .await
        .unwrap();
    json_of(res, 200).await
}

fn ids(body: &Value) -> Vec<i64> {
    body["items"].as_array().unwrap().iter().map(|i| i["product_id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn the_top_five_are_ranked_by_quantity_sold_with_their_details() {
    let app = spawn_app().await;
    let mut products = Vec::new();
    for (i, qty) in [2, 6, 1, 5, 3, 4].into_iter().enumerate() {
        let p = food(&app, &format!("p{i}"), 1_000 * (i as i64 + 1), 99).await;
        sale(&app, p.1, qty, "PAID", "KR", 5.0).await;
        products.push(p.0);
    }
    let job = run_job(&app).await;
    assert_eq!(job["markets"][0], json!({"market": "KR", "ranked": 5}));
    let body = top(&app, "?market=KR", "ko").await;
    assert_eq!(ids(&body), [products[1], products[3], products[5], products[4], products[0]]);
    let first = &body["items"][0];
    assert_eq!(first["rank"], 1);
    assert_eq!(first["name"], "한국어 p1");
    assert_eq!(first["category"], "food");
    assert_eq!(first["price"], json!({"amount": 2000, "currency": "KRW"}));
    assert_eq!(first["sold_quantity"], 6);
    assert!(first["last_sold_at"].is_string() && body["generated_at"].is_string(), "{body}");
    let ranks: Vec<i64> = body["items"].as_array().unwrap().iter().map(|i| i["rank"].as_i64().unwrap()).collect();
    assert_eq!(ranks, [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn quantities_add_up_across_orders_and_ties_go_to_the_more_recent_sale() {
    let app = spawn_app().await;
    let older = food(&app, "older", 100, 1).await;
    let newer = food(&app, "newer", 100, 1).await;
    let summed = food(&app, "summed", 100, 1).await;
    sale(&app, newer.1, 3, "PAID", "KR", 2.0).await;
    sale(&app, older.1, 3, "PAID", "KR", 30.0).await;
    sale(&app, summed.1, 2, "PAID", "KR", 1.0).await;
    sale(&app, summed.1, 2, "FULFILLED", "KR", 50.0).await;
    run_job(&app).await;
    let body = top(&app, "", "ko").await;
    assert_eq!(ids(&body), [summed.0, newer.0, older.0]);
    assert_eq!(body["items"][0]["sold_quantity"], 4);
}

#[tokio::test]
async fn only_paid_or_fulfilled_orders_of_the_last_three_days_count() {
    let app = spawn_app().await;
    let inside = food(&app, "inside", 100, 1).await;
    let outside = food(&app, "outside", 100, 1).await;
    let unpaid = food(&app, "unpaid", 100, 1).await;
    sale(&app, inside.1, 1, "PAID", "KR", 71.0).await; // 2 days 23 hours ago
    sale(&app, outside.1, 50, "PAID", "KR", 73.0).await; // 3 days 1 hour ago
    sale(&app, unpaid.1, 10, "PENDING", "KR", 1.0).await;
    sale(&app, unpaid.1, 10, "CANCELLED", "KR", 1.0).await;
    sale(&app, unpaid.1, 10, "EXPIRED", "KR", 1.0).await;
    sale(&app, unpaid.1, 10, "REFUNDED", "KR", 1.0).await;
    run_job(&app).await;
    assert_eq!(ids(&top(&app, "?market=KR", "ko").await), [inside.0]);
}

#[tokio::test]
async fn each_market_has_its_own_ranking_priced_in_its_currency() {
    let app = spawn_app().await;
    let kr_user = app.create_user("KR", 0).await;
    let kimchi = food(&app, "kimchi", 9_900, 799).await;
    let bagel = food(&app, "bagel", 3_000, 250).await;
    sale(&app, kimchi.1, 5, "PAID", "KR", 3.0).await;
    sale(&app, bagel.1, 2, "PAID", "US", 3.0).await;
    sale(&app, kimchi.1, 1, "PAID", "US", 3.0).await;
    run_job(&app).await;
    assert_eq!(ids(&top(&app, "?market=KR", "ko").await), [kimchi.0]);
    let us = top(&app, "?market=US", "en-US").await;
    assert_eq!(ids(&us), [bagel.0, kimchi.0]);
    assert_eq!(us["items"][0]["name"], "bagel");
    assert_eq!(us["items"][0]["price"], json!({"amount": 250, "currency": "USD"}));
    // Without ?market= an English reader gets the US market, a signed-in user its own market.
    assert_eq!(ids(&top(&app, "", "en").await), [bagel.0, kimchi.0]);
    let res = app
        .request(Method::GET, "/api/products/top")
        .header("accept-language", "en")
        .bearer_auth(app.customer(kr_user))
        .send()
        .await
        .unwrap();
    let mine = json_of(res, 200).await;
    assert_eq!((ids(&mine), mine["items"][0]["name"].as_str()), (vec![kimchi.0], Some("kimchi")));
    let bad = app.get("/api/products/top?market=JP").await;
    assert_eq!(assert_error(bad, 400, "VALIDATION_ERROR").await["details"]["field"], "market");
}

#[tokio::test]
async fn nothing_sold_gives_an_empty_list_even_when_an_older_snapshot_had_items() {
    let app = spawn_app().await;
    let never = top(&app, "", "ko").await;
    assert_eq!(never, json!({"generated_at": null, "items": []}));
    // Yesterday's snapshot listed a product; today nothing sold in the window.
    let p = food(&app, "old", 100, 1).await;
    sqlx::raw_sql(&format!(
        "INSERT INTO popularity_snapshot_runs (snapshot_date, market, window_start, generated_at)
         VALUES ((now() AT TIME ZONE 'UTC')::date - 1, 'KR', now() - interval '4 days', now() - interval '1 day');
         INSERT INTO popularity_snapshots (snapshot_date, market, rank, product_id, sold_quantity, last_sold_at)
         VALUES ((now() AT TIME ZONE 'UTC')::date - 1, 'KR', 1, {}, 3, now() - interval '2 days')",
        p.0
    ))
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(ids(&top(&app, "", "ko").await), [p.0]);
    let job = run_job(&app).await;
    assert_eq!(job["markets"][0]["ranked"], 0);
    let now = top(&app, "", "ko").await;
    assert_eq!(now["items"], json!([]));
    assert_eq!(now["generated_at"], job["generated_at"]);
}

#[tokio::test]
async fn running_the_job_again_replaces_the_days_snapshot() {
    let app = spawn_app().await;
    let a = food(&app, "a", 100, 1).await;
    let b = food(&app, "b", 100, 1).await;
    sale(&app, a.1, 2, "PAID", "KR", 1.0).await;
    run_job(&app).await;
    assert_eq!(ids(&top(&app, "", "ko").await), [a.0]);
    sale(&app, b.1, 5, "PAID", "KR", 0.5).await;
    run_job(&app).await;
    run_job(&app).await;
    assert_eq!(ids(&top(&app, "", "ko").await), [b.0, a.0]);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM popularity_snapshots").fetch_one(&app.db).await.unwrap();
    assert_eq!(rows, 2);
}

#[tokio::test]
async fn only_ops_admins_may_run_the_job() {
    let app = spawn_app().await;
    for role in [Role::Customer, Role::InventoryManager, Role::MarketingManager] {
        let res = app
            .request(Method::POST, "/api/admin/jobs/popular-products")
            .bearer_auth(app.token(3, &[role]))
            .send()
            .await
            .unwrap();
        assert_error(res, 403, "FORBIDDEN").await;
    }
    let anonymous = app.request(Method::POST, "/api/admin/jobs/popular-products").send().await.unwrap();
    assert_error(anonymous, 401, "UNAUTHENTICATED").await;
    let runs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM popularity_snapshot_runs").fetch_one(&app.db).await.unwrap();
    assert_eq!(runs, 0);
}

#[tokio::test]
async fn the_top_products_are_priced_as_the_catalog_prices_them_fx_included() {
    let app = spawn_app().await;
    // 12,345 KRW at 1000 KRW per USD: 1234.5 cents, 1235 half-up.
    set_fx_rate(&app, "1000").await;
    let (converted, c_opts) = product(&app, "tea", "food", true, &[krw_opt(12_345, 10)]).await;
    // A list price of 1235 cents and a converted one of 1235: the list price wins the tie.
    let listed_usd = Opt { krw: Some(20_000), usd: Some(1_235), stock: 10, reserved: 0 };
    let (tied, t_opts) = product(&app, "cup", "food", true, &[listed_usd, krw_opt(12_345, 10)]).await;
    sale(&app, c_opts[0], 3, "PAID", "US", 1.0).await;
    sale(&app, t_opts[1], 2, "PAID", "US", 1.0).await;
    run_job(&app).await;

    let agrees_with_catalog = |top: &Value, listing: &Value| {
        assert_eq!(ids(top), [converted, tied]);
        for item in top["items"].as_array().unwrap() {
            let listed = listing["items"].as_array().unwrap().iter().find(|p| p["id"] == item["product_id"]).unwrap();
            assert_eq!((&item["price"], &item["price_source"]), (&listed["price"], &listed["price_source"]), "{top}");
        }
    };
    let us = top(&app, "?market=US", "en").await;
    agrees_with_catalog(&us, &products_page(&app, "?market=US&size=100").await);
    let sources: Vec<&Value> = us["items"].as_array().unwrap().iter().map(|i| &i["price_source"]).collect();
    assert_eq!(sources, [&json!("fx"), &json!("list")]);
    assert_eq!(us["items"][0]["price"], json!({"amount": 1235, "currency": "USD"}));

    // A new rate reprices the read at once (the snapshot ranks; the price is today's).
    set_fx_rate(&app, "1385.20").await;
    let us = top(&app, "?market=US", "en").await;
    agrees_with_catalog(&us, &products_page(&app, "?market=US&size=100").await);
    for item in us["items"].as_array().unwrap() {
        assert_eq!((&item["price"], &item["price_source"]), (&json!({"amount": 891, "currency": "USD"}), &json!("fx")));
    }
}
