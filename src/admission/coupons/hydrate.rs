//! Hydration of a coupon's Redis state from Postgres, and the terms lookup that triggers it (see
//! the module docs of [`super`]).

use std::collections::HashSet;

use chrono::Utc;

use super::{CachedTerms, CouponAdmission, terms_of};
use crate::store::{
    Fault,
    pg::{admitted_coupons, coupons},
    redis::{coupons as scripts, notices::Topic},
};

impl CouponAdmission {
    /// Hydrates a coupon's Redis state from Postgres unless it is hydrated already; returns the
    /// terms now in Redis, or `None` when the coupon does not exist.
    pub async fn hydrate(&self, coupon_id: i64) -> Result<Option<CachedTerms>, Fault> {
        let (db, redis) = (&self.db, &self.redis);
        let Some(stored) = coupons::find(db, coupon_id).await? else { return Ok(None) };
        // The stream before the rows: an entry persisted and trimmed in between is in the rows.
        let entries = scripts::stream_admissions(redis, coupon_id).await?;
        let persisted: HashSet<i64> = admitted_coupons::holders(db, coupon_id).await?.into_iter().collect();
        let mut holders = persisted.clone();
        let mut pending = Vec::new();
        for c in entries {
            if holders.insert(c.user_id) {
                pending.push(c);
            }
        }
        let holders: Vec<i64> = holders.into_iter().collect();
        let published =
            scripts::publish_hydration(redis, coupon_id, &terms_of(&stored.coupon), &holders, &pending).await?;
        if published {
            tracing::info!(
                coupon.id = coupon_id,
                holders = holders.len(),
                pending = pending.len(),
                "coupon hydrated into Redis"
            );
            // A new stream: the consumers read it at once rather than after their blocked read.
            if let Err(e) = self.notices.publish(Topic::Coupon, Some(coupon_id)).await {
                tracing::warn!(coupon.id = coupon_id, error.cause = %e, "hydration notice not published");
            }
        }
        let terms = scripts::terms(redis, coupon_id)
            .await?
            .ok_or_else(|| Fault::invariant(format!("coupon {coupon_id}: meta missing right after hydration")))?;
        Ok(Some(self.terms.remember(coupon_id, &terms)))
    }

    /// A coupon's issuing terms: from the cache, else from Redis, else by hydrating it. `None`
    /// when the coupon does not exist.
    pub async fn terms_for(&self, coupon_id: i64) -> Result<Option<CachedTerms>, Fault> {
        if let Some(t) = self.terms.get(coupon_id) {
            return Ok(Some(t));
        }
        if let Some(t) = scripts::terms(&self.redis, coupon_id).await? {
            return Ok(Some(self.terms.remember(coupon_id, &t)));
        }
        self.hydrate(coupon_id).await
    }

    /// Start-up: scripts loaded and every coupon whose window has not closed hydrated (or, if it
    /// already is, its terms cached).
    pub async fn start(&self) -> Result<(), Fault> {
        scripts::load_scripts(&self.redis).await?;
        let ids = coupons::not_closed(&self.db, Utc::now()).await?;
        for id in &ids {
            self.terms_for(*id).await?;
        }
        tracing::info!(coupons.hydrated = ids.len(), "coupon issuing (redis-lua) ready");
        Ok(())
    }
}
