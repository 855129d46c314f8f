//! Guest carts (`/guest-carts/{cart_token}`): the user cart's routes for a caller without an
//! account, and the merge into a user's cart at sign-in (`/users/{user_id}/cart/merge`).
//! Same bodies, stock checks and codes as [`super::cart`]; an unknown, expired or merged token is
//! 404 `CART_NOT_FOUND`.

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::{MaybeCaller, UserScope},
    cart::{AddToCart, CartItem, CartView, UpdateCartItem, item, quantity},
    catalog::market_hint,
    error::{ApiError, ErrorBody},
    extract::{self, AcceptLanguage, Path, Query},
};
use crate::services::{
    AppState, catalog,
    guest_carts::{self, CartToken},
};

/// The guest cart routes and the merge (mounted under `/api`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_guest_cart))
        .routes(routes!(get_guest_cart))
        .routes(routes!(add_to_guest_cart))
        .routes(routes!(update_guest_cart_item, remove_guest_cart_item))
        .routes(routes!(merge_guest_cart))
}

/// `/guest-carts/{cart_token}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CartPath {
    /// The guest cart's token.
    #[param(min_length = 64, max_length = 64, pattern = "^[0-9a-f]{64}$")]
    pub cart_token: String,
}

/// `/guest-carts/{cart_token}/items/{item_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CartItemPath {
    /// The guest cart's token.
    #[param(min_length = 64, max_length = 64, pattern = "^[0-9a-f]{64}$")]
    pub cart_token: String,
    /// Cart item id (read as text and parsed here, so that an error names `item_id`, not the
    /// token beside it).
    #[param(value_type = i64)]
    pub item_id: String,
}

fn token(raw: &str) -> Result<CartToken, ApiError> {
    CartToken::parse(raw)
        .ok_or_else(|| ApiError::validation("cart_token", "must be a cart token (64 lower-case hex digits)"))
}

impl CartItemPath {
    /// The token and the item id, or 400 naming the one at fault.
    fn parse(&self) -> Result<(CartToken, i64), ApiError> {
        Ok((token(&self.cart_token)?, extract::integer(&self.item_id, "item_id")?))
    }
}

/// Where a new guest cart sells.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NewGuestCartQuery {
    /// `KR` or `US`: the currency of its prices; defaults to the market `Accept-Language` implies, else KR.
    pub market: Option<String>,
}

/// A new guest cart.
#[derive(Debug, Serialize, ToSchema)]
pub struct GuestCartCreated {
    /// The cart's bearer token: opaque, unguessable (256 random bits), valid 30 days. Whoever
    /// holds it can use the cart; it is shown only here.
    pub cart_token: String,
}

/// Creates an empty guest cart (no token needed).
#[utoipa::path(
    post, path = "/guest-carts", tag = "cart", params(NewGuestCartQuery),
    responses((status = 201, body = GuestCartCreated), (status = 400, description = "VALIDATION_ERROR naming `market`", body = ErrorBody)),
)]
async fn create_guest_cart(
    State(state): State<AppState>,
    accept: AcceptLanguage,
    Query(q): Query<NewGuestCartQuery>,
) -> Result<(StatusCode, Json<GuestCartCreated>), ApiError> {
    // A guest cart has no owner: the caller's token, if any, does not choose its market.
    let market = catalog::market(&state, market_hint(q.market.as_deref(), &MaybeCaller(None), accept)?).await?;
    let token = guest_carts::create(&state, market).await?;
    Ok((StatusCode::CREATED, Json(GuestCartCreated { cart_token: token.as_str().to_owned() })))
}

