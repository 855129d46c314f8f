//! Routes of the catalog domain: the public product listing and product detail.
//!
//! Two independent choices shape every answer: the *market* (which currency prices the products,
//! and so which products are sold at all) and the *language* of product text. The market is
//! `?market=`, else the caller's market, else the one implied by `Accept-Language`, else KR; the
//! language is `Accept-Language` alone (Korean by default), so a Korean shopper can browse the
//! US catalogue in Korean.

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::AcceptLanguage;
use super::{
    auth::MaybeCaller,
    error::{ApiError, ErrorBody, ErrorCode},
    extract::{Path, Query},
};
use crate::{
    domain::{
        Lang, Market, Money, StockStatus,
        catalog::{FieldError, PageRequest, ProductSort, contains_pattern},
    },
    state::AppState,
    store::pg::{catalog, users},
};

/// The catalog routes (mounted under `/api`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_products)).routes(routes!(get_product))
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::validation(e.field, e.reason)
    }
}

/// The market a catalog read is priced in: the explicit `market` parameter, else the caller's
/// market, else the one implied by `Accept-Language`, else KR.
pub(crate) async fn resolve_market(
    state: &AppState,
    explicit: Option<&str>,
    caller: &MaybeCaller,
    accept: AcceptLanguage,
) -> Result<Market, ApiError> {
    if let Some(code) = explicit.filter(|s| !s.is_empty()) {
        return Market::parse(code).ok_or_else(|| ApiError::validation("market", "must be KR or US"));
    }
    if let Some(caller) = &caller.0 {
        // Staff tokens may name no profile; they fall through to the language.
        if let Some(user) = users::find(&state.db, caller.user_id).await? {
            return Ok(user.market());
        }
    }
    Ok(accept.0.map_or(Market::Kr, Market::for_lang))
}

/// Query parameters of the product listing. Values are read as text and validated by hand so
/// each error names its parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Exact category slug (`electronics`, `fashion`, `food`, `home`, `beauty`, `sports`...).
    category: Option<String>,
    /// `price_asc`, `price_desc`, `popular` (units sold in paid orders of the market over the
    /// last 3 days) or `newest` (default).
    sort: Option<String>,
    /// Case-insensitive search in the Korean and English names.
    q: Option<String>,
    /// `KR` or `US`; defaults to the caller's market, then `Accept-Language`, then KR.
    market: Option<String>,
    /// Page number from 1 (default 1).
    page: Option<String>,
    /// Items per page, 1..=100 (default 20).
    size: Option<String>,
}

/// A product in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductSummary {
    /// Product id.
    pub id: i64,
    /// Name in the `Accept-Language` language.
    pub name: String,
    /// Category slug.
    pub category: String,
    /// Lowest option price in the market's currency.
    pub price: Money,
    /// `IN_STOCK` (10+ available), `LOW_STOCK` (1-9) or `SOLD_OUT` (0), over all options.
    pub stock_status: StockStatus,
    /// False when sold out.
    pub purchasable: bool,
}

/// A page of products.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductPage {
    /// The products of this page.
    pub items: Vec<ProductSummary>,
    /// This page's number, from 1.
    pub page: i64,
    /// Items per page.
    pub size: i64,
    /// How many products match in all.
    pub total: i64,
}

/// One option (SKU) of a product.
#[derive(Debug, Serialize, ToSchema)]
pub struct OptionView {
    /// Option id (what carts and orders name).
    pub id: i64,
    /// Option name.
    pub name: String,
    /// Price in the market's currency.
    pub price: Money,
    /// Live sellable quantity: stock minus reservations.
    pub available: i64,
    /// The option's own stock status.
    pub stock_status: StockStatus,
}

/// A product in full.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductDetail {
    /// Product id.
    pub id: i64,
    /// Name in the `Accept-Language` language.
    pub name: String,
    /// Description in the `Accept-Language` language.
    pub description: String,
    /// Category slug.
    pub category: String,
    /// Picture URL.
    pub image_url: Option<String>,
    /// Lowest option price in the market's currency.
    pub price: Money,
    /// Stock status over all options sold in the market.
    pub stock_status: StockStatus,
    /// False when sold out.
    pub purchasable: bool,
    /// The options sold in the market, by id.
    pub options: Vec<OptionView>,
}

