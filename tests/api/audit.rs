//! The one audit log: every admin write leaves exactly one entry (actor, roles, action, entity,
//! before, after, reason) in the transaction of its change, a refused request none; the log is
//! read with filters by `ops_admin`, and by an `inventory_manager` for the stock entries only.

use jupang::http::auth::Role;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::support::{TestApp, assert_error, create_coupon, issue, json_of, spawn_app};

/// The id in tokens of the administrator.
const ADMIN: i64 = 920_001;

fn admin(app: &TestApp) -> String {
    app.token(ADMIN, &[Role::OpsAdmin])
}

async fn send(app: &TestApp, method: Method, path: &str, body: &Value) -> Response {
    app.send_json(method, path, Some(&admin(app)), body).await
}

async fn audit_page(app: &TestApp, token: &str, query: &str) -> Response {
    app.request(Method::GET, &format!("/api/admin/audit{query}")).bearer_auth(token).send().await.unwrap()
}

async fn total(app: &TestApp) -> i64 {
    json_of(audit_page(app, &admin(app), "").await, 200).await["total"].as_i64().unwrap()
}

/// The only entry about an entity, asserting there is exactly one and that it is the newest.
async fn only_entry(app: &TestApp, entity_type: &str, entity_id: &str, action: &str) -> Value {
    let page = audit_page(app, &admin(app), &format!("?entity_type={entity_type}&entity_id={entity_id}")).await;
    let page = json_of(page, 200).await;
    let entries: Vec<&Value> = page["items"].as_array().unwrap().iter().filter(|e| e["action"] == action).collect();
    assert_eq!(entries.len(), 1, "{action}: {page}");
    let e = entries[0].clone();
    assert_eq!((e["actor"].as_i64(), e["roles"].clone()), (Some(ADMIN), json!(["ops_admin"])), "{e}");
    e
}

#[tokio::test]
async fn every_admin_write_leaves_exactly_one_entry_with_its_before_and_after() {
    let app = spawn_app().await;
    let mut expected = 0;
    let mut step = async |app: &TestApp| {
        expected += 1;
        assert_eq!(total(app).await, expected, "not exactly one entry per write");
    };

    let user =
        json_of(send(&app, Method::POST, "/api/admin/users", &json!({"name": "Kim", "market": "KR"})).await, 201).await;
    step(&app).await;
    let uid = user["user_id"].to_string();
    let e = only_entry(&app, "user", &uid, "user.create").await;
    assert_eq!((e["before"].clone(), e["after"]["name"].clone()), (Value::Null, json!("Kim")));

    let body = json!({
        "name": {"ko": "연필", "en": "Pencil"}, "category": "office",
        "options": [{"name": "HB", "prices": {"KRW": 1000}, "stock": 10}],
    });
    let product = json_of(send(&app, Method::POST, "/api/admin/products", &body).await, 201).await;
    step(&app).await;
    let (pid, oid) = (product["id"].to_string(), product["options"][0]["id"].as_i64().unwrap());
    let e = only_entry(&app, "product", &pid, "product.create").await;
    assert_eq!(e["after"]["options"][0]["prices"], json!({"KRW": 1000}));

    let patch = json!({"on_sale": false, "options": [{"id": oid, "prices": {"KRW": 1200}}], "reason": "price up"});
    json_of(send(&app, Method::PATCH, &format!("/api/admin/products/{pid}"), &patch).await, 200).await;
    step(&app).await;
    let e = only_entry(&app, "product", &pid, "product.update").await;
    assert_eq!((e["before"]["on_sale"].clone(), e["after"]["on_sale"].clone()), (json!(true), json!(false)));
    assert_eq!(e["before"]["options"][0]["prices"]["KRW"], 1000);
    assert_eq!(
        (e["after"]["options"][0]["prices"]["KRW"].clone(), e["reason"].clone()),
        (json!(1200), json!("price up"))
    );

    let adjust = json!({"delta": -3, "reason": "count"});
    json_of(send(&app, Method::POST, &format!("/api/admin/inventory/{oid}/adjust"), &adjust).await, 200).await;
    step(&app).await;
    let e = only_entry(&app, "product_option", &oid.to_string(), "inventory.adjust").await;
    assert_eq!((e["before"].clone(), e["after"].clone()), (json!({"stock": 10}), json!({"stock": 7, "delta": -3})));

    let coupon = create_coupon(&app, 10, json!({})).await;
    step(&app).await;
    let cid = coupon.to_string();
    assert_eq!(only_entry_by_manager(&app, &cid, "coupon.create").await["after"]["total_quantity"], 10);
    json_of(send(&app, Method::PATCH, &format!("/api/admin/coupons/{cid}"), &json!({"total_quantity": 20})).await, 200)
        .await;
    step(&app).await;
    let e = only_entry(&app, "coupon", &cid, "coupon.update").await;
    assert_eq!((e["before"]["total_quantity"].clone(), e["after"]["total_quantity"].clone()), (json!(10), json!(20)));

    let holder = app.create_user("KR", 0).await;
    let uc = json_of(issue(&app, coupon, holder).await, 201).await["user_coupon_id"].clone();
    let revoke = json!({"user_coupon_ids": [uc], "reason": "fraud"});
    json_of(send(&app, Method::POST, &format!("/api/admin/coupons/{cid}/revoke"), &revoke).await, 200).await;
    step(&app).await;
    let e = only_entry(&app, "coupon", &cid, "coupon.revoke").await;
    let key = uc.as_str().unwrap();
    assert_eq!(
        (e["before"]["user_coupons"][key].clone(), e["after"]["user_coupons"][key].clone()),
        (json!("AVAILABLE"), json!("REVOKED"))
    );
    assert_eq!(e["reason"], "fraud");

    let event: uuid::Uuid =
        sqlx::query_scalar("UPDATE outbox_events SET status = 'FAILED' WHERE id = (SELECT id FROM outbox_events ORDER BY id LIMIT 1) RETURNING id")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let res = send(&app, Method::POST, &format!("/api/admin/outbox/{event}/redeliver"), &json!({})).await;
    json_of(res, 202).await;
    step(&app).await;
    let e = only_entry(&app, "outbox_event", &event.to_string(), "outbox.redeliver").await;
    assert_eq!((e["before"]["status"].clone(), e["after"]["status"].clone()), (json!("FAILED"), json!("PENDING")));

    // Filters: by actor, and paging.
    let page = json_of(audit_page(&app, &admin(&app), &format!("?actor={ADMIN}&size=2&page=1")).await, 200).await;
    assert_eq!((page["total"].as_i64(), page["items"].as_array().unwrap().len()), (Some(expected - 1), 2));
    assert_eq!(page["items"][0]["action"], "outbox.redeliver", "newest first");
}

