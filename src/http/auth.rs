//! Bearer-token authentication and the authorization rules of the contract, as extractors.
//!
//! The token types ([`Role`], [`JwtKeys`], [`Caller`]) live in [`crate::auth`] and are re-exported
//! here for the HTTP layer's users. The [`authenticate`] middleware decodes the token once per
//! request. Handlers then state what
//! they need by their argument types, so the rules live here and nowhere else:
//! - [`Caller`]: any valid token (401 `UNAUTHENTICATED` otherwise);
//! - [`UserScope`]: a `/users/{user_id}/...` route; the caller must be that user, an `ops_admin`,
//!   or a `cs_agent` reading (GET) — 403 `FORBIDDEN` otherwise;
//! - [`require_roles`]: a route layer for role-gated routes (`ops_admin` passes every gate).

use std::{collections::HashMap, sync::Arc};

use super::error::{ApiError, ErrorCode};
pub use crate::auth::{Caller, Claims, JwtKeys, Role};
use axum::{
    extract::{FromRequestParts, Path as AxumPath, Request, State},
    http::{Method, header, request::Parts},
    middleware::Next,
    response::Response,
};

/// What [`authenticate`] found in the `Authorization` header.
#[derive(Debug, Clone)]
enum Authentication {
    Anonymous,
    Invalid,
    Valid(Caller),
}

/// The caller of a request that carried a valid token (for middleware after [`authenticate`]).
pub fn authenticated(extensions: &axum::http::Extensions) -> Option<&Caller> {
    match extensions.get::<Authentication>() {
        Some(Authentication::Valid(c)) => Some(c),
        _ => None,
    }
}

/// Middleware: decodes the bearer token once and leaves the outcome for the extractors.
pub async fn authenticate(State(keys): State<Arc<JwtKeys>>, mut req: Request, next: Next) -> Response {
    let outcome = match req.headers().get(header::AUTHORIZATION) {
        None => Authentication::Anonymous,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.strip_prefix("Bearer ").or_else(|| s.strip_prefix("bearer ")))
            .and_then(|t| keys.verify(t.trim()))
            .map_or(Authentication::Invalid, Authentication::Valid),
    };
    req.extensions_mut().insert(outcome);
    next.run(req).await
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Authentication>() {
            Some(Authentication::Valid(c)) => Ok(c.clone()),
            _ => Err(ApiError::new(ErrorCode::Unauthenticated)),
        }
    }
}

/// The caller, if a valid token was given; public routes use it to personalise (market).
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(MaybeCaller(match parts.extensions.get::<Authentication>() {
            Some(Authentication::Valid(c)) => Some(c.clone()),
            _ => None,
        }))
    }
}

/// A `/users/{user_id}/...` route, authorised for the caller.
#[derive(Debug, Clone)]
pub struct UserScope {
    /// The user the route is about (already authorised).
    pub user_id: i64,
    /// Who is calling.
    pub caller: Caller,
}

impl<S: Send + Sync> FromRequestParts<S> for UserScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let params = AxumPath::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::validation("path", e.body_text()))?;
        let user_id = params
            .get("user_id")
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| ApiError::validation("user_id", "must be a positive integer"))?;
        let reading = parts.method == Method::GET || parts.method == Method::HEAD;
        let allowed = caller.user_id == user_id || caller.has(Role::OpsAdmin) || (reading && caller.has(Role::CsAgent));
        if !allowed {
            return Err(ApiError::new(ErrorCode::Forbidden));
        }
        Ok(UserScope { user_id, caller })
    }
}

/// Route layer: only callers holding one of `roles` (or `ops_admin`) get through;
/// 401 without a valid token, 403 with one that lacks the role.
pub async fn require_roles(
    State(roles): State<&'static [Role]>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = match req.extensions().get::<Authentication>() {
        Some(Authentication::Valid(c)) => c,
        _ => return Err(ApiError::new(ErrorCode::Unauthenticated)),
    };
    if !roles.iter().any(|r| caller.has(*r)) {
        return Err(ApiError::new(ErrorCode::Forbidden));
    }
    Ok(next.run(req).await)
}
