//! Every admin write of the OpenAPI document leaves exactly one audit entry, written in the
//! transaction of its change: the table of [`cases`] has one case per route (a route without one
//! fails [`every_admin_write_route_of_the_document_has_a_case`]), each with the entry it must
//! leave and the requests it refuses, which leave none. A write whose entry cannot be written
//! answers 500 and changes nothing; a write that changes nothing leaves no entry and no notice.

mod cases;

use std::{collections::BTreeSet, time::Duration};

use jupang::{http::auth::Role, store::redis::notices::Topic};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use self::cases::{ACTOR, ROUTES, Refusal, Write, prepare};
use crate::support::{
    TestApp, assert_error, audit_log_page, audit_total, create_coupon, db_fingerprint, fail_inserts, forward_notices,
    heal_inserts, json_of, krw_opt, product, set_fx_rate, sibling, spawn_app,
};

/// The refusals every admin write shares: no token, and a customer's.
fn shared_refusals(w: &Write) -> [Refusal; 2] {
    let (path, body) = (w.path.clone(), w.body.clone());
    [
        Refusal { status: 401, code: "UNAUTHENTICATED", path: path.clone(), body: body.clone(), roles: None },
        Refusal { status: 403, code: "FORBIDDEN", path, body, roles: Some(&[Role::Customer]) },
    ]
}

async fn send(app: &TestApp, method: Method, path: &str, body: Option<&Value>, roles: Option<&[Role]>) -> Response {
    let mut req = app.request(method, path);
    if let Some(body) = body {
        req = req.json(body);
    }
    if let Some(roles) = roles {
        req = req.bearer_auth(app.token(ACTOR, roles));
    }
    req.send().await.expect("request")
}

async fn send_write(app: &TestApp, w: &Write) -> Response {
    send(app, w.method.clone(), &w.path, w.body.as_ref(), Some(w.roles)).await
}

/// The answer of the case's witness GET (status and body), if it has one.
async fn witness(app: &TestApp, w: &Write) -> Option<(u16, String)> {
    let path = w.witness.as_ref()?;
    let res = app.request(Method::GET, path).bearer_auth(app.token(ACTOR, &[Role::OpsAdmin])).send().await.unwrap();
    Some((res.status().as_u16(), res.text().await.unwrap()))
}

/// Whether `actual` holds `expected`: objects at least its members, arrays element by element,
/// anything else (`null` included) equal.
fn holds(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e.iter().all(|(k, v)| a.get(k).is_some_and(|a| holds(v, a))),
        (Value::Array(e), Value::Array(a)) => e.len() == a.len() && e.iter().zip(a).all(|(e, a)| holds(e, a)),
        _ => expected == actual,
    }
}

fn role_names(roles: &[Role]) -> Value {
    json!(roles.iter().map(|r| serde_json::to_value(r).unwrap()).collect::<Vec<_>>())
}

/// `(method, path)` of every write (POST, PUT, PATCH, DELETE) under `/api/admin` in the served
/// document.
async fn documented_admin_writes(app: &TestApp) -> BTreeSet<(String, String)> {
    let doc = json_of(app.get("/api-docs/openapi.json").await, 200).await;
    let mut writes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/api/admin/") {
            continue;
        }
        for method in ["post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                writes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    writes
}

#[tokio::test]
async fn every_admin_write_route_of_the_document_has_a_case() {
    let app = spawn_app().await;
    let documented = documented_admin_writes(&app).await;
    let cased: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    let missing: Vec<_> = documented.difference(&cased).collect();
    assert!(missing.is_empty(), "admin writes without an audit case in audit_every_write/cases.rs: {missing:?}");
    let stale: Vec<_> = cased.difference(&documented).collect();
    assert!(stale.is_empty(), "cases of routes the document does not have: {stale:?}");
}

