//! Jupang: a flash-sale e-commerce backend.
//!
//! Layout: [`domain`] is the business vocabulary in plain Rust; [`store`] talks to Postgres and
//! Redis; [`http`] is the axum API; [`workers`] are the background tasks; [`app`] wires them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod config;
pub mod domain;
pub mod http;
pub mod issue;
pub mod metrics;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod workers;

pub use app::{Application, run};
pub use config::Config;
