//! What the V2 (`redis-lua`) issuer keeps around it: in-process caches that keep Postgres off
//! the hot path, hydration of a coupon's Redis state from Postgres, and read-your-writes for
//! admissions the consumer has not persisted yet.
//!
//! **Caches.** Users' markets come from the process's shared
//! [`crate::store::user_markets::UserMarkets`], loaded at start-up. Coupon terms (market, validity and the revision
//! token) are read from the coupon's Redis `meta` at hydration; the issue script compares the
//! revision, so an edit made through another process is noticed on the next request.
//!
//! **Hydration** (at creation, at start-up for every coupon not yet closed, and at first use):
//! the coupon's stream is read first, then its `user_coupons` rows, so an entry persisted and
//! trimmed in between is still seen (in Postgres). Holders = persisted users ∪ users of stream
//! entries; `remaining = total - |holders|`. The result is published only if no one published
//! first (`lua/hydrate_coupon.lua`), so two instances starting together count once.
//!
//! **Read-your-writes.** A payment (or a cart preview) naming a coupon that is not in Postgres
//! yet looks for it among the user's held records in Redis and persists it first, with the very
//! code the consumer uses ([`flash_coupons::persist`], idempotent). `GET /users/{id}/coupons`
//! persists the user's not-yet-persisted coupons the same way before reading ("persist on
//! read"), so paging and totals stay exact.

use std::{
    collections::{HashMap, HashSet},
    sync::RwLock,
};

use anyhow::Context;
use chrono::Utc;
use uuid::Uuid;

use crate::{
    domain::{
        Market,
        coupon::{Coupon, Validity},
    },
    state::AppState,
    store::{
        pg::{coupons, flash_coupons},
        redis::coupons::{self as flash, IssuingTerms},
    },
};

/// A coupon's issuing terms as this process last read them from Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedTerms {
    /// The only market whose users may hold it.
    pub market: Market,
    /// How long an issued coupon stays usable.
    pub validity: Validity,
    /// The `meta` revision these were read at.
    pub rev: String,
}

/// The in-process cache of the V2 issuer's coupon terms (one per application; users' markets
/// come from the shared [`crate::store::user_markets::UserMarkets`]).
#[derive(Default)]
pub struct FlashCache {
    terms: RwLock<HashMap<i64, CachedTerms>>,
}

impl FlashCache {
    /// Empty caches.
    pub fn new() -> FlashCache {
        FlashCache::default()
    }

    /// The cached terms of a coupon.
    pub fn terms(&self, coupon_id: i64) -> Option<CachedTerms> {
        self.terms.read().expect("cache lock").get(&coupon_id).cloned()
    }

    fn remember(&self, coupon_id: i64, t: &IssuingTerms) -> CachedTerms {
        let cached = CachedTerms { market: t.market, validity: t.validity, rev: t.rev.clone() };
        self.terms.write().expect("cache lock").insert(coupon_id, cached.clone());
        cached
    }

    /// Drops a coupon's cached terms (they changed).
    pub fn forget(&self, coupon_id: i64) {
        self.terms.write().expect("cache lock").remove(&coupon_id);
    }
}

/// The terms to store in Redis for a coupon as Postgres has it.
pub fn terms_of(coupon: &Coupon) -> IssuingTerms {
    let t = &coupon.terms;
    flash::terms_of(t.issue_starts_at, t.issue_ends_at, coupon.inventory.total(), t.market, t.validity)
}