/// The guest cart with its total (no coupon preview: guests hold no coupons).
#[utoipa::path(
    get, path = "/guest-carts/{cart_token}", tag = "cart",
    params(CartPath),
    responses(
        (status = 200, body = CartView),
        (status = 404, description = "CART_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn get_guest_cart(
    State(state): State<AppState>,
    accept: AcceptLanguage,
    Path(path): Path<CartPath>,
) -> Result<Json<CartView>, ApiError> {
    let cart = guest_carts::view(&state, &token(&path.cart_token)?).await?;
    Ok(Json(CartView::of(&cart, accept.lang())))
}

/// Adds an option to the guest cart (accumulating onto an existing line).
#[utoipa::path(
    post, path = "/guest-carts/{cart_token}/items", tag = "cart", request_body = AddToCart,
    params(CartPath),
    responses(
        (status = 201, body = CartItem),
        (status = 400, description = "INSUFFICIENT_STOCK, MARKET_MISMATCH or VALIDATION_ERROR", body = ErrorBody),
        (status = 404, description = "CART_NOT_FOUND or PRODUCT_OPTION_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn add_to_guest_cart(
    State(state): State<AppState>,
    accept: AcceptLanguage,
    Path(path): Path<CartPath>,
    extract::Json(body): extract::Json<AddToCart>,
) -> Result<(StatusCode, Json<CartItem>), ApiError> {
    let cart_token = token(&path.cart_token)?;
    let qty = quantity(body.quantity, "quantity")?;
    let (line, currency) = guest_carts::add(&state, &cart_token, body.product_option_id, qty).await?;
    Ok((StatusCode::CREATED, Json(item(&line, currency, accept.lang()))))
}

/// Sets a guest cart line's quantity (re-checking stock).
#[utoipa::path(
    patch, path = "/guest-carts/{cart_token}/items/{item_id}", tag = "cart", request_body = UpdateCartItem,
    params(CartItemPath),
    responses(
        (status = 200, body = CartItem),
        (status = 400, description = "INSUFFICIENT_STOCK or VALIDATION_ERROR", body = ErrorBody),
        (status = 404, description = "CART_NOT_FOUND or CART_ITEM_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn update_guest_cart_item(
    State(state): State<AppState>,
    accept: AcceptLanguage,
    Path(path): Path<CartItemPath>,
    extract::Json(body): extract::Json<UpdateCartItem>,
) -> Result<Json<CartItem>, ApiError> {
    let (cart_token, item_id) = path.parse()?;
    let qty = quantity(body.quantity, "quantity")?;
    let (line, currency) = guest_carts::set_quantity(&state, &cart_token, item_id, qty).await?;
    Ok(Json(item(&line, currency, accept.lang())))
}

/// Removes a guest cart line.
#[utoipa::path(
    delete, path = "/guest-carts/{cart_token}/items/{item_id}", tag = "cart",
    params(CartItemPath),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "CART_NOT_FOUND or CART_ITEM_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn remove_guest_cart_item(
    State(state): State<AppState>,
    Path(path): Path<CartItemPath>,
) -> Result<StatusCode, ApiError> {
    let (cart_token, item_id) = path.parse()?;
    guest_carts::remove(&state, &cart_token, item_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which guest cart to merge.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeGuestCart {
    /// The guest cart's token.
    #[schema(min_length = 64, max_length = 64, pattern = "^[0-9a-f]{64}$")]
    pub cart_token: String,
}

/// An option whose merged quantity was capped.
#[derive(Debug, Serialize, ToSchema)]
pub struct CappedLine {
    /// The option.
    pub product_option_id: i64,
    /// The user's quantity plus the guest cart's.
    pub requested: i64,
    /// Sellable now (0 when the option is not sold in the user's market).
    pub available: i64,
    /// What the user's cart holds now.
    pub quantity: i64,
}

/// The user's cart after a merge, and what did not fully fit.
#[derive(Debug, Serialize, ToSchema)]
pub struct MergeResult {
    /// The user's cart after the merge.
    pub cart: CartView,
    /// Options whose combined quantity was more than is available (empty when all fit).
    pub capped: Vec<CappedLine>,
}

/// Merges a guest cart into the user's cart: quantities of the same option add up, each capped at
/// what is available; then the guest cart is gone (merging it again is 404). Of concurrent
/// merges of one token exactly one merges.
#[utoipa::path(
    post, path = "/users/{user_id}/cart/merge", tag = "cart", request_body = MergeGuestCart,
    params(("user_id" = i64, Path, description = "User id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = MergeResult),
        (status = 400, description = "VALIDATION_ERROR naming `cart_token`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "CART_NOT_FOUND or USER_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn merge_guest_cart(
    State(state): State<AppState>,
    scope: UserScope,
    accept: AcceptLanguage,
    extract::Json(body): extract::Json<MergeGuestCart>,
) -> Result<Json<MergeResult>, ApiError> {
    let cart_token = token(&body.cart_token)?;
    let merged = guest_carts::merge(&state, scope.user_id, &cart_token).await?;
    let capped = merged
        .capped
        .iter()
        .map(|l| CappedLine {
            product_option_id: l.option_id,
            requested: l.requested,
            available: l.available,
            quantity: l.quantity,
        })
        .collect();
    Ok(Json(MergeResult { cart: CartView::of(&merged.cart, accept.lang()), capped }))
}