#[tokio::test]
async fn every_admin_write_leaves_exactly_one_entry_with_its_actor_roles_before_after_and_reason() {
    let app = spawn_app().await;
    for (method, route) in ROUTES {
        let w = prepare(&app, method, route).await;
        let total = audit_total(&app).await;
        let answer = json_of(send_write(&app, &w).await, w.status).await;
        assert_eq!(audit_total(&app).await, total + 1, "{method} {route}: not exactly one entry");
        let entry = audit_log_page(&app, "?size=1").await["items"][0].clone();
        let entity_id = match (&w.entity_id, w.created_id) {
            (Some(id), _) => id.clone(),
            (None, Some(field)) => match &answer[field] {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            },
            (None, None) => unreachable!("a case names its entity"),
        };
        let who = (entry["actor"].as_i64(), entry["roles"].clone(), entry["action"].as_str());
        assert_eq!(who, (Some(ACTOR), role_names(w.roles), Some(w.action)), "{method} {route}: {entry}");
        let what = (entry["entity_type"].as_str(), entry["entity_id"].as_str());
        assert_eq!(what, (Some(w.entity_type), Some(entity_id.as_str())), "{method} {route}: {entry}");
        assert!(holds(&w.before, &entry["before"]), "{method} {route}: before {} lacks {}", entry["before"], w.before);
        assert!(holds(&w.after, &entry["after"]), "{method} {route}: after {} lacks {}", entry["after"], w.after);
        assert_eq!(entry["reason"], w.reason, "{method} {route}");
        // The filters find it.
        let query = format!("?entity_type={}&entity_id={}", w.entity_type, entity_id.replace('/', "%2F"));
        let page = audit_log_page(&app, &query).await;
        assert_eq!(page["items"][0]["id"], entry["id"], "{method} {route}: {page}");
    }
}

#[tokio::test]
async fn a_refused_admin_write_leaves_no_entry_and_changes_nothing() {
    let app = spawn_app().await;
    let doc = json_of(app.get("/api-docs/openapi.json").await, 200).await;
    for (method, route) in ROUTES {
        let w = prepare(&app, method, route).await;
        let refusals: Vec<Refusal> = shared_refusals(&w).into_iter().chain(w.refusals.iter().map(clone)).collect();
        // Every refusal the document promises for the route is tried.
        let documented = &doc["paths"][route][method.to_lowercase()]["responses"];
        for status in ["401", "403", "404", "409"] {
            let tried = refusals.iter().any(|r| r.status.to_string() == status);
            assert!(documented.get(status).is_none() || tried, "{method} {route}: no case of its {status}");
        }
        let (rows, seen) = (db_fingerprint(&app.db).await, witness(&app, &w).await);
        for r in &refusals {
            let res = send(&app, w.method.clone(), &r.path, r.body.as_ref(), r.roles).await;
            assert_eq!(res.status().as_u16(), r.status, "{method} {} by {:?}", r.path, r.roles);
            assert_error(res, r.status, r.code).await;
        }
        assert_eq!(db_fingerprint(&app.db).await, rows, "{method} {route}: a refused request changed rows");
        assert_eq!(witness(&app, &w).await, seen, "{method} {route}: a refused request changed what is served");
    }
}

fn clone(r: &Refusal) -> Refusal {
    Refusal { status: r.status, code: r.code, path: r.path.clone(), body: r.body.clone(), roles: r.roles }
}

#[tokio::test]
async fn an_admin_write_whose_audit_entry_cannot_be_written_answers_500_and_changes_nothing() {
    let app = spawn_app().await;
    for (method, route) in ROUTES {
        let w = prepare(&app, method, route).await;
        let (rows, seen) = (db_fingerprint(&app.db).await, witness(&app, &w).await);
        fail_inserts(&app.db, "audit_log").await;
        let res = send_write(&app, &w).await;
        heal_inserts(&app.db, "audit_log").await;
        let body = assert_error(res, 500, "INTERNAL").await;
        assert!(!body.to_string().contains("audit_log"), "{method} {route}: the answer leaks the fault: {body}");
        assert_eq!(db_fingerprint(&app.db).await, rows, "{method} {route}: the change committed without its entry");
        assert_eq!(witness(&app, &w).await, seen, "{method} {route}: the change is served without its entry");
        // The same write, its entry writable again, goes through: the fault was the entry's.
        json_of(send_write(&app, &w).await, w.status).await;
    }
}

