//! A user's wallet: the balance, charges (idempotent with a key), and the history of changes.

use uuid::Uuid;

use super::{
    AppState, Fault, fault_conversions,
    idempotency::{Receipt, ReceiptError},
};
pub use crate::store::pg::users::BalanceTxRow;
use crate::{
    domain::{Money, PageRequest},
    store::pg::users::{self, BalanceTxKind, NewBalanceTx},
};

/// Why a wallet request failed.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// No user with this id.
    #[error("no such user")]
    UserNotFound,
    /// The amount is not in `1..=max` (`JUPANG_MAX_CHARGE`).
    #[error("the amount must be from 1 to {max}")]
    InvalidAmount {
        /// The largest single charge.
        max: i64,
    },
    /// The balance would exceed what it can hold.
    #[error("the balance would exceed its maximum")]
    BalanceOverflow,
    /// The idempotent answer could not be stored with the charge.
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

fault_conversions!(WalletError);

/// A user's wallet balance.
pub async fn balance(state: &AppState, user_id: i64) -> Result<Money, WalletError> {
    let user = users::find(&state.db, user_id).await?.ok_or(WalletError::UserNotFound)?;
    Ok(user.balance())
}

/// A completed charge.
#[derive(Debug, Clone)]
pub struct Charged {
    /// The wallet's owner.
    pub user_id: i64,
    /// The new balance.
    pub balance: Money,
    /// The `CHARGE` row of the history.
    pub transaction_id: Uuid,
}

/// Charges `amount` into the wallet in one atomic `UPDATE` (concurrent charges never lose an
/// update) with its history row; the idempotent answer is stored with it.
pub async fn charge(
    state: &AppState,
    user_id: i64,
    amount: i64,
    receipt: Receipt<'_, Charged>,
) -> Result<Charged, WalletError> {
    let max = state.config.max_charge;
    if amount <= 0 || amount > max {
        return Err(WalletError::InvalidAmount { max });
    }
    let mut tx = state.db.begin().await?;
    let balance = match users::add_to_balance(&mut tx, user_id, amount).await {
        Ok(Some(balance)) => balance,
        Ok(None) => return Err(WalletError::UserNotFound),
        Err(e) if users::is_out_of_range(&e) => return Err(WalletError::BalanceOverflow),
        Err(e) => return Err(e.into()),
    };
    let record = NewBalanceTx { user_id, kind: BalanceTxKind::Charge, amount, balance_after: balance, order_id: None };
    let transaction_id = users::record_balance_tx(&mut tx, &record).await?;
    let charged = Charged { user_id, balance, transaction_id };
    receipt.record(&mut tx, &charged).await?;
    tx.commit().await?;
    Ok(charged)
}

/// A page of the wallet's history, newest first, with how many changes there are.
pub async fn history(
    state: &AppState,
    user_id: i64,
    page: PageRequest,
) -> Result<(Vec<BalanceTxRow>, i64), WalletError> {
    users::find(&state.db, user_id).await?.ok_or(WalletError::UserNotFound)?;
    Ok(users::list_balance_txs(&state.db, user_id, page.size, page.offset()).await?)
}
