//! Product administration: a new product with its options and prices, in one transaction with a
//! `stock.changed` event for each option's initial stock; and edits of a product (text, category,
//! picture, sale flag, option names and prices), which every instance serves within its notice
//! latency (see `services::catalog::changed`). Both audited in their own transaction.

use crate::{
    auth::Caller,
    domain::{
        FieldError, Market,
        catalog::NewProduct,
        catalog_edit::{ProductPatch, ProductState},
    },
    services::{
        AppState, Fault,
        audit::{self, Change},
        catalog::{self, MarketHint},
        fault_conversions,
    },
    store::{
        pg::{
            catalog::{self as store, InsertedProduct},
            catalog_edit, movements,
        },
        redis::notices::Topic,
    },
};

/// The `reason` of the `stock.changed` events of a new product's initial stock.
pub const INITIAL_STOCK: &str = "product created";

/// Why a product could not be created or edited.
#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    /// No such product.
    #[error("no product {product_id}")]
    NotFound {
        /// The product asked for.
        product_id: i64,
    },
    /// A field of the edit breaks a rule.
    #[error("{} {}", .0.field, .0.reason)]
    Invalid(FieldError),
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

fault_conversions!(ProductError);

/// Creates a validated product for `actor`; answers its ids and the market the caller's catalog
/// reads are priced in (the caller's, as for catalog reads).
pub async fn create(
    state: &AppState,
    actor: &Caller,
    hint: MarketHint,
    product: &NewProduct,
) -> Result<(InsertedProduct, Market), ProductError> {
    let preferred = catalog::market(state, hint).await?;
    let mut tx = state.db.begin().await?;
    let inserted = store::insert(&mut tx, product, None).await?;
    // The initial stock is an adjustment like any other, for the ledger's history and the data
    // platform: one home writes both (the same payload as every other movement).
    let stocked: Vec<(i64, i64)> = product
        .options
        .iter()
        .zip(&inserted.option_ids)
        .filter(|(option, _)| option.stock > 0)
        .map(|(option, option_id)| (*option_id, i64::from(option.stock)))
        .collect();
    movements::record_adjusts(&mut tx, &stocked, INITIAL_STOCK).await?;
    let after = match catalog_edit::lock(&mut tx, inserted.id).await? {
        Some(state) => audit::json_of(&state),
        None => return Err(Fault::invariant("a product just inserted is gone").into()),
    };
    let change = Change {
        action: "product.create",
        entity_type: audit::PRODUCT,
        entity_id: inserted.id.to_string(),
        before: None,
        after: Some(after),
        reason: None,
    };
    audit::record(&mut tx, actor, change).await?;
    tx.commit().await?;
    catalog::changed(state, Topic::Product, Some(inserted.id)).await;
    tracing::info!(product.id = inserted.id, actor.user_id = actor.user_id, "product created");
    Ok((inserted, preferred))
}

/// Edits a product for `actor` (audited, with `reason` when given); answers it as it now is. An
/// edit that changes nothing writes nothing. Orders already PENDING keep the prices they
/// captured; this instance serves the edit before it answers, the others on the notice.
pub async fn update(
    state: &AppState,
    actor: &Caller,
    product_id: i64,
    patch: &ProductPatch,
    reason: Option<&str>,
) -> Result<ProductState, ProductError> {
    let mut tx = state.db.begin().await?;
    let before = catalog_edit::lock(&mut tx, product_id).await?.ok_or(ProductError::NotFound { product_id })?;
    let next = before.patched(patch).map_err(ProductError::Invalid)?;
    if next == before {
        return Ok(before);
    }
    catalog_edit::write(&mut tx, &before, &next).await?;
    let change = Change {
        action: "product.update",
        entity_type: audit::PRODUCT,
        entity_id: product_id.to_string(),
        before: Some(audit::json_of(&before)),
        after: Some(audit::json_of(&next)),
        reason,
    };
    audit::record(&mut tx, actor, change).await?;
    tx.commit().await?;
    catalog::changed(state, Topic::Product, Some(product_id)).await;
    tracing::info!(
        product.id = product_id,
        product.on_sale = next.on_sale,
        actor.user_id = actor.user_id,
        "product edited"
    );
    Ok(next)
}
