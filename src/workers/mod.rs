//! Background tasks of `serve`, each switchable by `JUPANG_WORKERS`, all stopped by one token.

pub mod expiry;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{state::AppState, store::ordering};

/// Starts the configured workers; each returns when `shutdown` is cancelled.
pub fn spawn(state: &AppState, shutdown: &CancellationToken) -> Vec<JoinHandle<()>> {
    // Resolved at start-up so a fallback of the order strategy is logged now, not at the first order.
    ordering::backend(state.config.order_strategy);
    let mut handles = Vec::new();
    if state.config.workers.expiry {
        handles.push(tokio::spawn(expiry::run(state.clone(), shutdown.clone())));
    }
    handles
}
