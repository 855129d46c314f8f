//! Orders: creation with an all-or-nothing stock reservation, one order, a user's history.
//! Payment and cancellation are in `payment.rs`.

use axum::{Json, extract::State, http::StatusCode, middleware};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::{Caller, Role, UserScope},
    cart::quantity,
    error::{ApiError, ErrorBody, ErrorCode},
    extract::{self, Path, Query},
    idempotency::{self, Idempotency},
    waiting_room::Pass,
};
use crate::{
    domain::{Money, PageRequest, fx::PriceSource, order::OrderStatus},
    services::{
        AppState,
        orders::{self, Order, OrderSource},
        waiting_room,
    },
};

/// `order_create_total{outcome}`.
pub const ORDER_CREATE_TOTAL: &str = "order_create_total";
/// Every `outcome` of [`ORDER_CREATE_TOTAL`] (`created` and each value of `outcome_of`); created
/// at zero on start-up.
pub const OUTCOMES: [&str; 8] = [
    "created",
    "insufficient_stock",
    "empty_order",
    "option_not_found",
    "market_mismatch",
    "invalid",
    "rejected",
    "error",
];
/// Describes [`ORDER_CREATE_TOTAL`] and creates every outcome at zero.
pub fn register_metrics() {
    metrics::describe_counter!(ORDER_CREATE_TOTAL, metrics::Unit::Count, "Order creations by outcome");
    for outcome in OUTCOMES {
        metrics::counter!(ORDER_CREATE_TOTAL, "outcome" => outcome).increment(0);
    }
}

/// Most distinct lines one order may hold.
const MAX_LINES: usize = 100;

/// The order routes (mounted under `/api`).
pub fn router() -> OpenApiRouter<AppState> {
    let idempotent =
        OpenApiRouter::new().routes(routes!(create_order)).route_layer(middleware::from_fn(idempotency::layer));
    OpenApiRouter::new().routes(routes!(get_order)).routes(routes!(list_orders)).merge(idempotent)
}

/// One line of a new order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineRequest {
    /// The option (SKU).
    pub product_option_id: i64,
    /// Units (> 0). Lines of the same option are merged.
    #[schema(minimum = 1, maximum = 2147483647)]
    pub quantity: i64,
}

/// A new order: explicit `items`, or `from_cart: true` to order the whole cart.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// Must be the caller.
    pub user_id: i64,
    /// The lines (at most 100); omit when ordering the cart.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub items: Option<Vec<OrderLineRequest>>,
    /// Order the cart's contents (and empty the cart on success).
    #[serde(default)]
    pub from_cart: bool,
}

/// One line of an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderItemView {
    /// Option id.
    pub product_option_id: i64,
    /// Product id.
    pub product_id: i64,
    /// Product name captured at order time.
    pub name: String,
    /// Option name captured at order time.
    pub option_name: String,
    /// Units.
    pub quantity: i64,
    /// Price per unit captured at order time.
    pub unit_price: Money,
    /// Where unit_price came from: the option's list price, or an FX conversion at order time.
    pub price_source: PriceSource,
    /// unit_price x quantity.
    pub subtotal: Money,
    /// Units refunded so far.
    pub refunded_quantity: i64,
}

/// An order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    /// UUIDv7.
    pub order_id: Uuid,
    /// Owner.
    pub user_id: i64,
    /// State.
    pub status: OrderStatus,
    /// The lines.
    pub items: Vec<OrderItemView>,
    /// Sum of the lines.
    pub total_amount: Money,
    /// Coupon discount (0 until paid with a coupon).
    pub discount_amount: Money,
    /// total_amount - discount_amount: what is (or would be) charged.
    pub final_amount: Money,
    /// What was given back of final_amount so far (REFUNDED once all of it).
    pub refunded_amount: Money,
    /// The coupon used, if any.
    pub user_coupon_id: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When an unpaid order expires and its stock returns.
    pub expires_at: DateTime<Utc>,
    /// Payment time.
    pub paid_at: Option<DateTime<Utc>>,
    /// Cancellation or refund time.
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl From<&Order> for OrderView {
    fn from(o: &Order) -> Self {
        OrderView {
            order_id: o.id,
            user_id: o.user_id,
            status: o.status,
            items: o
                .items
                .iter()
                .map(|i| OrderItemView {
                    product_option_id: i.option_id,
                    product_id: i.product_id,
                    name: i.product_name.clone(),
                    option_name: i.option_name.clone(),
                    quantity: i.quantity.into(),
                    unit_price: o.money(i.unit_price),
                    price_source: i.price_source,
                    subtotal: o.money(i.subtotal),
                    refunded_quantity: i.refunded_quantity.into(),
                })
                .collect(),
            total_amount: o.money(o.total_amount),
            discount_amount: o.money(o.discount_amount),
            final_amount: o.money(o.final_amount),
            refunded_amount: o.money(o.refunded_amount),
            user_coupon_id: o.user_coupon_id,
            created_at: o.created_at,
            expires_at: o.expires_at,
            paid_at: o.paid_at,
            cancelled_at: o.cancelled_at,
        }
    }
}

/// A page of orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    /// Newest first.
    pub items: Vec<OrderView>,
    /// 1-based page.
    pub page: i64,
    /// Page size.
    pub size: i64,
    /// Orders matching the filter.
    pub total: i64,
}

