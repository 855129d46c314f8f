//! Everything the tests share, each helper written once:
//!
//! - [`app`]: the harness, a fresh app per test on its own database and Redis prefix, in this
//!   process or as a child `jupang serve`;
//! - [`http`]: reading answers the contract's way, sending requests at once;
//! - [`audit`]: the audit log, and faults and fingerprints that prove a write is one transaction;
//! - [`metrics`]: metric assertions that only the test itself can satisfy;
//! - [`catalog`], [`orders`], [`coupons`]: fixtures and readers per domain;
//! - [`stock`]: the V2 order engine's Redis side and stream;
//! - [`stores`]: the test's own Redis handles;
//! - [`platform`]: an HTTPS data platform with a CA of the test's own;
//! - [`child`]: the `jupang` binary as a child process;
//! - [`prometheus`]: a real Prometheus scraping a child `serve`;
//! - [`proxy`]: a TCP proxy that makes Postgres or Redis go away;
//! - [`wait`]: awaiting background work.
//!
//! Items are re-exported here, so tests import them from `crate::support`.

#![allow(dead_code)] // A toolbox shared by every test module; not each one uses every tool.

pub mod app;
pub mod audit;
pub mod catalog;
pub mod child;
pub mod coupons;
pub mod http;
pub mod metrics;
pub mod orders;
pub mod platform;
pub mod prometheus;
pub mod proxy;
pub mod redis_server;
pub mod stock;
pub mod stores;
pub mod wait;

pub use self::app::*;
pub use self::audit::*;
pub use self::catalog::*;
pub use self::coupons::*;
pub use self::http::*;
pub use self::metrics::*;
pub use self::orders::*;
pub use self::platform::*;
pub use self::redis_server::*;
pub use self::stock::*;
pub use self::stores::*;
pub use self::wait::*;
