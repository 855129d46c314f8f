//! The FX rate table (`ops_admin`): an option without a price in a market's currency is priced
//! from its price in the other one at the rate in force (see `domain::fx`). A change is announced
//! to every instance as a whole-catalog [`Topic::Product`] notice: catalog pages, product pages
//! and the V2 order engine's option cache drop what they priced with the old rate.

use serde_json::json;

use crate::{
    auth::Caller,
    domain::fx::Rate,
    services::{
        AppState, Fault,
        audit::{self, Change},
        catalog, fault_conversions,
    },
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

/// Sets the rates given (`(pair, rate)`, pairs already validated) for `actor` in one
/// transaction, each changed rate with its audit entry, then announces the change; returns every
/// rate in force. A rate set to the value it has changes nothing: no entry, no notice.
pub async fn set(state: &AppState, actor: &Caller, rates: &[(&str, Rate)]) -> Result<Vec<(String, String)>, FxError> {
    let mut tx = state.db.begin().await?;
    let mut changed = false;
    for (pair, rate) in rates {
        let after = rate.decimal().to_string();
        let before = fx::set(&mut tx, pair, &after).await?;
        // Numeric equality: `1385.2` is the rate `1385.20` was.
        if before.as_deref().and_then(Rate::parse) == Some(*rate) {
            continue;
        }
        changed = true;
        let change = Change {
            action: "fx_rate.set",
            entity_type: audit::FX_RATE,
            entity_id: (*pair).to_owned(),
            before: before.map(|r| json!({ "rate": r })),
            after: Some(json!({ "rate": after })),
            reason: None,
        };
        audit::record(&mut tx, actor, change).await?;
    }
    tx.commit().await?;
    if changed {
        catalog::changed(state, Topic::Product, None).await;
    }
    Ok(fx::rates(&state.db).await?)
}