/// Lists the products on sale in a market.
#[utoipa::path(
    get, path = "/products", tag = "catalog", params(ListQuery),
    responses((status = 200, body = ProductPage), (status = 400, body = ErrorBody)),
)]
async fn list_products(
    State(state): State<AppState>,
    caller: MaybeCaller,
    accept: AcceptLanguage,
    Query(query): Query<ListQuery>,
) -> Result<Json<ProductPage>, ApiError> {
    let page = PageRequest::parse(query.page.as_deref(), query.size.as_deref())?;
    let sort = match query.sort.as_deref().filter(|s| !s.is_empty()) {
        None => ProductSort::default(),
        Some(s) => ProductSort::parse(s)
            .ok_or_else(|| ApiError::validation("sort", "must be price_asc, price_desc, popular or newest"))?,
    };
    let market = resolve_market(&state, query.market.as_deref(), &caller, accept).await?;
    let lang = accept.lang();
    let filter = catalog::ListFilter {
        market,
        category: query.category.filter(|c| !c.is_empty()),
        name_pattern: query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(contains_pattern),
        sort,
    };
    let mut conn = state.db.acquire().await?;
    let (rows, total) = catalog::list(&mut conn, &filter, page).await?;
    let currency = market.currency();
    let items = rows
        .into_iter()
        .map(|r| {
            let status = StockStatus::from_available(r.available);
            ProductSummary {
                id: r.id,
                name: if lang == Lang::En { r.name_en } else { r.name_ko },
                category: r.category,
                price: Money::new(r.price, currency),
                stock_status: status,
                purchasable: status.purchasable(),
            }
        })
        .collect();
    Ok(Json(ProductPage { items, page: page.page, size: page.size, total }))
}

/// Query parameters of the product detail.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DetailQuery {
    /// `KR` or `US`; defaults to the caller's market, then `Accept-Language`, then KR.
    market: Option<String>,
}

/// A product with its options, stock and prices in a market.
#[utoipa::path(
    get, path = "/products/{product_id}", tag = "catalog",
    params(("product_id" = i64, Path, description = "Product id"), DetailQuery),
    responses((status = 200, body = ProductDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
async fn get_product(
    State(state): State<AppState>,
    caller: MaybeCaller,
    accept: AcceptLanguage,
    Path(product_id): Path<i64>,
    Query(query): Query<DetailQuery>,
) -> Result<Json<ProductDetail>, ApiError> {
    let market = resolve_market(&state, query.market.as_deref(), &caller, accept).await?;
    let not_found =
        || ApiError::new(ErrorCode::ProductNotFound).with_details(serde_json::json!({"product_id": product_id}));
    let product = catalog::find_on_sale(&state.db, product_id).await?.ok_or_else(not_found)?;
    let currency = market.currency();
    let options = catalog::priced_options(&state.db, product_id, currency).await?;
    // Without a price in the market's currency the product is not sold there.
    let price = options.iter().map(|o| o.price).min().ok_or_else(not_found)?;
    let status = StockStatus::from_available(options.iter().map(|o| o.available).sum());
    let lang = accept.lang();
    Ok(Json(ProductDetail {
        id: product.id,
        name: if lang == Lang::En { product.name_en } else { product.name_ko },
        description: if lang == Lang::En { product.description_en } else { product.description_ko },
        category: product.category,
        image_url: product.image_url,
        price: Money::new(price, currency),
        stock_status: status,
        purchasable: status.purchasable(),
        options: options
            .into_iter()
            .map(|o| OptionView {
                id: o.id,
                name: o.name,
                price: Money::new(o.price, currency),
                available: o.available,
                stock_status: StockStatus::from_available(o.available),
            })
            .collect(),
    }))
}
