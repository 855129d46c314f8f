//! The read path during a sale (issue 12): the catalog served from memory on every instance,
//! availability live from the V2 counters, changes seen everywhere within a second (a lost
//! notice healed), and the HTTP caching headers a CDN needs.

use std::time::{Duration, Instant};

use jupang::{
    http::auth::Role,
    services::AppState,
    services::catalog_cache::LIST_AVAILABILITY_AGE,
    store::redis::notices::{CHECK_EVERY, REVISIONS, Topic},
};
use reqwest::{Method, Response, header};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

mod under_load;

use crate::support::{
    Strategy, TestApp,
    child::{ChildServe, serve_app},
    json_of, opt, order_items, product, redis_cmd, sibling, simple, spawn_app,
};

/// A second instance of `app` on the same database and Redis prefix: a child `jupang serve`, or
/// an application in this process whose state the test can see.
pub(crate) struct Other {
    base: String,
    client: reqwest::Client,
    pub(crate) state: Option<AppState>,
    _serve: Option<ChildServe>,
    stop: Option<CancellationToken>,
}

impl Other {
    async fn start(app: &TestApp) -> Other {
        Other::start_with(app, &[]).await
    }

    async fn start_with(app: &TestApp, extra: &[(&str, &str)]) -> Other {
        let serve = serve_app(app, extra).await;
        let base = format!("http://{}", serve.addr);
        Other { base, client: reqwest::Client::new(), state: None, _serve: Some(serve), stop: None }
    }

    /// In this process, serving once its notice listener has subscribed (the first subscription
    /// drops the catalog: whatever changed before it may have been cached).
    pub(crate) async fn sibling(app: &TestApp) -> Other {
        let b = sibling(app, |_| {}).await;
        let (state, base, stop) = (b.state().clone(), format!("http://{}", b.local_addr()), b.shutdown_token());
        let (tx, mut subscribed) = tokio::sync::mpsc::unbounded_channel();
        state.notices.on(Topic::Product, move |_| {
            let _ = tx.send(());
        });
        tokio::spawn(b.run_until_stopped());
        tokio::time::timeout(Duration::from_secs(5), subscribed.recv()).await.expect("B subscribed");
        Other { base, client: reqwest::Client::new(), state: Some(state), _serve: None, stop: Some(stop) }
    }

    pub(crate) async fn get(&self, path: &str) -> Value {
        json_of(self.client.get(format!("{}{path}", self.base)).send().await.unwrap(), 200).await
    }
}

impl Drop for Other {
    fn drop(&mut self) {
        if let Some(stop) = &self.stop {
            stop.cancel();
        }
    }
}

async fn detail(app: &TestApp, id: i64) -> Value {
    json_of(app.get(&format!("/api/products/{id}")).await, 200).await
}

fn item(page: &Value, id: i64) -> Option<Value> {
    page["items"].as_array().unwrap().iter().find(|i| i["id"] == id).cloned()
}

