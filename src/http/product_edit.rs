//! Product editing: `PATCH /admin/products/{product_id}` (`inventory_manager`; `ops_admin`
//! passes). The rules are `domain::catalog_edit`'s; every instance serves the edit within a
//! second (`services::admin::products::update`).

use std::collections::BTreeMap;

use axum::{Json, extract::State, middleware};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::{Caller, Role, require_roles},
    catalog_admin::prices_schema,
    error::{ApiError, ErrorBody},
    extract,
};
use crate::{
    domain::{
        catalog_edit::{OptionPatch, ProductPatch, ProductState},
        text,
    },
    services::{AppState, admin::products},
};

/// The product edit route (mounted under `/api`), behind its role gate.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(update_product))
        .route_layer(middleware::from_fn_with_state(&[Role::InventoryManager][..], require_roles))
}

/// New names: a language given (1-300 characters, trimmed) changes, the other stays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamePatch {
    /// Korean.
    #[schema(min_length = 1, max_length = 300)]
    pub ko: Option<String>,
    /// English.
    #[schema(min_length = 1, max_length = 300)]
    pub en: Option<String>,
}

/// New descriptions: a language given (at most 10,000 characters, may be empty) changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DescriptionPatch {
    /// Korean.
    #[schema(max_length = 10000)]
    pub ko: Option<String>,
    /// English.
    #[schema(max_length = 10000)]
    pub en: Option<String>,
}

/// An edit of one option of the product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionEdit {
    /// The option (must be of this product).
    #[schema(minimum = 1)]
    pub id: i64,
    /// New name, 1-200 characters (trimmed), unique within the product.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Prices to set per currency (`KRW`, `USD`, minor units 0 to 40,000,000); currencies not given keep
    /// theirs. Orders already PENDING keep the price they captured.
    #[schema(schema_with = optional_prices_schema)]
    pub prices: Option<BTreeMap<String, i64>>,
}

/// [`prices_schema`], or `null` (no price changes).
fn optional_prices_schema() -> utoipa::openapi::Object {
    let mut prices = prices_schema();
    prices.schema_type =
        utoipa::openapi::schema::SchemaType::from_iter([utoipa::openapi::Type::Object, utoipa::openapi::Type::Null]);
    prices
}

/// An edit: only the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProduct {
    /// New names.
    pub name: Option<NamePatch>,
    /// New descriptions.
    pub description: Option<DescriptionPatch>,
    /// New category slug (a-z, 0-9 and inner `-`, 1-100 characters).
    #[schema(min_length = 1, max_length = 100, pattern = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")]
    pub category: Option<String>,
    /// New picture, an http(s) URL of at most 2000 characters; `null` or empty removes it.
    #[serde(default, deserialize_with = "super::coupon_admin::present")]
    #[schema(value_type = Option<String>, max_length = 2000, pattern = "^(https?://[^\\x00]*)?$")]
    pub image_url: Option<Option<String>>,
    /// Whether customers see it; `false` also stops new orders at once.
    pub on_sale: Option<bool>,
    /// Option edits, at most 100.
    #[schema(max_items = 100)]
    pub options: Option<Vec<OptionEdit>>,
    /// Why, 1-500 characters (kept in the audit log).
    #[schema(min_length = 1, max_length = 500)]
    pub reason: Option<String>,
}

/// Edits a product (`inventory_manager`); answers its editable state as it now is. Every
/// instance serves the edit (catalog, cart, order pricing) within a second.
#[utoipa::path(
    patch, path = "/admin/products/{product_id}", tag = "admin", request_body = UpdateProduct,
    params(("product_id" = i64, Path, description = "Product id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ProductState),
        (status = 400, description = "VALIDATION_ERROR naming the field (nothing changed)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "PRODUCT_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn update_product(
    State(state): State<AppState>,
    caller: Caller,
    extract::Path(product_id): extract::Path<i64>,
    extract::Json(body): extract::Json<UpdateProduct>,
) -> Result<Json<ProductState>, ApiError> {
    let reason = body.reason.as_deref().map(|r| text::required("reason", r, 500)).transpose()?;
    let patch = ProductPatch {
        name: body.name.map(|n| (n.ko, n.en)),
        description: body.description.map(|d| (d.ko, d.en)),
        category: body.category,
        image_url: body.image_url,
        on_sale: body.on_sale,
        options: body
            .options
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, o)| match o.prices {
                // As declared (`minProperties`): prices given name at least one currency.
                Some(prices) if prices.is_empty() => {
                    Err(ApiError::validation(format!("options[{i}].prices"), "must have a price in KRW or USD"))
                }
                prices => Ok(OptionPatch { id: o.id, name: o.name, prices: prices.unwrap_or_default() }),
            })
            .collect::<Result<_, _>>()?,
    };
    let edited = products::update(&state, &caller, product_id, &patch, reason.as_deref()).await?;
    Ok(Json(edited))
}
