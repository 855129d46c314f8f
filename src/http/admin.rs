//! Role-gated administration routes (`/admin/...`).

use axum::{Json, extract::State, http::StatusCode, middleware};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::{Caller, Role, require_roles},
    error::{ApiError, ErrorBody},
    extract,
};
use crate::{
    domain::{Market, text},
    services::{AppState, admin::users},
};

/// The admin routes (mounted under `/api`), each group behind its role gate.
pub fn router() -> OpenApiRouter<AppState> {
    let ops = OpenApiRouter::new()
        .routes(routes!(create_user))
        .route_layer(middleware::from_fn_with_state(&[Role::OpsAdmin][..], require_roles));
    OpenApiRouter::new().merge(ops)
}

/// A new user profile (identity itself comes from the token issuer).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Display name, 1-200 characters, not only whitespace (trimmed).
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// `KR` or `US`; decides the wallet currency.
    pub market: Market,
}

/// The created user's id.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedUser {
    /// The new id.
    pub user_id: i64,
}

/// Creates a user profile with an empty wallet (`ops_admin`).
#[utoipa::path(
    post, path = "/admin/users", tag = "admin", request_body = CreateUser, security(("bearer" = [])),
    responses(
        (status = 201, body = CreatedUser),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
)]
async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    extract::Json(body): extract::Json<CreateUser>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    let name = text::required("name", &body.name, 200)?;
    let user_id = users::create(&state, &caller, &name, body.market).await?;
    Ok((StatusCode::CREATED, Json(CreatedUser { user_id })))
}