/// The notices received until `last` (within 5 s), `last` included.
async fn notices_until(rx: &mut mpsc::UnboundedReceiver<Option<i64>>, last: i64) -> Vec<Option<i64>> {
    let mut seen = Vec::new();
    while seen.last() != Some(&Some(last)) {
        let next = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        seen.push(next.unwrap_or_else(|_| panic!("no notice of {last} within 5 s; got {seen:?}")).unwrap());
    }
    seen
}

#[tokio::test]
async fn an_admin_write_that_changes_nothing_leaves_no_entry_no_row_change_and_no_notice() {
    let app = spawn_app().await;
    let ops = app.token(ACTOR, &[Role::OpsAdmin]);
    let room = json!({
        "enabled": true, "admit_per_second": 10, "max_active": 100, "pass_ttl_secs": 60,
        "opens_at": "2026-12-01T00:00:00Z",
    });
    let (quiet_coupon, loud_coupon) =
        (create_coupon(&app, 10, json!({})).await, create_coupon(&app, 10, json!({})).await);
    let put_room = async |coupon: i64| {
        app.send_json(Method::PUT, &format!("/api/admin/waiting-rooms/coupon/{coupon}"), Some(&ops), &room).await
    };
    json_of(put_room(quiet_coupon).await, 200).await;
    set_fx_rate(&app, "1385.20").await;
    let (quiet_product, oids) = product(&app, "Pencil", "office", true, &[krw_opt(1000, 5)]).await;
    let loud_product = product(&app, "Pen", "office", true, &[krw_opt(900, 5)]).await.0;

    // A second instance listening, past its first subscription's announcements.
    let b = sibling(&app, |_| {}).await;
    let (mut rooms, mut products) =
        (forward_notices(&b.state().notices, Topic::WaitingRoom), forward_notices(&b.state().notices, Topic::Product));
    let stop = b.shutdown_token();
    tokio::spawn(b.run_until_stopped());
    for rx in [&mut rooms, &mut products] {
        let first = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("subscribed");
        assert_eq!(first, Some(None), "the first subscription's announcement");
    }
    let (rows, total) = (db_fingerprint(&app.db).await, audit_total(&app).await);

    // The same settings, the same rate (written another way), the same price and flag.
    json_of(put_room(quiet_coupon).await, 200).await;
    json_of(app.send_json(Method::PUT, "/api/admin/fx-rates", Some(&ops), &json!({"USD/KRW": "1385.2"})).await, 200)
        .await;
    let same = json!({"on_sale": true, "options": [{"id": oids[0], "prices": {"KRW": 1000}}]});
    json_of(
        app.send_json(Method::PATCH, &format!("/api/admin/products/{quiet_product}"), Some(&ops), &same).await,
        200,
    )
    .await;
    let coupon_path = format!("/api/admin/coupons/{quiet_coupon}");
    json_of(app.send_json(Method::PATCH, &coupon_path, Some(&ops), &json!({"total_quantity": 10})).await, 200).await;

    assert_eq!(audit_total(&app).await, total, "a write that changed nothing left an entry");
    assert_eq!(db_fingerprint(&app.db).await, rows, "a write that changed nothing rewrote rows");
    // Real changes next: their notices are the first the other instance gets.
    json_of(put_room(loud_coupon).await, 200).await;
    let got = notices_until(&mut rooms, loud_coupon).await;
    assert!(!got.contains(&Some(quiet_coupon)), "an unchanged room was announced: {got:?}");
    let off = json!({"on_sale": false});
    json_of(app.send_json(Method::PATCH, &format!("/api/admin/products/{loud_product}"), Some(&ops), &off).await, 200)
        .await;
    let got = notices_until(&mut products, loud_product).await;
    assert!(!got.contains(&Some(quiet_product)), "an unchanged product was announced: {got:?}");
    stop.cancel();
}
