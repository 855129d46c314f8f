//! Outbox administration: events by delivery status, and re-sending one.

use serde_json::json;
use uuid::Uuid;

pub use crate::store::pg::outbox::OutboxEvent;
use crate::{
    auth::Caller,
    domain::PageRequest,
    services::{
        AppState, Fault,
        audit::{self, Change},
        fault_conversions,
    },
    store::pg::outbox,
};

/// Why an outbox request failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// No such event.
    #[error("no event {event_id}")]
    EventNotFound {
        /// The event asked for.
        event_id: Uuid,
    },
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

fault_conversions!(OutboxError);

/// A page of events, newest first, optionally of one status (`PENDING`, `DELIVERED`, `FAILED`),
/// with how many match.
pub async fn list(
    state: &AppState,
    status: Option<&str>,
    page: PageRequest,
) -> Result<(Vec<OutboxEvent>, i64), OutboxError> {
    Ok(outbox::list(&state.db, status, page.size, page.offset()).await?)
}

/// Queues a FAILED (or DELIVERED) event for a new round of attempts, due now; a PENDING one is
/// already on its way and is left as it is. Audited for `actor` either way (the request was made).
pub async fn redeliver(state: &AppState, actor: &Caller, event_id: Uuid) -> Result<OutboxEvent, OutboxError> {
    let mut tx = state.db.begin().await?;
    let (before, after) = outbox::redeliver(&mut tx, event_id).await?.ok_or(OutboxError::EventNotFound { event_id })?;
    let delivery = |e: &OutboxEvent| json!({ "status": e.status, "attempts": e.attempts });
    let change = Change {
        action: "outbox.redeliver",
        entity_type: audit::OUTBOX_EVENT,
        entity_id: event_id.to_string(),
        before: Some(delivery(&before)),
        after: Some(delivery(&after)),
        reason: None,
    };
    audit::record(&mut tx, actor, change).await?;
    tx.commit().await?;
    tracing::info!(event.id = %event_id, "outbox event queued for redelivery");
    Ok(after)
}
