//! The one integration-test binary: real Postgres, real Redis, real HTTP.

mod support;

mod auth;
mod cart;
mod catalog;
mod catalog_admin;
mod catalog_markets;
mod cli;
mod coupon_admin;
mod coupon_concurrency;
mod coupons;
mod dashboard;
mod errors;
mod expiry;
mod idempotency;
mod inventory;
mod loadgen;
mod loser_memory;
mod notices;
mod observe;
mod order_concurrency;
mod orders;
mod outbox;
mod overload;
mod payment;
mod popular;
mod prometheus_scrape;
mod seed;
mod stream_codec;
mod stream_consumer;
mod v2_coupons;
mod v2_durability;
mod v2_order_settlement;
mod v2_orders;
mod v2_stock;
mod wallet;
