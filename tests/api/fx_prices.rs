//! FX prices over HTTP (api.md "Prices in another currency (FX)", issue 15): a US customer
//! buying a KRW-only option sees one converted amount in the catalog, the product page, the
//! cart, the order, the payment, its record and the wallet ledger; the order keeps that amount
//! through a rate change, and the next order gets the new one.

use reqwest::Response;
use serde_json::{Value, json};

use crate::support::{
    TestApp, add_to_cart, assert_error, balance_of, count, for_each_strategy, json_of, krw_opt, order_cart,
    order_items, pay, product, set_fx_rate,
};

/// The option's only price.
const KRW_PRICE: i64 = 12_345;
/// 12,345 KRW at 1385.20 KRW per USD: 891.207... cents, 891.
const CENTS_AT_1385_20: i64 = 891;
/// 12,345 KRW at 1000 KRW per USD: 1234.5 cents exactly, half-up 1235 (half-even would say 1234).
const CENTS_AT_1000: i64 = 1_235;
/// What the US customer's wallet holds at first, in cents.
const WALLET: i64 = 100_000;

/// A GET as `user`, asserting 200.
async fn read(app: &TestApp, user: i64, path: &str) -> Value {
    let res: Response = app.get_as(user, path).await;
    json_of(res, 200).await
}

fn usd(cents: i64) -> Value {
    json!({ "amount": cents, "currency": "USD" })
}

/// The catalog as `user` (a US customer) shows the product at `cents`, converted: in the
/// listing, on the product page and for its one option.
async fn catalog_shows(app: &TestApp, user: i64, product_id: i64, cents: i64) {
    let listing = read(app, user, "/api/products?size=100").await;
    let listed = listing["items"].as_array().unwrap().iter().find(|p| p["id"] == product_id);
    let listed = listed.unwrap_or_else(|| panic!("product {product_id} not listed in {listing}"));
    assert_eq!((&listed["price"], &listed["price_source"]), (&usd(cents), &json!("fx")), "{listed}");
    let page = read(app, user, &format!("/api/products/{product_id}")).await;
    assert_eq!((&page["price"], &page["price_source"]), (&usd(cents), &json!("fx")), "{page}");
    let option = &page["options"][0];
    assert_eq!((&option["price"], &option["price_source"]), (&usd(cents), &json!("fx")), "{page}");
}

for_each_strategy! {
    #[tokio::test]
    async fn a_us_customer_pays_the_converted_price_shown_even_after_the_rate_changes(strategy: Strategy) {
        let app = strategy.spawn().await;
        set_fx_rate(&app, "1385.20").await;
        let (product_id, options) = product(&app, "Kettle", "kitchen", true, &[krw_opt(KRW_PRICE, 50)]).await;
        let opt = options[0];
        let buyer = app.create_user("US", WALLET).await;
        catalog_shows(&app, buyer, product_id, CENTS_AT_1385_20).await;

        json_of(add_to_cart(&app, buyer, opt, 3).await, 201).await;
        let cart = read(&app, buyer, &format!("/api/users/{buyer}/cart")).await;
        let line = &cart["items"][0];
        assert_eq!((&line["unit_price"], &line["price_source"]), (&usd(CENTS_AT_1385_20), &json!("fx")), "{cart}");
        assert_eq!((&line["subtotal"], &cart["total"]), (&usd(3 * CENTS_AT_1385_20), &usd(3 * CENTS_AT_1385_20)));

        let order = json_of(order_cart(&app, buyer).await, 201).await;
        let order_id = order["order_id"].as_str().unwrap().to_owned();
        let line = &order["items"][0];
        assert_eq!((&line["unit_price"], &line["price_source"]), (&usd(CENTS_AT_1385_20), &json!("fx")), "{order}");
        assert_eq!(order["total_amount"], usd(3 * CENTS_AT_1385_20));

        // The dollar weakens between ordering and paying: the order keeps the price it captured.
        set_fx_rate(&app, "1000").await;
        let paid = json_of(pay(&app, buyer, &order_id, None).await, 200).await;
        let charged = 3 * CENTS_AT_1385_20;
        assert_eq!((&paid["final_amount"], &paid["balance_after"]), (&usd(charged), &usd(WALLET - charged)), "{paid}");
        assert_eq!(balance_of(&app, buyer).await, WALLET - charged);
        let kept = read(&app, buyer, &format!("/api/orders/{order_id}")).await;
        assert_eq!((&kept["items"][0]["unit_price"], &kept["final_amount"]), (&usd(CENTS_AT_1385_20), &usd(charged)));

        let payments = read(&app, buyer, &format!("/api/users/{buyer}/payments")).await;
        let record = &payments["items"][0];
        assert_eq!((&record["order_id"], &record["amount"]), (&json!(order_id), &usd(charged)), "{payments}");
        let ledger = read(&app, buyer, &format!("/api/users/{buyer}/balance/transactions")).await;
        let debit = &ledger["items"][0];
        assert_eq!(
            (&debit["type"], &debit["amount"], &debit["balance_after"], &debit["order_id"]),
            (&json!("PAYMENT"), &usd(-charged), &usd(WALLET - charged), &json!(order_id)),
            "{ledger}"
        );

        // Everything priced from now on uses the new rate, rounded half-up at exactly .5 cent.
        catalog_shows(&app, buyer, product_id, CENTS_AT_1000).await;
        let next = json_of(order_items(&app, buyer, &[(opt, 1)]).await, 201).await;
        let line = &next["items"][0];
        assert_eq!((&line["unit_price"], &line["price_source"]), (&usd(CENTS_AT_1000), &json!("fx")), "{next}");
        let next_id = next["order_id"].as_str().unwrap();
        let paid = json_of(pay(&app, buyer, next_id, None).await, 200).await;
        assert_eq!(paid["final_amount"], usd(CENTS_AT_1000));
        assert_eq!(balance_of(&app, buyer).await, WALLET - charged - CENTS_AT_1000);
    }

    #[tokio::test]
    async fn a_krw_only_option_is_not_sold_in_the_us_without_a_rate(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (product_id, options) = product(&app, "Kettle", "kitchen", true, &[krw_opt(KRW_PRICE, 50)]).await;
        let buyer = app.create_user("US", WALLET).await;
        let listing = read(&app, buyer, "/api/products?size=100").await;
        assert!(listing["items"].as_array().unwrap().iter().all(|p| p["id"] != product_id), "{listing}");
        assert_error(order_items(&app, buyer, &[(options[0], 1)]).await, 400, "MARKET_MISMATCH").await;
        assert_eq!(count(&app, "orders").await, 0);
    }
}
