//! Contract fidelity: the published OpenAPI document says what the wire does, and hostile input
//! (NUL, oversized or mistyped bodies, abusive headers) is answered 4xx with nothing changed.

use jupang::http::auth::Role;
use reqwest::{Method, header::HeaderValue};
use serde_json::{Value, json};

use crate::support::{TestApp, assert_error, coupon_body, json_of, manager, opt, product, spawn_app, stock_of};

async fn openapi(app: &TestApp) -> Value {
    json_of(app.get("/api-docs/openapi.json").await, 200).await
}

async fn users(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.db).await.unwrap()
}

async fn audit_entries(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM inventory_audit_log").fetch_one(&app.db).await.unwrap()
}

async fn coupons(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM coupons").fetch_one(&app.db).await.unwrap()
}

/// `POST /api/admin/coupons` with a valid campaign whose `field` is the raw JSON text `number`
/// (written by hand: serde_json would print a float its own way).
async fn create_coupon_with(app: &TestApp, field: &str, number: &str) -> reqwest::Response {
    let body = coupon_body(10, json!({ field: "@number@" })).to_string().replace("\"@number@\"", number);
    app.request(Method::POST, "/api/admin/coupons")
        .bearer_auth(manager(app))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_published_error_codes_are_the_wire_codes() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let published: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let answered = assert_error(app.get("/api/users/1/balance").await, 401, "UNAUTHENTICATED").await;
    assert!(published.contains(&answered["code"].as_str().unwrap()), "{published:?}");
    for code in ["VALIDATION_ERROR", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE", "OVERLOADED", "INTERNAL"] {
        assert!(published.contains(&code), "{code} is not published: {published:?}");
    }
    assert!(!published.contains(&"ValidationError"));
}

/// Every request string of a schema (following `$ref`s), with where it is.
fn request_strings<'a>(schema: &'a Value, doc: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return request_strings(&doc["components"]["schemas"][name], doc, at, out);
    }
    let is_string =
        schema["type"] == "string" || schema["type"].as_array().is_some_and(|t| t.contains(&json!("string")));
    if is_string {
        out.push((at.clone(), schema));
    }
    if let Some(props) = schema["properties"].as_object() {
        for (k, v) in props {
            request_strings(v, doc, format!("{at}.{k}"), out);
        }
    }
    for key in ["items", "additionalProperties"] {
        if schema[key].is_object() {
            request_strings(&schema[key], doc, format!("{at}[]"), out);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for sub in schema[key].as_array().into_iter().flatten() {
            request_strings(sub, doc, at.clone(), out);
        }
    }
}

#[tokio::test]
async fn every_operation_declares_its_error_answers_and_bounds_every_text_input() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let at = format!("{} {path}", method.to_uppercase());
            let responses = &op["responses"];
            let mut expected = vec!["500", "503"];
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                expected.extend(["401", "403"]);
            }
            if op.get("requestBody").is_some() {
                expected.extend(["400", "413", "415"]);
            }
            if path.contains('{') {
                expected.extend(["400", "404"]);
            }
            for status in expected {
                let body = &responses[status]["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(body, "#/components/schemas/ErrorBody", "{at} does not declare {status}");
            }
            assert!(responses["503"]["headers"]["Retry-After"].is_object(), "{at}: 503 without Retry-After");

            let mut strings = Vec::new();
            for p in op["parameters"].as_array().into_iter().flatten() {
                request_strings(&p["schema"], &doc, format!("{at} {}", p["name"]), &mut strings);
            }
            request_strings(
                &op["requestBody"]["content"]["application/json"]["schema"],
                &doc,
                at.clone(),
                &mut strings,
            );
            for (field, s) in strings {
                let closed = s.get("enum").is_some() || s.get("format").is_some();
                assert!(closed || s["maxLength"].is_u64(), "{field} has no maximum length: {s}");
                // NUL can only slip through a negated class or `.`; those must exclude it by name.
                let nul_free = |p: &str| p.contains(r"\x00") || !(p.contains("[^") || p.contains('.'));
                assert!(closed || s["pattern"].as_str().is_some_and(nul_free), "{field} admits NUL: {s}");
            }
        }
    }
    assert!(operations >= 29, "{operations} operations");
    let charge = &doc["paths"]["/api/users/{user_id}/balance/charge"]["post"]["parameters"];
    let key = charge.as_array().unwrap().iter().find(|p| p["name"] == "Idempotency-Key").expect("Idempotency-Key");
    assert_eq!(key["schema"]["maxLength"], 255);
    let created = &doc["paths"]["/api/orders"]["post"]["responses"]["201"];
    assert_eq!(created["headers"]["Idempotent-Replayed"]["schema"]["enum"], json!(["true"]));
}

