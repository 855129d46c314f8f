//! Readiness: whether Postgres and Redis answer and every migration is applied.

use std::time::Duration;

use super::AppState;
use crate::store::pg;

/// What `/ready` reports of each dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// `up`, `down` or `unmigrated`.
    pub postgres: &'static str,
    /// `up` or `down`.
    pub redis: &'static str,
}

impl Readiness {
    /// Whether every dependency is up.
    pub fn ready(self) -> bool {
        self.postgres == "up" && self.redis == "up"
    }
}

/// Checks both dependencies at once, each within `timeout`.
pub async fn readiness(state: &AppState, timeout: Duration) -> Readiness {
    let (postgres, redis) = tokio::join!(
        async {
            match tokio::time::timeout(timeout, pg::pending_migrations(&state.db)).await {
                Ok(Ok(pending)) if pending.is_empty() => "up",
                Ok(Ok(_)) => "unmigrated",
                _ => "down",
            }
        },
        async { if state.redis.ping(timeout).await { "up" } else { "down" } }
    );
    Readiness { postgres, redis }
}
