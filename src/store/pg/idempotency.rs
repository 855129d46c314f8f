//! Postgres side of `Idempotency-Key` handling (the design is described in `http::idempotency`).
//!
//! A row of `idempotency_keys` is either a live claim (`IN_PROGRESS`, held by the attempt whose
//! `claim_token` it carries) or a finished answer (`COMPLETED`, with the status and body to replay).

use std::time::Duration;

use sqlx::{FromRow, PgExecutor, PgPool};
use uuid::Uuid;

/// What trying to claim a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The key is ours now (new, expired, or abandoned by a crashed attempt).
    Claimed,
    /// The same request already finished: answer with this status and body.
    Replay {
        /// HTTP status of the first answer.
        status: u16,
        /// Body bytes of the first answer.
        body: Vec<u8>,
    },
    /// The same request is still running elsewhere (its lease has not run out).
    InProgress,
    /// The key was used for a different request (method, path or body).
    KeyReused,
}

#[derive(FromRow)]
struct Existing {
    request_hash: String,
    state: String,
    response_status: Option<i16>,
    response_body: Option<Vec<u8>>,
}

/// Claims `key` for `user_id` with a fresh `token`, or reports why it cannot. With
/// [`ClaimOutcome::Claimed`] comes the order id an abandoned claim of the same request had bound
/// ([`bind_order`]) before its process died: the retry must find that order, not admit another.
///
/// The claim commits on its own (autocommit) before the handler starts, so concurrent attempts
/// see it at once. A row counts as absent when it has expired, or when it is an `IN_PROGRESS`
/// claim older than `lease` (its process crashed or timed out before releasing it); such rows are
/// taken over in the same statement, so exactly one of several racing attempts wins.
pub async fn claim(
    db: &PgPool,
    user_id: i64,
    key: &str,
    fingerprint: &str,
    token: Uuid,
    lease: Duration,
    retention: Duration,
) -> sqlx::Result<(ClaimOutcome, Option<Uuid>)> {
    // A row can vanish between the failed insert and the read (a 5xx released it): try again.
    for _ in 0..5 {
        let won: Option<(Uuid, Option<Uuid>)> = sqlx::query_as(
            "INSERT INTO idempotency_keys
                 (user_id, key, request_hash, state, claim_token, claimed_at, created_at, expires_at)
             VALUES ($1, $2, $3, 'IN_PROGRESS', $4, now(), now(), now() + make_interval(secs => $6))
             ON CONFLICT (user_id, key) DO UPDATE
                 SET request_hash = EXCLUDED.request_hash, state = 'IN_PROGRESS',
                     response_status = NULL, response_body = NULL, claim_token = EXCLUDED.claim_token,
                     claimed_at = now(), created_at = now(), expires_at = EXCLUDED.expires_at,
                     order_id = CASE WHEN idempotency_keys.expires_at >= now()
                                      AND idempotency_keys.request_hash = EXCLUDED.request_hash
                                     THEN idempotency_keys.order_id END
                 WHERE idempotency_keys.expires_at < now()
                    OR (idempotency_keys.state = 'IN_PROGRESS'
                        AND idempotency_keys.claimed_at < now() - make_interval(secs => $5))
             RETURNING claim_token, order_id",
        )
        .bind(user_id)
        .bind(key)
        .bind(fingerprint)
        .bind(token)
        .bind(lease.as_secs_f64())
        .bind(retention.as_secs_f64())
        .fetch_optional(db)
        .await?;
        if let Some((_, order_id)) = won {
            return Ok((ClaimOutcome::Claimed, order_id));
        }
        let existing: Option<Existing> = sqlx::query_as(
            "SELECT request_hash, state, response_status, response_body
             FROM idempotency_keys WHERE user_id = $1 AND key = $2",
        )
        .bind(user_id)
        .bind(key)
        .fetch_optional(db)
        .await?;
        let Some(row) = existing else { continue };
        let outcome = if row.request_hash != fingerprint {
            ClaimOutcome::KeyReused
        } else if row.state == "COMPLETED" {
            ClaimOutcome::Replay {
                status: row.response_status.unwrap_or(500) as u16,
                body: row.response_body.unwrap_or_default(),
            }
        } else {
            ClaimOutcome::InProgress
        };
        return Ok((outcome, None));
    }
    Ok((ClaimOutcome::InProgress, None))
}

/// Binds the order our claim is about to admit (committed on its own, before the admission);
/// `false` when the claim is no longer ours.
pub async fn bind_order(
    db: impl PgExecutor<'_>,
    user_id: i64,
    key: &str,
    token: Uuid,
    order_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE idempotency_keys SET order_id = $4
         WHERE user_id = $1 AND key = $2 AND claim_token = $3 AND state = 'IN_PROGRESS'",
    )
    .bind(user_id)
    .bind(key)
    .bind(token)
    .bind(order_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Turns our claim into the stored answer; `false` when the claim is no longer ours (it was
/// taken over after the lease ran out), in which case the caller must not commit its change.
///
/// Run it inside the handler's transaction so the answer and the business change commit (or
/// roll back) together.
pub async fn complete(
    db: impl PgExecutor<'_>,
    user_id: i64,
    key: &str,
    token: Uuid,
    status: u16,
    body: &[u8],
    retention: Duration,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE idempotency_keys
         SET state = 'COMPLETED', response_status = $4, response_body = $5,
             expires_at = now() + make_interval(secs => $6)
         WHERE user_id = $1 AND key = $2 AND claim_token = $3 AND state = 'IN_PROGRESS'",
    )
    .bind(user_id)
    .bind(key)
    .bind(token)
    .bind(status as i16)
    .bind(body)
    .bind(retention.as_secs_f64())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Drops our claim so the client may retry (after a 5xx). A completed row is left alone: if the
/// business transaction did commit, its answer must stay replayable. A claim that bound an order
/// is not deleted but marked abandoned at once: the order may have been admitted, and the retry
/// that takes the claim over must find it.
pub async fn release(db: impl PgExecutor<'_>, user_id: i64, key: &str, token: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "WITH gone AS (DELETE FROM idempotency_keys
                       WHERE user_id = $1 AND key = $2 AND claim_token = $3 AND state = 'IN_PROGRESS'
                         AND order_id IS NULL)
         UPDATE idempotency_keys SET claimed_at = '-infinity'
         WHERE user_id = $1 AND key = $2 AND claim_token = $3 AND state = 'IN_PROGRESS' AND order_id IS NOT NULL",
    )
    .bind(user_id)
    .bind(key)
    .bind(token)
    .execute(db)
    .await?;
    Ok(())
}

/// Deletes up to `limit` expired rows; returns how many went. Expired rows already count as
/// absent, so this only reclaims space (for a periodic clean-up task).
pub async fn purge_expired(db: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM idempotency_keys WHERE ctid IN
             (SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT $1)",
    )
    .bind(limit)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
