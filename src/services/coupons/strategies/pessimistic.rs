//! `db-pessimistic`: the coupon row is locked with `SELECT ... FOR UPDATE` for the whole
//! transaction, so issuers of one coupon run one at a time and every check made under the lock
//! stays true until commit (seed 001 US-013's sequence).

use sqlx::{Connection, PgPool};

use super::{BEGIN_ISSUE, IssueFailure, Issued, Issuer, decide, now, precheck, record};
use crate::{config::IssueStrategy, domain::coupon::IssueError, store::pg::user_coupons};

/// Issues under a row lock on the coupon.
pub struct Pessimistic<'a> {
    db: &'a PgPool,
}

impl<'a> Pessimistic<'a> {
    /// An issuer over a pool.
    pub fn new(db: &'a PgPool) -> Self {
        Pessimistic { db }
    }
}

impl Issuer for Pessimistic<'_> {
    fn strategy(&self) -> IssueStrategy {
        IssueStrategy::DbPessimistic
    }

    async fn issue(&self, coupon_id: i64, user_id: i64) -> Result<Issued, IssueFailure> {
        let mut conn = self.db.acquire().await?;
        precheck(&mut conn, coupon_id, user_id).await?;
        let mut tx = conn.begin_with(BEGIN_ISSUE).await?;
        // From here until commit, every other issuer of this coupon waits on the row lock.
        let snapshot = user_coupons::snapshot_for_update(&mut tx, coupon_id, user_id).await?;
        let (_, after, issued) = decide(snapshot, user_id, now())?;
        record(&mut tx, &issued).await?;
        if !user_coupons::count_issue(&mut tx, coupon_id).await? {
            // Cannot happen under the row lock; the SQL condition is the net if it ever did.
            return Err(IssueError::SoldOut.into());
        }
        tx.commit().await?;
        Ok(Issued { coupon: issued, remaining: after.inventory.remaining() })
    }
}
