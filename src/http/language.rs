//! The caller's stored language as the default of `Accept-Language` (api.md: "Without
//! `Accept-Language`, messages follow the caller's `language`").
//!
//! [`resolve`] runs after authentication: for a request with a valid token and no
//! `Accept-Language` it looks the caller's language up in the process's user cache (no Postgres
//! read once the user is cached, see `admission::user_markets`) and leaves it as [`ProfileLang`]
//! in the request (read by [`super::extract::AcceptLanguage`]) and in the response (read by the
//! error renderer, `super::error::localize`, which sits outside authentication). The header,
//! when present, always wins.

use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::Response,
};

use super::auth::authenticated;
use crate::{domain::Lang, services::AppState};

/// The language stored in the caller's profile, for a request without `Accept-Language`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileLang(pub Lang);

/// Middleware: see the module documentation. A failed lookup leaves the default (Korean): the
/// language of an answer is never worth failing it.
pub async fn resolve(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let mut found = None;
    if !req.headers().contains_key(header::ACCEPT_LANGUAGE)
        && let Some(user_id) = authenticated(req.extensions()).map(|c| c.user_id)
    {
        match state.order_admission.users().language(&state.db, user_id).await {
            Ok(lang) => found = lang.map(ProfileLang),
            Err(e) => {
                tracing::debug!(user.id = user_id, error.cause = %e, "caller's language unknown; answering in Korean")
            }
        }
    }
    if let Some(lang) = found {
        req.extensions_mut().insert(lang);
    }
    let mut res = next.run(req).await;
    if let Some(lang) = found {
        res.extensions_mut().insert(lang);
    }
    res
}