#[tokio::test]
async fn a_nul_in_a_query_or_a_path_is_400_naming_the_parameter() {
    let app = spawn_app().await;
    let res = app.get("/api/products?q=a%00b").await;
    assert_eq!(assert_error(res, 400, "VALIDATION_ERROR").await["details"]["field"], "q");
    let res = app.get("/api/products?category=%00").await;
    assert_eq!(assert_error(res, 400, "VALIDATION_ERROR").await["details"]["field"], "category");
    let res = app.get("/api/products/1%00").await;
    assert_eq!(assert_error(res, 400, "VALIDATION_ERROR").await["details"]["field"], "product_id");
    let res = app.request(Method::GET, "/api/orders/a%00b").bearer_auth(app.customer(1)).send().await.unwrap();
    assert_eq!(assert_error(res, 400, "VALIDATION_ERROR").await["details"]["field"], "order_id");
    let long = "a".repeat(201);
    let res = app.get(&format!("/api/products?q={long}")).await;
    assert_eq!(assert_error(res, 400, "VALIDATION_ERROR").await["details"]["field"], "q");
    // Still a working catalog afterwards.
    json_of(app.get("/api/products?q=a").await, 200).await;
}

#[tokio::test]
async fn a_nul_in_a_body_is_400_naming_the_field_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.token(1, &[Role::OpsAdmin]);
    let res = app
        .send_json(Method::POST, "/api/admin/users", Some(&admin), &json!({"name": "a\u{0}b", "market": "KR"}))
        .await;
    assert_eq!(assert_error(res, 400, "VALIDATION_ERROR").await["details"]["field"], "name");
    assert_eq!(users(&app).await, 0);

    let option = product(&app, "Shirt", "fashion", true, &[opt(1000, 10)]).await.1[0];
    let path = format!("/api/admin/inventory/{option}/adjust");
    let res = app.send_json(Method::POST, &path, Some(&admin), &json!({"delta": 5, "reason": "in\u{0}"})).await;
    assert_eq!(assert_error(res, 400, "VALIDATION_ERROR").await["details"]["field"], "reason");
    let res = app
        .send_json(
            Method::POST,
            "/api/admin/products",
            Some(&admin),
            &json!({"name": {"ko": "a", "en": "b"},
            "category": "food", "options": [{"name": "x\u{0}", "prices": {"KRW": 1}, "stock": 1}]}),
        )
        .await;
    assert_eq!(assert_error(res, 400, "VALIDATION_ERROR").await["details"]["field"], "options[0].name");
    assert_eq!(stock_of(&app, option).await, (10, 0));
    assert_eq!(audit_entries(&app).await, 0);
    let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products").fetch_one(&app.db).await.unwrap();
    assert_eq!(products, 1);
}

#[tokio::test]
async fn blank_or_overlong_text_is_400_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.token(1, &[Role::OpsAdmin]);
    for name in [" \u{3000} ".to_owned(), "가".repeat(201)] {
        let res =
            app.send_json(Method::POST, "/api/admin/users", Some(&admin), &json!({"name": name, "market": "KR"})).await;
        assert_eq!(assert_error(res, 400, "VALIDATION_ERROR").await["details"]["field"], "name");
    }
    assert_eq!(users(&app).await, 0);
    let res =
        app.send_json(Method::POST, "/api/admin/users", Some(&admin), &json!({"name": " Lee ", "market": "KR"})).await;
    let id = json_of(res, 201).await["user_id"].as_i64().unwrap();
    let name: String =
        sqlx::query_scalar("SELECT name FROM users WHERE id = $1").bind(id).fetch_one(&app.db).await.unwrap();
    assert_eq!(name, "Lee");
}

