//! User administration: a profile with an empty wallet (identity itself comes from the token
//! issuer).

use crate::{
    domain::Market,
    services::{AppState, Fault, fault_conversions},
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

/// Creates a user named `name` (already validated) in `market`; returns its id.
pub async fn create(state: &AppState, name: &str, market: Market) -> Result<i64, UserAdminError> {
    Ok(users::create(&state.db, name, market).await?)
}
