//! `jupang loadgen browse`: catalog reads against the ceiling, alone and while a coupon open run
//! hammers the same server.

use jupang_seed::{SeedArgs, catalog::demo_products};
use serde_json::Value;

use super::{failed_checks, holders, loadgen_on, outcome};
use crate::support::{TestApp, coupon_app};

/// A coupon app whose database holds the demo catalog, as `jupang seed` makes it.
async fn shop_app() -> TestApp {
    let app = coupon_app().await;
    jupang_seed::run(&app.db, &SeedArgs { users: 0, balance: 0, users_only: false }).await.unwrap();
    app
}

/// The count of a labelled part of the mix (`"market KR"`, `"sort popular"`).
fn mixed(mix: &Value, label: &str) -> u64 {
    mix.as_array().unwrap().iter().find(|m| m[0] == label).map_or(0, |m| m[1].as_u64().unwrap())
}

#[tokio::test]
async fn browse_reads_the_listing_mix_and_product_pages_against_the_ceiling_while_an_open_run_issues_exactly() {
    let app = shop_app().await;
    let run = loadgen_on(
        &app,
        "browse",
        "--requests 300 --warmup-requests 30 --connections 4 --p99-ms 60000 \
         --with-open-run --open-people 100 --open-coupons 20 --open-connections 4",
    )
    .await;

    let r = &run.report;
    assert!(run.success, "verdict failed: {}\n{}\nstderr: {}", r["verdict"], r["open_run"]["verdict"], run.stderr);
    let on_sale = demo_products().iter().filter(|d| d.on_sale).count() as u64;
    assert_eq!(r["catalog"][0], serde_json::json!(["KR", on_sale]), "every product on sale in KR was listed");
    let routes: Vec<&str> = r["rows"].as_array().unwrap().iter().map(|x| x["route"].as_str().unwrap()).collect();
    assert_eq!(routes, ["GET /health", "GET /api/products", "GET /api/products/{id}"]);
    for (row, phase) in r["rows"].as_array().unwrap().iter().zip(r["phases"].as_array().unwrap()) {
        assert_eq!(row["requests"], 300, "{row}");
        assert!(row["throughput_rps"].as_f64().unwrap() > 0.0 && row["ratio_to_ceiling"].is_f64(), "{row}");
        assert_eq!(outcome(phase, "200"), 300, "every read answered 200: {}", phase["outcomes"]);
    }
    assert_eq!(r["rows"][0]["ratio_to_ceiling"], 1.0);
    assert_eq!(r["warmup_requests"], 30, "the warm-up is not counted in the phases");
    // The shop front's mix: both markets, every sort, deeper pages and category filters.
    let list = &r["list_mix"];
    assert_eq!(mixed(list, "market KR") + mixed(list, "market US"), 300);
    let parts = ["market US", "sort default", "sort popular", "sort newest", "sort price_asc", "sort price_desc"];
    for part in parts.into_iter().chain(["page 1", "page 2", "page 3", "category filter"]) {
        assert!(mixed(list, part) > 0, "{part} was sent: {list}");
    }
    assert_eq!(mixed(&r["detail_mix"], "market KR") + mixed(&r["detail_mix"], "market US"), 300);

    // The open run ran throughout: everyone pressed (some again) and exactly the sale was issued.
    let open = &r["open_run"];
    assert_eq!(open["verdict"]["passed"], true, "{}", open["verdict"]);
    assert!(open["presses"].as_u64().unwrap() >= 120, "100 people and 20 double clicks pressed: {}", open["presses"]);
    assert_eq!((open["issued"].as_u64(), open["people_issued_twice"].as_u64()), (Some(20), Some(0)));
    assert_eq!(holders(&app, open["coupon_id"].as_i64().unwrap()).await, (20, 20));
}

#[tokio::test]
async fn browse_fails_its_verdict_and_names_each_catalog_phase_when_p99_is_over_the_bound() {
    let app = shop_app().await;
    let run = loadgen_on(&app, "browse", "--requests 40 --warmup-requests 0 --connections 2 --p99-ms 0.001").await;

    assert!(!run.success, "exit status 0 despite a failed verdict");
    assert!(run.stderr.contains("verdict FAIL"), "stderr: {}", run.stderr);
    let r = &run.report;
    assert_eq!(r["passed"], false);
    assert!(r["open_run"].is_null());
    assert_eq!(
        failed_checks(&r["verdict"]),
        ["p99 of `GET /api/products` <= 0.001 ms", "p99 of `GET /api/products/{id}` <= 0.001 ms"]
    );
}
