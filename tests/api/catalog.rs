//! The public catalog: listing, sorting, paging, search and detail (seed 001 US-001, US-002);
//! markets and languages are in `catalog_markets`.

use crate::support::{
    Opt, assert_error, created_hours_ago, json_of, krw_opt, opt, product, product_ids, products_page, sale, simple,
    spawn_app,
};

#[tokio::test]
async fn of_10_products_with_3_not_on_sale_only_the_7_on_sale_are_listed() {
    let app = spawn_app().await;
    let mut on_sale = Vec::new();
    for i in 0..10 {
        let (id, _) = product(&app, &format!("Product {i}"), "home", i >= 3, &[opt(1_000, 20)]).await;
        if i >= 3 {
            on_sale.push(id);
        }
    }
    let page = products_page(&app, "").await;
    let mut listed = product_ids(&page);
    listed.sort();
    assert_eq!(listed, on_sale);
    assert_eq!(page["total"], 7);
    assert_eq!((page["page"].as_i64(), page["size"].as_i64()), (Some(1), Some(20)));
    let item = &page["items"][0];
    for field in ["id", "name", "category", "price", "stock_status", "purchasable"] {
        assert!(!item[field].is_null(), "{field} missing in {item}");
    }
}

#[tokio::test]
async fn the_detail_of_a_product_with_stock_10_shows_10_available() {
    let app = spawn_app().await;
    let (id, options) = product(&app, "P001", "food", true, &[opt(50_000, 10)]).await;
    let body = json_of(app.get(&format!("/api/products/{id}")).await, 200).await;
    assert_eq!(body["id"], id);
    assert_eq!(body["name"], "한국어 P001");
    assert_eq!(body["description"], "설명 P001");
    assert_eq!(body["category"], "food");
    assert_eq!(body["image_url"], "https://img.jupang.example/p/x.jpg");
    assert_eq!(body["price"], serde_json::json!({"amount": 50000, "currency": "KRW"}));
    assert_eq!(body["stock_status"], "IN_STOCK");
    assert_eq!(body["options"].as_array().unwrap().len(), 1);
    let option = &body["options"][0];
    assert_eq!(option["id"], options[0]);
    assert_eq!(option["available"], 10);
    assert_eq!(option["price"]["amount"], 50000);
    assert_eq!(option["stock_status"], "IN_STOCK");
}

#[tokio::test]
async fn an_unknown_off_sale_or_unpriced_product_is_404_product_not_found() {
    let app = spawn_app().await;
    assert_error(app.get("/api/products/999999").await, 404, "PRODUCT_NOT_FOUND").await;
    let (off_sale, _) = product(&app, "Hidden", "home", false, &[opt(1_000, 5)]).await;
    assert_error(app.get(&format!("/api/products/{off_sale}")).await, 404, "PRODUCT_NOT_FOUND").await;
    let kr_only = krw_opt(9_000, 5);
    let (kr, _) = product(&app, "Kimchi", "food", true, &[kr_only]).await;
    json_of(app.get(&format!("/api/products/{kr}?market=KR")).await, 200).await;
    assert_error(app.get(&format!("/api/products/{kr}?market=US")).await, 404, "PRODUCT_NOT_FOUND").await;
}

