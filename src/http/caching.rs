//! HTTP caching of the public catalog reads, for a CDN in front of a sale (and browsers).
//!
//! - `ETag`: strong, a hash of the exact body bytes, so equal bodies have equal tags on every
//!   instance of one build and any change of the body (availability included) changes it.
//! - `If-None-Match` naming the current tag (or `*`) answers `304 Not Modified` with no body.
//! - `Cache-Control`: [`PUBLIC`] when the answer depends on nothing of the caller but its
//!   `Accept-Language` (hence `Vary: Accept-Language`); [`PERSONAL`] when the caller's own
//!   market priced it (a shared cache must not keep it; the browser may revalidate).
//! - Every other response (user-scoped routes, errors, admin) gets [`NO_STORE`] from
//!   [`no_store_by_default`], unless its handler said otherwise.

use std::{
    hash::{DefaultHasher, Hasher},
    sync::Arc,
};

use axum::{
    body::Bytes,
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::error::ApiError;
use crate::services::catalog_cache::Rendered;

/// `Cache-Control` of public catalog reads: one second, the freshness availability promises.
pub const PUBLIC: &str = "public, max-age=1";
/// `Cache-Control` of a catalog read priced in the caller's own market.
pub const PERSONAL: &str = "private, no-cache";
/// `Cache-Control` of everything else: user-scoped answers are never stored anywhere.
pub const NO_STORE: &str = "private, no-store";
/// `Vary` of the catalog reads: the language picks the text (and, without `?market=` or a
/// caller, the market).
pub const VARY: &str = "Accept-Language";

/// The `304 Not Modified` of every cached read, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 304,
    description = "The `If-None-Match` tag is current; no body",
    headers(
        ("ETag" = String, description = "Strong tag of the body"),
        ("Cache-Control" = String, description = "As for 200"),
        ("Vary" = String, description = "`Accept-Language`"),
    )
)]
pub struct NotModified;

/// Who may keep an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Anyone, a CDN included ([`PUBLIC`]).
    Public,
    /// The caller's browser only ([`PERSONAL`]).
    Personal,
}

impl Audience {
    /// Public unless the caller's own market priced the answer.
    pub fn of(personal: bool) -> Audience {
        if personal { Audience::Personal } else { Audience::Public }
    }

    fn cache_control(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Audience::Public => PUBLIC,
            Audience::Personal => PERSONAL,
        })
    }
}

/// The longest `If-None-Match` accepted (declared in the document): a list of this service's
/// tags never comes near it.
pub const IF_NONE_MATCH_MAX: usize = 1024;

/// The request's `If-None-Match`, if any.
#[derive(Debug, Clone, Default)]
pub struct IfNoneMatch(pub Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = super::error::ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let value = parts.headers.get(header::IF_NONE_MATCH);
        if let Some(v) = value
            && (v.len() > IF_NONE_MATCH_MAX || !v.as_bytes().iter().all(|b| (0x20..=0x7e).contains(b)))
        {
            return Err(super::error::ApiError::validation(
                "If-None-Match",
                format!("at most {IF_NONE_MATCH_MAX} printable ASCII characters"),
            ));
        }
        Ok(IfNoneMatch(value.cloned()))
    }
}

impl IfNoneMatch {
    /// Whether the header names `etag` (weak comparison, as RFC 9110 asks for `If-None-Match`).
    pub fn matches(&self, etag: &str) -> bool {
        let Some(value) = self.0.as_ref().and_then(|v| v.to_str().ok()) else {
            return false;
        };
        value.split(',').map(str::trim).any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
    }
}

/// The strong entity tag of a body: its length and a 64-bit hash, quoted.
pub fn etag_of(body: &[u8]) -> String {
    // SipHash with fixed keys: the same body has the same tag on every instance of a build.
    let mut h = DefaultHasher::new();
    h.write(body);
    format!("\"{:x}-{:016x}\"", body.len(), h.finish())
}

/// `value` as JSON with its `ETag`, `Cache-Control` and `Vary`; `304 Not Modified` (same headers,
/// no body) when `if_none_match` names the tag.
pub fn json<T: Serialize>(value: &T, audience: Audience, if_none_match: &IfNoneMatch) -> Response {
    let (body, etag) = render(value);
    if body.is_empty() {
        return ApiError::internal(Unrenderable).into_response();
    }
    prepared(Bytes::from(body), &etag, audience, if_none_match)
}

/// A body the catalog cache rendered and keeps, shared by the answer rather than copied.
struct SharedBody(Arc<Rendered>);

impl AsRef<[u8]> for SharedBody {
    fn as_ref(&self) -> &[u8] {
        &self.0.body
    }
}

/// A rendering of the catalog cache answered as [`json`] answers (its bytes not copied).
pub fn cached(rendered: &Arc<Rendered>, audience: Audience, if_none_match: &IfNoneMatch) -> Response {
    if rendered.body.is_empty() {
        return ApiError::internal(Unrenderable).into_response();
    }
    prepared(Bytes::from_owner(SharedBody(rendered.clone())), &rendered.etag, audience, if_none_match)
}

/// A body that could not be serialised (never, for this crate's types).
#[derive(Debug, thiserror::Error)]
#[error("a response body could not be serialised")]
struct Unrenderable;

/// `value` as JSON bytes with their entity tag (empty bytes when it cannot be serialised).
pub fn render<T: Serialize>(value: &T) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let etag = etag_of(&body);
    (body, etag)
}

/// A rendered JSON body (see [`render`]) answered as [`json`] answers.
fn prepared(body: Bytes, etag: &str, audience: Audience, if_none_match: &IfNoneMatch) -> Response {
    let mut headers = HeaderMap::with_capacity(4);
    headers.insert(header::CACHE_CONTROL, audience.cache_control());
    headers.insert(header::VARY, HeaderValue::from_static(VARY));
    if let Ok(v) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, v);
    }
    if if_none_match.matches(etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    (StatusCode::OK, headers, body).into_response()
}

/// Middleware: a response whose handler set no `Cache-Control` gets [`NO_STORE`].
pub async fn no_store_by_default(mut res: Response) -> Response {
    res.headers_mut().entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static(NO_STORE));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inm(v: &str) -> IfNoneMatch {
        IfNoneMatch(Some(HeaderValue::from_str(v).unwrap()))
    }

    #[test]
    fn if_none_match_names_the_tag_weakly_in_a_list_or_as_a_star() {
        let tag = etag_of(b"{}");
        assert!(inm(&tag).matches(&tag));
        assert!(inm(&format!("\"other\", W/{tag}")).matches(&tag));
        assert!(inm("*").matches(&tag));
        assert!(!inm("\"other\"").matches(&tag));
        assert!(!IfNoneMatch(None).matches(&tag));
    }

    #[test]
    fn equal_bodies_have_equal_tags_and_any_change_another() {
        assert_eq!(etag_of(b"{\"a\":1}"), etag_of(b"{\"a\":1}"));
        assert_ne!(etag_of(b"{\"a\":1}"), etag_of(b"{\"a\":2}"));
        assert!(etag_of(b"x").starts_with('"') && etag_of(b"x").ends_with('"'));
    }
}
