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
    domain::{Currency, Money},
    state::AppState,
    store::pg::users::{self, BalanceTxKind, NewBalanceTx},
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
    let user = users::find(&state.db, scope.user_id).await?.ok_or_else(|| ApiError::new(ErrorCode::UserNotFound))?;
    Ok(Json(BalanceResponse { user_id: user.id, balance: user.balance() }))
}

/// A charge of the wallet.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChargeRequest {
    /// Minor units of the wallet currency, more than 0 and at most the configured maximum
    /// (`JUPANG_MAX_CHARGE`).
    pub amount: i64,
    /// Optional; when given it must be the path's user and the token's subject.
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
        ("Idempotency-Key" = Option<String>, Header, description = "1-255 printable ASCII characters; \
          a repeated request with the same key is answered with the first answer (Idempotent-Replayed: true)"),
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
        if user_id != scope.user_id {
            return Err(ApiError::validation("user_id", "must be the user of the path"));
        }
    }
    let max = state.config.max_charge;
    if req.amount <= 0 || req.amount > max {
        return Err(ApiError::validation("amount", format!("must be an integer from 1 to {max}")));
    }
    let mut tx = state.db.begin().await?;
    let balance = match users::add_to_balance(&mut tx, scope.user_id, req.amount).await {
        Ok(Some(balance)) => balance,
        Ok(None) => return Err(ApiError::new(ErrorCode::UserNotFound)),
        Err(e) if users::is_out_of_range(&e) => {
            return Err(ApiError::validation("amount", "the balance would exceed its maximum"));
        }
        Err(e) => return Err(e.into()),
    };
    let record = NewBalanceTx {
        user_id: scope.user_id,
        kind: BalanceTxKind::Charge,
        amount: req.amount,
        balance_after: balance,
        order_id: None,
    };
    let transaction_id = users::record_balance_tx(&mut tx, &record).await?;
    let response = ChargeResponse { user_id: scope.user_id, balance, transaction_id };
    let body = serde_json::to_vec(&response).map_err(anyhow::Error::from)?;
    idem.complete(&mut tx, StatusCode::OK, &body).await?;
    tx.commit().await?;
    Ok(Json(response))
}

/// `?page=&size=` of a list: page from 1, size 1-100 (default 20).
#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Items per page, 1-100 (default 20).
    pub size: Option<i64>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// Page number, from 1.
    pub page: i64,
    /// Items per page.
    pub size: i64,
}

impl Paging {
    /// Checks `page` and `size`; 400 `VALIDATION_ERROR` naming the parameter.
    pub fn new(page: Option<i64>, size: Option<i64>) -> Result<Paging, ApiError> {
        let page = page.unwrap_or(1);
        let size = size.unwrap_or(20);
        if !(1..=1_000_000).contains(&page) {
            return Err(ApiError::validation("page", "must be an integer from 1"));
        }
        if !(1..=100).contains(&size) {
            return Err(ApiError::validation("size", "must be an integer from 1 to 100"));
        }
        Ok(Paging { page, size })
    }

    /// Rows to skip.
    pub fn offset(self) -> i64 {
        (self.page - 1) * self.size
    }
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
    let paging = Paging::new(q.page, q.size)?;
    users::find(&state.db, scope.user_id).await?.ok_or_else(|| ApiError::new(ErrorCode::UserNotFound))?;
    let (rows, total) = users::list_balance_txs(&state.db, scope.user_id, paging.size, paging.offset()).await?;
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
    Ok(Json(BalanceTxPage { items, page: paging.page, size: paging.size, total }))
}
