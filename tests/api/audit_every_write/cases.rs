//! One case per admin write route: how to make the write succeed on a fresh app, the one audit
//! entry it must leave, and the requests the route refuses (which must leave none).

use chrono::Utc;
use jupang::http::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    TestApp, coupon_body, create_coupon, issue, json_of, option, pay, placed, product, set_fx_rate, settle,
};

/// Every admin write route of the OpenAPI document, as the document spells it.
pub const ROUTES: [(&str, &str); 13] = [
    ("POST", "/api/admin/users"),
    ("POST", "/api/admin/products"),
    ("PATCH", "/api/admin/products/{product_id}"),
    ("POST", "/api/admin/inventory/{product_option_id}/adjust"),
    ("POST", "/api/admin/coupons"),
    ("PATCH", "/api/admin/coupons/{coupon_id}"),
    ("POST", "/api/admin/coupons/{coupon_id}/revoke"),
    ("POST", "/api/admin/outbox/{event_id}/redeliver"),
    ("PUT", "/api/admin/waiting-rooms/{event_type}/{event_id}"),
    ("POST", "/api/admin/jobs/popular-products"),
    ("POST", "/api/admin/orders/{order_id}/fulfill"),
    ("POST", "/api/admin/orders/{order_id}/refunds"),
    ("PUT", "/api/admin/fx-rates"),
];

/// The id in tokens of the staff member of every case.
pub const ACTOR: i64 = 940_001;

/// A request a route refuses, and how.
pub struct Refusal {
    /// The answer's status.
    pub status: u16,
    /// Its error code.
    pub code: &'static str,
    /// The path asked.
    pub path: String,
    /// The body sent (`None`: none).
    pub body: Option<Value>,
    /// The roles of the token (`None`: no token at all).
    pub roles: Option<&'static [Role]>,
}

/// An admin write ready to send, and what it must leave in the log.
pub struct Write {
    /// The method.
    pub method: Method,
    /// The path of this instance of the route.
    pub path: String,
    /// The body (`None`: none).
    pub body: Option<Value>,
    /// The success status.
    pub status: u16,
    /// The roles of the staff member sending it: the route's narrowest role.
    pub roles: &'static [Role],
    /// The entry's action.
    pub action: &'static str,
    /// The entry's entity type.
    pub entity_type: &'static str,
    /// The entry's entity id (`None`: the id the answer creates, read by [`Write::created_id`]).
    pub entity_id: Option<String>,
    /// Where the answer carries a created entity's id.
    pub created_id: Option<&'static str>,
    /// What `before` must hold (objects: at least these members; `null`: exactly null).
    pub before: Value,
    /// What `after` must hold (as `before`).
    pub after: Value,
    /// The entry's `reason`.
    pub reason: Value,
    /// Refusals particular to the route (every route also refuses a missing token and a
    /// customer's).
    pub refusals: Vec<Refusal>,
    /// A GET whose answer the write changes: a failed or refused write must leave it as it was
    /// (state outside Postgres, such as a waiting room in Redis).
    pub witness: Option<String>,
}

impl Write {
    fn new(method: Method, path: String, body: Option<Value>, status: u16, roles: &'static [Role]) -> Write {
        Write {
            method,
            path,
            body,
            status,
            roles,
            action: "",
            entity_type: "",
            entity_id: None,
            created_id: None,
            before: Value::Null,
            after: Value::Null,
            reason: Value::Null,
            refusals: Vec::new(),
            witness: None,
        }
    }

    fn entry(mut self, action: &'static str, entity_type: &'static str, entity_id: impl ToString) -> Write {
        (self.action, self.entity_type, self.entity_id) = (action, entity_type, Some(entity_id.to_string()));
        self
    }

    fn created(mut self, action: &'static str, entity_type: &'static str, id_field: &'static str) -> Write {
        (self.action, self.entity_type, self.created_id) = (action, entity_type, Some(id_field));
        self
    }

    fn change(mut self, before: Value, after: Value, reason: Value) -> Write {
        (self.before, self.after, self.reason) = (before, after, reason);
        self
    }

    fn refuses(mut self, status: u16, code: &'static str, path: impl Into<String>, body: Option<Value>) -> Write {
        self.refusals.push(Refusal { status, code, path: path.into(), body, roles: Some(self.roles) });
        self
    }