#[tokio::test]
async fn an_oversized_body_is_413_with_the_error_shape_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.token(1, &[Role::OpsAdmin]);
    let huge = format!(r#"{{"name": "{}", "market": "KR"}}"#, "a".repeat(3 * 1024 * 1024));
    let res = app
        .request(Method::POST, "/api/admin/users")
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(huge.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(assert_error(res, 413, "PAYLOAD_TOO_LARGE").await["details"]["limit_bytes"], 2 * 1024 * 1024);
    assert_eq!(users(&app).await, 0);

    // Behind the idempotency layer, which buffers the body itself.
    let user = app.create_user("KR", 0).await;
    let res = app
        .request(Method::POST, &format!("/api/users/{user}/balance/charge"))
        .bearer_auth(app.customer(user))
        .header("content-type", "application/json")
        .header("idempotency-key", "big-1")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_error(res, 413, "PAYLOAD_TOO_LARGE").await;
    let balance = json_of(app.get_as(user, &format!("/api/users/{user}/balance")).await, 200).await;
    assert_eq!(balance["balance"]["amount"], 0);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.token(1, &[Role::OpsAdmin]);
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let mut req = app.request(Method::POST, "/api/admin/users").bearer_auth(&admin);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let res = req.body(r#"{"name": "Lee", "market": "KR"}"#).send().await.unwrap();
        let body = assert_error(res, 415, "UNSUPPORTED_MEDIA_TYPE").await;
        assert_eq!(body["details"]["field"], "Content-Type");
    }
    assert_eq!(users(&app).await, 0);
}

#[tokio::test]
async fn header_abuse_is_4xx_and_changes_nothing() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let charge = format!("/api/users/{user}/balance/charge");

    let huge = format!("Bearer {}", "x".repeat(64 * 1024));
    let res = app
        .request(Method::POST, &charge)
        .header("authorization", huge)
        .json(&json!({"amount": 100}))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "UNAUTHENTICATED").await;

    let non_ascii = HeaderValue::from_bytes("키-1".as_bytes()).unwrap();
    let res = app
        .request(Method::POST, &charge)
        .bearer_auth(app.customer(user))
        .header("idempotency-key", non_ascii)
        .json(&json!({"amount": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(assert_error(res, 400, "VALIDATION_ERROR").await["details"]["field"], "Idempotency-Key");

    let balance = json_of(app.get_as(user, &format!("/api/users/{user}/balance")).await, 200).await;
    assert_eq!(balance["balance"]["amount"], 0);
}

#[tokio::test]
async fn numbers_and_paging_read_as_the_document_states_them() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    // JSON Schema counts 100.0 as the integer 100; so does the server, and it charges once.
    let res = app
        .send_json(
            Method::POST,
            &format!("/api/users/{user}/balance/charge"),
            Some(&app.customer(user)),
            &json!({"amount": 100.0}),
        )
        .await;
    assert_eq!(json_of(res, 200).await["balance"]["amount"], 100);
    json_of(app.get("/api/coupons?page=1.0&size=20").await, 200).await;
    let res = app.get("/api/products?size=").await;
    assert_eq!(assert_error(res, 400, "VALIDATION_ERROR").await["details"]["field"], "size");

    let doc = openapi(&app).await;
    let amount = &doc["components"]["schemas"]["ChargeRequest"]["properties"]["amount"];
    assert_eq!((amount["minimum"].as_i64(), amount["maximum"].as_i64()), (Some(1), Some(100_000_000)));
    let res = app
        .send_json(
            Method::POST,
            &format!("/api/users/{user}/balance/charge"),
            Some(&app.customer(user)),
            &json!({"amount": 100_000_001}),
        )
        .await;
    assert_eq!(assert_error(res, 400, "VALIDATION_ERROR").await["details"]["field"], "amount");
    // A body naming another user than the path is acting for someone else, even for an admin.
    let admin = app.token(1, &[Role::OpsAdmin]);
    let res = app
        .send_json(
            Method::POST,
            &format!("/api/users/{user}/balance/charge"),
            Some(&admin),
            &json!({"amount": 5, "user_id": user + 1}),
        )
        .await;
    assert_eq!(assert_error(res, 403, "FORBIDDEN").await["details"]["field"], "user_id");
    let balance = json_of(app.get_as(user, &format!("/api/users/{user}/balance")).await, 200).await;
    assert_eq!(balance["balance"]["amount"], 100);
}

#[tokio::test]
async fn a_path_integer_with_a_zero_fraction_is_that_integer() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let res = app.request(Method::GET, &format!("/api/coupons/{}.0", i64::MAX)).send().await.unwrap();
    assert_error(res, 404, "COUPON_NOT_FOUND").await;
    let res = app
        .request(Method::DELETE, &format!("/api/users/{user}/cart/7.00"))
        .bearer_auth(app.customer(user))
        .send()
        .await
        .unwrap();
    assert_error(res, 404, "CART_ITEM_NOT_FOUND").await;
    let res = app.get("/api/coupons/7.5").await;
    assert_eq!(assert_error(res, 400, "VALIDATION_ERROR").await["details"]["field"], "coupon_id");
}

