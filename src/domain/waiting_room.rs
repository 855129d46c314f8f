//! The waiting room's vocabulary (api.md "Waiting room"): which sale an event is, where a ticket
//! stands in the line, the fair shuffle of early entrants, and the wait a ticket is told.
//!
//! The line lives in *position space*: tickets are numbered by arrival (`seq`, an atomic counter)
//! and admission only moves a serving counter (`admitted`: every position up to it is in). A
//! ticket's position is a pure function of its `seq` and two numbers fixed once at opening (how
//! many entered before it, `early`, and a random `seed`), so nothing per ticket is stored or
//! read to answer "where am I".

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What an event's room protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// `POST /coupons/{id}/issue`.
    Coupon,
    /// `POST /orders` naming one of the product's options.
    Product,
}

impl EventKind {
    /// The wire name (`coupon`, `product`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Coupon => "coupon",
            EventKind::Product => "product",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<EventKind> {
        match s {
            "coupon" => Some(EventKind::Coupon),
            "product" => Some(EventKind::Product),
            _ => None,
        }
    }
}

/// One event: a coupon or a product, whose sale may have a waiting room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event {
    /// Coupon or product.
    pub kind: EventKind,
    /// The coupon's or product's id.
    pub id: i64,
}

impl fmt::Display for Event {
    /// `coupon:5`: the metric label and the key's hash tag.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.id)
    }
}

impl Event {
    /// Parses `coupon:5` (the form [`fmt::Display`] writes).
    pub fn parse(s: &str) -> Option<Event> {
        let (kind, id) = s.split_once(':')?;
        Some(Event { kind: EventKind::parse(kind)?, id: id.parse().ok().filter(|id| *id > 0)? })
    }
}

/// The form of a ticket id: its arrival number (1 or more, decimal), `-`, and 24 lowercase hex
/// digits of signature. Anything else names no ticket and is refused as malformed.
pub const TICKET_ID_PATTERN: &str = "^[1-9][0-9]{0,19}-[0-9a-f]{24}$";
/// The longest ticket id ([`TICKET_ID_PATTERN`]'s longest match).
pub const MAX_TICKET_ID: usize = 45;

/// Whether `id` has the form [`TICKET_ID_PATTERN`] states.
pub fn is_ticket_id(id: &str) -> bool {
    let Some((seq, mac)) = id.split_once('-') else { return false };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    (1..=20).contains(&seq.len())
        && digits(seq)
        && !seq.starts_with('0')
        && mac.len() == 24
        && mac.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TicketStatus {
    /// In the line (or the room has not opened yet).
    Waiting,
    /// Admitted: the ticket carries a pass.
    Admitted,
    /// Admitted once; its pass has expired (or was revoked).
    Expired,
}

/// A waiting-room ticket, as entering and polling answer it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Ticket {
    /// Opaque and signed; poll it at `GET .../tickets/{ticket_id}`.
    pub ticket_id: String,
    /// WAITING, ADMITTED or EXPIRED.
    pub status: TicketStatus,
    /// Place in the line from 1; `null` until the room opens (early entrants are shuffled then).
    pub position: Option<u64>,
    /// Positions before it not admitted yet (`null` before opening).
    pub people_ahead: Option<u64>,
    /// Estimated seconds to admission, from the measured admission rate (0 once admitted).
    pub estimated_wait_secs: u64,
    /// Poll again after this many milliseconds.
    pub poll_after_ms: u64,
    /// ADMITTED: the pass for `X-Waiting-Room-Pass`.
    pub pass: Option<String>,
    /// ADMITTED: when the pass expires.
    pub pass_expires_at: Option<DateTime<Utc>>,
}

/// Where a ticket stands, from its arrival number and the room's opening.
///
/// * Before opening (`early` is `None`) nobody has a position yet: early entrants are shuffled
///   when the room opens.
/// * `seq <= early`: one of the early entrants, at a pseudo-random position among `1..=early`
///   chosen by `seed` (a bijection: every early position is taken exactly once).
/// * `seq > early`: arrived after opening, so its position is its arrival.
pub fn position(seq: u64, early: Option<u64>, seed: u64) -> Option<u64> {
    let early = early?;
    if seq == 0 || seq > early {
        return Some(seq);
    }
    Some(shuffled(seq - 1, early, seed) + 1)
}

/// A keyed permutation of `0..n` (`n >= 1`): a balanced Feistel network over the smallest
/// power-of-four domain holding `n`, with cycle walking back into `0..n`. It is what lets the
/// opening shuffle be one atomic write of a seed, O(1) however many entered early, and each
/// early ticket's position be computed without a lookup. Cycle walking takes fewer than four
/// rounds of the network on average (the domain is less than 4n).
fn shuffled(x: u64, n: u64, seed: u64) -> u64 {
    let mut half_bits = 1;
    while (1u64 << (2 * half_bits)) < n {
        half_bits += 1;
    }
    let mask = (1u64 << half_bits) - 1;
    let mut v = x;
    loop {
        let (mut left, mut right) = (v >> half_bits, v & mask);
        for round in 0..6u64 {
            let f = mix(seed ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ right) & mask;
            (left, right) = (right, left ^ f);
        }
        v = (left << half_bits) | right;
        if v < n {
            return v;
        }
    }
}

