//! Editing a product (`PATCH /admin/products/{id}`): the editable state of a product, the patch a
//! request asks for, and the rules the edited product must still satisfy (the same as creation's).

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::{
    FieldError,
    catalog::{
        Localized, MAX_DESCRIPTION, MAX_OPTION_NAME, MAX_PRODUCT_NAME, checked_category, checked_price, picture,
    },
};

/// One option's editable state: name and price per currency (minor units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OptionState {
    /// Option id.
    pub id: i64,
    /// Option name.
    pub name: String,
    /// Currency code -> amount.
    pub prices: BTreeMap<String, i64>,
}

/// A product's editable state, as stored (and as the audit log records it before and after).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProductState {
    /// Product id.
    pub id: i64,
    /// Korean name.
    pub name_ko: String,
    /// English name.
    pub name_en: String,
    /// Korean description.
    pub description_ko: String,
    /// English description.
    pub description_en: String,
    /// Category slug.
    pub category: String,
    /// Picture URL.
    pub image_url: Option<String>,
    /// Whether customers see it (and, under V2, whether orders are admitted).
    pub on_sale: bool,
    /// Options by id.
    pub options: Vec<OptionState>,
}

/// An edit of one option: only what is given changes.
#[derive(Debug, Clone, Default)]
pub struct OptionPatch {
    /// The option (of this product).
    pub id: i64,
    /// New name.
    pub name: Option<String>,
    /// Prices to set, by currency code (the other currencies keep theirs).
    pub prices: BTreeMap<String, i64>,
}

/// An edit of a product: only what is given changes.
#[derive(Debug, Clone, Default)]
pub struct ProductPatch {
    /// New names, per language.
    pub name: Option<(Option<String>, Option<String>)>,
    /// New descriptions, per language.
    pub description: Option<(Option<String>, Option<String>)>,
    /// New category slug.
    pub category: Option<String>,
    /// New picture (`Some(None)`: none).
    pub image_url: Option<Option<String>>,
    /// New sale flag.
    pub on_sale: Option<bool>,
    /// Option edits.
    pub options: Vec<OptionPatch>,
}

fn localized(
    field: &str,
    given: &(Option<String>, Option<String>),
    current: Localized,
    max: usize,
    required: bool,
) -> Result<Localized, FieldError> {
    let check = |lang: &str, v: &str| {
        let f = format!("{field}.{lang}");
        if required { super::text::required(&f, v, max) } else { super::text::optional(&f, v, max) }
    };
    Ok(Localized {
        ko: given.0.as_deref().map(|v| check("ko", v)).transpose()?.unwrap_or(current.ko),
        en: given.1.as_deref().map(|v| check("en", v)).transpose()?.unwrap_or(current.en),
    })
}

impl ProductState {
    /// The product after `patch`, every edited field validated as at creation (the first bad
    /// field named); an option id not of this product is refused as `options[i].id`.
    pub fn patched(&self, patch: &ProductPatch) -> Result<ProductState, FieldError> {
        let mut next = self.clone();
        if let Some(given) = &patch.name {
            let current = Localized { ko: next.name_ko.clone(), en: next.name_en.clone() };
            let l = localized("name", given, current, MAX_PRODUCT_NAME, true)?;
            (next.name_ko, next.name_en) = (l.ko, l.en);
        }
        if let Some(given) = &patch.description {
            let current = Localized { ko: next.description_ko.clone(), en: next.description_en.clone() };
            let l = localized("description", given, current, MAX_DESCRIPTION, false)?;
            (next.description_ko, next.description_en) = (l.ko, l.en);
        }
        if let Some(category) = &patch.category {
            checked_category(category)?;
            next.category = category.clone();
        }
        if let Some(url) = &patch.image_url {
            next.image_url = picture(url.as_deref())?;
        }
        if let Some(on_sale) = patch.on_sale {
            next.on_sale = on_sale;
        }
        for (i, edit) in patch.options.iter().enumerate() {
            let Some(option) = next.options.iter_mut().find(|o| o.id == edit.id) else {
                return Err(FieldError::new(format!("options[{i}].id"), "is not an option of this product"));
            };
            if let Some(name) = &edit.name {
                option.name = super::text::required(&format!("options[{i}].name"), name, MAX_OPTION_NAME)?;
            }
            for (code, amount) in &edit.prices {
                let (currency, amount) = checked_price(&format!("options[{i}].prices.{code}"), code, *amount)?;
                option.prices.insert(currency.code().to_owned(), amount);
            }
        }
        let mut names: Vec<&str> = next.options.iter().map(|o| o.name.as_str()).collect();
        names.sort_unstable();
        if let Some(i) = patch
            .options
            .iter()
            .position(|e| e.name.as_deref().is_some_and(|n| names.iter().filter(|m| **m == n.trim()).count() > 1))
        {
            return Err(FieldError::new(format!("options[{i}].name"), "duplicates another option's name"));
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product() -> ProductState {
        ProductState {
            id: 1,
            name_ko: "사과".into(),
            name_en: "Apple".into(),
            description_ko: String::new(),
            description_en: String::new(),
            category: "food".into(),
            image_url: None,
            on_sale: true,
            options: vec![
                OptionState { id: 10, name: "S".into(), prices: [("KRW".to_owned(), 1000)].into() },
                OptionState { id: 11, name: "L".into(), prices: [("KRW".to_owned(), 2000)].into() },
            ],
        }
    }

    #[test]
    fn only_the_given_fields_change() {
        let patch = ProductPatch {
            name: Some((None, Some(" Green apple ".into()))),
            on_sale: Some(false),
            options: vec![OptionPatch { id: 11, name: None, prices: [("USD".to_owned(), 199)].into() }],
            ..ProductPatch::default()
        };
        let next = product().patched(&patch).unwrap();
        assert_eq!((next.name_ko.as_str(), next.name_en.as_str(), next.on_sale), ("사과", "Green apple", false));
        assert_eq!(next.options[1].prices, [("KRW".to_owned(), 2000), ("USD".to_owned(), 199)].into());
        assert_eq!(next.options[0], product().options[0]);
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = |patch: ProductPatch| product().patched(&patch).unwrap_err().field;
        let option = |id, name: &str| OptionPatch { id, name: Some(name.into()), prices: BTreeMap::new() };
        assert_eq!(bad(ProductPatch { category: Some("Food".into()), ..Default::default() }), "category");
        assert_eq!(bad(ProductPatch { options: vec![option(99, "X")], ..Default::default() }), "options[0].id");
        assert_eq!(bad(ProductPatch { options: vec![option(10, "L")], ..Default::default() }), "options[0].name");
        assert_eq!(bad(ProductPatch { name: Some((Some(" ".into()), None)), ..Default::default() }), "name.ko");
    }
}
