//! The order admission streams (`{prefix}:{stock:<group>}:stream`, one per stock group): one
//! entry per order the reservation (`lua/reserve_stock.lua`, or `lua/commit_order.lua` for an
//! order across groups) admitted, in the stream of the order's home group. The entry (and the order's Redis hash, which holds
//! the same fields plus `state`) carries everything needed to persist the order in Postgres
//! without asking the catalog again: prices and names are captured at admission.
//!
//! The fields are defined here, once: [`FIELDS`], with their values in the same order from
//! [`Admission::script_args`] (the script's `ARGV[1..8]`, written under these names).

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use redis::RedisResult;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{StreamEntry, StreamSource};
use crate::domain::{Currency, Market, fx::PriceSource};

/// One line of an admitted order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmittedLine {
    /// The option (SKU).
    pub option_id: i64,
    /// Its product.
    pub product_id: i64,
    /// Units.
    pub quantity: i64,
    /// Price per unit in the order's currency, captured at admission.
    pub unit_price: i64,
    /// Product name in the market's language, captured at admission.
    pub product_name: String,
    /// Option name, captured at admission.
    pub option_name: String,
    /// Where unit_price came from (absent in entries written before FX prices: a list price).
    #[serde(default)]
    pub price_source: PriceSource,
}

impl AdmittedLine {
    /// unit_price x quantity.
    pub fn subtotal(&self) -> i64 {
        self.unit_price.saturating_mul(self.quantity)
    }
}

/// An admitted order: the fields of its stream entry (and of its Redis hash, plus `state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// UUIDv7 chosen by the application.
    pub order_id: Uuid,
    /// The buyer.
    pub user_id: i64,
    /// The buyer's market.
    pub market: Market,
    /// Its currency.
    pub currency: Currency,
    /// Sum of the lines.
    pub total: i64,
    /// Admission time (millisecond precision: what the entry carries).
    pub created_at: DateTime<Utc>,
    /// When the reservation lapses unless paid.
    pub expires_at: DateTime<Utc>,
    /// Lines in option id order, one per option.
    pub lines: Vec<AdmittedLine>,
}

/// Field names shared by the stream entry and the hash, in the order of [`Admission::script_args`]
/// (`lua/reserve_stock.lua` writes them under these names; the hash adds `state`).
pub const FIELDS: [&str; 8] =
    ["order_id", "user_id", "market", "currency", "total", "created_at", "expires_at", "lines"];

impl Admission {
    /// The stream/hash field values in the order of the reservation script's ARGV[1..8].
    pub fn script_args(&self) -> [String; 8] {
        [
            self.order_id.to_string(),
            self.user_id.to_string(),
            self.market.code().to_owned(),
            self.currency.code().to_owned(),
            self.total.to_string(),
            self.created_at.timestamp_millis().to_string(),
            self.expires_at.timestamp_millis().to_string(),
            serde_json::to_string(&self.lines).expect("lines serialise"),
        ]
    }

    /// Parses the fields of a stream entry or an order hash; the error names what is wrong.
    pub fn from_fields(fields: &HashMap<String, String>) -> Result<Admission, String> {
        let get = |name: &str| fields.get(name).ok_or_else(|| format!("missing field `{name}`"));
        let int = |name: &str| get(name)?.parse::<i64>().map_err(|_| format!("field `{name}` is not an integer"));
        let time = |name: &str| {
            Utc.timestamp_millis_opt(int(name)?).single().ok_or_else(|| format!("field `{name}` is not a time"))
        };
        let lines: Vec<AdmittedLine> =
            serde_json::from_str(get("lines")?).map_err(|e| format!("field `lines` is malformed: {e}"))?;
        if lines.is_empty() || lines.iter().any(|l| l.quantity < 1 || l.unit_price < 0) {
            return Err("field `lines` holds no line or a bad quantity or price".into());
        }
        Ok(Admission {
            order_id: get("order_id")?.parse().map_err(|_| "field `order_id` is not a UUID".to_owned())?,
            user_id: int("user_id")?,
            market: Market::parse(get("market")?).ok_or("field `market` is unknown")?,
            currency: Currency::parse(get("currency")?).ok_or("field `currency` is unknown")?,
            total: int("total")?,
            created_at: time("created_at")?,
            expires_at: time("expires_at")?,
            lines,
        })
    }

    /// (option id, quantity) of each line.
    pub fn quantities(&self) -> Vec<(i64, i64)> {
        self.lines.iter().map(|l| (l.option_id, l.quantity)).collect()
    }
}

/// The name of the order admission stream, as a sink: logs and metric labels.
pub const NAME: &str = "orders";

/// The order admission streams of a deployment (one per stock group, a fixed list).
#[derive(Debug, Clone)]
pub struct OrderStream {
    streams: Vec<String>,
}

impl OrderStream {
    /// The streams named `streams` ([`crate::store::redis::stock::StockKeys::streams`]).
    pub fn new(streams: Vec<String>) -> OrderStream {
        OrderStream { streams }
    }
}

impl StreamSource for OrderStream {
    type Item = Admission;

    fn name(&self) -> &'static str {
        NAME
    }

    async fn streams(&self) -> RedisResult<Vec<String>> {
        Ok(self.streams.clone())
    }

    fn decode(&self, entry: &StreamEntry) -> Result<Admission, String> {
        Admission::from_fields(&entry.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Admission {
        Admission {
            order_id: Uuid::now_v7(),
            user_id: 7,
            market: Market::Us,
            currency: Currency::Usd,
            total: 5_000,
            created_at: Utc.timestamp_millis_opt(1_700_000_000_123).unwrap(),
            expires_at: Utc.timestamp_millis_opt(1_700_000_600_123).unwrap(),
            lines: vec![AdmittedLine {
                option_id: 3,
                product_id: 1,
                quantity: 2,
                unit_price: 2_500,
                product_name: "Test \"product\"".into(),
                option_name: "옵션".into(),
                price_source: PriceSource::Fx,
            }],
        }
    }

    #[test]
    fn an_admission_survives_the_round_trip_through_its_fields() {
        let a = sample();
        let fields: HashMap<String, String> = FIELDS.iter().map(|f| f.to_string()).zip(a.script_args()).collect();
        assert_eq!(Admission::from_fields(&fields).unwrap(), a);
    }

    #[test]
    fn a_malformed_admission_names_the_bad_field() {
        let a = sample();
        let mut fields: HashMap<String, String> = FIELDS.iter().map(|f| f.to_string()).zip(a.script_args()).collect();
        fields.insert("total".into(), "lots".into());
        assert!(Admission::from_fields(&fields).unwrap_err().contains("total"));
        fields.remove("lines");
        assert!(Admission::from_fields(&fields).unwrap_err().contains("lines"));
    }
}