/// Polls `read` until `holds`, for at most `within`; answers how long it took.
pub(crate) async fn within<F: Future<Output = Value>>(
    within: Duration,
    what: &str,
    mut read: impl FnMut() -> F,
    holds: impl Fn(&Value) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let v = read().await;
        if holds(&v) {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "not within {within:?}: {what}; last seen {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_order_on_one_instance_shows_on_the_others_pages_and_the_last_unit_sells_out_both_at_once() {
    let app = spawn_app().await;
    let (id, options) = product(&app, "Flash deal", "electronics", true, &[opt(10_000, 2)]).await;
    let b = Other::start(&app).await;
    let users = app.create_users(2, "KR", 1_000_000).await;
    // B has the page and the listing in memory before anything sells.
    assert_eq!(b.get(&format!("/api/products/{id}")).await["options"][0]["available"], 2);
    assert_eq!(item(&b.get("/api/products").await, id).unwrap()["stock_status"], "LOW_STOCK");

    json_of(order_items(&app, users[0], &[(options[0], 1)]).await, 201).await;
    let page = format!("/api/products/{id}");
    within(Duration::from_secs(1), "B's page shows 1 left", || b.get(&page), |d| d["options"][0]["available"] == 1)
        .await;

    json_of(order_items(&app, users[1], &[(options[0], 1)]).await, 201).await;
    // The moment the last unit is admitted: no waiting on either instance's product page.
    for page in [detail(&app, id).await, b.get(&format!("/api/products/{id}")).await] {
        assert_eq!(page["stock_status"], "SOLD_OUT", "{page}");
        assert_eq!(page["purchasable"], false);
        assert_eq!(page["options"][0]["available"], 0);
    }
    // The listings follow within a second.
    let took = within(
        Duration::from_secs(1),
        "B's listing shows SOLD_OUT",
        || b.get("/api/products"),
        |p| item(p, id).is_some_and(|i| i["stock_status"] == "SOLD_OUT"),
    )
    .await;
    assert!(took <= LIST_AVAILABILITY_AGE + Duration::from_millis(300), "{took:?}");
    let page = json_of(app.get("/api/products").await, 200).await;
    assert_eq!(item(&page, id).unwrap()["stock_status"], "SOLD_OUT");
}

#[tokio::test]
async fn under_v1_an_order_on_one_instance_changes_the_others_page_within_a_second() {
    let app = Strategy::DbPessimistic.spawn().await;
    let (id, options) = product(&app, "V1 deal", "home", true, &[opt(1_000, 3)]).await;
    let b = Other::start_with(&app, &[("JUPANG_ORDER_STRATEGY", "db-pessimistic")]).await;
    let user = app.create_user("KR", 1_000_000).await;
    let page = format!("/api/products/{id}");
    assert_eq!(b.get(&page).await["options"][0]["available"], 3);
    assert_eq!(detail(&app, id).await["options"][0]["available"], 3);

    // No V2 counter follows a V1 reservation: the Stock notice is what B obeys.
    json_of(order_items(&app, user, &[(options[0], 1)]).await, 201).await;
    assert_eq!(detail(&app, id).await["options"][0]["available"], 2, "the writer's instance at once");
    within(Duration::from_secs(1), "B's page shows 2 left", || b.get(&page), |d| d["options"][0]["available"] == 2)
        .await;
}

#[tokio::test]
async fn a_new_product_and_a_stock_adjustment_on_one_instance_are_seen_on_the_other_within_a_second() {
    let app = spawn_app().await;
    let (id, options) = product(&app, "Adjusted", "home", true, &[opt(5_000, 3)]).await;
    let b = Other::start(&app).await;
    let listed = b.get("/api/products").await;
    assert_eq!(listed["total"], 1);
    assert_eq!(b.get(&format!("/api/products/{id}")).await["options"][0]["available"], 3);

    let manager = app.token(9001, &[Role::InventoryManager]);
    let body = json!({"delta": 20, "reason": "입고"});
    let adjust = format!("/api/admin/inventory/{}/adjust", options[0]);
    json_of(app.send_json(Method::POST, &adjust, Some(&manager), &body).await, 200).await;
    let page = format!("/api/products/{id}");
    within(
        Duration::from_secs(1),
        "B's page shows the adjustment",
        || b.get(&page),
        |d| d["options"][0]["available"] == 23 && d["stock_status"] == "IN_STOCK",
    )
    .await;

    let new = json!({
        "name": {"ko": "새 상품", "en": "New product"}, "description": {"ko": "설명", "en": "About"},
        "category": "home", "on_sale": true,
        "options": [{"name": "One", "prices": {"KRW": 1000}, "stock": 5}]
    });
    let created = json_of(app.send_json(Method::POST, "/api/admin/products", Some(&manager), &new).await, 201).await;
    let new_id = created["id"].as_i64().unwrap();
    within(
        Duration::from_secs(1),
        "B lists the new product",
        || b.get("/api/products"),
        |p| p["total"] == 2 && item(p, new_id).is_some(),
    )
    .await;
}

#[tokio::test]
async fn a_change_whose_notice_was_lost_is_healed_by_the_revision_check() {
    let app = spawn_app().await;
    let id = simple(&app, "Old name", 1_000, 5).await;
    let b = Other::sibling(&app).await;
    assert_eq!(b.get(&format!("/api/products/{id}")).await["name"], "한국어 Old name");
    // An edit whose notice never went out: the row changed and only the revision moved.
    sqlx::query("UPDATE products SET name_ko = '새 이름' WHERE id = $1").bind(id).execute(&app.db).await.unwrap();
    tokio::time::sleep(CHECK_EVERY * 2).await;
    assert_eq!(
        b.get(&format!("/api/products/{id}")).await["name"],
        "한국어 Old name",
        "without a notice nor a revision B keeps its copy (so what follows is the healing)"
    );
    let _: i64 =
        redis_cmd(redis::cmd("HINCRBY").arg(format!("{}:{REVISIONS}", app.redis_prefix)).arg("product").arg(1)).await;
    let page = format!("/api/products/{id}");
    let took = within(Duration::from_secs(1), "B heals", || b.get(&page), |d| d["name"] == "새 이름").await;
    assert!(took < CHECK_EVERY * 2 + Duration::from_millis(200), "healed after {took:?}");
}

#[tokio::test]
async fn a_cold_burst_reads_postgres_once_and_later_reads_not_at_all() {
    let app = spawn_app().await;
    let id = simple(&app, "Burst", 1_000, 50).await;
    let b = Other::sibling(&app).await;
    let state = b.state.clone().unwrap();
    let page = format!("/api/products/{id}");
    let burst = || futures_util::future::join_all((0..64).map(|_| b.get(&page)));
    let before = state.catalog.loads();
    for d in burst().await {
        assert_eq!(d["id"], id);
    }
    assert_eq!(state.catalog.loads() - before, 1, "64 concurrent cold reads, one load");
    for d in burst().await {
        assert_eq!(d["id"], id);
    }
    assert_eq!(state.catalog.loads() - before, 1, "warm reads never load");
}

fn etag(res: &Response) -> String {
    res.headers()[header::ETAG].to_str().unwrap().to_owned()
}

async fn conditional(app: &TestApp, path: &str, tag: &str) -> Response {
    app.request(Method::GET, path).header(header::IF_NONE_MATCH, tag).send().await.unwrap()
}

#[tokio::test]
async fn a_current_etag_gets_304_and_after_a_change_200_with_a_new_tag() {
    let app = spawn_app().await;
    let (id, options) = product(&app, "Tagged", "home", true, &[opt(1_000, 5)]).await;
    let user = app.create_user("KR", 1_000_000).await;
    for path in [format!("/api/products/{id}"), "/api/products?size=20".to_owned(), "/api/products/top".to_owned()] {
        let first = app.get(&path).await;
        assert_eq!(first.status(), 200, "{path}");
        assert_eq!(first.headers()[header::CACHE_CONTROL], "public, max-age=1", "{path}");
        assert_eq!(first.headers()[header::VARY], "Accept-Language", "{path}");
        let tag = etag(&first);
        assert!(tag.starts_with('"') && tag.ends_with('"'), "a strong tag: {tag}");
        let again = conditional(&app, &path, &tag).await;
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(etag(&again), tag);
        assert_eq!(again.headers()[header::CACHE_CONTROL], "public, max-age=1");
        assert!(again.bytes().await.unwrap().is_empty(), "304 has no body");
        if !path.ends_with("top") {
            // Another language is another representation (no snapshot yet: top is empty in both).
            let en = app.request(Method::GET, &path).header(header::ACCEPT_LANGUAGE, "en").send().await.unwrap();
            assert_ne!(etag(&en), tag, "{path}");
        }
    }

    let path = format!("/api/products/{id}");
    let tag = etag(&app.get(&path).await);
    json_of(order_items(&app, user, &[(options[0], 1)]).await, 201).await;
    let after = conditional(&app, &path, &tag).await;
    assert_eq!(after.status(), 200, "the page changed (4 left)");
    assert_ne!(etag(&after), tag);
    let new_tag = etag(&after);
    assert_eq!(json_of(after, 200).await["options"][0]["available"], 4);
    assert_eq!(conditional(&app, &path, &new_tag).await.status(), 304);
}

#[tokio::test]
async fn user_scoped_answers_never_carry_a_public_cache_header() {
    let app = spawn_app().await;
    let (id, options) = product(&app, "Private", "home", true, &[opt(1_000, 5)]).await;
    let user = app.create_user("US", 1_000_000).await;
    let order = json_of(order_items(&app, user, &[(options[0], 1)]).await, 201).await;
    let order_id = order["order_id"].as_str().unwrap();
    let routes = [
        format!("/api/users/{user}/cart"),
        format!("/api/orders/{order_id}"),
        format!("/api/users/{user}/orders"),
        format!("/api/users/{user}/coupons"),
        format!("/api/users/{user}/balance"),
        format!("/api/users/{user}/balance/transactions"),
        "/api/products".to_owned(),
        format!("/api/products/{id}"),
    ];
    for path in routes {
        let res = app.get_as(user, &path).await;
        let cc = res.headers().get(header::CACHE_CONTROL).map(|v| v.to_str().unwrap().to_owned());
        let cc = cc.unwrap_or_else(|| panic!("{path} ({}) has no Cache-Control", res.status()));
        assert!(!cc.contains("public"), "{path}: {cc}");
        assert!(cc.contains("private"), "{path}: {cc}");
    }
    // The catalog priced in the caller's (US) market is the caller's own answer.
    let res = app.get_as(user, "/api/products").await;
    assert_eq!(res.headers()[header::CACHE_CONTROL], "private, no-cache");
    assert_eq!(json_of(res, 200).await["items"][0]["price"]["currency"], "USD");
    // Errors are never stored either.
    let res = app.get(&format!("/api/users/{user}/cart")).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "private, no-store");
}

