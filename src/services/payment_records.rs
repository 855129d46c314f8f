//! Payment records (api.md "Fulfilment, refunds, payments"): a payment is readable by its owner,
//! a `cs_agent` and an `ops_admin`; to anyone else it does not exist.

use uuid::Uuid;

use super::{AppState, Fault, fault_conversions};
pub use crate::store::pg::payment_records::PaymentRecord;
use crate::{
    auth::{Caller, Role},
    domain::PageRequest,
    store::pg::{payment_records, users},
};

/// Why a payment record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PaymentRecordError {
    /// No such payment, or not the caller's to see.
    #[error("no such payment")]
    PaymentNotFound,
    /// No user with this id.
    #[error("no such user")]
    UserNotFound,
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

fault_conversions!(PaymentRecordError);

/// One payment, if `caller` may see it (its owner, `cs_agent`, `ops_admin`); someone else's is
/// reported exactly like a missing one, so its existence is not revealed.
pub async fn get(state: &AppState, caller: &Caller, payment_id: Uuid) -> Result<PaymentRecord, PaymentRecordError> {
    payment_records::find(&state.db, payment_id)
        .await?
        .filter(|p| p.user_id == caller.user_id || caller.has(Role::CsAgent))
        .ok_or(PaymentRecordError::PaymentNotFound)
}

/// A page of a user's payments, newest first (the route has already authorised the caller).
pub async fn list(
    state: &AppState,
    user_id: i64,
    page: PageRequest,
) -> Result<(Vec<PaymentRecord>, i64), PaymentRecordError> {
    users::find(&state.db, user_id).await?.ok_or(PaymentRecordError::UserNotFound)?;
    Ok(payment_records::list_for_user(&state.db, user_id, page.size, page.offset()).await?)
}
