//! A user's profile (`/users/{user_id}`): read it, and choose the language answers follow when a
//! request carries no `Accept-Language`.

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::UserScope,
    error::{ApiError, ErrorBody},
    extract,
};
use crate::{
    domain::{Lang, Market},
    services::{
        AppState,
        profiles::{self, Profile},
    },
};

/// The profile routes (mounted under `/api`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_profile, update_profile))
}

/// A user's profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileView {
    /// User id.
    pub user_id: i64,
    /// Display name.
    pub name: String,
    /// `KR` or `US`: the wallet currency and the catalog's default market.
    pub market: Market,
    /// `ko` or `en`: the language of messages and localised text when a request has no
    /// `Accept-Language` (the header wins when present).
    pub language: Lang,
}

fn view((p, name): (Profile, String)) -> ProfileView {
    ProfileView { user_id: p.user_id, name, market: p.market, language: p.language }
}

/// What a user may change of its profile.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfile {
    /// `ko` or `en`.
    pub language: Lang,
}

/// The user's profile (the user, a `cs_agent` or an `ops_admin`).
#[utoipa::path(
    get, path = "/users/{user_id}", tag = "users",
    params(("user_id" = i64, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ProfileView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "USER_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn get_profile(State(state): State<AppState>, scope: UserScope) -> Result<Json<ProfileView>, ApiError> {
    Ok(Json(view(profiles::get(&state, scope.user_id).await?)))
}

/// Changes the user's language (the user or an `ops_admin`); every instance answers in it within
/// a second.
#[utoipa::path(
    patch, path = "/users/{user_id}", tag = "users", request_body = UpdateProfile,
    params(("user_id" = i64, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ProfileView),
        (status = 400, description = "VALIDATION_ERROR naming `language`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "USER_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn update_profile(
    State(state): State<AppState>,
    scope: UserScope,
    extract::Json(body): extract::Json<UpdateProfile>,
) -> Result<Json<ProfileView>, ApiError> {
    Ok(Json(view(profiles::set_language(&state, scope.user_id, body.language).await?)))
}
