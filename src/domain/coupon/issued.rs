//! IssuedCoupon: one coupon handed to one user, the proof of ownership (seed 004, 3.3).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Where an issued coupon is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IssuedStatus {
    /// Usable at checkout (until `expires_at`).
    Available,
    /// Spent on an order.
    Used,
    /// Past its validity without being used.
    Expired,
    /// Taken back by the campaign's managers (`POST /admin/coupons/{id}/revoke`).
    Revoked,
}

impl IssuedStatus {
    /// The spelling stored in the database and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            IssuedStatus::Available => "AVAILABLE",
            IssuedStatus::Used => "USED",
            IssuedStatus::Expired => "EXPIRED",
            IssuedStatus::Revoked => "REVOKED",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<IssuedStatus> {
        match s {
            "AVAILABLE" => Some(IssuedStatus::Available),
            "USED" => Some(IssuedStatus::Used),
            "EXPIRED" => Some(IssuedStatus::Expired),
            "REVOKED" => Some(IssuedStatus::Revoked),
            _ => None,
        }
    }

    /// The status a reader sees at `now`: an AVAILABLE coupon past its expiry is EXPIRED even
    /// before anything rewrites the stored row.
    pub fn at(self, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> IssuedStatus {
        if self == IssuedStatus::Available && expires_at <= now { IssuedStatus::Expired } else { self }
    }
}

/// A coupon handed to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCoupon {
    /// UUIDv7: time-ordered, made by the application.
    pub id: Uuid,
    /// The coupon it is an instance of.
    pub coupon_id: i64,
    /// Its owner.
    pub user_id: i64,
    /// AVAILABLE when issued.
    pub status: IssuedStatus,
    /// When it was handed out.
    pub issued_at: DateTime<Utc>,
    /// The coupon's fixed expiry, or `issued_at + valid_days`.
    pub expires_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn an_available_coupon_reads_as_expired_from_its_expiry_on() {
        let now = Utc::now();
        let s = IssuedStatus::Available;
        assert_eq!(s.at(now + TimeDelta::seconds(1), now), IssuedStatus::Available);
        assert_eq!(s.at(now, now), IssuedStatus::Expired);
        assert_eq!(IssuedStatus::Used.at(now - TimeDelta::days(1), now), IssuedStatus::Used);
    }

    #[test]
    fn statuses_round_trip_their_stored_spelling() {
        for s in [IssuedStatus::Available, IssuedStatus::Used, IssuedStatus::Expired, IssuedStatus::Revoked] {
            assert_eq!(IssuedStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(IssuedStatus::parse("UNUSED"), None);
    }
}
