//! Routes of the catalog domain: the public product listing and product detail.
//!
//! Two independent choices shape every answer: the *market* (which currency prices the products,
//! and so which products are sold at all) and the *language* of product text. The market is
//! `?market=`, else the caller's market, else the one implied by `Accept-Language`, else KR; the
//! language is `Accept-Language` alone (Korean by default), so a Korean shopper can browse the
//! US catalogue in Korean.

use axum::{extract::State, response::Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::AcceptLanguage;
use super::{
    auth::MaybeCaller,
    caching::{self, Audience, IfNoneMatch, NotModified},
    error::{ApiError, ErrorBody},
    extract::{Path, Query},
};
use crate::{
    domain::{
        Lang, Market, Money, PageRequest, StockStatus,
        catalog::{ProductSort, contains_pattern},
        fx::PriceSource,
    },
    services::{
        AppState,
        catalog::{self, ListPage, Listing, MarketHint, ProductView},
        catalog_cache::CachedProduct,
    },
};

/// The catalog routes (mounted under `/api`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_products)).routes(routes!(get_product))
}

/// What decides the market of a catalog read: the explicit `market` parameter (400 naming it
/// when it is neither KR nor US; empty counts as absent), the caller, and `Accept-Language`.
pub(crate) fn market_hint(
    explicit: Option<&str>,
    caller: &MaybeCaller,
    accept: AcceptLanguage,
) -> Result<MarketHint, ApiError> {
    let explicit = match explicit.filter(|s| !s.is_empty()) {
        Some(code) => Some(Market::parse(code).ok_or_else(|| ApiError::validation("market", "must be KR or US"))?),
        None => None,
    };
    Ok(MarketHint { explicit, caller: caller.0.as_ref().map(|c| c.user_id), lang: accept.0 })
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
    #[param(pattern = "^(price_asc|price_desc|popular|newest)?$")]
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
pub struct ProductSummary<'a> {
    /// Product id.
    pub id: i64,
    /// Name in the `Accept-Language` language.
    pub name: &'a str,
    /// Category slug.
    pub category: &'a str,
    /// Lowest option price in the market's currency.
    pub price: Money,
    /// Where the price came from: `list` (the option's own price in this currency) or `fx`
    /// (converted from its price in the other currency at the rate in force).
    pub price_source: PriceSource,
    /// `IN_STOCK` (10+ available), `LOW_STOCK` (1-9) or `SOLD_OUT` (0), over all options.
    pub stock_status: StockStatus,
    /// False when sold out.
    pub purchasable: bool,
}

/// A page of products.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductPage<'a> {
    /// The products of this page.
    pub items: Vec<ProductSummary<'a>>,
    /// This page's number, from 1.
    pub page: i64,
    /// Items per page.
    pub size: i64,
    /// How many products match in all.
    pub total: i64,
}

/// One option (SKU) of a product.
#[derive(Debug, Serialize, ToSchema)]
pub struct OptionView<'a> {
    /// Option id (what carts and orders name).
    pub id: i64,
    /// Option name.
    pub name: &'a str,
    /// Price in the market's currency.
    pub price: Money,
    /// Where the price came from: `list` (the option's own price in this currency) or `fx`
    /// (converted from its price in the other currency at the rate in force).
    pub price_source: PriceSource,
    /// Live sellable quantity: stock minus reservations.
    pub available: i64,
    /// The option's own stock status.
    pub stock_status: StockStatus,
}

/// A product in full.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductDetail<'a> {
    /// Product id.
    pub id: i64,
    /// Name in the `Accept-Language` language.
    pub name: &'a str,
    /// Description in the `Accept-Language` language.
    pub description: &'a str,
    /// Category slug.
    pub category: &'a str,
    /// Picture URL.
    pub image_url: Option<&'a str>,
    /// Lowest option price in the market's currency.
    pub price: Money,
    /// Where the price came from: `list` (the option's own price in this currency) or `fx`
    /// (converted from its price in the other currency at the rate in force).
    pub price_source: PriceSource,
    /// Stock status over all options sold in the market.
    pub stock_status: StockStatus,
    /// False when sold out.
    pub purchasable: bool,
    /// The options sold in the market, by id.
    pub options: Vec<OptionView<'a>>,
}

