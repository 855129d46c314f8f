//! Orders (seed 001 US-008, US-012): all-or-nothing reservation, validation, reads and history.

use jupang::http::auth::Role;
use reqwest::Method;
use serde_json::json;

use crate::support::{
    TestApp, add_to_cart, assert_error, count, events, for_each_strategy, json_of, option, order_cart, order_items,
    pay, placed, product_in, settle, status_of, stock_of,
};

async fn nothing_ordered(app: &TestApp) {
    assert_eq!(count(app, "orders").await, 0);
    assert_eq!(count(app, "order_items").await, 0);
    assert_eq!(count(app, "outbox_events").await, 0);
}

for_each_strategy! {
    #[tokio::test]
    async fn ordering_a_cart_of_3_with_stock_10_creates_a_pending_order_and_reserves_3(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 0).await;
        let opt = option(&app, 12_000, 10).await;
        json_of(add_to_cart(&app, user, opt, 3).await, 201).await;
        let body = json_of(order_cart(&app, user).await, 201).await;
        assert_eq!(body["status"], "PENDING");
        assert_eq!(
            body["items"],
            json!([{
                "product_option_id": opt, "product_id": body["items"][0]["product_id"], "name": "한국어 Test product",
                "option_name": "option 0", "quantity": 3,
                "unit_price": {"amount": 12000, "currency": "KRW"}, "subtotal": {"amount": 36000, "currency": "KRW"},
                "price_source": "list", "refunded_quantity": 0,
            }])
        );
        assert_eq!(body["total_amount"], json!({"amount": 36000, "currency": "KRW"}));
        assert_eq!(stock_of(&app, opt).await, (10, 3), "reserved grows by 3, stock untouched until payment");
        assert_eq!(count(&app, "cart_items").await, 0, "the ordered cart is emptied");
        let created = events(&app, "order.created").await;
        assert_eq!(created.len(), 1);
        assert_eq!(created[0]["order_id"], body["order_id"]);
        assert_eq!(created[0]["items"], json!([{"product_option_id": opt, "quantity": 3}]));
        assert_eq!(created[0]["total_amount"]["amount"], 36_000);
    }

    #[tokio::test]
    async fn ordering_a_cart_of_5_with_stock_2_is_insufficient_stock_and_creates_no_order(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 0).await;
        let opt = option(&app, 1_000, 10).await;
        json_of(add_to_cart(&app, user, opt, 5).await, 201).await;
        sqlx::query("UPDATE product_options SET stock = 2 WHERE id = $1").bind(opt).execute(&app.db).await.unwrap();
        let body = assert_error(order_cart(&app, user).await, 400, "INSUFFICIENT_STOCK").await;
        assert_eq!(body["details"], json!({"product_option_id": opt, "available": 2, "requested": 5}));
        nothing_ordered(&app).await;
        assert_eq!(stock_of(&app, opt).await, (2, 0));
        assert_eq!(count(&app, "cart_items").await, 1, "the cart is kept");
    }

    #[tokio::test]
    async fn an_order_is_all_or_nothing_when_one_of_its_lines_is_short(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 0).await;
        let plenty = option(&app, 1_000, 100).await;
        let scarce = option(&app, 1_000, 1).await;
        let body =
            assert_error(order_items(&app, user, &[(plenty, 5), (scarce, 2)]).await, 400, "INSUFFICIENT_STOCK").await;
        assert_eq!(body["details"]["product_option_id"], scarce);
        assert_eq!(stock_of(&app, plenty).await, (100, 0), "the line that fitted was not reserved either");
        nothing_ordered(&app).await;
    }

    #[tokio::test]
    async fn duplicate_options_in_an_order_are_merged_into_one_line(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 0).await;
        let opt = option(&app, 2_000, 10).await;
        let body = json_of(order_items(&app, user, &[(opt, 2), (opt, 3)]).await, 201).await;
        assert_eq!(body["items"].as_array().unwrap().len(), 1);
        assert_eq!(body["items"][0]["quantity"], 5);
        assert_eq!(body["total_amount"]["amount"], 10_000);
        assert_eq!(stock_of(&app, opt).await, (10, 5));
    }

    #[tokio::test]
    async fn an_order_without_items_or_with_an_empty_cart_is_400_empty_order(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 0).await;
        assert_error(order_items(&app, user, &[]).await, 400, "EMPTY_ORDER").await;
        assert_error(order_cart(&app, user).await, 400, "EMPTY_ORDER").await;
        nothing_ordered(&app).await;
    }

    #[tokio::test]
    async fn an_order_with_a_non_positive_quantity_is_400_validation_error_and_changes_nothing(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 0).await;
        let opt = option(&app, 1_000, 10).await;
        let body = assert_error(order_items(&app, user, &[(opt, 1), (opt, 0)]).await, 400, "VALIDATION_ERROR").await;
        assert_eq!(body["details"]["field"], "items[1].quantity");
        assert_error(order_items(&app, user, &[(opt, -1)]).await, 400, "VALIDATION_ERROR").await;
        let both = json!({"user_id": user, "items": [{"product_option_id": opt, "quantity": 1}], "from_cart": true});
        let res = app.send_json(Method::POST, "/api/orders", Some(&app.customer(user)), &both).await;
        assert_error(res, 400, "VALIDATION_ERROR").await;
        nothing_ordered(&app).await;
        assert_eq!(stock_of(&app, opt).await, (10, 0));
    }

    #[tokio::test]
    async fn an_order_of_an_unknown_option_is_404_product_option_not_found(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 0).await;
        let opt = option(&app, 1_000, 10).await;
        let body =
            assert_error(order_items(&app, user, &[(opt, 1), (987_654, 1)]).await, 404, "PRODUCT_OPTION_NOT_FOUND").await;
        assert_eq!(body["details"]["product_option_id"], 987_654);
        nothing_ordered(&app).await;
    }

    #[tokio::test]
    async fn ordering_for_another_user_is_403_and_without_a_token_401(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 0).await;
        let other = app.create_user("KR", 0).await;
        let opt = option(&app, 1_000, 10).await;
        let body = json!({"user_id": user, "items": [{"product_option_id": opt, "quantity": 1}]});
        let res = app.send_json(Method::POST, "/api/orders", Some(&app.customer(other)), &body).await;
        assert_error(res, 403, "FORBIDDEN").await;
        assert_error(app.send_json(Method::POST, "/api/orders", None, &body).await, 401, "UNAUTHENTICATED").await;
        nothing_ordered(&app).await;
    }

    #[tokio::test]
    async fn an_order_captures_prices_in_the_users_currency(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("US", 0).await;
        let (_, opts) = product_in(&app, "toys", &[(25_000, 10)], true).await;
        let body = json_of(order_items(&app, user, &[(opts[0], 2)]).await, 201).await;
        assert_eq!(body["items"][0]["unit_price"], json!({"amount": 2500, "currency": "USD"}));
        assert_eq!(body["items"][0]["name"], "Test product", "captured in the market's language");
        assert_eq!(body["total_amount"], json!({"amount": 5000, "currency": "USD"}));
    }

    #[tokio::test]
    async fn expires_at_is_creation_plus_the_configured_ttl(strategy: Strategy) {
        let app = strategy.spawn_with(|v| {
            v.insert("JUPANG_ORDER_TTL_SECS".into(), "90".into());
        })
        .await;
        let user = app.create_user("KR", 0).await;
        let opt = option(&app, 1_000, 10).await;
        let id = placed(&app, user, &[(opt, 1)]).await;
        settle(&app).await;
        let secs: f64 = sqlx::query_scalar(
            "SELECT extract(epoch FROM expires_at - created_at)::float8 FROM orders WHERE id = $1::uuid",
        )
        .bind(&id)
        .fetch_one(&app.db)
        .await
        .unwrap();
        assert!((secs - 90.0).abs() < 1.0, "ttl {secs}");
    }

    #[tokio::test]
    async fn an_order_is_readable_by_its_owner_and_a_cs_agent_and_is_404_to_anyone_else(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 0).await;
        let stranger = app.create_user("KR", 0).await;
        let opt = option(&app, 1_000, 10).await;
        let id = placed(&app, user, &[(opt, 2)]).await;
        let get = |token: String| app.request(Method::GET, &format!("/api/orders/{id}")).bearer_auth(token).send();
        let own = json_of(get(app.customer(user)).await.unwrap(), 200).await;
        assert_eq!(own["order_id"], id.as_str());
        assert_eq!(own["status"], "PENDING");
        assert_eq!(own["items"][0]["quantity"], 2);
        assert_eq!(own["final_amount"]["amount"], 2_000);
        json_of(get(app.token(99, &[Role::CsAgent])).await.unwrap(), 200).await;
        json_of(get(app.token(98, &[Role::OpsAdmin])).await.unwrap(), 200).await;
        assert_error(get(app.customer(stranger)).await.unwrap(), 404, "ORDER_NOT_FOUND").await;
        let missing = app.get_as(user, &format!("/api/orders/{}", uuid::Uuid::now_v7())).await;
        assert_error(missing, 404, "ORDER_NOT_FOUND").await;
    }

    #[tokio::test]
    async fn order_history_lists_newest_first_with_items_and_filters_by_status(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 100_000).await;
        let other = app.create_user("KR", 0).await;
        let opt = option(&app, 1_000, 50).await;
        let first = placed(&app, user, &[(opt, 1)]).await;
        let second = placed(&app, user, &[(opt, 2)]).await;
        let third = placed(&app, user, &[(opt, 3)]).await;
        placed(&app, other, &[(opt, 1)]).await;
        json_of(pay(&app, user, &second, None).await, 200).await;

        let list = |q: &str| {
            let req = app.request(Method::GET, &format!("/api/users/{user}/orders{q}")).bearer_auth(app.customer(user));
            async move { json_of(req.send().await.unwrap(), 200).await }
        };
        let all = list("").await;
        let ids: Vec<&str> = all["items"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap()).collect();
        assert_eq!(ids, [third.as_str(), second.as_str(), first.as_str()]);
        assert_eq!((all["page"].as_i64(), all["size"].as_i64(), all["total"].as_i64()), (Some(1), Some(20), Some(3)));
        assert_eq!(all["items"][0]["items"][0]["quantity"], 3);
        assert_eq!(all["items"][0]["total_amount"]["amount"], 3_000);

        let paid = list("?status=PAID").await;
        assert_eq!(paid["total"], 1);
        assert_eq!(paid["items"][0]["order_id"], second.as_str());
        assert_eq!(paid["items"][0]["final_amount"]["amount"], 2_000);

        let page2 = list("?page=2&size=2").await;
        assert_eq!(page2["items"].as_array().unwrap().len(), 1);
        assert_eq!(page2["items"][0]["order_id"], first.as_str());

        let bad = app.get_as(user, &format!("/api/users/{user}/orders?status=SHIPPED")).await;
        assert_eq!(assert_error(bad, 400, "VALIDATION_ERROR").await["details"]["field"], "status");
        let foreign =
            app.request(Method::GET, &format!("/api/users/{user}/orders")).bearer_auth(app.customer(other)).send().await;
        assert_error(foreign.unwrap(), 403, "FORBIDDEN").await;
        assert_eq!(status_of(&app, &first).await, "PENDING");
    }

    #[tokio::test]
    async fn the_openapi_document_describes_the_cart_order_and_payment_routes(strategy: Strategy) {
        let app = strategy.spawn().await;
        let doc = json_of(app.get("/api-docs/openapi.json").await, 200).await;
        for path in [
            "/api/users/{user_id}/cart",
            "/api/users/{user_id}/cart/{cart_item_id}",
            "/api/orders",
            "/api/orders/{order_id}",
            "/api/users/{user_id}/orders",
            "/api/orders/{order_id}/payment",
            "/api/orders/{order_id}/cancel",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
        }
    }
}
