//! Health, readiness, metrics and docs routes.

use crate::helpers::{json_of, spawn_app};

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