/// Hydrates a coupon's Redis state from Postgres unless it is hydrated already; returns the
/// terms now in Redis, or `None` when the coupon does not exist.
pub async fn hydrate(state: &AppState, coupon_id: i64) -> anyhow::Result<Option<CachedTerms>> {
    let (db, redis) = (&state.db, &state.redis);
    let Some(stored) = coupons::find(db, coupon_id).await? else { return Ok(None) };
    // The stream before the rows: an entry persisted and trimmed in between is in the rows.
    let entries = flash::stream_admissions(redis, coupon_id).await?;
    let persisted: HashSet<i64> = flash_coupons::holders(db, coupon_id).await?.into_iter().collect();
    let mut holders = persisted.clone();
    let mut pending = Vec::new();
    for c in entries {
        if holders.insert(c.user_id) {
            pending.push(c);
        }
    }
    let holders: Vec<i64> = holders.into_iter().collect();
    let published = flash::publish_hydration(redis, coupon_id, &terms_of(&stored.coupon), &holders, &pending).await?;
    if published {
        tracing::info!(
            coupon.id = coupon_id,
            holders = holders.len(),
            pending = pending.len(),
            "coupon hydrated into Redis"
        );
    }
    let terms = flash::terms(redis, coupon_id).await?.context("coupon meta missing right after hydration")?;
    Ok(Some(state.coupon_cache.remember(coupon_id, &terms)))
}

/// A coupon's issuing terms: from the cache, else from Redis, else by hydrating it. `None` when
/// the coupon does not exist.
pub async fn terms_for(state: &AppState, coupon_id: i64) -> anyhow::Result<Option<CachedTerms>> {
    if let Some(t) = state.coupon_cache.terms(coupon_id) {
        return Ok(Some(t));
    }
    if let Some(t) = flash::terms(&state.redis, coupon_id).await? {
        return Ok(Some(state.coupon_cache.remember(coupon_id, &t)));
    }
    hydrate(state, coupon_id).await
}

/// Start-up of the V2 issuer: scripts loaded and every coupon whose window has
/// not closed hydrated (or, if it already is, its terms cached).
pub async fn start(state: &AppState) -> anyhow::Result<()> {
    flash::load_scripts(&state.redis).await.context("loading the coupon scripts into Redis")?;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM coupons WHERE issue_ends_at > $1 ORDER BY id")
        .bind(Utc::now())
        .fetch_all(&state.db)
        .await?;
    for id in &ids {
        terms_for(state, *id).await.with_context(|| format!("hydrating coupon {id}"))?;
    }
    tracing::info!(coupons.hydrated = ids.len(), "coupon issuing (redis-lua) ready");
    Ok(())
}

/// Read-your-writes for one coupon: if `user_coupon_id` is not in Postgres but Redis admitted it
/// to `user_id`, persists it now (idempotently, like the consumer). Anything else (unknown id,
/// someone else's coupon) is left for the caller's own checks to refuse.
pub async fn ensure_persisted(state: &AppState, user_id: i64, user_coupon_id: Uuid) -> anyhow::Result<()> {
    if flash_coupons::missing(&state.db, &[user_coupon_id]).await?.is_empty() {
        return Ok(());
    }
    let held = flash::held_by_user(&state.redis, user_id).await?;
    let Some(coupon) = held.into_iter().find(|c| c.id == user_coupon_id) else { return Ok(()) };
    let mut tx = state.db.begin().await?;
    let new = flash_coupons::persist(&mut tx, std::slice::from_ref(&coupon)).await?;
    tx.commit().await?;
    if !new.is_empty() {
        tracing::debug!(coupon.id = coupon.coupon_id, user.id = user_id, "coupon persisted ahead of the consumer");
    }
    Ok(())
}

/// Persist on read: every coupon Redis admitted to `user_id` that is not in Postgres yet is
/// persisted now. Returns how many were.
pub async fn persist_held(state: &AppState, user_id: i64) -> anyhow::Result<usize> {
    let (db, redis) = (&state.db, &state.redis);
    let held = flash::held_by_user(redis, user_id).await?;
    if held.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = held.iter().map(|c| c.id).collect();
    let missing: HashSet<Uuid> = flash_coupons::missing(db, &ids).await?.into_iter().collect();
    let todo: Vec<_> = held.into_iter().filter(|c| missing.contains(&c.id)).collect();
    if todo.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin().await?;
    let new = flash_coupons::persist(&mut tx, &todo).await?;
    tx.commit().await?;
    Ok(new.len())
}
