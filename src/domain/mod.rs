//! The business vocabulary as plain Rust: no HTTP, no SQL, no Redis in here.

pub mod catalog;
pub mod catalog_edit;
pub mod coupon;
pub mod discount;
pub mod fx;
pub mod market;
pub mod money;
pub mod order;
pub mod page;
pub mod refund;
pub mod stock;
pub mod text;
pub mod waiting_room;

pub use catalog::FieldError;
pub use market::{Currency, Lang, Market};
pub use money::Money;
pub use page::PageRequest;
pub use stock::StockStatus;
