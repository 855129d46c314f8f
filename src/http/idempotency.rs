//! `Idempotency-Key` for unsafe routes (`POST /orders`, `POST /orders/{id}/payment`,
//! `POST /users/{id}/balance/charge`).
//!
//! # Contract
//! - The header is optional; without it a request is simply executed. With it, the key must be
//!   1-255 printable ASCII characters (400 `VALIDATION_ERROR`, field `Idempotency-Key`).
//! - Keys are scoped per user: the token's subject.
//! - Same key + same request (fingerprint = SHA-256 of method, path and body bytes; `/api/v1`
//!   counts as `/api`): the first answer is replayed, same status and body, with
//!   `Idempotent-Replayed: true`, for 24 h after it was given.
//! - Same key + different request: 422 `IDEMPOTENCY_KEY_REUSED`.
//! - Same key while the first attempt still runs: 409 `IDEMPOTENCY_IN_PROGRESS`.
//!
//! # Design: a crash can never charge twice
//! 1. [`layer`] (a route layer) buffers the body, computes the fingerprint and leaves a context
//!    in the request. It needs no database, so it works as a stateless `route_layer`.
//! 2. The [`Idempotency`] extractor (state: the pool) validates the key and *claims* it: an
//!    autocommitted `INSERT .. ON CONFLICT DO UPDATE .. WHERE <expired or abandoned>` writes an
//!    `IN_PROGRESS` row carrying a fresh claim token. If the row exists it answers instead: the
//!    stored response (replay), 422 (other fingerprint) or 409 (still running). An expired row
//!    counts as absent; an `IN_PROGRESS` row whose lease (30 s, or the request timeout + 5 s if
//!    longer) ran out was left by a crashed or timed-out attempt and is taken over.
//! 3. The handler hands the service a [`Receipt`] ([`Idempotency::receipt`]: the status and how
//!    the body renders), and the service stores it *in the transaction of its change*. So the
//!    change and the stored answer commit together or not at all: after a crash either both exist
//!    (a retry replays) or neither (the retry runs afresh once the lease runs out). The receipt
//!    only updates the row while it still holds our claim token; if an attempt overran its lease
//!    and was taken over it gets 409 and its transaction rolls back, so two attempts can never
//!    both commit.
//! 4. Back in [`layer`] after the handler: completed in the transaction -> nothing to do; any
//!    other non-5xx answer (a 4xx from validation or a business rule, which changes nothing) is
//!    stored so a replay gives the same answer; a 5xx releases the claim (deletes the row unless
//!    it is `COMPLETED`, which happens when the commit succeeded but its acknowledgement was lost)
//!    so the client may retry.
//!
//! Error bodies are stored as the client saw them (in its `Accept-Language`). Expired rows are
//! overwritten on reuse; [`crate::store::pg::idempotency::purge_expired`] reclaims their space.
//!
//! # Adopting it on another route (two lines)
//! ```text
//! OpenApiRouter::new().routes(routes!(create_order)).route_layer(middleware::from_fn(idempotency::layer))
//! service(.., idem.receipt(StatusCode::CREATED, &render)).await?;  // the service calls receipt.record(&mut tx, &value) before its commit
//! ```
//! Put `idem: Idempotency` after the authorising extractors (`UserScope`, `Caller`) and before
//! `Json`, so a 401/403 never touches the key and a body error is remembered under it; answer
//! exactly what `render` makes (e.g. `serde_json::to_vec(&view)` there and `Json(view)` in the
//! handler, which serialises identically).

use std::sync::{Arc, Mutex};

