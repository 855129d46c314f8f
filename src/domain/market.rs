//! Markets, their currencies and the two languages of the product.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A market the shop sells in; a user belongs to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Market {
    /// Korea: prices and balances in KRW, Korean text.
    #[serde(rename = "KR")]
    Kr,
    /// United States: prices and balances in USD cents, English text.
    #[serde(rename = "US")]
    Us,
}

impl Market {
    /// The code stored in the database and used in the API.
    pub fn code(self) -> &'static str {
        match self {
            Market::Kr => "KR",
            Market::Us => "US",
        }
    }

    /// Parses `KR` / `US` (case-insensitive).
    pub fn parse(s: &str) -> Option<Market> {
        match s.to_ascii_uppercase().as_str() {
            "KR" => Some(Market::Kr),
            "US" => Some(Market::Us),
            _ => None,
        }
    }

    /// The currency of prices and balances in this market.
    pub fn currency(self) -> Currency {
        match self {
            Market::Kr => Currency::Krw,
            Market::Us => Currency::Usd,
        }
    }

    /// The market implied by a language when nothing else says.
    pub fn for_lang(lang: Lang) -> Market {
        match lang {
            Lang::Ko => Market::Kr,
            Lang::En => Market::Us,
        }
    }
}

/// A currency; amounts are integers of its minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Currency {
    /// Korean won: no minor unit.
    #[serde(rename = "KRW")]
    Krw,
    /// US dollar: amounts are cents.
    #[serde(rename = "USD")]
    Usd,
}

impl Currency {
    /// ISO 4217 code.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Krw => "KRW",
            Currency::Usd => "USD",
        }
    }

    /// Parses an ISO 4217 code this shop uses.
    pub fn parse(s: &str) -> Option<Currency> {
        match s {
            "KRW" => Some(Currency::Krw),
            "USD" => Some(Currency::Usd),
            _ => None,
        }
    }
}

/// The language of messages and localised product text (`ko` or `en` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Korean, the default.
    #[default]
    Ko,
    /// English.
    En,
}

impl Lang {
    /// The stored and wire spelling: `ko` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ko => "ko",
            Lang::En => "en",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "ko" => Some(Lang::Ko),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language of a market, a new user's first language.
    pub fn of_market(market: Market) -> Lang {
        match market {
            Market::Kr => Lang::Ko,
            Market::Us => Lang::En,
        }
    }

    /// Picks the preferred supported language from an `Accept-Language` header value
    /// (highest `q` first, order of appearance on ties); Korean when none is supported.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it.find_map(|p| p.trim().strip_prefix("q=").and_then(|v| v.parse::<f32>().ok())).unwrap_or(1.0);
            let lang = match tag.split('-').next() {
                Some("ko") => Lang::Ko,
                Some("en") => Lang::En,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_prefers_the_highest_quality_supported_tag() {
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Lang::En);
        assert_eq!(Lang::from_accept_language("fr-FR, en;q=0.5, ko;q=0.8"), Lang::Ko);
        assert_eq!(Lang::from_accept_language("fr, de"), Lang::Ko);
        assert_eq!(Lang::from_accept_language(""), Lang::Ko);
        assert_eq!(Lang::from_accept_language("ko;q=0, en"), Lang::En);
    }
}
