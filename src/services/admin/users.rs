//! User administration: a profile with an empty wallet (identity itself comes from the token
//! issuer).

use serde_json::json;

use crate::{
    auth::Caller,
    domain::Market,
    services::{
        AppState, Fault,
        audit::{self, Change},
        fault_conversions,
    },
    store::pg::users,
};

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum UserAdminError {
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

fault_conversions!(UserAdminError);

/// Creates a user named `name` (already validated) in `market` for `actor`, audited; returns its id.
pub async fn create(state: &AppState, actor: &Caller, name: &str, market: Market) -> Result<i64, UserAdminError> {
    let mut tx = state.db.begin().await?;
    let user_id = users::create(&mut *tx, name, market).await?;
    let after = json!({ "user_id": user_id, "name": name, "market": market.code() });
    let change = Change {
        action: "user.create",
        entity_type: audit::USER,
        entity_id: user_id.to_string(),
        before: None,
        after: Some(after),
        reason: None,
    };
    audit::record(&mut tx, actor, change).await?;
    tx.commit().await?;
    Ok(user_id)
}
