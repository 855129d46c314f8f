//! Administration, one module per subject: products, stock adjustments, coupon campaigns, FX
//! rates, the outbox, users. The role gates are the HTTP layer's (`http::auth::require_roles`).

pub mod coupons;
pub mod fx;
pub mod inventory;
pub mod outbox;
pub mod products;
pub mod revocations;
pub mod users;