#[tokio::test]
async fn the_openapi_document_declares_the_caching_headers_and_304() {
    let app = spawn_app().await;
    let doc = json_of(app.get("/api-docs/openapi.json").await, 200).await;
    for path in ["/api/products", "/api/products/{product_id}", "/api/products/top"] {
        let get = &doc["paths"][path]["get"];
        for header in ["ETag", "Cache-Control", "Vary"] {
            assert!(get["responses"]["200"]["headers"][header].is_object(), "{path} 200 {header}");
            assert!(get["responses"]["304"]["headers"][header].is_object(), "{path} 304 {header}");
        }
        let params = get["parameters"].as_array().unwrap();
        assert!(params.iter().any(|p| p["name"] == "If-None-Match" && p["in"] == "header"), "{path}");
    }
}

#[tokio::test]
async fn an_if_none_match_outside_its_declared_pattern_or_length_is_400_naming_the_header() {
    let app = crate::support::spawn_app().await;
    for bad in ["\"a\"\t\"b\"".to_owned(), "x".repeat(1_025)] {
        let res = app.request(reqwest::Method::GET, "/api/products").header("If-None-Match", bad).send().await.unwrap();
        let body = crate::support::assert_error(res, 400, "VALIDATION_ERROR").await;
        assert_eq!(body["details"]["field"], "If-None-Match");
    }
}
