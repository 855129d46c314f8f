//! The three-level stock status customers see.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How much of an item is left, as shown in listings (seed 000 US-003).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StockStatus {
    /// 10 or more available.
    InStock,
    /// 1 to 9 available: "품절 임박".
    LowStock,
    /// Nothing available: cannot be bought.
    SoldOut,
}

impl StockStatus {
    /// Available quantity at or above which an item is plainly in stock.
    pub const IN_STOCK_THRESHOLD: i64 = 10;

    /// The status for a sellable quantity (stock minus reservations).
    pub fn from_available(available: i64) -> StockStatus {
        match available {
            a if a >= Self::IN_STOCK_THRESHOLD => StockStatus::InStock,
            a if a >= 1 => StockStatus::LowStock,
            _ => StockStatus::SoldOut,
        }
    }

    /// Whether a customer can buy it.
    pub fn purchasable(self) -> bool {
        self != StockStatus::SoldOut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_ten_one_and_zero() {
        assert_eq!(StockStatus::from_available(10), StockStatus::InStock);
        assert_eq!(StockStatus::from_available(9), StockStatus::LowStock);
        assert_eq!(StockStatus::from_available(1), StockStatus::LowStock);
        assert_eq!(StockStatus::from_available(0), StockStatus::SoldOut);
        assert_eq!(StockStatus::from_available(-3), StockStatus::SoldOut);
        assert!(!StockStatus::SoldOut.purchasable());
    }
}