/// Lists the products on sale in a market.
#[utoipa::path(
    get, path = "/products", tag = "catalog",
    params(ListQuery, ("If-None-Match" = Option<String>, Header, max_length = 1024, pattern = "^[\\x20-\\x7e]*$", description = "An `ETag` seen before: 304 when still current")),
    responses(
        (status = 200, body = ProductPage, headers(
            ("ETag" = String, description = "Strong tag of the body"),
            ("Cache-Control" = String, description = "`public, max-age=1`; `private, no-cache` when the caller's own market priced it"),
            ("Vary" = String, description = "`Accept-Language`"),
        )),
        NotModified,
        (status = 400, body = ErrorBody),
    ),
)]
async fn list_products(
    State(state): State<AppState>,
    caller: MaybeCaller,
    accept: AcceptLanguage,
    if_none_match: IfNoneMatch,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let page = PageRequest::parse(query.page.as_deref(), query.size.as_deref())?;
    let sort = match query.sort.as_deref().filter(|s| !s.is_empty()) {
        None => ProductSort::default(),
        Some(s) => ProductSort::parse(s)
            .ok_or_else(|| ApiError::validation("sort", "must be price_asc, price_desc, popular or newest"))?,
    };
    let hint = market_hint(query.market.as_deref(), &caller, accept)?;
    let lang = accept.lang();
    let listing = Listing {
        category: query.category.filter(|c| !c.is_empty()),
        name_pattern: query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(contains_pattern),
        sort,
    };
    let answer = catalog::list(&state, hint, listing, page).await?;
    let currency = answer.market.currency();
    let ListPage { key, page: listed, available } = &answer.value;
    // Rendered once per page, language and availability refresh; most reads reuse the bytes.
    let rendered = state
        .catalog
        .rendered_list(key, listed, lang, available, || {
            let items = listed
                .rows
                .iter()
                .zip(available.iter())
                .map(|(r, &available)| {
                    let status = StockStatus::from_available(available);
                    ProductSummary {
                        id: r.id,
                        name: if lang == Lang::En { &r.name_en } else { &r.name_ko },
                        category: &r.category,
                        price: Money::new(r.price, currency),
                        price_source: r.price_source,
                        stock_status: status,
                        purchasable: status.purchasable(),
                    }
                })
                .collect();
            caching::render(&ProductPage { items, page: page.page, size: page.size, total: listed.total })
        })
        .await;
    Ok(caching::cached(&rendered, Audience::of(answer.personal), &if_none_match))
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
    params(
        ("product_id" = i64, Path, description = "Product id"), DetailQuery,
        ("If-None-Match" = Option<String>, Header, max_length = 1024, pattern = "^[\\x20-\\x7e]*$", description = "An `ETag` seen before: 304 when still current"),
    ),
    responses(
        (status = 200, body = ProductDetail, headers(
            ("ETag" = String, description = "Strong tag of the body (availability included)"),
            ("Cache-Control" = String, description = "`public, max-age=1`; `private, no-cache` when the caller's own market priced it"),
            ("Vary" = String, description = "`Accept-Language`"),
        )),
        NotModified,
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
)]
async fn get_product(
    State(state): State<AppState>,
    caller: MaybeCaller,
    accept: AcceptLanguage,
    if_none_match: IfNoneMatch,
    Path(product_id): Path<i64>,
    Query(query): Query<DetailQuery>,
) -> Result<Response, ApiError> {
    let hint = market_hint(query.market.as_deref(), &caller, accept)?;
    let answer = catalog::product(&state, hint, product_id).await?;
    let currency = answer.market.currency();
    let ProductView { product: cached, available } = &answer.value;
    let CachedProduct { product, options, .. } = &**cached;
    // The cheapest option, a list price winning a tie (as in the listing).
    let cheapest = options.iter().min_by_key(|o| (o.price, o.price_source != PriceSource::List));
    let (price, price_source) = cheapest.map_or((0, PriceSource::List), |o| (o.price, o.price_source));
    let lang = accept.lang();
    // Rendered once per market, language and availability; most reads reuse the bytes.
    let rendered = state
        .catalog
        .rendered_detail(cached, lang, available, || {
            let status = StockStatus::from_available(available.iter().sum());
            caching::render(&ProductDetail {
                id: product.id,
                name: if lang == Lang::En { &product.name_en } else { &product.name_ko },
                description: if lang == Lang::En { &product.description_en } else { &product.description_ko },
                category: &product.category,
                image_url: product.image_url.as_deref(),
                price: Money::new(price, currency),
                price_source,
                stock_status: status,
                purchasable: status.purchasable(),
                options: options
                    .iter()
                    .zip(available.iter())
                    .map(|(o, &available)| OptionView {
                        id: o.id,
                        name: &o.name,
                        price: Money::new(o.price, currency),
                        price_source: o.price_source,
                        available,
                        stock_status: StockStatus::from_available(available),
                    })
                    .collect(),
            })
        })
        .await;
    Ok(caching::cached(&rendered, Audience::of(answer.personal), &if_none_match))
}
