//! Product administration: a new product with its options and prices, in one transaction with a
//! `stock.changed` event for each option's initial stock.

use chrono::Utc;
use serde_json::json;

use crate::{
    domain::{Market, catalog::NewProduct},
    services::{
        AppState, Fault,
        catalog::{self, MarketHint},
        fault_conversions,
    },
    store::{
        pg::{
            catalog::{self as store, InsertedProduct},
            outbox::{self, EventType, NewEvent},
        },
        redis::notices::Topic,
    },
};

/// Why a product could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

fault_conversions!(ProductError);

/// Creates a validated product for `actor`; answers its ids and the market the caller's catalog
/// reads are priced in (the caller's, as for catalog reads).
pub async fn create(
    state: &AppState,
    actor: i64,
    hint: MarketHint,
    product: &NewProduct,
) -> Result<(InsertedProduct, Market), ProductError> {
    let preferred = catalog::market(state, hint).await?;
    let now = Utc::now();
    let mut tx = state.db.begin().await?;
    let inserted = store::insert(&mut tx, product, None).await?;
    // The initial stock is a stock change like any other for the data platform.
    let events: Vec<NewEvent> = product
        .options
        .iter()
        .zip(&inserted.option_ids)
        .filter(|(option, _)| option.stock > 0)
        .map(|(option, option_id)| NewEvent {
            kind: EventType::StockChanged,
            occurred_at: now,
            payload: json!({"product_option_id": option_id, "delta": option.stock, "reason": "product created"}),
        })
        .collect();
    outbox::enqueue_all(&mut tx, events).await?;
    tx.commit().await?;
    catalog::changed(state, Topic::Product, Some(inserted.id)).await;
    tracing::info!(product.id = inserted.id, actor.user_id = actor, "product created");
    Ok((inserted, preferred))
}