#[tokio::test]
async fn coupon_amounts_are_read_as_published_and_junk_is_400_naming_the_field() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let create = &doc["components"]["schemas"]["CreateCoupon"]["properties"];
    assert_eq!(create["max_discount"]["oneOf"][1]["$ref"], "#/components/schemas/AmountFrom1");
    assert_eq!(create["min_order_amount"]["oneOf"][1]["$ref"], "#/components/schemas/AmountFrom0");
    let cap = &doc["components"]["schemas"]["AmountFrom1"]["oneOf"];
    assert_eq!(cap[0]["minimum"], 1);
    assert_eq!(cap[1]["properties"]["amount"]["minimum"], 1);
    assert_eq!(cap[1]["additionalProperties"], false);
    assert_eq!(doc["components"]["schemas"]["AmountFrom0"]["oneOf"][0]["minimum"], 0);

    let junk = [
        ("max_discount", json!({"amount": 500, "currency": "KRW", "junk": {}})),
        ("max_discount", json!({"currency": "KRW"})),
        ("max_discount", json!(0)),
        ("max_discount", json!({"amount": 0, "currency": "KRW"})),
        ("min_order_amount", json!(-1)),
        ("min_order_amount", json!({"amount": -1, "currency": "KRW"})),
        ("min_order_amount", json!([1000])),
        // Untagged forms read objects only: serde alone reads these as `{amount, currency}`
        // and `{ko, en}`.
        ("min_order_amount", json!([1000, "KRW"])),
        ("name", json!(["가", "A"])),
    ];
    for (field, value) in junk {
        let res = app
            .send_json(
                Method::POST,
                "/api/admin/coupons",
                Some(&manager(&app)),
                &coupon_body(10, json!({ field: value })),
            )
            .await;
        let body = assert_error(res, 400, "VALIDATION_ERROR").await;
        assert_eq!(body["details"]["field"], field, "{value}: {body}");
    }
    assert_eq!(coupons(&app).await, 0);
    // Both published forms are read: an object in the market's currency, and 0 as a minimum.
    let overrides = json!({"max_discount": {"amount": 500, "currency": "KRW"}, "min_order_amount": 0});
    let res =
        app.send_json(Method::POST, "/api/admin/coupons", Some(&manager(&app)), &coupon_body(10, overrides)).await;
    let id = json_of(res, 201).await["id"].as_i64().unwrap();
    let stored: (Option<i64>, i64) = sqlx::query_as("SELECT max_discount, min_order_amount FROM coupons WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, (Some(500), 0));
}

#[tokio::test]
async fn a_json_number_is_an_integer_exactly_when_its_double_is() {
    let app = spawn_app().await;
    // Near 2^51 a double has quarters: `...247.2` is 2251799813685247.25, no integer, and
    // `...247.0` is exactly the integer (the default serde_json parser read it as .25).
    for number in ["2251799813685247.2", "2251799813685247.25", "1.5", "1e-3"] {
        let res = create_coupon_with(&app, "min_order_amount", number).await;
        let body = assert_error(res, 400, "VALIDATION_ERROR").await;
        assert_eq!(body["details"]["field"], "min_order_amount", "{number}: {body}");
    }
    assert_eq!(coupons(&app).await, 0);
    for (number, integer) in [("2251799813685247.0", 2_251_799_813_685_247_i64), ("4.5e15", 4_500_000_000_000_000)] {
        let res = create_coupon_with(&app, "min_order_amount", number).await;
        let id = json_of(res, 201).await["id"].as_i64().unwrap();
        let stored: i64 = sqlx::query_scalar("SELECT min_order_amount FROM coupons WHERE id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
        assert_eq!(stored, integer, "{number}");
    }
}

#[tokio::test]
async fn a_delta_the_stock_cannot_take_is_a_declared_business_refusal_that_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.token(1, &[Role::OpsAdmin]);
    let option = product(&app, "Shirt", "fashion", true, &[opt(1000, 10)]).await.1[0];
    let path = format!("/api/admin/inventory/{option}/adjust");
    let doc = openapi(&app).await;
    let declared =
        doc["paths"]["/api/admin/inventory/{product_option_id}/adjust"]["post"]["responses"]["400"]["description"]
            .as_str()
            .unwrap()
            .to_owned();
    assert!(declared.contains("STOCK_LIMIT_EXCEEDED"), "{declared}");
    let delta = &doc["components"]["schemas"]["AdjustRequest"]["properties"]["delta"]["oneOf"];
    assert_eq!(delta[1]["maximum"], i32::MAX);

    // The schema allows 2147483646; the stock of 10 cannot take it.
    let res =
        app.send_json(Method::POST, &path, Some(&admin), &json!({"delta": i32::MAX - 1, "reason": "count"})).await;
    let body = assert_error(res, 400, "STOCK_LIMIT_EXCEEDED").await;
    assert_eq!(body["details"]["max_delta"], i32::MAX - 10);
    assert_eq!(stock_of(&app, option).await, (10, 0));
    assert_eq!(audit_entries(&app).await, 0);
    // The largest delta it names is accepted.
    let res =
        app.send_json(Method::POST, &path, Some(&admin), &json!({"delta": i32::MAX - 10, "reason": "count"})).await;
    assert_eq!(json_of(res, 200).await["stock"], i32::MAX);
}
