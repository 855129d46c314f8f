//! Prices in another currency (issue 15): the rate table's pairs and rates, where a price came
//! from, and the conversion rule.
//!
//! The production conversion is the view `option_market_prices` (migration 0005), so listing,
//! sorting, cart and orders read one figure; [`convert`] states the same rule in Rust (exact
//! integer arithmetic on the rate's decimal digits) and the tests hold the two equal.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Currency;

/// The one pair the shop converts with: `USD/KRW` = how many KRW one USD costs.
pub const USD_KRW: &str = "USD/KRW";

/// What a rate must look like: a positive decimal, at most 12 integer digits and 8 decimals
/// (15 for rates below 1, whose leading zeros do not count).
pub const RATE_PATTERN: &str = r"^([1-9][0-9]{0,11}(\x2e[0-9]{1,8})?|0\x2e0{0,7}[1-9][0-9]{0,7})$";

/// Where a price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum PriceSource {
    /// The option's own price in that currency.
    #[default]
    List,
    /// Converted from its price in the other currency at the rate in force.
    Fx,
}

impl PriceSource {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PriceSource::List => "list",
            PriceSource::Fx => "fx",
        }
    }
}

impl PriceSource {
    /// A nullable stored spelling: a missing or unknown one is a list price.
    pub fn from_column(s: Option<String>) -> PriceSource {
        s.and_then(|s| PriceSource::try_from(s).ok()).unwrap_or_default()
    }
}

impl TryFrom<String> for PriceSource {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "list" => Ok(PriceSource::List),
            "fx" => Ok(PriceSource::Fx),
            other => Err(format!("unknown price source {other:?}")),
        }
    }
}

/// A positive exchange rate, exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(Decimal);

impl Rate {
    /// Parses a rate written as [`RATE_PATTERN`] says; None otherwise (zero, negative, exponent,
    /// too many digits).
    pub fn parse(s: &str) -> Option<Rate> {
        let (int, frac) = match s.split_once('.') {
            Some((_, "")) => return None,
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        let shape_ok = digits(int)
            && (frac.is_empty() || digits(frac))
            && if int == "0" {
                // `0.` then at most 7 zeros, then 1-8 digits starting with a non-zero one.
                let zeros = frac.len() - frac.trim_start_matches('0').len();
                zeros <= 7 && (1..=8).contains(&(frac.len() - zeros))
            } else {
                !int.starts_with('0') && int.len() <= 12 && frac.len() <= 8
            };
        if !shape_ok {
            return None;
        }
        Decimal::from_str(s).ok().filter(|d| *d > Decimal::ZERO).map(Rate)
    }

    /// The exact decimal.
    pub fn decimal(self) -> Decimal {
        self.0
    }

    /// The rate as written back: no trailing zeros beyond what the value needs.
    pub fn to_text(self) -> String {
        self.0.normalize().to_string()
    }
}

/// `amount` (minor units of `from`) in minor units of `to` at `usd_krw` (KRW per USD), rounded
/// half-up to the minor unit; `amount` itself when the currencies are the same. Exact: the rate
/// is `m / 10^s` and everything is integer arithmetic on i128 (None only on overflow).
pub fn convert(amount: i64, from: Currency, to: Currency, usd_krw: Rate) -> Option<i64> {
    let m = usd_krw.0.mantissa();
    let scale = 10i128.checked_pow(usd_krw.0.scale())?;
    let a = i128::from(amount);
    // p / q is the exact converted amount.
    let (p, q) = match (from, to) {
        (f, t) if f == t => return Some(amount),
        // cents = krw * 100 / rate = krw * 100 * 10^s / m
        (Currency::Krw, Currency::Usd) => (a.checked_mul(100)?.checked_mul(scale)?, m),
        // krw = cents * rate / 100 = cents * m / (100 * 10^s)
        (Currency::Usd, Currency::Krw) => (a.checked_mul(m)?, scale.checked_mul(100)?),
        _ => unreachable!("same currencies returned above"),
    };
    // Half-up for non-negative p/q: floor((2p + q) / 2q).
    let rounded = (p.checked_mul(2)?.checked_add(q)?).div_euclid(q.checked_mul(2)?);
    i64::try_from(rounded).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rust_decimal::RoundingStrategy;

    use super::*;

    fn rate(s: &str) -> Rate {
        Rate::parse(s).unwrap()
    }

    #[test]
    fn rates_are_positive_decimals_of_bounded_size() {
        for ok in ["1385.20", "1", "0.5", "0.00000001", "999999999999.99999999", "0.000000012345678"] {
            assert!(Rate::parse(ok).is_some(), "{ok}");
        }
        for bad in ["0", "0.0", "-1", "1e3", "01", "1.", ".5", "", " 1", "1.123456789", "1000000000000", "NaN"] {
            assert!(Rate::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(rate("1385.20").to_text(), "1385.2");
    }

    #[test]
    fn half_a_minor_unit_rounds_up_and_less_rounds_down() {
        // 4 KRW at 800 KRW/USD is exactly 0.5 cent.
        assert_eq!(convert(4, Currency::Krw, Currency::Usd, rate("800")), Some(1));
        assert_eq!(convert(3, Currency::Krw, Currency::Usd, rate("800")), Some(0));
        // 1 cent at 1250 KRW/USD is exactly 12.5 won.
        assert_eq!(convert(1, Currency::Usd, Currency::Krw, rate("1250")), Some(13));
        assert_eq!(convert(19_900, Currency::Krw, Currency::Usd, rate("1385.20")), Some(1437));
        assert_eq!(convert(1_999, Currency::Usd, Currency::Krw, rate("1385.20")), Some(27_690));
        assert_eq!(convert(7, Currency::Usd, Currency::Usd, rate("1385.20")), Some(7));
    }

    proptest! {
        #[test]
        fn convert_matches_decimal_arithmetic_rounded_half_up(
            amount in 0i64..1_000_000_000,
            mantissa in 1i64..100_000_000_000,
            scale in 0u32..8,
        ) {
            let r = Rate(Decimal::new(mantissa, scale));
            let half_up = |d: Decimal| d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
            let usd = half_up(Decimal::from(amount) * Decimal::from(100) / r.0);
            let krw = half_up(Decimal::from(amount) * r.0 / Decimal::from(100));
            prop_assert_eq!(convert(amount, Currency::Krw, Currency::Usd, r).map(Decimal::from), Some(usd));
            prop_assert_eq!(convert(amount, Currency::Usd, Currency::Krw, r).map(Decimal::from), Some(krw));
        }
    }
}
