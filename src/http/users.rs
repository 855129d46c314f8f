//! Routes about one user: the wallet balance (`/users/{user_id}/...`).

use axum::{Json, extract::State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::UserScope,
    error::{ApiError, ErrorBody, ErrorCode},
};
use crate::{domain::Money, state::AppState, store::pg::users};

/// The user routes (mounted under `/api`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_balance))
}

/// A wallet balance.
#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceResponse {
    /// The wallet's owner.
    pub user_id: i64,
    /// The balance, in the user's market currency.
    pub balance: Money,
}

/// The user's wallet balance.
#[utoipa::path(
    get, path = "/users/{user_id}/balance", tag = "balance",
    params(("user_id" = i64, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = BalanceResponse),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
)]
async fn get_balance(State(state): State<AppState>, scope: UserScope) -> Result<Json<BalanceResponse>, ApiError> {
    let user = users::find(&state.db, scope.user_id).await?.ok_or_else(|| ApiError::new(ErrorCode::UserNotFound))?;
    Ok(Json(BalanceResponse { user_id: user.id, balance: user.balance() }))
}
