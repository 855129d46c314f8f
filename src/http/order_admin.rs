//! Agents' order routes (`cs_agent`, `ops_admin`): fulfilment and refunds.

use axum::{Json, extract::State, http::StatusCode, middleware};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::{Caller, Role, require_roles},
    error::{ApiError, ErrorBody},
    extract::{self, Path},
    idempotency::{self, Idempotency},
    orders::OrderView,
};
use crate::{
    domain::{Money, refund::RefundAsk, text},
    services::{
        AppState,
        orders::refunds::{self, Refund, RefundBy},
    },
};

/// Most lines one refund names (an order has at most as many distinct options).
const MAX_REFUND_ITEMS: usize = 100;

/// The agents' order routes (mounted under `/api`), behind the `cs_agent` / `ops_admin` gate.
pub fn router() -> OpenApiRouter<AppState> {
    let idempotent =
        OpenApiRouter::new().routes(routes!(refund_order)).route_layer(middleware::from_fn(idempotency::layer));
    OpenApiRouter::new()
        .routes(routes!(fulfill_order))
        .merge(idempotent)
        .route_layer(middleware::from_fn_with_state(&[Role::CsAgent, Role::OpsAdmin][..], require_roles))
}

/// Marks a PAID order FULFILLED (shipped).
#[utoipa::path(
    post, path = "/admin/orders/{order_id}/fulfill", tag = "admin",
    params(("order_id" = Uuid, Path, description = "Order id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = OrderView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "ORDER_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "ORDER_NOT_FULFILLABLE: the order is not PAID", body = ErrorBody),
    ),
)]
async fn fulfill_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(order_id): Path<Uuid>,
) -> Result<Json<OrderView>, ApiError> {
    let order = refunds::fulfill(&state, &caller, order_id).await?;
    Ok(Json(OrderView::from(&order)))
}

/// Units of one option to refund.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundItem {
    /// An option of the order.
    #[schema(minimum = 1)]
    pub product_option_id: i64,
    /// Units, at most those paid for and not refunded yet.
    #[schema(minimum = 1, maximum = 1000000)]
    pub quantity: i64,
}

/// A refund: either `items` or `amount`, and a reason.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundOrder {
    /// Units to refund (worth their share of what was charged); excludes `amount`.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 100)]
    pub items: Option<Vec<RefundItem>>,
    /// Money to refund, in minor units of the order's currency, no units; excludes `items`.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000000000000_i64)]
    pub amount: Option<i64>,
    /// Why, 1-500 characters (trimmed).
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// A committed refund.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundView {
    /// The refund.
    pub refund_id: Uuid,
    /// The order.
    pub order_id: Uuid,
    /// Money given back now.
    pub amount: Money,
    /// Units refunded now.
    pub items: Vec<RefundedItemView>,
    /// Why.
    pub reason: String,
    /// The owner's wallet balance afterwards.
    pub balance_after: Money,
    /// The order afterwards (`refunded_amount`, and REFUNDED once everything is).
    pub order: OrderView,
    /// When.
    pub refunded_at: DateTime<Utc>,
}

/// Units of one option a refund covered.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundedItemView {
    /// The option.
    pub product_option_id: i64,
    /// Units refunded.
    pub quantity: i64,
    /// Whether they went back on sale (the order was not fulfilled).
    pub restocked: bool,
}

impl From<&Refund> for RefundView {
    fn from(r: &Refund) -> Self {
        let o = &r.order;
        RefundView {
            refund_id: r.id,
            order_id: o.id,
            amount: o.money(r.amount),
            items: r
                .units
                .iter()
                .map(|(id, q)| RefundedItemView {
                    product_option_id: *id,
                    quantity: *q,
                    restocked: r.restocked.iter().any(|(rid, _)| rid == id),
                })
                .collect(),
            reason: r.reason.clone(),
            balance_after: o.money(r.balance_after),
            order: OrderView::from(o),
            refunded_at: r.created_at,
        }
    }
}

/// What the body asks for: exactly one of `items` and `amount`.
fn ask_of(body: RefundOrder) -> Result<(RefundAsk, String), ApiError> {
    let reason = text::required("reason", &body.reason, 500)?;
    let ask = match (body.items, body.amount) {
        (Some(items), None) => {
            if items.is_empty() || items.len() > MAX_REFUND_ITEMS {
                return Err(ApiError::validation("items", "must name 1 to 100 lines"));
            }
            RefundAsk::Items(items.into_iter().map(|i| (i.product_option_id, i.quantity)).collect())
        }
        (None, Some(amount)) => RefundAsk::Amount(amount),
        (Some(_), Some(_)) => return Err(ApiError::validation("amount", "give either items or amount, not both")),
        (None, None) => return Err(ApiError::validation("items", "give either items or amount")),
    };
    Ok((ask, reason))
}

/// Refunds a PAID or FULFILLED order, in part or whole, to the owner's wallet. Units of an order
/// not fulfilled yet go back on sale; the order becomes REFUNDED once everything is refunded, and
/// only then (and only when it was not fulfilled) does its coupon come back.
#[utoipa::path(
    post, path = "/admin/orders/{order_id}/refunds", tag = "admin", request_body = RefundOrder,
    params(
        ("order_id" = Uuid, Path, description = "Order id"),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[\\x20-\\x7e]+$",
          description = "1-255 printable ASCII characters; a repeated request with the same key is answered with \
          the first answer (Idempotent-Replayed: true)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 201, body = RefundView),
        (status = 400, description = "REFUND_EXCEEDS_PAID or VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "ORDER_NOT_FOUND", body = ErrorBody),
        (status = 409, description = "ORDER_NOT_REFUNDABLE: the order was never paid", body = ErrorBody),
    ),
)]
async fn refund_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(order_id): Path<Uuid>,
    idem: Idempotency,
    extract::Json(body): extract::Json<RefundOrder>,
) -> Result<(StatusCode, Json<RefundView>), ApiError> {
    let (ask, reason) = ask_of(body)?;
    let by = RefundBy { actor_user_id: caller.user_id, reason };
    let render = |r: &Refund| serde_json::to_vec(&RefundView::from(r));
    let receipt = idem.receipt(StatusCode::CREATED, &render);
    let refund = refunds::refund(&state, &caller, order_id, &ask, &by, receipt).await?;
    Ok((StatusCode::CREATED, Json(RefundView::from(&refund))))
}
