//! The business vocabulary as plain Rust: no HTTP, no SQL, no Redis in here.

pub mod catalog;
pub mod coupon;
pub mod discount;
pub mod market;
pub mod money;
pub mod order;
pub mod stock;

pub use market::{Currency, Lang, Market};
pub use money::Money;
pub use stock::StockStatus;
