//! Paying an order from the wallet (optionally with a coupon) and cancelling or refunding it.

use axum::{Json, extract::State, http::StatusCode, middleware};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::{Caller, Role},
    error::{ApiError, ErrorBody, ErrorCode},
    extract::{self, Path},
    idempotency::{self, Idempotency},
    orders::OrderView,
};
use crate::{
    domain::{Money, order::OrderStatus},
    services::{
        AppState,
        payment::{self, Paid},
    },
};

/// `payment_total{outcome}`.
pub const PAYMENT_TOTAL: &str = "payment_total";
/// Every `outcome` of [`PAYMENT_TOTAL`] (`paid` and each value of `outcome_of`); created at zero
/// on start-up.
pub const OUTCOMES: [&str; 8] =
    ["paid", "insufficient_balance", "expired", "not_payable", "not_found", "coupon_rejected", "rejected", "error"];

/// Describes [`PAYMENT_TOTAL`] and creates every outcome at zero.
pub fn register_metrics() {
    metrics::describe_counter!(PAYMENT_TOTAL, metrics::Unit::Count, "Payments by outcome");
    for outcome in OUTCOMES {
        metrics::counter!(PAYMENT_TOTAL, "outcome" => outcome).increment(0);
    }
}

/// The payment routes (mounted under `/api`).
pub fn router() -> OpenApiRouter<AppState> {
    let idempotent =
        OpenApiRouter::new().routes(routes!(pay_order)).route_layer(middleware::from_fn(idempotency::layer));
    OpenApiRouter::new().routes(routes!(cancel_order)).merge(idempotent)
}

/// Pays an order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayOrder {
    /// Must be the caller and the order's owner.
    pub user_id: i64,
    /// A held coupon to apply (one per order).
    #[serde(default)]
    pub user_coupon_id: Option<Uuid>,
}

/// A completed payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentView {
    /// The order.
    pub order_id: Uuid,
    /// `PAID`.
    pub status: OrderStatus,
    /// Sum of the lines.
    pub total_amount: Money,
    /// Coupon discount.
    pub discount_amount: Money,
    /// What was charged.
    pub final_amount: Money,
    /// Wallet balance after the charge.
    pub balance_after: Money,
    /// When it was paid.
    pub paid_at: DateTime<Utc>,
}

fn outcome_of(e: &ApiError) -> &'static str {
    match e.code() {
        ErrorCode::InsufficientBalance => "insufficient_balance",
        ErrorCode::OrderExpired => "expired",
        ErrorCode::OrderNotPayable => "not_payable",
        ErrorCode::OrderNotFound => "not_found",
        ErrorCode::ExpiredCoupon
        | ErrorCode::AlreadyUsed
        | ErrorCode::InvalidCoupon
        | ErrorCode::CouponRevoked
        | ErrorCode::CouponMinOrderAmount
        | ErrorCode::CouponNotApplicable => "coupon_rejected",
        ErrorCode::ValidationError | ErrorCode::Forbidden => "rejected",
        _ => "error",
    }
}

/// Pays a PENDING order from the wallet in one atomic step: coupon checked and used, wallet
/// debited, stock confirmed, order PAID.
#[utoipa::path(
    post, path = "/orders/{order_id}/payment", tag = "orders", request_body = PayOrder,
    params(
        ("order_id" = Uuid, Path, description = "Order id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[\\x20-\\x7e]+$",
          description = "1-255 printable ASCII characters; a repeated request with the same key is answered with \
          the first answer (Idempotent-Replayed: true)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, body = PaymentView),
        (status = 400, description = "INSUFFICIENT_BALANCE, ORDER_EXPIRED, ORDER_NOT_PAYABLE, EXPIRED_COUPON, \
            ALREADY_USED, INVALID_COUPON, COUPON_REVOKED, COUPON_MIN_ORDER_AMOUNT, COUPON_NOT_APPLICABLE", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "ORDER_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn pay_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(order_id): Path<Uuid>,
    idem: Idempotency,
    extract::Json(body): extract::Json<PayOrder>,
) -> Result<Json<PaymentView>, ApiError> {
    let result = pay(&state, &caller, &idem, order_id, body).await;
    let outcome = match &result {
        Ok(_) => "paid",
        Err(e) => outcome_of(e),
    };
    metrics::counter!(PAYMENT_TOTAL, "outcome" => outcome).increment(1);
    Ok(Json(result?))
}

impl From<&Paid> for PaymentView {
    fn from(paid: &Paid) -> Self {
        let o = &paid.order;
        PaymentView {
            order_id: o.id,
            status: o.status,
            total_amount: o.money(o.total_amount),
            discount_amount: o.money(o.discount_amount),
            final_amount: o.money(o.final_amount),
            balance_after: o.money(paid.balance_after),
            paid_at: paid.paid_at,
        }
    }
}

fn render_paid(paid: &Paid) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&PaymentView::from(paid))
}

async fn pay(
    state: &AppState,
    caller: &Caller,
    idem: &Idempotency,
    order_id: Uuid,
    body: PayOrder,
) -> Result<PaymentView, ApiError> {
    caller.ensure_is(body.user_id)?;
    // A plain function (`'static`): the receipt travels with the payment to a batch worker.
    let receipt = idem.receipt(StatusCode::OK, &render_paid);
    let paid = payment::pay(state, order_id, body.user_id, body.user_coupon_id, receipt).await?;
    Ok(PaymentView::from(&paid))
}

/// Cancels an order: PENDING -> CANCELLED (stock returns); PAID -> REFUNDED (wallet refunded,
/// stock returns, coupon given back while still valid). The owner or an `ops_admin` may cancel.
#[utoipa::path(
    post, path = "/orders/{order_id}/cancel", tag = "orders",
    params(("order_id" = Uuid, Path, description = "Order id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = OrderView),
        (status = 400, description = "ORDER_NOT_CANCELLABLE", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "ORDER_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn cancel_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(order_id): Path<Uuid>,
) -> Result<Json<OrderView>, ApiError> {
    let visible = |owner: i64| owner == caller.user_id || caller.has(Role::OpsAdmin);
    let order = payment::cancel(&state, order_id, visible).await?;
    Ok(Json(OrderView::from(&order)))
}
