//! Reconciliation of the V2 coupon state: Redis (what was admitted) against Postgres (what was
//! persisted), per hydrated coupon. Used by `jupang reconcile` and by the `reconcile` worker.
//!
//! For each coupon: `admitted = total - remaining` (Redis), `users` (size of the Redis users
//! set), `persisted` (rows in Postgres), `pending` (stream entries of users not in Postgres yet),
//! and `drift = admitted - persisted - pending`: zero when every admission is either persisted or
//! on its way. A positive drift is admissions that will never reach Postgres (dead-lettered, or
//! lost with Redis's last second); a negative one means Redis under-counts (it could over-issue).
//!
//! Repairs ([`run`] with `repair`) only go the safe way: users persisted in Postgres but missing
//! from the Redis set are added back, and `remaining` is lowered to `total - |users|` if it is
//! above it. It is never raised, so a repair can only make issuing stricter. Redis terms that differ from
//! Postgres (an edit whose Redis half failed) are re-applied, exactly as the edit would have.

use std::collections::HashSet;

use sqlx::PgPool;

use super::terms_of;
use crate::store::{
    Fault,
    pg::{admitted_coupons, coupons},
    redis::{
        RedisStore,
        coupons::{self as scripts, AdjustReply},
    },
};

/// The comparison of one coupon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponReport {
    /// The coupon.
    pub coupon_id: i64,
    /// Planned quantity (Postgres).
    pub total: i64,
    /// Left to issue (Redis).
    pub remaining: i64,
    /// Admitted so far: Redis's total minus `remaining`.
    pub admitted: i64,
    /// Size of the Redis users set.
    pub users: i64,
    /// `user_coupons` rows (Postgres).
    pub persisted: i64,
    /// Stream entries whose user is not persisted yet.
    pub pending: i64,
    /// Persisted users missing from the Redis set.
    pub users_missing: i64,
    /// Whether Redis's window or total differs from Postgres.
    pub terms_differ: bool,
    /// `admitted - persisted - pending` (see the module doc).
    pub drift: i64,
}

/// What a repair changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repaired {
    /// Users added back to Redis sets.
    pub users_added: i64,
    /// Total by which `remaining` counters were lowered.
    pub remaining_lowered: i64,
    /// Coupons whose Redis terms were re-applied from Postgres.
    pub terms_synced: i64,
}

/// Compares every hydrated coupon; with `repair`, applies the safe repairs (and reports the
/// state before them).
pub async fn run(db: &PgPool, redis: &RedisStore, repair: bool) -> Result<(Vec<CouponReport>, Repaired), Fault> {
    let mut reports = Vec::new();
    let mut repaired = Repaired::default();
    for id in scripts::hydrated(redis).await? {
        let Some(stored) = coupons::find(db, id).await? else { continue };
        // Redis counters first, then the stream, then Postgres: an admission landing in between
        // shows as pending, and one persisted in between shows once (pending excludes persisted).
        let Some((redis_total, remaining)) = scripts::live(redis, &[id]).await?.get(&id).copied() else { continue };
        let set: HashSet<i64> = scripts::holders(redis, id).await?.into_iter().collect();
        let streamed: HashSet<i64> =
            scripts::stream_admissions(redis, id).await?.into_iter().map(|c| c.user_id).collect();
        let persisted: HashSet<i64> = admitted_coupons::holders(db, id).await?.into_iter().collect();
        let pending = streamed.difference(&persisted).count() as i64;
        let missing: Vec<i64> = persisted.difference(&set).copied().collect();
        let admitted = i64::from(redis_total) - i64::from(remaining);
        let wanted = terms_of(&stored.coupon);
        let have = scripts::terms(redis, id).await?;
        let terms_differ = have.as_ref().is_none_or(|h| {
            (h.starts_ms, h.ends_ms, h.total, h.market, h.validity)
                != (wanted.starts_ms, wanted.ends_ms, wanted.total, wanted.market, wanted.validity)
        });
        reports.push(CouponReport {
            coupon_id: id,
            total: i64::from(stored.coupon.inventory.total()),
            remaining: i64::from(remaining),
            admitted,
            users: set.len() as i64,
            persisted: persisted.len() as i64,
            pending,
            users_missing: missing.len() as i64,
            terms_differ,
            drift: admitted - persisted.len() as i64 - pending,
        });
        if repair {
            if terms_differ && let AdjustReply::Adjusted { .. } = scripts::adjust(redis, id, &wanted).await? {
                repaired.terms_synced += 1;
            }
            if let Some((added, lowered)) = scripts::repair(redis, id, &missing).await? {
                repaired.users_added += added;
                repaired.remaining_lowered += lowered;
            }
            // Held records of persisted users are no longer needed for read-your-writes.
            let done: Vec<i64> =
                scripts::held_users(redis, id).await?.into_iter().filter(|u| persisted.contains(u)).collect();
            scripts::forget_held(redis, id, &done).await?;
        }
    }
    Ok((reports, repaired))
}

/// The drift totals by `reconcile_drift` kind ([`crate::admission::RECONCILE_DRIFT`]):
/// `unaccounted` (admitted, neither persisted nor pending), `overcounted` (persisted or pending
/// beyond what Redis admitted), `users_missing` (persisted users absent from the Redis set),
/// `users_set` (|admitted - users set size|) and `terms` (coupons whose Redis terms differ from
/// Postgres).
pub fn drift_by_kind(reports: &[CouponReport]) -> [(&'static str, i64); 5] {
    let sum = |f: &dyn Fn(&CouponReport) -> i64| reports.iter().map(f).sum::<i64>();
    [
        ("unaccounted", sum(&|r| r.drift.max(0))),
        ("overcounted", sum(&|r| (-r.drift).max(0))),
        ("users_missing", sum(&|r| r.users_missing)),
        ("users_set", sum(&|r| (r.admitted - r.users).abs())),
        ("terms", sum(&|r| i64::from(r.terms_differ))),
    ]
}

/// A plain-text table of reports, one line per coupon.
pub fn table(reports: &[CouponReport]) -> String {
    let mut out = format!(
        "{:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}  {}\n",
        "coupon", "total", "remaining", "users", "persisted", "pending", "drift", "notes"
    );
    for r in reports {
        let mut notes = Vec::new();
        if r.users_missing > 0 {
            notes.push(format!("{} persisted users missing in Redis", r.users_missing));
        }
        if r.admitted != r.users {
            notes.push("admitted != users set".to_owned());
        }
        if r.terms_differ {
            notes.push("Redis terms differ from Postgres".to_owned());
        }
        out.push_str(&format!(
            "{:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}  {}\n",
            r.coupon_id,
            r.total,
            r.remaining,
            r.users,
            r.persisted,
            r.pending,
            r.drift,
            notes.join("; ")
        ));
    }
    out
}