#[tokio::test]
async fn stock_status_is_in_stock_at_10_low_stock_at_9_and_1_and_sold_out_at_0() {
    let app = spawn_app().await;
    let mut expected = Vec::new();
    for (stock, status) in [(10, "IN_STOCK"), (9, "LOW_STOCK"), (1, "LOW_STOCK"), (0, "SOLD_OUT")] {
        let id = simple(&app, &format!("Stock {stock}"), 1_000, stock).await;
        expected.push((id, stock, status));
    }
    let page = products_page(&app, "").await;
    for (id, stock, status) in expected {
        let item = page["items"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap();
        assert_eq!(item["stock_status"], status, "listing, stock {stock}");
        assert_eq!(item["purchasable"], stock > 0, "listing, stock {stock}");
        let detail = json_of(app.get(&format!("/api/products/{id}")).await, 200).await;
        assert_eq!(detail["stock_status"], status, "detail, stock {stock}");
        assert_eq!(detail["purchasable"], stock > 0);
        assert_eq!(detail["options"][0]["available"], stock);
        assert_eq!(detail["options"][0]["stock_status"], status);
    }
}

#[tokio::test]
async fn reservations_reduce_availability_and_can_make_a_product_sold_out() {
    let app = spawn_app().await;
    let held = |stock, reserved| Opt { krw: Some(1_000), usd: None, stock, reserved };
    let (low, _) = product(&app, "Held", "home", true, &[held(12, 3)]).await;
    let (gone, _) = product(&app, "All held", "home", true, &[held(4, 4)]).await;
    let detail = json_of(app.get(&format!("/api/products/{low}")).await, 200).await;
    assert_eq!(detail["options"][0]["available"], 9);
    assert_eq!(detail["stock_status"], "LOW_STOCK");
    let page = products_page(&app, "").await;
    let item = |id: i64| page["items"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap().clone();
    assert_eq!(item(low)["stock_status"], "LOW_STOCK");
    assert_eq!(item(gone)["stock_status"], "SOLD_OUT");
    assert_eq!(item(gone)["purchasable"], false);
}

#[tokio::test]
async fn a_product_sums_its_options_and_is_priced_at_its_cheapest_option() {
    let app = spawn_app().await;
    let (id, _) = product(&app, "Sneakers", "fashion", true, &[opt(79_000, 5), opt(59_000, 0), opt(99_000, 5)]).await;
    let page = products_page(&app, "").await;
    assert_eq!(page["items"][0]["id"], id);
    assert_eq!(page["items"][0]["price"], serde_json::json!({"amount": 59000, "currency": "KRW"}));
    assert_eq!(page["items"][0]["stock_status"], "IN_STOCK", "5 + 0 + 5 = 10 available");
    let detail = json_of(app.get(&format!("/api/products/{id}")).await, 200).await;
    let statuses: Vec<_> = detail["options"].as_array().unwrap().iter().map(|o| o["stock_status"].clone()).collect();
    assert_eq!(statuses, ["LOW_STOCK", "SOLD_OUT", "LOW_STOCK"]);
}

#[tokio::test]
async fn price_sorts_order_by_the_listed_price_with_ties_broken_by_id() {
    let app = spawn_app().await;
    let mid_a = simple(&app, "Mid A", 20_000, 10).await;
    let cheap = simple(&app, "Cheap", 5_000, 10).await;
    let dear = simple(&app, "Dear", 90_000, 10).await;
    let mid_b = simple(&app, "Mid B", 20_000, 10).await;
    assert_eq!(product_ids(&products_page(&app, "?sort=price_asc").await), [cheap, mid_a, mid_b, dear]);
    assert_eq!(product_ids(&products_page(&app, "?sort=price_desc").await), [dear, mid_a, mid_b, cheap]);
}

#[tokio::test]
async fn newest_is_the_default_sort_and_orders_by_creation_time() {
    let app = spawn_app().await;
    let old = simple(&app, "Old", 1_000, 10).await;
    let new = simple(&app, "New", 1_000, 10).await;
    let middle = simple(&app, "Middle", 1_000, 10).await;
    created_hours_ago(&app, old, 48).await;
    created_hours_ago(&app, new, 1).await;
    created_hours_ago(&app, middle, 24).await;
    assert_eq!(product_ids(&products_page(&app, "?sort=newest").await), [new, middle, old]);
    assert_eq!(product_ids(&products_page(&app, "").await), [new, middle, old]);
}

#[tokio::test]
async fn popular_ranks_by_units_sold_in_paid_orders_of_the_market_over_the_last_3_days() {
    let app = spawn_app().await;
    let (a, a_opt) = product(&app, "A", "home", true, &[opt(1_000, 100)]).await;
    let (b, b_opt) = product(&app, "B", "home", true, &[opt(1_000, 100)]).await;
    let (c, c_opt) = product(&app, "C", "home", true, &[opt(1_000, 100)]).await;
    let (d, d_opt) = product(&app, "D", "home", true, &[opt(1_000, 100)]).await;
    let unsold = simple(&app, "Unsold", 1_000, 100).await;
    // A: 5 paid units; B: 3 paid + 2 fulfilled = 5, sold more recently than A; C: 4.
    sale(&app, a_opt[0], 5, "PAID", "KR", 10.0).await;
    sale(&app, b_opt[0], 3, "PAID", "KR", 20.0).await;
    sale(&app, b_opt[0], 2, "FULFILLED", "KR", 2.0).await;
    sale(&app, c_opt[0], 4, "PAID", "KR", 30.0).await;
    // None of these count: too old, unpaid, refunded, or sold in the other market.
    sale(&app, d_opt[0], 50, "PAID", "KR", 96.0).await;
    sale(&app, d_opt[0], 50, "PENDING", "KR", 1.0).await;
    sale(&app, d_opt[0], 50, "REFUNDED", "KR", 1.0).await;
    sale(&app, d_opt[0], 50, "PAID", "US", 1.0).await;
    assert_eq!(product_ids(&products_page(&app, "?sort=popular&market=KR").await), [b, a, c, d, unsold]);
    // In the US market only D sold.
    assert_eq!(product_ids(&products_page(&app, "?sort=popular&market=US").await)[0], d);
}

#[tokio::test]
async fn paging_reports_the_total_and_serves_later_pages_without_overlap() {
    let app = spawn_app().await;
    let mut all = Vec::new();
    for i in 0..5 {
        all.push(simple(&app, &format!("Item {i}"), 1_000 * (i + 1), 10).await);
    }
    let first = products_page(&app, "?sort=price_asc&size=2").await;
    let second = products_page(&app, "?sort=price_asc&size=2&page=2").await;
    let third = products_page(&app, "?sort=price_asc&size=2&page=3").await;
    assert_eq!((first["total"].as_i64(), second["total"].as_i64()), (Some(5), Some(5)));
    assert_eq!((second["page"].as_i64(), second["size"].as_i64()), (Some(2), Some(2)));
    assert_eq!([product_ids(&first), product_ids(&second), product_ids(&third)].concat(), all);
    let beyond = products_page(&app, "?size=2&page=9").await;
    assert_eq!(beyond["items"], serde_json::json!([]));
    assert_eq!(beyond["total"], 5);
}

#[tokio::test]
async fn search_matches_korean_and_english_names_case_insensitively() {
    let app = spawn_app().await;
    let headphones = simple(&app, "Wireless Headphones", 1_000, 10).await;
    let mouse = simple(&app, "Wireless Mouse", 1_000, 10).await;
    simple(&app, "Desk Lamp", 1_000, 10).await;
    let mut found = product_ids(&products_page(&app, "?q=wIrElEsS").await);
    found.sort();
    assert_eq!(found, [headphones, mouse]);
    // Fixture Korean names are "한국어 <English name>".
    assert_eq!(products_page(&app, "?q=%ED%95%9C%EA%B5%AD%EC%96%B4%20desk").await["total"], 1);
    assert_eq!(products_page(&app, "?q=nothing-like-this").await["total"], 0);
}

#[tokio::test]
async fn search_takes_like_wildcards_literally() {
    let app = spawn_app().await;
    let sale = simple(&app, "50% Off Bundle", 1_000, 10).await;
    simple(&app, "500 Sheets", 1_000, 10).await;
    simple(&app, "Snake_case Mug", 1_000, 10).await;
    simple(&app, "Nice Cup", 1_000, 10).await;
    assert_eq!(product_ids(&products_page(&app, "?q=50%25").await), [sale]);
    assert_eq!(products_page(&app, "?q=%25").await["total"], 1);
    assert_eq!(products_page(&app, "?q=e_c").await["total"], 1, "`_` matches itself, not any character");
}

#[tokio::test]
async fn the_category_filter_lists_only_that_category() {
    let app = spawn_app().await;
    let (food, _) = product(&app, "Rice", "food", true, &[opt(1_000, 10)]).await;
    product(&app, "Lamp", "home", true, &[opt(1_000, 10)]).await;
    let page = products_page(&app, "?category=food").await;
    assert_eq!(product_ids(&page), [food]);
    assert_eq!(page["items"][0]["category"], "food");
    assert_eq!(products_page(&app, "?category=toys").await["total"], 0);
}

#[tokio::test]
async fn bad_query_parameters_are_400_validation_error_naming_the_parameter() {
    let app = spawn_app().await;
    simple(&app, "Lamp", 50_000, 10).await;
    for (query, field) in [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=two", "page"),
        ("size=0", "size"),
        ("size=101", "size"),
        ("sort=cheapest", "sort"),
        ("market=JP", "market"),
    ] {
        let body = assert_error(app.get(&format!("/api/products?{query}")).await, 400, "VALIDATION_ERROR").await;
        assert_eq!(body["details"]["field"], field, "{query}: {body}");
    }
    let body = assert_error(app.get("/api/products/abc").await, 400, "VALIDATION_ERROR").await;
    assert_eq!(body["details"]["field"], "product_id");
    let body = assert_error(app.get("/api/products/1?market=EU").await, 400, "VALIDATION_ERROR").await;
    assert_eq!(body["details"]["field"], "market");
    assert_eq!(products_page(&app, "?size=100").await["size"], 100);
}

#[tokio::test]
async fn the_catalog_is_served_under_api_v1_too() {
    let app = spawn_app().await;
    let id = simple(&app, "Lamp", 50_000, 10).await;
    let page = json_of(app.get("/api/v1/products").await, 200).await;
    assert_eq!(product_ids(&page), [id]);
    json_of(app.get(&format!("/api/v1/products/{id}")).await, 200).await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_catalog_routes() {
    let app = spawn_app().await;
    let doc = json_of(app.get("/api-docs/openapi.json").await, 200).await;
    for path in ["/api/products", "/api/products/{product_id}", "/api/admin/products"] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    let params = doc["paths"]["/api/products"]["get"]["parameters"].as_array().unwrap();
    let names: Vec<_> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["category", "sort", "q", "market", "page", "size", "If-None-Match"]);
}
