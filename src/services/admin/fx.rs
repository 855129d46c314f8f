//! The FX rate table (`ops_admin`): an option without a price in a market's currency is priced
//! from its price in the other one at the rate in force (see `domain::fx`). A change is announced
//! to every instance as a whole-catalog [`Topic::Product`] notice: catalog pages, product pages
//! and the V2 order engine's option cache drop what they priced with the old rate.

use crate::{
    domain::fx::Rate,
    services::{AppState, Fault, catalog, fault_conversions},
    store::{pg::fx, redis::notices::Topic},
};

/// Why the rate table could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum FxError {
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

fault_conversions!(FxError);

/// Every rate in force: `(pair, rate as written)`.
pub async fn rates(state: &AppState) -> Result<Vec<(String, String)>, FxError> {
    Ok(fx::rates(&state.db).await?)
}

/// Sets the rates given (`(pair, rate)`, pairs already validated) in one transaction, then
/// announces the change; returns every rate in force.
pub async fn set(state: &AppState, rates: &[(&str, Rate)]) -> Result<Vec<(String, String)>, FxError> {
    let mut tx = state.db.begin().await?;
    for (pair, rate) in rates {
        let _before = fx::set(&mut tx, pair, &rate.decimal().to_string()).await?;
        // audit: fx rate set (actor, pair, before: _before, after: rate)
    }
    tx.commit().await?;
    if !rates.is_empty() {
        catalog::changed(state, Topic::Product, None).await;
    }
    Ok(fx::rates(&state.db).await?)
}
