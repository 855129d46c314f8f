//! Administration, one module per subject: products, stock adjustments, coupon campaigns, the
//! outbox, users. The role gates are the HTTP layer's (`http::auth::require_roles`).

pub mod coupons;
pub mod inventory;
pub mod outbox;
pub mod products;
pub mod revocations;
pub mod users;
