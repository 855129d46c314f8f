//! The one integration-test binary: real Postgres, real Redis, real HTTP.

mod helpers;

mod auth;
mod coupon_admin;
mod coupon_concurrency;
mod coupon_support;
mod coupons;
mod errors;
mod observe;
