//! Background tasks of `serve`, each switchable by `JUPANG_WORKERS`, all stopped by one token.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Starts the configured workers; each returns when `shutdown` is cancelled.
pub fn spawn(state: &AppState, shutdown: &CancellationToken) -> Vec<JoinHandle<()>> {
    let _ = (state, shutdown);
    Vec::new()
}
