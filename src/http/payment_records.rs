//! Payment records: `GET /payments/{payment_id}` and `GET /users/{user_id}/payments`.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::{Caller, UserScope},
    error::{ApiError, ErrorBody},
    extract::{self, Path},
    users::PageQuery,
};
use crate::{
    domain::{Currency, Money, PageRequest},
    services::{
        AppState,
        payment_records::{self, PaymentRecord},
    },
};

/// The payment record routes (mounted under `/api`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_payment)).routes(routes!(list_user_payments))
}

/// A payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentRecordView {
    /// Payment id (UUIDv7).
    pub payment_id: Uuid,
    /// The order paid.
    pub order_id: Uuid,
    /// Charged to the wallet (the order's total less its discount).
    pub amount: Money,
    /// The coupon discount of the order.
    pub discount_amount: Money,
    /// Always `WALLET`.
    pub method: String,
    /// `COMPLETED` or `REFUNDED`.
    pub status: String,
    /// When the order was paid.
    pub paid_at: DateTime<Utc>,
    /// Returned to the wallet so far.
    pub refunded_amount: Money,
}

impl From<PaymentRecord> for PaymentRecordView {
    fn from(p: PaymentRecord) -> Self {
        let currency = Currency::parse(&p.currency).unwrap_or(Currency::Krw);
        PaymentRecordView {
            payment_id: p.id,
            order_id: p.order_id,
            amount: Money::new(p.amount, currency),
            discount_amount: Money::new(p.discount_amount, currency),
            method: p.method,
            status: p.status,
            paid_at: p.paid_at,
            refunded_amount: Money::new(p.refunded_amount, currency),
        }
    }
}

/// A page of a user's payments.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentPage {
    /// Newest first.
    pub items: Vec<PaymentRecordView>,
    /// Page number, from 1.
    pub page: i64,
    /// Page size.
    pub size: i64,
    /// Payments in all pages.
    pub total: i64,
}

/// One payment: its owner's, or any for a `cs_agent` or an `ops_admin`; anyone else gets 404.
#[utoipa::path(
    get, path = "/payments/{payment_id}", tag = "payments",
    params(("payment_id" = Uuid, Path, description = "Payment id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = PaymentRecordView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "PAYMENT_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn get_payment(
    State(state): State<AppState>,
    caller: Caller,
    Path(payment_id): Path<Uuid>,
) -> Result<Json<PaymentRecordView>, ApiError> {
    Ok(Json(payment_records::get(&state, &caller, payment_id).await?.into()))
}

/// A user's payments, newest first (the user, a `cs_agent` or an `ops_admin`).
#[utoipa::path(
    get, path = "/users/{user_id}/payments", tag = "payments",
    params(("user_id" = i64, Path, description = "User id"), PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = PaymentPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "USER_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn list_user_payments(
    State(state): State<AppState>,
    scope: UserScope,
    extract::Query(q): extract::Query<PageQuery>,
) -> Result<Json<PaymentPage>, ApiError> {
    let page = PageRequest::new(q.page, q.size)?;
    let (rows, total) = payment_records::list(&state, scope.user_id, page).await?;
    let items = rows.into_iter().map(PaymentRecordView::from).collect();
    Ok(Json(PaymentPage { items, page: page.page, size: page.size, total }))
}