/// The coupon's creation entry, made by the marketing manager of the fixtures.
async fn only_entry_by_manager(app: &TestApp, coupon_id: &str, action: &str) -> Value {
    let page = audit_page(app, &admin(app), &format!("?entity_type=coupon&entity_id={coupon_id}")).await;
    let page = json_of(page, 200).await;
    let entries: Vec<&Value> = page["items"].as_array().unwrap().iter().filter(|e| e["action"] == action).collect();
    assert_eq!(entries.len(), 1, "{page}");
    assert_eq!(entries[0]["roles"], json!(["marketing_manager"]));
    entries[0].clone()
}

#[tokio::test]
async fn a_refused_admin_request_leaves_no_entry() {
    let app = spawn_app().await;
    let body = json!({
        "name": {"ko": "연필", "en": "Pencil"}, "category": "office",
        "options": [{"name": "HB", "prices": {"KRW": 1000}, "stock": 1}],
    });
    let product = json_of(send(&app, Method::POST, "/api/admin/products", &body).await, 201).await;
    let (pid, oid) = (product["id"].as_i64().unwrap(), product["options"][0]["id"].as_i64().unwrap());
    let coupon = create_coupon(&app, 10, json!({})).await;
    let before = total(&app).await;
    let refused: [(Method, String, Value, u16); 8] = [
        (Method::POST, "/api/admin/users".into(), json!({"name": " ", "market": "KR"}), 400),
        (
            Method::POST,
            "/api/admin/products".into(),
            json!({"name": {"ko": "x", "en": "x"}, "category": "x", "options": []}),
            400,
        ),
        (Method::PATCH, format!("/api/admin/products/{pid}"), json!({"category": "Bad"}), 400),
        (Method::POST, format!("/api/admin/inventory/{oid}/adjust"), json!({"delta": -5, "reason": "too many"}), 400),
        (Method::PATCH, format!("/api/admin/coupons/{coupon}"), json!({"total_quantity": 0}), 400),
        (
            Method::POST,
            format!("/api/admin/coupons/{coupon}/revoke"),
            json!({"user_coupon_ids": [], "reason": "x"}),
            400,
        ),
        (Method::POST, format!("/api/admin/outbox/{}/redeliver", uuid::Uuid::now_v7()), json!({}), 404),
        (Method::PATCH, "/api/admin/products/987654".into(), json!({"on_sale": false}), 404),
    ];
    for (method, path, body, status) in refused {
        let res = send(&app, method, &path, &body).await;
        assert_eq!(res.status().as_u16(), status, "{path}");
    }
    // Refused by the role gate too.
    let customer = app.customer(1);
    let res = app
        .send_json(Method::PATCH, &format!("/api/admin/products/{pid}"), Some(&customer), &json!({"on_sale": false}))
        .await;
    assert_error(res, 403, "FORBIDDEN").await;
    assert_eq!(total(&app).await, before, "a refused request left an entry");
}