use axum::{
    body::{Body, Bytes},
    extract::{FromRequestParts, OriginalUri, Request},
    http::{HeaderValue, Method, StatusCode, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

use super::{
    auth::Caller,
    error::{ApiError, ErrorBody, ErrorCode, ErrorPayload},
};
use crate::services::{
    AppState,
    idempotency::{self as service, Claim, ClaimOutcome, Receipt, Render},
};

/// The request header carrying the key.
pub const KEY_HEADER: &str = "idempotency-key";
/// The response header marking a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// [`REPLAYED_HEADER`] as the document spells it.
pub const REPLAYED_HEADER_NAME: &str = "Idempotent-Replayed";
/// Bodies are buffered to be fingerprinted; the same bound as every body extractor.
const MAX_BODY_BYTES: usize = super::extract::MAX_BODY_BYTES;

/// Whether reading a body failed on its length limit (413) rather than on the connection.
fn is_length_limit(e: &axum::Error) -> bool {
    std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |c| c.source())
        .any(|c| c.is::<http_body_util::LengthLimitError>())
}

/// What [`layer`] leaves in the request for the [`Idempotency`] extractor.
#[derive(Clone)]
struct Context {
    user_id: i64,
    raw_key: HeaderValue,
    fingerprint: String,
    slot: Arc<Mutex<Slot>>,
}

/// Shared between the extractor (which claims) and [`layer`] (which settles afterwards).
#[derive(Default)]
enum Slot {
    /// Nothing claimed (the handler answered before claiming, or the key was refused).
    #[default]
    Open,
    /// We hold the key (the claim knows whether the service stored its answer).
    Claimed { state: AppState, claim: Claim },
}

/// The fingerprint of a request: SHA-256 over method, path and body, hex-encoded.
pub fn fingerprint(method: &Method, path: &str, body: &[u8]) -> String {
    let path = path.strip_prefix("/api/v1/").map(|rest| format!("/api/{rest}")).unwrap_or_else(|| path.to_owned());
    let mut h = Sha256::new();
    for part in [method.as_str().as_bytes(), path.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a key: 1-255 printable ASCII characters.
pub fn validate_key(raw: &HeaderValue) -> Result<String, ApiError> {
    let bytes = raw.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(ApiError::validation("Idempotency-Key", "must be 1 to 255 printable ASCII characters"));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// Route layer: fingerprints requests that carry an `Idempotency-Key` and, after the handler,
/// stores its answer (non-5xx not completed in a transaction) or releases the claim (5xx).
/// Requests without the header, or without a valid token, pass through untouched.
pub async fn layer(req: Request, next: Next) -> Response {
    let Some(raw_key) = req.headers().get(KEY_HEADER).cloned() else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    let Ok(caller) = Caller::from_request_parts(&mut parts, &()).await else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) if is_length_limit(&e) => return super::extract::payload_too_large().into_response(),
        Err(_) => return ApiError::validation("body", "could not read the body").into_response(),
    };
    let lang = super::extract::AcceptLanguage::of_request(&parts).lang();
    let slot = Arc::new(Mutex::new(Slot::Open));
    // Nested routers see the path without its `/api` prefix; the original one is unambiguous.
    let path = parts.extensions.get::<OriginalUri>().map_or(parts.uri.path(), |u| u.path()).to_owned();
    let fingerprint = fingerprint(&parts.method, &path, &bytes);
    parts.extensions.insert(Context { user_id: caller.user_id, raw_key, fingerprint, slot: slot.clone() });

    let res = next.run(Request::from_parts(parts, Body::from(bytes))).await;

    let Slot::Claimed { state, claim } = std::mem::take(&mut *slot.lock().expect("not poisoned")) else {
        return res;
    };
    let status = res.status();
    if status.is_server_error() {
        if let Err(e) = service::release(&state, &claim).await {
            tracing::error!(error.cause = %e, "could not release an idempotency claim; it lapses after its lease");
        }
        return res;
    }
    if claim.recorded() == Some(status.as_u16()) {
        return res;
    }
    if status.is_success() {
        tracing::warn!(
            http.status = status.as_u16(),
            "a success was not completed in its transaction; storing it late"
        );
    }
    let (parts, body) = res.into_parts();
    let body = match parts.extensions.get::<ErrorPayload>() {
        // Rendered here as `error::localize` will render it, so the stored bytes are the sent ones.
        Some(p) => Bytes::from(
            serde_json::to_vec(&ErrorBody {
                code: p.code,
                message: p.code.message(lang).to_owned(),
                details: p.details.clone(),
            })
            .unwrap_or_default(),
        ),
        None => match axum::body::to_bytes(body, usize::MAX).await {
            Ok(b) => b,
            Err(e) => return ApiError::internal(e).into_response(),
        },
    };
    match service::store_late(&state, &claim, status.as_u16(), &body).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!("an idempotency claim was taken over before its answer was stored"),
        Err(e) => tracing::error!(error.cause = %e, "could not store an idempotent answer; it lapses after its lease"),
    }
    Response::from_parts(parts, Body::from(body))
}

/// A claimed `Idempotency-Key` (or none: the request had no header). Handlers of idempotent
/// routes take it as an argument and hand its [`Idempotency::receipt`] to their service.
pub struct Idempotency {
    claim: Option<Claim>,
}

impl Idempotency {
    /// The receipt the service stores in its transaction: `status` and the body `render` makes
    /// of its result. Without a key it stores nothing.
    pub fn receipt<'a, T>(&self, status: StatusCode, render: Render<'a, T>) -> Receipt<'a, T> {
        Receipt::new(self.claim.clone(), status.as_u16(), render)
    }
}

