//! Postgres queries of the one audit log (`audit_log`): every admin write leaves an entry in its
//! own transaction; staff read it filtered, newest first.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{FromRow, PgConnection, PgPool};

/// One admin write, as the log keeps it (who did it is given beside it).
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// What was done, `<entity>.<verb>` (`product.update`, `coupon.revoke`).
    pub action: &'a str,
    /// The kind of thing changed (`product`, `coupon`, `product_option`...).
    pub entity_type: &'a str,
    /// Which one (an integer id or a UUID, as text).
    pub entity_id: String,
    /// Its state before (`None`: it did not exist).
    pub before: Option<Value>,
    /// Its state after.
    pub after: Option<Value>,
    /// Why, when the request said.
    pub reason: Option<&'a str>,
}

/// Appends an entry inside the caller's transaction; returns its id and time (the clock at
/// insert, so entries written under one row lock are in the order of the changes).
/// `actor` is the token's subject, `roles` its roles as spelled in claims.
pub async fn insert(
    tx: &mut PgConnection,
    actor: i64,
    roles: &[String],
    e: &Change<'_>,
) -> sqlx::Result<(i64, DateTime<Utc>)> {
    sqlx::query_as(
        "INSERT INTO audit_log (actor, roles, action, entity_type, entity_id, before, after, reason, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, clock_timestamp()) RETURNING id, at",
    )
    .bind(actor)
    .bind(roles)
    .bind(e.action)
    .bind(e.entity_type)
    .bind(&e.entity_id)
    .bind(&e.before)
    .bind(&e.after)
    .bind(e.reason)
    .fetch_one(tx)
    .await
}

/// One entry of the log.
#[derive(Debug, Clone, FromRow)]
pub struct Entry {
    /// Entry id.
    pub id: i64,
    /// Who.
    pub actor: i64,
    /// The actor's roles then.
    pub roles: Vec<String>,
    /// What.
    pub action: String,
    /// Kind of thing.
    pub entity_type: String,
    /// Which one.
    pub entity_id: String,
    /// State before.
    pub before: Option<Value>,
    /// State after.
    pub after: Option<Value>,
    /// Why.
    pub reason: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// What a page of the log is filtered by (every filter optional).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only entries about this kind of thing.
    pub entity_type: Option<String>,
    /// Only entries about this entity id.
    pub entity_id: Option<String>,
    /// Only entries by this actor.
    pub actor: Option<i64>,
}

const WHERE: &str = "($1::text IS NULL OR entity_type = $1) AND ($2::text IS NULL OR entity_id = $2)
                     AND ($3::bigint IS NULL OR actor = $3)";

/// A page of the log, newest first, and how many entries match.
pub async fn list(db: &PgPool, f: &Filter, limit: i64, offset: i64) -> sqlx::Result<(Vec<Entry>, i64)> {
    let rows = sqlx::query_as(&format!(
        "SELECT id, actor, roles, action, entity_type, entity_id, before, after, reason, at
         FROM audit_log WHERE {WHERE} ORDER BY at DESC, id DESC LIMIT $4 OFFSET $5"
    ))
    .bind(&f.entity_type)
    .bind(&f.entity_id)
    .bind(f.actor)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let total = sqlx::query_scalar(&format!("SELECT count(*) FROM audit_log WHERE {WHERE}"))
        .bind(&f.entity_type)
        .bind(&f.entity_id)
        .bind(f.actor)
        .fetch_one(db)
        .await?;
    Ok((rows, total))
}
