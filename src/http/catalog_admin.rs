//! Product administration: `POST /admin/products` (`inventory_manager`; `ops_admin` passes).

use std::collections::BTreeMap;

use axum::{Json, extract::State, http::StatusCode, middleware};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::AcceptLanguage;
use super::{
    auth::{Caller, Role, require_roles},
    error::{ApiError, ErrorBody},
    extract,
};
use crate::{
    domain::{
        Market, Money, StockStatus,
        catalog::{Localized, NewOption, NewProduct, RawOption, RawProduct},
    },
    services::{AppState, admin::products, catalog::MarketHint},
};

/// The product administration routes (mounted under `/api`), behind their role gate.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_product))
        .route_layer(middleware::from_fn_with_state(&[Role::InventoryManager][..], require_roles))
}

/// A product name in Korean and English, each 1-300 characters, not only whitespace (trimmed).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalizedName {
    /// Korean.
    #[schema(min_length = 1, max_length = 300)]
    pub ko: String,
    /// English.
    #[schema(min_length = 1, max_length = 300)]
    pub en: String,
}

/// A description in Korean and English, each at most 10,000 characters (may be empty).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalizedText {
    /// Korean.
    #[schema(max_length = 10000)]
    pub ko: String,
    /// English.
    #[schema(max_length = 10000)]
    pub en: String,
}

/// One option (SKU) of a new product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOption {
    /// Option name (size, colour...), 1-200 characters, not only whitespace (trimmed), unique
    /// within the product.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Price in minor units per currency: keys `KRW` and/or `USD`, at least one, amounts 0 to
    /// 40,000,000 (`MAX_PRICE`).
    #[schema(schema_with = prices_schema, example = json!({"KRW": 50000, "USD": 3999}))]
    pub prices: BTreeMap<String, i64>,
    /// Initial physical stock, >= 0.
    #[schema(minimum = 0, maximum = 2147483647)]
    pub stock: i64,
}

/// A new product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    /// Name in both languages (each 1-300 characters).
    pub name: LocalizedName,
    /// Description in both languages (may be empty; omitted = empty).
    #[serde(default)]
    pub description: LocalizedText,
    /// Lowercase category slug (`electronics`): a-z, 0-9 and inner `-`, 1-100 characters.
    #[schema(min_length = 1, max_length = 100, pattern = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")]
    pub category: String,
    /// Picture, an http(s) URL of at most 2000 characters; empty or absent for none.
    #[serde(default)]
    #[schema(max_length = 2000, pattern = "^(https?://[^\\x00]*)?$")]
    pub image_url: Option<String>,
    /// Whether customers see it (default true).
    #[serde(default = "on_sale_by_default")]
    pub on_sale: bool,
    /// At least one option, at most 100.
    #[schema(min_items = 1, max_items = 100)]
    pub options: Vec<CreateOption>,
}

/// `{"KRW": n, "USD": n}`: one or both, amounts from 0.
pub fn prices_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::{ObjectBuilder, Type, schema::AdditionalProperties};
    let amount = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
        .minimum(Some(0))
        .maximum(Some(crate::domain::catalog::MAX_PRICE));
    let names = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["KRW", "USD"]));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::RefOr(amount.into())))
        .property_names(Some(names))
        .min_properties(Some(1))
        .build()
}

fn on_sale_by_default() -> bool {
    true
}

/// An option of the created product.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedOption {
    /// Option id.
    pub id: i64,
    /// Option name.
    pub name: String,
    /// Price in the response's `market` currency; null when the option is not sold there.
    pub price: Option<Money>,
    /// Every price of the option, minor units per currency.
    pub prices: BTreeMap<String, i64>,
    /// Physical stock.
    pub stock: i64,
    /// Sellable quantity (the stock: nothing is reserved yet).
    pub available: i64,
    /// Stock status of the option.
    pub stock_status: StockStatus,
}

/// The created product, shaped like the detail route, plus what only staff see.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedProduct {
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
    /// Whether customers see it.
    pub on_sale: bool,
    /// The market `price` is given in: the caller's (as for catalog reads), or the other one
    /// when the product has no price there.
    pub market: Market,
    /// Lowest option price in `market`'s currency.
    pub price: Money,
    /// Stock status over the options sold in `market`.
    pub stock_status: StockStatus,
    /// False when sold out.
    pub purchasable: bool,
    /// Every option, in the order given.
    pub options: Vec<CreatedOption>,
}

/// Creates a product with its options and prices in one transaction (`inventory_manager`).
#[utoipa::path(
    post, path = "/admin/products", tag = "admin", request_body = CreateProduct, security(("bearer" = [])),
    responses(
        (status = 201, body = CreatedProduct),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
)]
async fn create_product(
    State(state): State<AppState>,
    caller: Caller,
    accept: AcceptLanguage,
    extract::Json(body): extract::Json<CreateProduct>,
) -> Result<(StatusCode, Json<CreatedProduct>), ApiError> {
    let product = NewProduct::validate(RawProduct {
        name: Localized { ko: body.name.ko, en: body.name.en },
        description: Localized { ko: body.description.ko, en: body.description.en },
        category: body.category,
        image_url: body.image_url,
        on_sale: body.on_sale,
        options: body
            .options
            .into_iter()
            .map(|o| RawOption { name: o.name, prices: o.prices, stock: o.stock })
            .collect(),
    })?;
    let hint = MarketHint { explicit: None, caller: Some(caller.user_id), lang: accept.0 };
    let (inserted, preferred) = products::create(&state, &caller, hint, &product).await?;

    let priced_in = |m: Market| product.options.iter().any(|o| o.prices.iter().any(|(c, _)| *c == m.currency()));
    let other = if preferred == Market::Kr { Market::Us } else { Market::Kr };
    let market = if priced_in(preferred) { preferred } else { other };
    let currency = market.currency();
    let price_of =
        |o: &NewOption| o.prices.iter().find(|(c, _)| *c == currency).map(|(_, amount)| Money::new(*amount, currency));
    let options: Vec<CreatedOption> = product
        .options
        .iter()
        .zip(&inserted.option_ids)
        .map(|(o, id)| CreatedOption {
            id: *id,
            name: o.name.clone(),
            price: price_of(o),
            prices: o.prices.iter().map(|(c, a)| (c.code().to_owned(), *a)).collect(),
            stock: o.stock.into(),
            available: o.stock.into(),
            stock_status: StockStatus::from_available(o.stock.into()),
        })
        .collect();
    let sold_here = options.iter().filter(|o| o.price.is_some());
    let price = sold_here.clone().filter_map(|o| o.price).min_by_key(|m| m.amount).unwrap_or(Money::zero(currency));
    let status = StockStatus::from_available(sold_here.map(|o| o.available).sum());
    let lang = accept.lang();
    Ok((
        StatusCode::CREATED,
        Json(CreatedProduct {
            id: inserted.id,
            name: product.name.get(lang).to_owned(),
            description: product.description.get(lang).to_owned(),
            category: product.category,
            image_url: product.image_url,
            on_sale: product.on_sale,
            market,
            price,
            stock_status: status,
            purchasable: status.purchasable(),
            options,
        }),
    ))
}