    fn refuses_role(mut self, roles: &'static [Role]) -> Write {
        let (path, body) = (self.path.clone(), self.body.clone());
        self.refusals.push(Refusal { status: 403, code: "FORBIDDEN", path, body, roles: Some(roles) });
        self
    }
}

const OPS: &[Role] = &[Role::OpsAdmin];
const STOCK: &[Role] = &[Role::InventoryManager];
const MARKETING: &[Role] = &[Role::MarketingManager];
const AGENT: &[Role] = &[Role::CsAgent];

/// An id no entity of a fresh test database has.
const UNKNOWN: i64 = 987_654;
/// An order id no order has.
const UNKNOWN_ORDER: &str = "0190aaaa-0000-7000-8000-000000000000";

/// Prepares the case of `route` on `app` (its fixtures are made before the test's baseline).
pub async fn prepare(app: &TestApp, method: &str, route: &str) -> Write {
    match (method, route) {
        ("POST", "/api/admin/users") => {
            Write::new(Method::POST, "/api/admin/users".into(), Some(json!({"name": "Kim", "market": "KR"})), 201, OPS)
                .created("user.create", "user", "user_id")
                .change(Value::Null, json!({"name": "Kim", "market": "KR"}), Value::Null)
                .refuses(400, "VALIDATION_ERROR", "/api/admin/users", Some(json!({"name": " ", "market": "KR"})))
        }
        ("POST", "/api/admin/products") => {
            let body = json!({
                "name": {"ko": "연필", "en": "Pencil"}, "category": "office",
                "options": [{"name": "HB", "prices": {"KRW": 1000}, "stock": 10}],
            });
            let empty = json!({"name": {"ko": "x", "en": "x"}, "category": "office", "options": []});
            Write::new(Method::POST, "/api/admin/products".into(), Some(body), 201, STOCK)
                .created("product.create", "product", "id")
                .change(
                    Value::Null,
                    json!({"category": "office", "on_sale": true, "options": [{"name": "HB", "prices": {"KRW": 1000}}]}),
                    Value::Null,
                )
                .refuses(400, "VALIDATION_ERROR", "/api/admin/products", Some(empty))
        }
        ("PATCH", "/api/admin/products/{product_id}") => {
            let (pid, oids) = product(app, "Pencil", "office", true, &[crate::support::krw_opt(1000, 5)]).await;
            let body =
                json!({"on_sale": false, "options": [{"id": oids[0], "prices": {"KRW": 1200}}], "reason": "price up"});
            let mut w = Write::new(Method::PATCH, format!("/api/admin/products/{pid}"), Some(body), 200, STOCK)
                .entry("product.update", "product", pid)
                .change(
                    json!({"on_sale": true, "options": [{"id": oids[0], "prices": {"KRW": 1000}}]}),
                    json!({"on_sale": false, "options": [{"id": oids[0], "prices": {"KRW": 1200}}]}),
                    json!("price up"),
                )
                .refuses(
                    400,
                    "VALIDATION_ERROR",
                    format!("/api/admin/products/{pid}"),
                    Some(json!({"category": "Bad"})),
                )
                .refuses(
                    404,
                    "PRODUCT_NOT_FOUND",
                    format!("/api/admin/products/{UNKNOWN}"),
                    Some(json!({"on_sale": false})),
                );
            w.witness = Some(format!("/api/products/{pid}"));
            w
        }
        ("POST", "/api/admin/inventory/{product_option_id}/adjust") => {
            let oid = option(app, 1000, 10).await;
            let path = format!("/api/admin/inventory/{oid}/adjust");
            Write::new(Method::POST, path.clone(), Some(json!({"delta": -3, "reason": "count"})), 200, STOCK)
                .entry("inventory.adjust", "product_option", oid)
                .change(json!({"stock": 10}), json!({"stock": 7, "delta": -3}), json!("count"))
                .refuses(400, "STOCK_BELOW_RESERVED", path.clone(), Some(json!({"delta": -11, "reason": "too many"})))
                .refuses(400, "VALIDATION_ERROR", path, Some(json!({"delta": 1, "reason": " "})))
                .refuses(
                    404,
                    "PRODUCT_OPTION_NOT_FOUND",
                    format!("/api/admin/inventory/{UNKNOWN}/adjust"),
                    Some(json!({"delta": 1, "reason": "x"})),
                )
        }
        ("POST", "/api/admin/coupons") => {
            Write::new(Method::POST, "/api/admin/coupons".into(), Some(coupon_body(10, json!({}))), 201, MARKETING)
                .created("coupon.create", "coupon", "id")
                .change(Value::Null, json!({"total_quantity": 10, "market": "KR"}), Value::Null)
                .refuses(400, "VALIDATION_ERROR", "/api/admin/coupons", Some(coupon_body(0, json!({}))))
        }
        ("PATCH", "/api/admin/coupons/{coupon_id}") => {
            let coupon = create_coupon(app, 10, json!({})).await;
            // Issuing has started: the total may only grow.
            json_of(issue(app, coupon, app.create_user("KR", 0).await).await, 201).await;
            let path = format!("/api/admin/coupons/{coupon}");
            Write::new(Method::PATCH, path.clone(), Some(json!({"total_quantity": 20})), 200, MARKETING)
                .entry("coupon.update", "coupon", coupon)
                .change(json!({"total_quantity": 10}), json!({"total_quantity": 20}), Value::Null)
                .refuses(400, "VALIDATION_ERROR", path.clone(), Some(json!({"total_quantity": 0})))
                .refuses(400, "COUPON_UPDATE_NOT_ALLOWED", path, Some(json!({"total_quantity": 5})))
                .refuses(
                    404,
                    "COUPON_NOT_FOUND",
                    format!("/api/admin/coupons/{UNKNOWN}"),
                    Some(json!({"total_quantity": 20})),
                )
        }
        ("POST", "/api/admin/coupons/{coupon_id}/revoke") => {
            let coupon = create_coupon(app, 10, json!({})).await;
            let holder = app.create_user("KR", 0).await;
            let uc =
                json_of(issue(app, coupon, holder).await, 201).await["user_coupon_id"].as_str().unwrap().to_owned();
            let path = format!("/api/admin/coupons/{coupon}/revoke");
            let body = json!({"user_coupon_ids": [uc], "reason": "fraud"});
            Write::new(Method::POST, path.clone(), Some(body.clone()), 200, MARKETING)
                .entry("coupon.revoke", "coupon", coupon)
                .change(
                    json!({"user_coupons": {&uc: "AVAILABLE"}}),
                    json!({"user_coupons": {&uc: "REVOKED"}, "not_found": []}),
                    json!("fraud"),
                )
                .refuses(400, "VALIDATION_ERROR", path, Some(json!({"user_coupon_ids": [], "reason": "x"})))
                .refuses(404, "COUPON_NOT_FOUND", format!("/api/admin/coupons/{UNKNOWN}/revoke"), Some(body))
        }
        ("POST", "/api/admin/outbox/{event_id}/redeliver") => {
            // A product's initial stock is an outbox event; the platform refused it for good.
            let (_, oids) = product(app, "Pencil", "office", true, &[crate::support::krw_opt(1000, 5)]).await;
            let res = app
                .send_json(
                    Method::POST,
                    &format!("/api/admin/inventory/{}/adjust", oids[0]),
                    Some(&app.token(ACTOR, STOCK)),
                    &json!({"delta": 1, "reason": "found"}),
                )
                .await;
            json_of(res, 200).await;
            let event: uuid::Uuid = sqlx::query_scalar(
                "UPDATE outbox_events SET status = 'FAILED' WHERE id = (SELECT id FROM outbox_events ORDER BY id DESC LIMIT 1) RETURNING id",
            )
            .fetch_one(&app.db)
            .await
            .unwrap();
            Write::new(Method::POST, format!("/api/admin/outbox/{event}/redeliver"), None, 202, OPS)
                .entry("outbox.redeliver", "outbox_event", event)
                .change(json!({"status": "FAILED"}), json!({"status": "PENDING"}), Value::Null)
                .refuses(404, "EVENT_NOT_FOUND", format!("/api/admin/outbox/{}/redeliver", uuid::Uuid::now_v7()), None)
                .refuses(400, "VALIDATION_ERROR", "/api/admin/outbox/not-a-uuid/redeliver", None)
        }
        ("PUT", "/api/admin/waiting-rooms/{event_type}/{event_id}") => {
            let coupon = create_coupon(app, 10, json!({})).await;
            let path = format!("/api/admin/waiting-rooms/coupon/{coupon}");
            let opens_at = Utc::now();
            let body = json!({
                "enabled": true, "admit_per_second": 10, "max_active": 100, "pass_ttl_secs": 60, "opens_at": opens_at,
            });
            let mut zero = body.clone();
            zero["admit_per_second"] = json!(0);
            let mut w = Write::new(Method::PUT, path.clone(), Some(body.clone()), 200, MARKETING)
                .entry("waiting_room.configure", "waiting_room", format!("coupon:{coupon}"))
                .change(
                    Value::Null,
                    json!({"enabled": true, "admit_per_second": 10, "max_active": 100, "pass_ttl_secs": 60, "revoke_passes": false}),
                    Value::Null,
                )
                .refuses(400, "VALIDATION_ERROR", path.clone(), Some(zero))
                .refuses(404, "COUPON_NOT_FOUND", format!("/api/admin/waiting-rooms/coupon/{UNKNOWN}"), Some(body))
                .refuses_role(STOCK);
            w.witness = Some(path);
            w
        }
        ("POST", "/api/admin/jobs/popular-products") => {
            Write::new(Method::POST, "/api/admin/jobs/popular-products".into(), None, 200, OPS)
                .entry("job.run", "job", "popular_products")
                .change(
                    json!({"generated_at": null}),
                    json!({"snapshot_date": Utc::now().date_naive().to_string()}),
                    Value::Null,
                )
                .refuses_role(STOCK)
        }
        ("POST", "/api/admin/orders/{order_id}/fulfill") => {
            let (paid, pending) = orders(app).await;
            Write::new(Method::POST, format!("/api/admin/orders/{paid}/fulfill"), None, 200, AGENT)
                .entry("order.fulfill", "order", &paid)
                .change(json!({"status": "PAID"}), json!({"status": "FULFILLED"}), Value::Null)
                .refuses(409, "ORDER_NOT_FULFILLABLE", format!("/api/admin/orders/{pending}/fulfill"), None)
                .refuses(404, "ORDER_NOT_FOUND", format!("/api/admin/orders/{UNKNOWN_ORDER}/fulfill"), None)
                .refuses(400, "VALIDATION_ERROR", "/api/admin/orders/not-a-uuid/fulfill", None)
        }
        ("POST", "/api/admin/orders/{order_id}/refunds") => {
            let (paid, pending) = orders(app).await;
            let body = json!({"amount": 1000, "reason": "damaged"});
            Write::new(Method::POST, format!("/api/admin/orders/{paid}/refunds"), Some(body.clone()), 201, AGENT)
                .entry("order.refund", "order", &paid)
                .change(
                    json!({"status": "PAID", "refunded_amount": 0}),
                    json!({"status": "PAID", "refunded_amount": 1000, "amount": 1000}),
                    json!("damaged"),
                )
                .refuses(
                    400,
                    "REFUND_EXCEEDS_PAID",
                    format!("/api/admin/orders/{paid}/refunds"),
                    Some(json!({"amount": 999_999, "reason": "too much"})),
                )
                .refuses(
                    409,
                    "ORDER_NOT_REFUNDABLE",
                    format!("/api/admin/orders/{pending}/refunds"),
                    Some(body.clone()),
                )
                .refuses(404, "ORDER_NOT_FOUND", format!("/api/admin/orders/{UNKNOWN_ORDER}/refunds"), Some(body))
        }
        ("PUT", "/api/admin/fx-rates") => {
            set_fx_rate(app, "1300.00").await;
            Write::new(Method::PUT, "/api/admin/fx-rates".into(), Some(json!({"USD/KRW": "1385.20"})), 200, OPS)
                .entry("fx_rate.set", "fx_rate", "USD/KRW")
                .change(json!({"rate": "1300.00"}), json!({"rate": "1385.20"}), Value::Null)
                .refuses(400, "VALIDATION_ERROR", "/api/admin/fx-rates", Some(json!({"USD/KRW": "-1"})))
        }
        _ => panic!("no case for {method} {route}: add one to tests/api/audit_every_write/cases.rs"),
    }
}

/// A PAID order (10,000 won) and a PENDING one, of a customer with money.
async fn orders(app: &TestApp) -> (String, String) {
    let oid = option(app, 10_000, 10).await;
    let user = app.create_user("KR", 100_000).await;
    let paid = placed(app, user, &[(oid, 1)]).await;
    json_of(pay(app, user, &paid, None).await, 200).await;
    let pending = placed(app, user, &[(oid, 1)]).await;
    // In Postgres already, as the V2 consumer would have it: the rows a refusal must not change.
    settle(app).await;
    (paid, pending)
}
