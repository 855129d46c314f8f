//! Read-your-writes for coupons Redis admitted and the consumer has not persisted yet (see the
//! module docs of [`super`]).

use std::collections::HashSet;

use uuid::Uuid;

use super::CouponAdmission;
use crate::store::{Fault, pg::admitted_coupons, redis::coupons as scripts};

impl CouponAdmission {
    /// Read-your-writes for one coupon: if `user_coupon_id` is not in Postgres but Redis admitted
    /// it to `user_id`, persists it now (idempotently, like the consumer). Anything else (unknown
    /// id, someone else's coupon) is left for the caller's own checks to refuse.
    pub async fn ensure_persisted(&self, user_id: i64, user_coupon_id: Uuid) -> Result<(), Fault> {
        if admitted_coupons::missing(&self.db, &[user_coupon_id]).await?.is_empty() {
            return Ok(());
        }
        let held = scripts::held_by_user(&self.redis, user_id).await?;
        let Some(coupon) = held.into_iter().find(|c| c.id == user_coupon_id) else { return Ok(()) };
        let mut tx = self.db.begin().await?;
        let new = admitted_coupons::persist(&mut tx, std::slice::from_ref(&coupon)).await?;
        tx.commit().await?;
        if !new.is_empty() {
            tracing::debug!(coupon.id = coupon.coupon_id, user.id = user_id, "coupon persisted ahead of the consumer");
        }
        Ok(())
    }

    /// For a revoke: of `user_coupon_ids`, those of `coupon_id` that Redis admitted but Postgres
    /// does not hold yet are persisted now inside `tx` (idempotently, like the consumer, whose
    /// later insert then changes nothing), so the revoke that follows in `tx` finds them.
    pub async fn persist_admitted(
        &self,
        tx: &mut sqlx::PgConnection,
        coupon_id: i64,
        user_coupon_ids: &[Uuid],
    ) -> Result<(), Fault> {
        let missing: HashSet<Uuid> = admitted_coupons::missing(&mut *tx, user_coupon_ids).await?.into_iter().collect();
        if missing.is_empty() {
            return Ok(());
        }
        let admitted = scripts::admissions(&self.redis, coupon_id).await?;
        let todo: Vec<_> = admitted.into_iter().filter(|c| missing.contains(&c.id)).collect();
        admitted_coupons::persist(tx, &todo).await?;
        Ok(())
    }

    /// Persist on read: every coupon Redis admitted to `user_id` that is not in Postgres yet is
    /// persisted now. Returns how many were.
    pub async fn persist_held(&self, user_id: i64) -> Result<usize, Fault> {
        let held = scripts::held_by_user(&self.redis, user_id).await?;
        if held.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = held.iter().map(|c| c.id).collect();
        let missing: HashSet<Uuid> = admitted_coupons::missing(&self.db, &ids).await?.into_iter().collect();
        let todo: Vec<_> = held.into_iter().filter(|c| missing.contains(&c.id)).collect();
        if todo.is_empty() {
            return Ok(0);
        }
        let mut tx = self.db.begin().await?;
        let new = admitted_coupons::persist(&mut tx, &todo).await?;
        tx.commit().await?;
        Ok(new.len())
    }
}
