//! Orders: creation with an all-or-nothing stock reservation, one order, a user's history.
//! Payment and cancellation are in `payment.rs`.

use axum::{Json, extract::State, http::StatusCode, middleware};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::{Caller, Role, UserScope},
    cart::quantity,
    error::{ApiError, ErrorBody, ErrorCode},
    extract::{self, Path, Query},
    idempotency::{self, Idempotency},
};
use crate::{
    admission::orders::settle,
    domain::{Money, discount::RedemptionError, order::OrderStatus, order::TransitionError},
    state::AppState,
    store::{
        ordering::{self, OrderBackend},
        pg::orders::{self, Order, OrderSource, Rejection, StoreError},
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
/// Most distinct lines one order may hold.
const MAX_LINES: usize = 100;

/// The order routes (mounted under `/api`).
pub fn router() -> OpenApiRouter<AppState> {
    let idempotent =
        OpenApiRouter::new().routes(routes!(create_order)).route_layer(middleware::from_fn(idempotency::layer));
    OpenApiRouter::new().routes(routes!(get_order)).routes(routes!(list_orders)).merge(idempotent)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(e) => ApiError::internal(e),
            StoreError::Rejected(r) => r.into(),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::UserNotFound => ApiError::new(ErrorCode::UserNotFound),
            Rejection::OptionNotFound { option_id } => {
                ApiError::new(ErrorCode::ProductOptionNotFound).with_details(json!({ "product_option_id": option_id }))
            }
            Rejection::MarketMismatch { option_id } => {
                ApiError::new(ErrorCode::MarketMismatch).with_details(json!({ "product_option_id": option_id }))
            }
            Rejection::InsufficientStock { option_id, available, requested } => ApiError::new(
                ErrorCode::InsufficientStock,
            )
            .with_details(json!({ "product_option_id": option_id, "available": available, "requested": requested })),
            Rejection::EmptyOrder => ApiError::new(ErrorCode::EmptyOrder),
            Rejection::CartItemNotFound => ApiError::new(ErrorCode::CartItemNotFound),
            Rejection::OrderNotFound => ApiError::new(ErrorCode::OrderNotFound),
            Rejection::Transition(t) => ApiError::new(match t {
                TransitionError::NotPayable | TransitionError::NotPaid => ErrorCode::OrderNotPayable,
                TransitionError::Expired => ErrorCode::OrderExpired,
                TransitionError::NotCancellable | TransitionError::NotPending => ErrorCode::OrderNotCancellable,
            }),
            Rejection::Coupon(c) => match c {
                RedemptionError::Expired => ApiError::new(ErrorCode::ExpiredCoupon),
                RedemptionError::AlreadyUsed => ApiError::new(ErrorCode::AlreadyUsed),
                RedemptionError::Invalid => ApiError::new(ErrorCode::InvalidCoupon),
                RedemptionError::NotApplicable => ApiError::new(ErrorCode::CouponNotApplicable),
                RedemptionError::MinOrderAmount { min_order_amount, order_total } => {
                    ApiError::new(ErrorCode::CouponMinOrderAmount)
                        .with_details(json!({ "min_order_amount": min_order_amount, "order_total": order_total }))
                }
            },
            Rejection::InsufficientBalance { currency, balance, required } => {
                ApiError::new(ErrorCode::InsufficientBalance).with_details(json!({
                    "balance": Money::new(balance, currency), "required": Money::new(required, currency),
                }))
            }
        }
    }
}

/// One line of a new order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineRequest {
    /// The option (SKU).
    pub product_option_id: i64,
    /// Units (> 0). Lines of the same option are merged.
    pub quantity: i64,
}

/// A new order: explicit `items`, or `from_cart: true` to order the whole cart.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// Must be the caller.
    pub user_id: i64,
    /// The lines; omit when ordering the cart.
    #[serde(default)]
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
    /// unit_price x quantity.
    pub subtotal: Money,
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

impl From<Order> for OrderView {
    fn from(o: Order) -> Self {
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
                    subtotal: o.money(i.subtotal),
                })
                .collect(),
            total_amount: o.money(o.total_amount),
            discount_amount: o.money(o.discount_amount),
            final_amount: o.money(o.final_amount),
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
    /// Page size (default 20, at most 100).
    pub size: Option<i64>,
}

