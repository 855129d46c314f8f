//! Routes about one user's wallet (`/users/{user_id}/balance...`): balance, charge, history.

use axum::{Json, extract::State, http::StatusCode, middleware};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::UserScope,
    error::{ApiError, ErrorBody, ErrorCode},
    extract,
    idempotency::{self, Idempotency},
};
use crate::{
    domain::{Currency, Money, PageRequest},
    services::{
        AppState,
        wallet::{self, Charged},
    },
};

/// The user routes (mounted under `/api`); the charge runs behind the idempotency layer.
pub fn router() -> OpenApiRouter<AppState> {
    let idempotent = OpenApiRouter::new().routes(routes!(charge)).route_layer(middleware::from_fn(idempotency::layer));
    OpenApiRouter::new().routes(routes!(get_balance)).routes(routes!(list_transactions)).merge(idempotent)
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
    let balance = wallet::balance(&state, scope.user_id).await?;
    Ok(Json(BalanceResponse { user_id: scope.user_id, balance }))
}

/// A charge of the wallet.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargeRequest {
    /// Minor units of the wallet currency, more than 0 and at most the configured maximum
    /// (`JUPANG_MAX_CHARGE`, which the served document states as `maximum`).
    #[schema(minimum = 1)]
    pub amount: i64,
    /// Optional; when given it must be the path's user and the token's subject (403 otherwise,
    /// as for any body naming another user).
    pub user_id: Option<i64>,
}

/// The wallet after a charge.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChargeResponse {
    /// The wallet's owner.
    pub user_id: i64,
    /// The new balance.
    pub balance: Money,
    /// The `CHARGE` row of the history.
    pub transaction_id: Uuid,
}

/// Charges the wallet. Concurrent charges never lose an update (one atomic `UPDATE`); with an
/// `Idempotency-Key` a retried charge is answered from the first one and charges once.
#[utoipa::path(
    post, path = "/users/{user_id}/balance/charge", tag = "balance", request_body = ChargeRequest,
    params(
        ("user_id" = i64, Path, description = "User id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[\\x20-\\x7e]+$",
          description = "1-255 printable ASCII characters; a repeated request with the same key is answered with \
          the first answer (Idempotent-Replayed: true)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ChargeResponse),
        (status = 400, description = "VALIDATION_ERROR naming `amount`, `user_id` or `Idempotency-Key`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "IDEMPOTENCY_IN_PROGRESS", body = ErrorBody),
        (status = 422, description = "IDEMPOTENCY_KEY_REUSED", body = ErrorBody),
    ),
)]
async fn charge(
    State(state): State<AppState>,
    scope: UserScope,
    idem: Idempotency,
    extract::Json(req): extract::Json<ChargeRequest>,
) -> Result<Json<ChargeResponse>, ApiError> {
    if let Some(user_id) = req.user_id {
        scope.caller.ensure_is(user_id)?;
        // Charging one wallet in another user's name is acting for someone else: 403, the
        // answer a customer gets for the same body.
        if user_id != scope.user_id {
            return Err(ApiError::new(ErrorCode::Forbidden)
                .with_details(serde_json::json!({ "field": "user_id", "reason": "must be the user of the path" })));
        }
    }
    let render = |c: &Charged| serde_json::to_vec(&ChargeResponse::from(c));
    let charged = wallet::charge(&state, scope.user_id, req.amount, idem.receipt(StatusCode::OK, &render)).await?;
    Ok(Json(ChargeResponse::from(&charged)))
}

impl From<&Charged> for ChargeResponse {
    fn from(c: &Charged) -> Self {
        ChargeResponse { user_id: c.user_id, balance: c.balance, transaction_id: c.transaction_id }
    }
}

/// `?page=&size=` of a list: page from 1, size 1-100 (default 20).
#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Items per page, 1-100 (default 20).
    pub size: Option<i64>,
}

/// One change of a wallet.
#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceTxItem {
    /// Transaction id (UUIDv7).
    pub id: Uuid,
    /// `CHARGE`, `PAYMENT`, `REFUND` or `ADJUSTMENT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Signed change: positive for CHARGE and REFUND, negative for PAYMENT.
    pub amount: Money,
    /// The balance right after the change.
    pub balance_after: Money,
    /// The order paid or refunded, if any.
    pub order_id: Option<Uuid>,
    /// When the balance changed.
    pub created_at: DateTime<Utc>,
}

/// A page of a wallet's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceTxPage {
    /// Newest first.
    pub items: Vec<BalanceTxItem>,
    /// Page number, from 1.
    pub page: i64,
    /// Page size.
    pub size: i64,
    /// Number of transactions in all pages.
    pub total: i64,
}

/// The wallet's history, newest first.
#[utoipa::path(
    get, path = "/users/{user_id}/balance/transactions", tag = "balance",
    params(("user_id" = i64, Path, description = "User id"), PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = BalanceTxPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
)]
async fn list_transactions(
    State(state): State<AppState>,
    scope: UserScope,
    extract::Query(q): extract::Query<PageQuery>,
) -> Result<Json<BalanceTxPage>, ApiError> {
    let page = PageRequest::new(q.page, q.size)?;
    let (rows, total) = wallet::history(&state, scope.user_id, page).await?;
    let items = rows
        .into_iter()
        .map(|r| {
            let currency = Currency::parse(&r.currency).unwrap_or(Currency::Krw);
            BalanceTxItem {
                id: r.id,
                kind: r.kind,
                amount: Money::new(r.amount, currency),
                balance_after: Money::new(r.balance_after, currency),
                order_id: r.order_id,
                created_at: r.created_at,
            }
        })
        .collect();
    Ok(Json(BalanceTxPage { items, page: page.page, size: page.size, total }))
}
