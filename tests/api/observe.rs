//! Health, readiness, metrics and docs routes.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::support::{
    assert_metric, json_of, metric_value,
    proxy::{TcpProxy, upstream_of},
    spawn_app, spawn_app_with, spawn_child_app, unique,
};

#[tokio::test]
async fn health_answers_ok_without_touching_dependencies() {
    let app = spawn_app().await;
    let body = json_of(app.get("/health").await, 200).await;
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn ready_is_200_when_postgres_and_redis_answer_and_migrations_are_applied() {
    let app = spawn_app().await;
    let body = json_of(app.get("/ready").await, 200).await;
    assert_eq!(body["checks"]["postgres"], "up");
    assert_eq!(body["checks"]["redis"], "up");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_method_and_status() {
    // A server process of its own: every request it counted is one of this test's.
    let app = spawn_child_app().await;
    let user = app.create_user("KR", 0).await;
    for path in [format!("/api/users/{user}/balance"), format!("/api/v1/users/{user}/balance")] {
        assert_eq!(app.get_as(user, &path).await.status(), 200);
    }
    let res = app.get(&format!("/api/users/{user}/balance")).await;
    assert_eq!(res.status(), 401);

    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = res.text().await.unwrap();
    let route = r#"route="/api/users/{user_id}/balance""#;
    assert_metric(&text, "http_requests_total", &[route, r#"method="GET""#, r#"status="200""#], 2.0);
    assert_metric(&text, "http_requests_total", &[route, r#"method="GET""#, r#"status="401""#], 1.0);
    assert_metric(&text, "http_request_duration_seconds_count", &[route], 3.0);
    assert_metric(&text, "http_request_duration_seconds_bucket", &[route, r#"le="+Inf""#], 3.0);
    assert!(metric_value(&text, "process_resident_memory_bytes", &[]) > 0.0, "{text}");
    // Ids never become label values (cardinality, and user ids are not metric material).
    assert!(!text.contains(&format!("/users/{user}/")), "a raw path leaked into the metrics");
    assert!(!text.contains("/api/v1/users"), "the versioned alias must share the unversioned route label");
}

#[tokio::test]
async fn metrics_never_turn_a_client_chosen_method_into_a_label() {
    let app = spawn_child_app().await;
    let method = Method::from_bytes(format!("X{}", &unique()[..12].to_uppercase()).as_bytes()).unwrap();
    let res = app.request(method.clone(), "/health").send().await.unwrap();
    assert_eq!(res.status(), 405);
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(!text.contains(method.as_str()), "a client's method became a label");
    let other = [r#"method="OTHER""#, r#"route="/health""#, r#"status="405""#];
    assert_metric(&text, "http_requests_total", &other, 1.0);
}

#[tokio::test]
async fn api_docs_serve_swagger_ui_with_its_assets_from_the_binary() {
    let app = spawn_app().await;
    let res = app.get("/api-docs/").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let assets: Vec<String> = ["src=\"", "href=\""]
        .iter()
        .flat_map(|attr| html.split(attr).skip(1).map(|rest| rest.split('"').next().unwrap().to_owned()))
        .filter(|a| !a.starts_with("http") && !a.starts_with("data:"))
        .collect();
    assert!(assets.iter().any(|a| a.ends_with(".js")), "no script in {html}");
    assert!(assets.iter().any(|a| a.ends_with(".css")), "no stylesheet in {html}");
    for asset in &assets {
        let path = match asset.strip_prefix("./") {
            Some(rel) => format!("/api-docs/{rel}"),
            None if asset.starts_with('/') => asset.clone(),
            None => format!("/api-docs/{asset}"),
        };
        let res = app.get(&path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert!(!res.bytes().await.unwrap().is_empty(), "{path} is empty");
    }
    let init = app.get("/api-docs/swagger-initializer.js").await.text().await.unwrap();
    assert!(init.contains("/api-docs/openapi.json"), "the UI must load our document: {init}");
    // The bare path answers too (a redirect to the slash form is fine).
    assert_eq!(app.get("/api-docs").await.status(), 200);
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_lists_the_routes() {
    let app = spawn_app().await;
    let doc = json_of(app.get("/api-docs/openapi.json").await, 200).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    assert!(doc["paths"]["/api/users/{user_id}/balance"]["get"].is_object(), "{}", doc["paths"]);
    assert!(doc["paths"]["/api/admin/outbox/{event_id}/redeliver"]["post"].is_object());
}

#[tokio::test]
async fn ready_turns_503_naming_redis_when_redis_becomes_unreachable() {
    let redis_url = std::env::var("REDIS_URL").unwrap();
    let mut proxy = TcpProxy::start(upstream_of(&redis_url).await).await;
    let through_proxy = proxy.redis_url(&redis_url);
    let app = spawn_app_with(|vars| {
        vars.insert("REDIS_URL".into(), through_proxy);
    })
    .await;
    let body = json_of(app.get("/ready").await, 200).await;
    assert_eq!(body["checks"]["redis"], "up");

    proxy.kill().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let res = app.get("/ready").await;
        if res.status() == 503 {
            break res.json::<serde_json::Value>().await.unwrap();
        }
        assert!(Instant::now() < deadline, "/ready still answers {} with Redis gone", res.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["redis"], "down");
    assert_eq!(body["checks"]["postgres"], "up");
    // Liveness does not depend on Redis.
    assert_eq!(app.get("/health").await.status(), 200);
}