/// SplitMix64's finaliser: a cheap, well-spread round function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Shortest interval a ticket is told to poll at (ms): the front of the line learns of its
/// admission within this, well inside the shortest pass lifetime (1 s).
pub const MIN_POLL_MS: u64 = 250;
/// Longest interval a ticket is told to poll at (ms): the back of a long line still shows a
/// moving estimate.
pub const MAX_POLL_MS: u64 = 30_000;

/// Milliseconds until `people_ahead + 1` more admissions, at the measured admission rate
/// (`measured_milli`: admissions per 1000 s, i.e. per second x 1000) when there is one,
/// otherwise at the configured `admit_per_second`.
pub fn estimated_wait_ms(people_ahead: u64, measured_milli: u64, admit_per_second: u64) -> u64 {
    let per_kilosecond = if measured_milli > 0 { measured_milli } else { admit_per_second.max(1) * 1000 };
    ((people_ahead + 1) * 1_000_000).div_ceil(per_kilosecond)
}

/// [`estimated_wait_ms`] in whole seconds, rounded up (what a ticket is told).
pub fn estimated_wait_secs(people_ahead: u64, measured_milli: u64, admit_per_second: u64) -> u64 {
    estimated_wait_ms(people_ahead, measured_milli, admit_per_second).div_ceil(1000)
}

/// When to poll next (ms): half the estimated wait, within [`MIN_POLL_MS`]..[`MAX_POLL_MS`].
/// Someone `d` places back at admission rate `R` polls about `2R/d` times a second, so the whole
/// line polls about `2R ln(N)` times a second (plus `N / 30 s` for a very long one): the load
/// follows the admission rate the operator chose, not the size of the crowd or its impatience.
pub fn poll_after_ms(estimated_wait_ms: u64) -> u64 {
    (estimated_wait_ms / 2).clamp(MIN_POLL_MS, MAX_POLL_MS)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn a_ticket_id_is_a_positive_number_a_dash_and_24_hex_digits() {
        let mac = "0123456789abcdef01234567";
        for ok in [format!("1-{mac}"), format!("99999999999999999999-{mac}")] {
            assert!(is_ticket_id(&ok), "{ok}");
            assert!(ok.len() <= MAX_TICKET_ID);
        }
        for bad in [
            format!("0-{mac}"),
            format!("01-{mac}"),
            format!("123456789012345678901-{mac}"),
            format!("1-{}", mac.to_uppercase()),
            format!("1-{mac}0"),
            format!("1-{}", &mac[1..]),
            format!("-{mac}"),
            format!("1{mac}"),
            format!("1-{mac}\n"),
            format!("\u{661}-{mac}"),
        ] {
            assert!(!is_ticket_id(&bad), "{bad}");
        }
    }

    #[test]
    fn early_positions_are_a_permutation_and_late_ones_follow_arrival() {
        for n in [1u64, 2, 3, 7, 64, 1000, 4097] {
            let got: HashSet<u64> = (1..=n).map(|s| position(s, Some(n), 42).unwrap()).collect();
            assert_eq!(got, (1..=n).collect::<HashSet<_>>(), "n = {n}");
        }
        assert_eq!(position(1001, Some(1000), 42), Some(1001));
        assert_eq!(position(5, None, 42), None);
    }

    #[test]
    fn the_shuffle_depends_on_the_seed_and_moves_most_entrants() {
        let a: Vec<u64> = (1..=1000).map(|s| position(s, Some(1000), 1).unwrap()).collect();
        let b: Vec<u64> = (1..=1000).map(|s| position(s, Some(1000), 2).unwrap()).collect();
        assert_ne!(a, b);
        let fixed = a.iter().enumerate().filter(|(i, p)| **p == *i as u64 + 1).count();
        assert!(fixed < 20, "{fixed} of 1000 kept their arrival position");
    }

    #[test]
    fn the_wait_follows_the_measured_rate_and_the_poll_interval_is_bounded() {
        assert_eq!(estimated_wait_secs(999, 0, 100), 10);
        assert_eq!(estimated_wait_secs(999, 50_000, 100), 20);
        assert_eq!(poll_after_ms(0), MIN_POLL_MS);
        assert_eq!(poll_after_ms(10_000), 5_000);
        assert_eq!(poll_after_ms(10_000_000), MAX_POLL_MS);
        assert_eq!(Event::parse("coupon:5"), Some(Event { kind: EventKind::Coupon, id: 5 }));
        assert_eq!(Event::parse("product:0"), None);
    }
}