fn replay(status: u16, body: Vec<u8>) -> Response {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    res
}

impl FromRequestParts<AppState> for Idempotency {
    /// A replayed answer or an error.
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(ctx) = parts.extensions.get::<Context>().cloned() else {
            if !parts.headers.contains_key(KEY_HEADER) {
                return Ok(Idempotency { claim: None });
            }
            // [`layer`] skips requests without a valid token; anything else is a wiring bug.
            Caller::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
            return Err(ApiError::internal(WiringError).into_response());
        };
        let key = validate_key(&ctx.raw_key).map_err(IntoResponse::into_response)?;
        let (outcome, claim) = service::claim(state, ctx.user_id, key, &ctx.fingerprint)
            .await
            .map_err(|e| ApiError::from(e).into_response())?;
        match (outcome, claim) {
            (ClaimOutcome::Claimed, Some(claim)) => {
                *ctx.slot.lock().expect("not poisoned") = Slot::Claimed { state: state.clone(), claim: claim.clone() };
                Ok(Idempotency { claim: Some(claim) })
            }
            (ClaimOutcome::Replay { status, body }, _) => Err(replay(status, body)),
            (ClaimOutcome::KeyReused, _) => Err(ApiError::new(ErrorCode::IdempotencyKeyReused).into_response()),
            (ClaimOutcome::InProgress | ClaimOutcome::Claimed, _) => {
                Err(ApiError::new(ErrorCode::IdempotencyInProgress).into_response())
            }
        }
    }
}

/// [`Idempotency`] taken on a route without [`layer`]: a wiring bug, answered 500.
#[derive(Debug, thiserror::Error)]
#[error("Idempotency used on a route without idempotency::layer")]
struct WiringError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_covers_method_path_and_body_and_ignores_the_api_version() {
        let a = fingerprint(&Method::POST, "/api/users/1/balance/charge", br#"{"amount":1}"#);
        assert_eq!(a, fingerprint(&Method::POST, "/api/v1/users/1/balance/charge", br#"{"amount":1}"#));
        assert_ne!(a, fingerprint(&Method::POST, "/api/users/1/balance/charge", br#"{"amount":2}"#));
        assert_ne!(a, fingerprint(&Method::POST, "/api/users/2/balance/charge", br#"{"amount":1}"#));
        assert_ne!(a, fingerprint(&Method::PUT, "/api/users/1/balance/charge", br#"{"amount":1}"#));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn keys_are_one_to_255_printable_ascii_characters() {
        let ok = |s: &str| validate_key(&HeaderValue::from_str(s).unwrap()).is_ok();
        assert!(ok("a") && ok(&"k".repeat(255)) && ok("order 42/retry-1"));
        assert!(!ok("") && !ok(&"k".repeat(256)));
        assert!(validate_key(&HeaderValue::from_bytes("키".as_bytes()).unwrap()).is_err());
    }
}