#[tokio::test]
async fn an_inventory_manager_reads_the_stock_entries_only() {
    let app = spawn_app().await;
    let body = json!({
        "name": {"ko": "연필", "en": "Pencil"}, "category": "office",
        "options": [{"name": "HB", "prices": {"KRW": 1000}, "stock": 1}],
    });
    let product = json_of(send(&app, Method::POST, "/api/admin/products", &body).await, 201).await;
    let oid = product["options"][0]["id"].as_i64().unwrap();
    json_of(
        send(&app, Method::POST, &format!("/api/admin/inventory/{oid}/adjust"), &json!({"delta": 4, "reason": "in"}))
            .await,
        200,
    )
    .await;
    let stock = app.token(7, &[Role::InventoryManager]);
    let page = json_of(audit_page(&app, &stock, "").await, 200).await;
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["items"][0]["entity_type"], "product_option");
    assert_error(audit_page(&app, &stock, "?entity_type=product").await, 403, "FORBIDDEN").await;
    let marketer = app.token(7, &[Role::MarketingManager]);
    assert_error(audit_page(&app, &marketer, "").await, 403, "FORBIDDEN").await;
    // The stock audit route of before still shows the entry, from the one log.
    let res = app
        .request(Method::GET, &format!("/api/admin/inventory/audit?product_option_id={oid}"))
        .bearer_auth(&stock)
        .send();
    let old = json_of(res.await.unwrap(), 200).await;
    assert_eq!((old["items"][0]["stock_before"].clone(), old["items"][0]["stock_after"].clone()), (json!(1), json!(5)));
}

#[tokio::test]
async fn migration_0006_folds_the_stock_audit_of_before_into_the_one_log_with_its_history() {
    use sqlx::{Connection, Executor, PgConnection};

    use crate::support::{env, unique, with_db};

    let name = format!("jt_{}", unique());
    let mut admin = PgConnection::connect(&env("DATABASE_URL")).await.unwrap();
    admin.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await.unwrap();
    let mut conn = PgConnection::connect(&with_db(&env("DATABASE_URL"), &name)).await.unwrap();
    let migrations: Vec<_> =
        jupang::store::pg::MIGRATOR.iter().filter(|m| !m.migration_type.is_down_migration()).collect();
    for m in migrations.iter().filter(|m| m.version < 6) {
        sqlx::raw_sql(&m.sql).execute(&mut conn).await.unwrap();
    }
    sqlx::raw_sql(
        "INSERT INTO products (id, category, name_ko, name_en) VALUES (1, 'office', '연필', 'Pencil');
         INSERT INTO product_options (id, product_id, name, stock) VALUES (7, 1, 'HB', 12);
         INSERT INTO inventory_audit_log (option_id, actor_user_id, reason, delta, stock_before, stock_after, created_at)
         VALUES (7, 42, 'received', 10, 0, 10, '2026-11-01T00:00:00Z'), (7, 43, 'found', 2, 10, 12, '2026-11-02T00:00:00Z');",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let m6 = migrations.iter().find(|m| m.version == 6).expect("migration 0006");
    sqlx::raw_sql(&m6.sql).execute(&mut conn).await.unwrap();

    type Folded = (i64, Vec<String>, String, String, String, Value, Value, String);
    let folded: Vec<Folded> = sqlx::query_as(
        "SELECT actor, roles, action, entity_type, entity_id, before, after, reason FROM audit_log ORDER BY at",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(folded.len(), 2);
    let (actor, roles, action, entity_type, entity_id, before, after, reason) = folded[1].clone();
    assert_eq!((actor, roles, action.as_str()), (43, vec!["inventory_manager".to_owned()], "inventory.adjust"));
    assert_eq!((entity_type.as_str(), entity_id.as_str(), reason.as_str()), ("product_option", "7", "found"));
    assert_eq!((before, after), (json!({"stock": 10}), json!({"stock": 12, "delta": 2})));
    // The old name reads the same history.
    let old: Vec<(i64, i64, i32, i32, i32)> = sqlx::query_as(
        "SELECT option_id, actor_user_id, delta, stock_before, stock_after FROM inventory_audit_log ORDER BY created_at",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(old, vec![(7, 42, 10, 0, 10), (7, 43, 2, 10, 12)]);
    conn.close().await.unwrap();
    admin.execute(format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#).as_str()).await.unwrap();
}
