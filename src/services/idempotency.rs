//! `Idempotency-Key` on the service side: claiming a key, and storing the answer of an
//! idempotent request in the very transaction of the change it describes. The HTTP contract and
//! the whole design are described in `http::idempotency`; the rows in `store::pg::idempotency`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU16, Ordering},
    },
    time::Duration,
};

use sqlx::PgConnection;
use uuid::Uuid;

use super::{AppState, Fault};
use crate::store::pg::idempotency as store;
pub use crate::store::pg::idempotency::ClaimOutcome;

/// How long a finished answer stays replayable.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Shortest time after which a running claim counts as abandoned.
pub const MIN_LEASE: Duration = Duration::from_secs(30);

/// A key this request holds (an `IN_PROGRESS` row carrying our token).
#[derive(Debug, Clone)]
pub struct Claim {
    user_id: i64,
    key: String,
    token: Uuid,
    /// The status stored by a [`Receipt`] inside the business transaction (0: none yet).
    recorded: Arc<AtomicU16>,
    /// The order an abandoned claim of the same request had bound before it died.
    prior_order: Option<Uuid>,
}

impl Claim {
    /// The status a [`Receipt`] stored with the business change, if one did.
    pub fn recorded(&self) -> Option<u16> {
        Some(self.recorded.load(Ordering::Acquire)).filter(|s| *s != 0)
    }
}

/// Claims `key` of `user_id` for a request with this fingerprint: `Claimed` comes with the
/// claim; otherwise the outcome says what to answer instead (replay, in progress, reused).
pub async fn claim(
    state: &AppState,
    user_id: i64,
    key: String,
    fingerprint: &str,
) -> Result<(ClaimOutcome, Option<Claim>), Fault> {
    let token = Uuid::now_v7();
    let lease = MIN_LEASE.max(state.config.request_timeout + Duration::from_secs(5));
    let (outcome, prior_order) = store::claim(&state.db, user_id, &key, fingerprint, token, lease, RETENTION).await?;
    let claim = (outcome == ClaimOutcome::Claimed).then(|| Claim {
        user_id,
        key,
        token,
        recorded: Arc::default(),
        prior_order,
    });
    Ok((outcome, claim))
}

/// Stores an answer that was not stored with a business change (a 4xx refusal, which changed
/// nothing); `false` when the claim had been taken over meanwhile.
pub async fn store_late(state: &AppState, claim: &Claim, status: u16, body: &[u8]) -> Result<bool, Fault> {
    Ok(store::complete(&state.db, claim.user_id, &claim.key, claim.token, status, body, RETENTION).await?)
}

/// Drops the claim so the client may retry (after a 5xx); a completed row is kept.
pub async fn release(state: &AppState, claim: &Claim) -> Result<(), Fault> {
    Ok(store::release(&state.db, claim.user_id, &claim.key, claim.token).await?)
}

/// Why a [`Receipt`] could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// The claim was taken over (this attempt overran its lease): the change must not commit.
    #[error("the Idempotency-Key claim was taken over")]
    TakenOver,
    /// The answer could not be rendered.
    #[error("rendering the idempotent answer: {0}")]
    Render(#[from] serde_json::Error),
    /// Postgres failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// How the answer to an idempotent request renders from the service's result.
pub type Render<'a, T> = &'a (dyn Fn(&T) -> serde_json::Result<Vec<u8>> + Send + Sync);

/// The answer of an idempotent request, stored by the service together with its change: in the
/// same transaction, so after a crash either both exist (a retry replays) or neither.
pub struct Receipt<'a, T> {
    claim: Option<Claim>,
    status: u16,
    render: Render<'a, T>,
}

impl<'a, T> Receipt<'a, T> {
    /// A receipt for `claim` (none: the request carried no key) answering `status` with the
    /// bytes `render` makes of the result.
    pub fn new(claim: Option<Claim>, status: u16, render: Render<'a, T>) -> Receipt<'a, T> {
        Receipt { claim, status, render }
    }

    /// Whether the request carried a key (and it was claimed).
    pub fn is_active(&self) -> bool {
        self.claim.is_some()
    }

    /// The order an earlier attempt of this very request bound to the key before it died (see
    /// [`Receipt::bind_order`]); the request must answer that order, never admit another.
    pub fn prior_order(&self) -> Option<Uuid> {
        self.claim.as_ref().and_then(|c| c.prior_order)
    }

    /// Binds the id of the order about to be admitted to the key, committed before the admission
    /// (Redis and Postgres share no transaction): a retry after a crash in between finds it. A
    /// no-op without a key.
    pub async fn bind_order(&self, db: &sqlx::PgPool, order_id: Uuid) -> Result<(), ReceiptError> {
        let Some(claim) = &self.claim else { return Ok(()) };
        if !store::bind_order(db, claim.user_id, &claim.key, claim.token, order_id).await? {
            return Err(ReceiptError::TakenOver);
        }
        Ok(())
    }

    /// Stores the answer to `value` through `conn` (the service's transaction, before its
    /// commit). A no-op without a key.
    pub async fn record(&self, conn: &mut PgConnection, value: &T) -> Result<(), ReceiptError> {
        let Some(claim) = &self.claim else { return Ok(()) };
        let body = (self.render)(value)?;
        let stored =
            store::complete(&mut *conn, claim.user_id, &claim.key, claim.token, self.status, &body, RETENTION).await?;
        if !stored {
            return Err(ReceiptError::TakenOver);
        }
        claim.recorded.store(self.status, Ordering::Release);
        Ok(())
    }
}
