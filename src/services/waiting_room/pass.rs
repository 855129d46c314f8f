//! What the waiting room signs: ticket ids and passes, both HMAC-SHA256 under a key derived
//! from `JUPANG_JWT_SECRET` (every instance has it; no Redis round trip to check either).
//!
//! * A **ticket id** is `SEQ-MAC`: the arrival number and 96 bits of MAC over the event, the
//!   user and the number. Only its owner can poll it, and a poll needs no lookup to find it.
//! * A **pass** is `wr1.EVENT.USER.EPOCH.EXP_MS.MAC` (128 bits of MAC): bound to the event, the
//!   user and the room's pass epoch, valid until `EXP_MS` (epoch ms). A protected call checks
//!   the MAC, the user, the event, the epoch (cached per room, refreshed by change notices) and
//!   the expiry, all in process.
//!
//! The key is not the token key itself (`SHA-256("jupang waiting room" | secret)`), so neither a
//! pass nor a ticket id can stand in for a bearer token, nor a token for them.

use sha2::{Digest, Sha256};

use crate::domain::waiting_room::Event;

/// Why a pass was refused: the `reason` label of `waiting_room_pass_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `X-Waiting-Room-Pass`.
    Missing,
    /// Not a pass, or not one this deployment signed.
    Forged,
    /// Past its expiry.
    Expired,
    /// Issued to another user.
    OtherUser,
    /// Issued for another event.
    OtherEvent,
    /// Issued before the room's passes were revoked.
    Revoked,
}

impl Refusal {
    /// Every reason, for the metric's zero series.
    pub const ALL: [Refusal; 6] = [
        Refusal::Missing,
        Refusal::Forged,
        Refusal::Expired,
        Refusal::OtherUser,
        Refusal::OtherEvent,
        Refusal::Revoked,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Forged => "forged",
            Refusal::Expired => "expired",
            Refusal::OtherUser => "other_user",
            Refusal::OtherEvent => "other_event",
            Refusal::Revoked => "revoked",
        }
    }
}

/// A pass's signed content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassClaims {
    /// The event it opens.
    pub event: Event,
    /// Its holder.
    pub user_id: i64,
    /// The room's pass epoch when it was issued.
    pub epoch: u64,
    /// Expiry, epoch ms.
    pub expires_ms: i64,
}

/// Signs and checks ticket ids and passes.
#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

const BLOCK: usize = 64;

impl Signer {
    /// The signer of a deployment whose token secret is `secret`.
    pub fn new(secret: &[u8]) -> Signer {
        let mut h = Sha256::new();
        h.update(b"jupang waiting room|");
        h.update(secret);
        Signer { key: h.finalize().into() }
    }

    /// HMAC-SHA256 (RFC 2104) of `msg`.
    fn mac(&self, msg: &str) -> [u8; 32] {
        let mut ipad = [0x36u8; BLOCK];
        let mut opad = [0x5cu8; BLOCK];
        for (i, k) in self.key.iter().enumerate() {
            ipad[i] ^= k;
            opad[i] ^= k;
        }
        let inner = Sha256::new().chain_update(ipad).chain_update(msg.as_bytes()).finalize();
        Sha256::new().chain_update(opad).chain_update(inner).finalize().into()
    }

