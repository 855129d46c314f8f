//! The cart (`/users/{user_id}/cart`): add, view with a coupon preview, change, remove.

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::extract::AcceptLanguage;
use super::{
    auth::UserScope,
    error::{ApiError, ErrorBody},
    extract::{self, Path, Query},
};
use crate::{
    domain::{Currency, Lang, Money, StockStatus, fx::PriceSource},
    services::{
        AppState,
        cart::{self, CartLine},
    },
};

/// The cart routes (mounted under `/api`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_cart, add_to_cart)).routes(routes!(update_cart_item, remove_cart_item))
}

/// Adds an option to the cart.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddToCart {
    /// The option (SKU) to add.
    pub product_option_id: i64,
    /// Units to add (> 0); added onto what the cart already holds.
    #[schema(minimum = 1, maximum = 2147483647)]
    pub quantity: i64,
}

/// Sets a cart line's quantity.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCartItem {
    /// The new quantity (> 0).
    #[schema(minimum = 1, maximum = 2147483647)]
    pub quantity: i64,
}

/// Options of the cart view.
#[derive(Debug, Deserialize, IntoParams)]
pub struct CartQuery {
    /// A held coupon whose discount to preview (0 when it does not apply).
    pub user_coupon_id: Option<Uuid>,
}

/// One cart line.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartItem {
    /// Cart item id (for PATCH/DELETE).
    pub id: i64,
    /// Product id.
    pub product_id: i64,
    /// Option id.
    pub product_option_id: i64,
    /// Product name in the request's language.
    pub name: String,
    /// Option name.
    pub option_name: String,
    /// Current price per unit.
    pub unit_price: Money,
    /// Where it came from: `list`, or `fx` (converted at the rate in force; an order captures it).
    pub price_source: PriceSource,
    /// Units.
    pub quantity: i64,
    /// unit_price x quantity.
    pub subtotal: Money,
    /// Live availability of the option.
    pub stock_status: StockStatus,
}

/// The whole cart.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartView {
    /// The lines, oldest first.
    pub items: Vec<CartItem>,
    /// Sum of the subtotals.
    pub total: Money,
    /// Preview of the given coupon's discount; 0 when none or not applicable.
    pub discount: Money,
    /// total - discount.
    pub final_total: Money,
}

/// A quantity in `1..=i32::MAX`, or 400 naming `field`.
pub(crate) fn quantity(value: i64, field: &str) -> Result<i64, ApiError> {
    if value < 1 || value > i64::from(i32::MAX) {
        return Err(ApiError::validation(field, "must be a positive whole number"));
    }
    Ok(value)
}

/// A cart line as clients see it, in `lang`.
pub(crate) fn item(line: &CartLine, currency: Currency, lang: Lang) -> CartItem {
    CartItem {
        id: line.id,
        product_id: line.product_id,
        product_option_id: line.option_id,
        name: if lang == Lang::En { line.name_en.clone() } else { line.name_ko.clone() },
        option_name: line.option_name.clone(),
        unit_price: Money::new(line.unit_price, currency),
        price_source: line.price_source,
        quantity: line.quantity.into(),
        subtotal: Money::new(line.subtotal(), currency),
        stock_status: StockStatus::from_available(line.available),
    }
}

/// The cart with totals and an optional coupon preview.
#[utoipa::path(
    get, path = "/users/{user_id}/cart", tag = "cart",
    params(("user_id" = i64, Path, description = "User id"), CartQuery),
    security(("bearer" = [])),
    responses((status = 200, body = CartView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
)]
async fn get_cart(
    State(state): State<AppState>,
    scope: UserScope,
    accept: AcceptLanguage,
    Query(q): Query<CartQuery>,
) -> Result<Json<CartView>, ApiError> {
    let cart = cart::view(&state, scope.user_id, q.user_coupon_id).await?;
    Ok(Json(CartView::of(&cart, accept.lang())))
}

impl CartView {
    /// A cart as clients see it, in `lang`.
    pub(crate) fn of(cart: &cart::Cart, lang: Lang) -> CartView {
        let (currency, total, discount) = (cart.currency, cart.total, cart.discount);
        CartView {
            items: cart.lines.iter().map(|l| item(l, currency, lang)).collect(),
            total: Money::new(total, currency),
            discount: Money::new(discount, currency),
            final_total: Money::new(total - discount, currency),
        }
    }
}

/// Adds an option to the cart (accumulating onto an existing line).
#[utoipa::path(
    post, path = "/users/{user_id}/cart", tag = "cart", request_body = AddToCart,
    params(("user_id" = i64, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 201, body = CartItem),
        (status = 400, description = "INSUFFICIENT_STOCK, MARKET_MISMATCH or VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "PRODUCT_OPTION_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn add_to_cart(
    State(state): State<AppState>,
    scope: UserScope,
    accept: AcceptLanguage,
    extract::Json(body): extract::Json<AddToCart>,
) -> Result<(StatusCode, Json<CartItem>), ApiError> {
    let qty = quantity(body.quantity, "quantity")?;
    let (line, currency) = cart::add(&state, scope.user_id, body.product_option_id, qty).await?;
    Ok((StatusCode::CREATED, Json(item(&line, currency, accept.lang()))))
}

/// Sets a cart line's quantity (re-checking stock).
#[utoipa::path(
    patch, path = "/users/{user_id}/cart/{cart_item_id}", tag = "cart", request_body = UpdateCartItem,
    params(("user_id" = i64, Path, description = "User id"), ("cart_item_id" = i64, Path, description = "Cart item id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = CartItem),
        (status = 400, description = "INSUFFICIENT_STOCK or VALIDATION_ERROR", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "CART_ITEM_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn update_cart_item(
    State(state): State<AppState>,
    scope: UserScope,
    accept: AcceptLanguage,
    Path((_user_id, item_id)): Path<(i64, i64)>,
    extract::Json(body): extract::Json<UpdateCartItem>,
) -> Result<Json<CartItem>, ApiError> {
    let qty = quantity(body.quantity, "quantity")?;
    let (line, currency) = cart::set_quantity(&state, scope.user_id, item_id, qty).await?;
    Ok(Json(item(&line, currency, accept.lang())))
}

/// Removes a cart line.
#[utoipa::path(
    delete, path = "/users/{user_id}/cart/{cart_item_id}", tag = "cart",
    params(("user_id" = i64, Path, description = "User id"), ("cart_item_id" = i64, Path, description = "Cart item id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "CART_ITEM_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn remove_cart_item(
    State(state): State<AppState>,
    scope: UserScope,
    Path((_user_id, item_id)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    cart::remove(&state, scope.user_id, item_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
