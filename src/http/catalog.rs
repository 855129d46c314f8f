//! Routes of the catalog domain.

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// The catalog routes (mounted under `/api`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
