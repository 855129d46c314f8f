//! Reading answers the way the contract shapes them, and sending requests at the same time.

use chrono::{DateTime, SubsecRound, Utc};
use reqwest::{RequestBuilder, Response};
use serde_json::Value;
use tokio::task::JoinHandle;

/// Reads a response as JSON, asserting its status; the body is shown when the status is wrong.
pub async fn json_of(res: Response, status: u16) -> Value {
    let actual = res.status().as_u16();
    let text = res.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts an error response: status, code, and the contract's body shape.
pub async fn assert_error(res: Response, status: u16, code: &str) -> Value {
    let body = json_of(res, status).await;
    assert_eq!(body["code"], code, "body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "body: {body}");
    assert!(body["details"].is_object(), "body: {body}");
    body
}

/// The RFC 3339 time a body holds at `v`.
#[track_caller]
pub fn time_of(v: &Value) -> DateTime<Utc> {
    v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).expect("an RFC 3339 time").to_utc()
}

/// `t` at the precision Postgres stores, hence the API answers: microseconds.
pub fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// Requests sent, each on its own task; they run while the test goes on ([`answers`] awaits them).
pub type InFlight = Vec<JoinHandle<reqwest::Result<Response>>>;

/// Sends every request at once, each on its own task, without waiting for the answers.
pub fn fire(requests: impl IntoIterator<Item = RequestBuilder>) -> InFlight {
    requests.into_iter().map(|r| tokio::spawn(r.send())).collect()
}

/// The answers of [`fire`]d requests, in the order they were given.
pub async fn answers(in_flight: InFlight) -> Vec<Response> {
    let mut responses = Vec::with_capacity(in_flight.len());
    for h in in_flight {
        responses.push(h.await.expect("request task").expect("an answer"));
    }
    responses
}

/// Sends every request at the same time, each on its own task, and returns the responses in
/// the order given.
pub async fn send_all(requests: Vec<RequestBuilder>) -> Vec<Response> {
    answers(fire(requests)).await
}
