//! Persisting V2 coupon admissions: the consumer's [`CouponSink`] and the read-your-writes path
//! share [`persist`], so a coupon reaches Postgres the same way whoever gets there first.
//!
//! [`persist`] is idempotent: the `user_coupons` insert skips what exists (`ON CONFLICT DO
//! NOTHING`, on the id or on `UNIQUE (coupon_id, user_id)`), and the counter and the
//! `coupon.issued` events follow exactly the rows actually inserted.

use std::collections::{HashMap, HashSet};

use chrono::SubsecRound;
use serde_json::json;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::{
    domain::coupon::IssuedCoupon,
    store::{
        pg::outbox::{self, EventType, NewEvent},
        redis::{
            RedisStore, coupons as redis_coupons,
            streams::{Decoded, DecodedSink, PersistError, coupons::CouponStreams},
        },
    },
};

/// Stores issued coupons that are not stored yet, counts them on their coupons and writes one
/// `coupon.issued` event for each, all in the caller's transaction. Returns those inserted.
pub async fn persist(tx: &mut PgConnection, issued: &[IssuedCoupon]) -> sqlx::Result<Vec<IssuedCoupon>> {
    if issued.is_empty() {
        return Ok(Vec::new());
    }
    // One order for every writer, so two consumers inserting overlapping batches (an entry
    // claimed while its first consumer was still at it) wait on each other instead of deadlocking.
    let mut sorted: Vec<&IssuedCoupon> = issued.iter().collect();
    sorted.sort_by_key(|c| (c.coupon_id, c.user_id, c.id));
    let ids: Vec<Uuid> = sorted.iter().map(|c| c.id).collect();
    let coupons: Vec<i64> = sorted.iter().map(|c| c.coupon_id).collect();
    let users: Vec<i64> = sorted.iter().map(|c| c.user_id).collect();
    let issued_at: Vec<_> = sorted.iter().map(|c| c.issued_at.trunc_subsecs(6)).collect();
    let expires_at: Vec<_> = sorted.iter().map(|c| c.expires_at.trunc_subsecs(6)).collect();
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO user_coupons (id, coupon_id, user_id, issued_at, expires_at)
         SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::timestamptz[])
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&ids)
    .bind(&coupons)
    .bind(&users)
    .bind(&issued_at)
    .bind(&expires_at)
    .fetch_all(&mut *tx)
    .await?;
    let inserted: HashSet<Uuid> = inserted.into_iter().collect();
    let new: Vec<IssuedCoupon> = sorted.into_iter().filter(|c| inserted.contains(&c.id)).cloned().collect();

    let events = new
        .iter()
        .map(|c| NewEvent {
            kind: EventType::CouponIssued,
            occurred_at: c.issued_at,
            payload: json!({ "coupon_id": c.coupon_id, "user_id": c.user_id, "user_coupon_id": c.id }),
        })
        .collect();
    outbox::enqueue_all(&mut *tx, events).await?;

    // The counter goes last: every batch of a coupon updates its one row, and holds the row
    // lock from here to the commit, so parallel consumers queue on it for the shortest time.
    let mut per_coupon: HashMap<i64, i32> = HashMap::new();
    for c in &new {
        *per_coupon.entry(c.coupon_id).or_default() += 1;
    }
    let mut counted: Vec<(i64, i32)> = per_coupon.into_iter().collect();
    counted.sort_unstable();
    for (coupon_id, n) in counted {
        sqlx::query(
            "UPDATE coupons SET issued_quantity = issued_quantity + $2, version = version + 1, updated_at = now()
              WHERE id = $1",
        )
        .bind(coupon_id)
        .bind(n)
        .execute(&mut *tx)
        .await?;
    }
    Ok(new)
}

/// Which of `ids` have no `user_coupons` row.
pub async fn missing(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT i FROM unnest($1::uuid[]) i WHERE NOT EXISTS (SELECT 1 FROM user_coupons WHERE id = i)")
        .bind(ids)
        .fetch_all(db)
        .await
}

/// The users holding a coupon in Postgres.
pub async fn holders(db: impl PgExecutor<'_>, coupon_id: i64) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar("SELECT user_id FROM user_coupons WHERE coupon_id = $1").bind(coupon_id).fetch_all(db).await
}

/// The consumer's sink for coupon admissions: persists every hydrated coupon's stream
/// ([`CouponStreams`]).
#[derive(Clone)]
pub struct CouponSink {
    source: CouponStreams,
    redis: RedisStore,
}

impl CouponSink {
    /// A sink over the deployment's Redis.
    pub fn new(redis: RedisStore) -> CouponSink {
        CouponSink { source: CouponStreams::new(redis.clone()), redis }
    }
}

impl DecodedSink for CouponSink {
    type Source = CouponStreams;

    fn source(&self) -> &CouponStreams {
        &self.source
    }

    /// Persisted coupons Redis lost (it restarted after this consumer read them): their holders
    /// go back into the users set and `remaining` is lowered to match, so nobody is issued a
    /// second one and the total holds (the reconciler's safe repair, for these users only).
    async fn restore_decoded<'a>(&'a self, items: &'a [IssuedCoupon]) -> redis::RedisResult<()> {
        let mut by_coupon: HashMap<i64, Vec<i64>> = HashMap::new();
        for c in items {
            by_coupon.entry(c.coupon_id).or_default().push(c.user_id);
        }
        for (coupon_id, users) in by_coupon {
            if let Some((added, lowered)) = redis_coupons::repair(&self.redis, coupon_id, &users).await?
                && added > 0
            {
                tracing::warn!(
                    coupon.id = coupon_id,
                    users_added = added,
                    remaining_lowered = lowered,
                    "Redis had lost persisted coupons (a restart after they were read); restored"
                );
            }
        }
        Ok(())
    }

    async fn persist_decoded<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        items: &'a [Decoded<IssuedCoupon>],
    ) -> Result<(), PersistError> {
        // A reference to nothing would fail the whole insert forever: refuse just that entry.
        let users: Vec<i64> = items.iter().map(|d| d.item.user_id).collect();
        let coupons: Vec<i64> = items.iter().map(|d| d.item.coupon_id).collect();
        let (known_users, known_coupons): (Vec<i64>, Vec<i64>) = sqlx::query_as(
            "SELECT ARRAY(SELECT id FROM users WHERE id = ANY($1)), ARRAY(SELECT id FROM coupons WHERE id = ANY($2))",
        )
        .bind(&users)
        .bind(&coupons)
        .fetch_one(&mut *tx)
        .await?;
        let (known_users, known_coupons): (HashSet<i64>, HashSet<i64>) =
            (known_users.into_iter().collect(), known_coupons.into_iter().collect());
        let mut poison: Vec<(String, String)> = Vec::new();
        for d in items {
            if !known_users.contains(&d.item.user_id) {
                poison.push((d.id.clone(), format!("no user {}", d.item.user_id)));
            } else if !known_coupons.contains(&d.item.coupon_id) {
                poison.push((d.id.clone(), format!("no coupon {}", d.item.coupon_id)));
            }
        }
        if !poison.is_empty() {
            let reason = poison.iter().map(|(id, why)| format!("{id}: {why}")).collect::<Vec<_>>().join("; ");
            return Err(PersistError::Poison { ids: poison.into_iter().map(|(id, _)| id).collect(), reason });
        }
        let issued: Vec<IssuedCoupon> = items.iter().map(|d| d.item.clone()).collect();
        persist(tx, &issued).await?;
        Ok(())
    }
}
