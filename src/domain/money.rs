//! Money: an integer amount of a currency's minor unit. Never a float.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Currency;

/// An amount in minor units (KRW: won, USD: cents) with its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct Money {
    /// Integer amount of the currency's minor unit.
    pub amount: i64,
    /// ISO 4217 currency code.
    pub currency: Currency,
}

impl Money {
    /// An amount of a currency.
    pub fn new(amount: i64, currency: Currency) -> Money {
        Money { amount, currency }
    }

    /// Zero of a currency.
    pub fn zero(currency: Currency) -> Money {
        Money { amount: 0, currency }
    }
}
