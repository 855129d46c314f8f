//! The in-process cache of coupon terms that keeps Postgres (and a Redis read) off the issue hot
//! path. Terms (market, validity and the revision token) are read from the coupon's Redis `meta`
//! at hydration or first use; the issue script compares the revision, so an edit made through
//! another process is noticed on the next request and the entry is reloaded.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use crate::{
    domain::{
        Market,
        coupon::{Coupon, Validity},
    },
    store::redis::coupons::{self, IssuingTerms},
};

/// A coupon's issuing terms as this process last read them from Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedTerms {
    /// The only market whose users may hold it.
    pub market: Market,
    /// How long an issued coupon stays usable.
    pub validity: Validity,
    /// The `meta` revision these were read at (shared: every issue request takes a copy of the
    /// terms, and a count is cheaper than an allocation).
    pub rev: Arc<str>,
}

/// Coupon id -> the terms last read (one cache per process).
#[derive(Default)]
pub struct CouponTermsCache {
    terms: RwLock<HashMap<i64, CachedTerms>>,
}

impl CouponTermsCache {
    /// The cached terms of a coupon.
    pub fn get(&self, coupon_id: i64) -> Option<CachedTerms> {
        self.terms.read().expect("cache lock").get(&coupon_id).cloned()
    }

    /// Caches terms read from Redis and returns them.
    pub fn remember(&self, coupon_id: i64, t: &IssuingTerms) -> CachedTerms {
        let cached = CachedTerms { market: t.market, validity: t.validity, rev: Arc::from(t.rev.as_str()) };
        self.terms.write().expect("cache lock").insert(coupon_id, cached.clone());
        cached
    }

    /// Drops a coupon's cached terms (they changed).
    pub fn forget(&self, coupon_id: i64) {
        self.terms.write().expect("cache lock").remove(&coupon_id);
    }

    /// Drops every cached entry.
    pub fn forget_all(&self) {
        self.terms.write().expect("cache lock").clear();
    }
}

/// The terms to store in Redis for a coupon as Postgres has it (with a fresh revision).
pub fn terms_of(coupon: &Coupon) -> IssuingTerms {
    let t = &coupon.terms;
    coupons::terms_of(t.issue_starts_at, t.issue_ends_at, coupon.inventory.total(), t.market, t.validity)
}
