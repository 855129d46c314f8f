//! Amounts in request bodies: minor units, or a `{amount, currency}` object. One type reads the
//! wire, enforces the bounds and publishes them, so the document cannot drift from the parser.

use std::borrow::Cow;

use serde::Deserialize;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{KnownFormat, ObjectBuilder, OneOfBuilder, RefOr, Schema, SchemaFormat, Type},
};

use super::objects_only::Object;
use crate::domain::{Currency, FieldError};

/// An amount of at least `MIN` minor units (KRW: won, USD: cents), given as a plain integer in
/// the body's currency or as `{"amount": 5000, "currency": "KRW"}` (no other field). A smaller
/// amount, or an object with another field, is refused while the body is read (400
/// `VALIDATION_ERROR` naming the field), as the published schema says.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "WireAmount")]
pub struct AmountInput<const MIN: i64> {
    amount: i64,
    /// `None` for a plain integer: the currency of the body it is in.
    currency: Option<Currency>,
}

/// A coupon's discount cap: at least 1.
pub type PositiveAmount = AmountInput<1>;
/// A coupon's smallest order total: at least 0.
pub type NonNegativeAmount = AmountInput<0>;

/// What the wire holds, before the bound is checked.
#[derive(Deserialize)]
#[serde(untagged)]
enum WireAmount {
    Minor(i64),
    Money(Object<MoneyObject>),
}

/// The object form; any other field is a client bug, refused as the schema's
/// `additionalProperties: false` says.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyObject {
    amount: i64,
    currency: Currency,
}

impl<const MIN: i64> TryFrom<WireAmount> for AmountInput<MIN> {
    type Error = String;

    fn try_from(wire: WireAmount) -> Result<Self, String> {
        let (amount, currency) = match wire {
            WireAmount::Minor(a) => (a, None),
            WireAmount::Money(Object(m)) => (m.amount, Some(m.currency)),
        };
        if amount < MIN {
            return Err(format!("must be at least {MIN}"));
        }
        Ok(AmountInput { amount, currency })
    }
}

impl<const MIN: i64> AmountInput<MIN> {
    /// The amount in minor units of `currency`; an object in another currency is refused
    /// naming `field` (a rule across two fields, which JSON Schema cannot state).
    pub fn minor(self, field: &'static str, currency: Currency) -> Result<i64, FieldError> {
        match self.currency {
            Some(c) if c != currency => {
                Err(FieldError { field: field.into(), reason: format!("must be in {}", currency.code()) })
            }
            _ => Ok(self.amount),
        }
    }
}

impl<const MIN: i64> PartialSchema for AmountInput<MIN> {
    fn schema() -> RefOr<Schema> {
        let minor = || {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(MIN))
                .maximum(Some(i64::MAX))
        };
        let object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("amount", minor().description(Some("Minor units of `currency`.")))
            .required("amount")
            .property("currency", Currency::schema())
            .required("currency")
            .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)));
        OneOfBuilder::new()
            .item(minor().description(Some("Minor units (KRW: won, USD: cents) of the body's currency.")))
            .item(object.description(Some("`{\"amount\": 5000, \"currency\": \"KRW\"}`, in the body's currency.")))
            .description(Some(format!("An amount of at least {MIN} minor units.")))
            .into()
    }
}

impl<const MIN: i64> ToSchema for AmountInput<MIN> {
    /// One component per bound: `AmountFrom0`, `AmountFrom1`.
    fn name() -> Cow<'static, str> {
        Cow::Owned(format!("AmountFrom{MIN}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<PositiveAmount, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_both_forms_and_refuses_what_the_schema_refuses() {
        assert_eq!(read("5").unwrap().minor("f", Currency::Krw).unwrap(), 5);
        assert_eq!(read(r#"{"amount": 7, "currency": "KRW"}"#).unwrap().minor("f", Currency::Krw).unwrap(), 7);
        assert!(read(r#"{"amount": 7, "currency": "USD"}"#).unwrap().minor("f", Currency::Krw).is_err());
        assert!(read("0").unwrap_err().contains("at least 1"));
        assert!(read(r#"{"amount": 0, "currency": "KRW"}"#).is_err());
        assert!(read(r#"{"amount": 7, "currency": "KRW", "x": 1}"#).is_err());
        assert!(read(r#"{"currency": "KRW"}"#).is_err());
        assert!(serde_json::from_str::<NonNegativeAmount>("0").is_ok());
    }
}
