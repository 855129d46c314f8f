//! Coupon campaigns for their managers, part two: the list with each campaign's counts, and
//! revoking issued coupons.
//!
//! A revoke turns AVAILABLE user coupons into REVOKED in one transaction with its audit entry;
//! USED ones are left alone and reported. It locks each user coupon's row as a payment spending
//! it does, so of a revoke and a payment racing for one coupon exactly one wins: a payment after
//! the revoke is refused `COUPON_REVOKED`, a revoke after the payment reports the coupon USED.
//! Under V2 a coupon Redis admitted but the consumer has not persisted yet is persisted first,
//! in the same transaction, so the revoke holds for it too (the consumer's later insert changes
//! nothing).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

pub use crate::store::pg::revocations::{CampaignRow, WindowStatus};
use crate::{
    auth::Caller,
    config::IssueStrategy,
    domain::{Market, PageRequest},
    services::{
        AppState,
        admin::coupons::CampaignError,
        audit::{self, Change},
        coupons::live_counts,
    },
    store::pg::{coupons, revocations},
};

/// A campaign with its counts, issued counting V2 admissions at once.
#[derive(Debug, Clone)]
pub struct CampaignStats {
    /// The campaign and its Postgres counts.
    pub row: CampaignRow,
    /// Acknowledged issues.
    pub issued: i64,
    /// Still to be issued.
    pub remaining: i64,
}

/// A page of campaigns, newest first, with how many match.
pub async fn list(
    state: &AppState,
    market: Option<Market>,
    status: Option<WindowStatus>,
    page: PageRequest,
) -> Result<(Vec<CampaignStats>, i64), CampaignError> {
    let (rows, total) = revocations::list(&state.db, market, status, Utc::now(), page.size, page.offset()).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.stored.coupon.id).collect();
    let live = live_counts(state, &ids).await;
    let items = rows
        .into_iter()
        .map(|row| {
            let inventory = row.stored.coupon.inventory;
            let (issued, remaining) = match live.get(&row.stored.coupon.id) {
                Some((total, remaining)) => (i64::from(*total) - i64::from(*remaining), i64::from(*remaining)),
                None => (i64::from(inventory.used()), i64::from(inventory.remaining())),
            };
            CampaignStats { row, issued, remaining }
        })
        .collect();
    Ok((items, total))
}

/// What a revoke did to each user coupon named.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// Now REVOKED.
    pub revoked: Vec<Uuid>,
    /// USED: left alone.
    pub used: Vec<Uuid>,
    /// Neither AVAILABLE nor USED (already REVOKED, EXPIRED): left alone, with their status.
    pub unchanged: Vec<(Uuid, String)>,
    /// Not coupons of this campaign.
    pub not_found: Vec<Uuid>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Revokes the AVAILABLE coupons among `ids` of campaign `coupon_id` for `actor`, audited with
/// `reason`.
pub async fn revoke(
    state: &AppState,
    actor: &Caller,
    coupon_id: i64,
    ids: &[Uuid],
    reason: &str,
) -> Result<Revoked, CampaignError> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut tx = state.db.begin().await?;
    coupons::find(&mut *tx, coupon_id).await?.ok_or(CampaignError::NotFound)?;
    if state.config.issue_strategy == IssueStrategy::RedisLua {
        state.coupon_admission.persist_admitted(&mut tx, coupon_id, &ids).await?;
    }
    let before: HashMap<Uuid, String> =
        revocations::lock_statuses(&mut tx, coupon_id, &ids).await?.into_iter().collect();
    let now = Utc::now();
    let revoked = revocations::revoke(&mut tx, &ids, now).await?;
    let mut out =
        Revoked { revoked: Vec::new(), used: Vec::new(), unchanged: Vec::new(), not_found: Vec::new(), at: now };
    let mut after = before.clone();
    for id in &ids {
        match before.get(id).map(String::as_str) {
            None => out.not_found.push(*id),
            Some(_) if revoked.contains(id) => {
                after.insert(*id, "REVOKED".to_owned());
                out.revoked.push(*id);
            }
            Some("USED") => out.used.push(*id),
            Some(status) => out.unchanged.push((*id, status.to_owned())),
        }
    }
    let change = Change {
        action: "coupon.revoke",
        entity_type: audit::COUPON,
        entity_id: coupon_id.to_string(),
        before: Some(json!({ "user_coupons": before })),
        after: Some(json!({ "user_coupons": after, "not_found": out.not_found })),
        reason: Some(reason),
    };
    audit::record(&mut tx, actor, change).await?;
    tx.commit().await?;
    tracing::info!(
        coupon.id = coupon_id,
        revoked = out.revoked.len(),
        used = out.used.len(),
        actor.user_id = actor.user_id,
        "user coupons revoked"
    );
    Ok(out)
}