fn outcome_of(e: &ApiError) -> &'static str {
    match e.code() {
        ErrorCode::InsufficientStock => "insufficient_stock",
        ErrorCode::EmptyOrder => "empty_order",
        ErrorCode::ProductOptionNotFound => "option_not_found",
        ErrorCode::MarketMismatch => "market_mismatch",
        ErrorCode::ValidationError => "invalid",
        ErrorCode::Forbidden | ErrorCode::UserNotFound => "rejected",
        _ => "error",
    }
}

/// Creates a PENDING order, reserving its stock until `expires_at` (all lines or none).
#[utoipa::path(
    post, path = "/orders", tag = "orders", request_body = CreateOrder, security(("bearer" = [])),
    responses(
        (status = 201, body = OrderView),
        (status = 400, description = "INSUFFICIENT_STOCK, EMPTY_ORDER, MARKET_MISMATCH or VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "PRODUCT_OPTION_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn create_order(
    State(state): State<AppState>,
    caller: Caller,
    idem: Idempotency,
    extract::Json(body): extract::Json<CreateOrder>,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    let result = create(&state, &caller, &idem, body).await;
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
    body: CreateOrder,
) -> Result<OrderView, ApiError> {
    caller.ensure_is(body.user_id)?;
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
    match ordering::backend(state.config.order_strategy) {
        OrderBackend::DbPessimistic => {
            let mut tx = state.db.begin().await?;
            let order = orders::create(&mut tx, body.user_id, source, state.config.order_ttl, Utc::now()).await?;
            let held = order.held();
            let view = OrderView::from(order);
            // The answer is stored with the reservation, so a retried key replays it instead of ordering twice.
            idem.complete(&mut tx, StatusCode::CREATED, &serde_json::to_vec(&view).map_err(ApiError::internal)?)
                .await?;
            tx.commit().await?;
            settle::created_v1(state.order_admission.stock(), &held).await;
            Ok(view)
        }
        OrderBackend::RedisLua => {
            let order = state.order_admission.create(body.user_id, source, Utc::now()).await?;
            let view = OrderView::from(order);
            if idem.is_active() {
                // Stored right after the admission (Redis and Postgres share no transaction): a
                // crash in between lets a retry after the key's lease order again; the extra
                // order expires unpaid and returns its stock.
                let mut conn = state.db.acquire().await?;
                idem.complete(&mut conn, StatusCode::CREATED, &serde_json::to_vec(&view).map_err(ApiError::internal)?)
                    .await?;
            }
            Ok(view)
        }
    }
}

/// Finds an order, persisting it first from Redis when only Redis knows it yet (a V2 order the
/// stream consumer has not persisted): a 201'd order is readable by the very next request.
async fn find_order(state: &AppState, order_id: Uuid) -> Result<Option<Order>, ApiError> {
    if let Some(order) = orders::find(&state.db, order_id).await? {
        return Ok(Some(order));
    }
    if settle::persist_from_redis(&state.db, state.order_admission.stock(), order_id).await? {
        return Ok(orders::find(&state.db, order_id).await?);
    }
    Ok(None)
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
    let order = find_order(&state, order_id)
        .await?
        .filter(|o| o.user_id == caller.user_id || caller.has(Role::CsAgent))
        .ok_or_else(|| ApiError::new(ErrorCode::OrderNotFound))?;
    Ok(Json(order.into()))
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
    let page = q.page.unwrap_or(1);
    if page < 1 {
        return Err(ApiError::validation("page", "must be 1 or more"));
    }
    let size = q.size.unwrap_or(20);
    if size < 1 {
        return Err(ApiError::validation("size", "must be 1 or more"));
    }
    let size = size.min(100);
    // Orders admitted moments ago may not be persisted yet: the user's latest are, first.
    settle::persist_recent(&state.db, state.order_admission.stock(), scope.user_id).await?;
    let (items, total) = orders::list_for_user(&state.db, scope.user_id, q.status, page, size).await?;
    Ok(Json(OrderPage { items: items.into_iter().map(OrderView::from).collect(), page, size, total }))
}