/// Filters of the order history.
#[derive(Debug, Deserialize, IntoParams)]
pub struct OrdersQuery {
    /// Only orders in this state.
    pub status: Option<OrderStatus>,
    /// 1-based page (default 1).
    pub page: Option<i64>,
    /// Page size (default 20; a larger one is lowered to 100).
    #[param(minimum = 1)]
    pub size: Option<i64>,
}

fn outcome_of(e: &ApiError) -> &'static str {
    match e.code() {
        ErrorCode::InsufficientStock => "insufficient_stock",
        ErrorCode::EmptyOrder => "empty_order",
        ErrorCode::ProductOptionNotFound => "option_not_found",
        ErrorCode::MarketMismatch => "market_mismatch",
        ErrorCode::ValidationError => "invalid",
        ErrorCode::Forbidden | ErrorCode::UserNotFound | ErrorCode::WaitingRoomPassRequired => "rejected",
        _ => "error",
    }
}

/// Creates a PENDING order, reserving its stock until `expires_at` (all lines or none).
#[utoipa::path(
    post, path = "/orders", tag = "orders", request_body = CreateOrder, security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[\\x20-\\x7e]+$",
          description = "1-255 printable ASCII characters; a repeated request with the same key is answered with \
          the first answer (Idempotent-Replayed: true)"),
          ("X-Waiting-Room-Pass" = Option<String>, Header, max_length = 2048, pattern = "^[\\x20-\\x7e]*$",
          description = "Passes (comma separated) of the waiting rooms of the ordered products that have an enabled one")),
    responses(
        (status = 201, body = OrderView),
        (status = 400, description = "INSUFFICIENT_STOCK, EMPTY_ORDER, MARKET_MISMATCH or VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "FORBIDDEN, WAITING_ROOM_PASS_REQUIRED", body = ErrorBody),
        (status = 404, description = "PRODUCT_OPTION_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn create_order(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
    pass: Pass,
    extract::Json(body): extract::Json<CreateOrder>,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    let result = match pass.value() {
        Ok(pass) => create(&state, &caller, &idem, pass, body).await,
        Err(e) => Err(e),
    };
    let outcome = match &result {
        Ok(_) => "created",
        Err(e) => outcome_of(e),
    };
    metrics::counter!(ORDER_CREATE_TOTAL, "outcome" => outcome).increment(1);
    Ok((StatusCode::CREATED, Json(result?)))
}

async fn create(
    state: &AppState,
    caller: &Caller,
    idem: &Idempotency,
    pass: Option<&str>,
    body: CreateOrder,
) -> Result<OrderView, ApiError> {
    caller.ensure_is(body.user_id)?;
    let option_ids = body.items.as_ref().map(|items| items.iter().map(|i| i.product_option_id).collect());
    waiting_room::guard_order(state, body.user_id, option_ids, pass).await?;
    let source = match (body.items, body.from_cart) {
        (Some(_), true) => return Err(ApiError::validation("from_cart", "give either items or from_cart, not both")),
        (None, true) => OrderSource::Cart,
        (None, false) => return Err(ApiError::new(ErrorCode::EmptyOrder)),
        (Some(items), false) => {
            if items.len() > MAX_LINES {
                return Err(ApiError::validation("items", format!("at most {MAX_LINES} lines")));
            }
            let mut lines = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                lines.push((item.product_option_id, quantity(item.quantity, &format!("items[{i}].quantity"))?));
            }
            OrderSource::Items(lines)
        }
    };
    let render = |o: &Order| serde_json::to_vec(&OrderView::from(o));
    let order = orders::create(state, body.user_id, source, idem.receipt(StatusCode::CREATED, &render)).await?;
    Ok(OrderView::from(&order))
}

/// One order: its owner, an `ops_admin` or a `cs_agent` may read it (404 for anyone else).
#[utoipa::path(
    get, path = "/orders/{order_id}", tag = "orders",
    params(("order_id" = Uuid, Path, description = "Order id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = OrderView), (status = 401, body = ErrorBody),
        (status = 404, description = "ORDER_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(order_id): Path<Uuid>,
) -> Result<Json<OrderView>, ApiError> {
    let order = orders::get(&state, order_id)
        .await?
        .filter(|o| o.user_id == caller.user_id || caller.has(Role::CsAgent))
        .ok_or_else(|| ApiError::new(ErrorCode::OrderNotFound))?;
    Ok(Json(OrderView::from(&order)))
}

/// A user's orders, newest first, with items and amounts.
#[utoipa::path(
    get, path = "/users/{user_id}/orders", tag = "orders",
    params(("user_id" = i64, Path, description = "User id"), OrdersQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = OrderPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
)]
async fn list_orders(
    State(state): State<AppState>,
    scope: UserScope,
    Query(q): Query<OrdersQuery>,
) -> Result<Json<OrderPage>, ApiError> {
    let page = PageRequest::capped(q.page, q.size)?;
    let (items, total) = orders::list(&state, scope.user_id, q.status, page).await?;
    Ok(Json(OrderPage { items: items.iter().map(OrderView::from).collect(), page: page.page, size: page.size, total }))
}