    fn mac_hex(&self, msg: &str, bytes: usize) -> String {
        self.mac(msg)[..bytes].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The ticket id of arrival `seq` of `user_id` in `event`'s room.
    pub fn ticket_id(&self, event: Event, user_id: i64, seq: u64) -> String {
        format!("{seq}-{}", self.mac_hex(&format!("ticket|{event}|{user_id}|{seq}"), 12))
    }

    /// The arrival number a ticket id names, if `user_id` owns it in `event`'s room.
    pub fn ticket_seq(&self, event: Event, user_id: i64, ticket_id: &str) -> Option<u64> {
        let (seq, _) = ticket_id.split_once('-')?;
        let seq: u64 = seq.parse().ok().filter(|s| *s > 0)?;
        same(self.ticket_id(event, user_id, seq).as_bytes(), ticket_id.as_bytes()).then_some(seq)
    }

    /// A signed pass.
    pub fn pass(&self, c: &PassClaims) -> String {
        let body = format!("wr1.{}.{}.{}.{}", c.event, c.user_id, c.epoch, c.expires_ms);
        let mac = self.mac_hex(&body, 16);
        format!("{body}.{mac}")
    }

    /// The claims of a pass this deployment signed.
    pub fn read_pass(&self, pass: &str) -> Option<PassClaims> {
        let (body, mac) = pass.rsplit_once('.')?;
        if !same(self.mac_hex(body, 16).as_bytes(), mac.as_bytes()) {
            return None;
        }
        let mut parts = body.split('.');
        if parts.next()? != "wr1" {
            return None;
        }
        let claims = PassClaims {
            event: Event::parse(parts.next()?)?,
            user_id: parts.next()?.parse().ok()?,
            epoch: parts.next()?.parse().ok()?,
            expires_ms: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(claims)
    }

    /// Checks a pass for a protected call of `user_id` on `event`, at `now_ms`, in `epoch`.
    pub fn check(
        &self,
        pass: Option<&str>,
        event: Event,
        user_id: i64,
        epoch: u64,
        now_ms: i64,
    ) -> Result<(), Refusal> {
        let claims = self.read_pass(pass.ok_or(Refusal::Missing)?).ok_or(Refusal::Forged)?;
        if claims.event != event {
            Err(Refusal::OtherEvent)
        } else if claims.user_id != user_id {
            Err(Refusal::OtherUser)
        } else if claims.epoch != epoch {
            Err(Refusal::Revoked)
        } else if claims.expires_ms <= now_ms {
            Err(Refusal::Expired)
        } else {
            Ok(())
        }
    }
}

/// Equality in time independent of where the inputs differ (MACs are compared with it).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::waiting_room::EventKind;

    const EVENT: Event = Event { kind: EventKind::Coupon, id: 5 };

    #[test]
    fn a_pass_is_checked_for_signature_event_user_epoch_and_expiry() {
        let s = Signer::new(b"secret-0123456789");
        let pass = s.pass(&PassClaims { event: EVENT, user_id: 7, epoch: 2, expires_ms: 1_000 });
        assert_eq!(s.check(Some(&pass), EVENT, 7, 2, 999), Ok(()));
        assert_eq!(s.check(Some(&pass), EVENT, 7, 2, 1_000), Err(Refusal::Expired));
        assert_eq!(s.check(Some(&pass), EVENT, 8, 2, 999), Err(Refusal::OtherUser));
        assert_eq!(s.check(Some(&pass), EVENT, 7, 3, 999), Err(Refusal::Revoked));
        let product = Event { kind: EventKind::Product, id: 5 };
        assert_eq!(s.check(Some(&pass), product, 7, 2, 999), Err(Refusal::OtherEvent));
        assert_eq!(s.check(None, EVENT, 7, 2, 999), Err(Refusal::Missing));
        let tampered = pass.replace(".1000.", ".9000.");
        assert_eq!(s.check(Some(&tampered), EVENT, 7, 2, 999), Err(Refusal::Forged));
        let other = Signer::new(b"another-secret-987654");
        assert_eq!(other.check(Some(&pass), EVENT, 7, 2, 999), Err(Refusal::Forged));
    }

    #[test]
    fn a_ticket_id_belongs_to_its_user_and_event() {
        let s = Signer::new(b"secret-0123456789");
        let id = s.ticket_id(EVENT, 7, 42);
        assert_eq!(s.ticket_seq(EVENT, 7, &id), Some(42));
        assert_eq!(s.ticket_seq(EVENT, 8, &id), None);
        assert_eq!(s.ticket_seq(EVENT, 7, &id.replacen("42", "41", 1)), None);
        assert_eq!(s.ticket_seq(EVENT, 7, "nonsense"), None);
    }
}
