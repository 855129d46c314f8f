//! The catalog's vocabulary: how listings are sorted, how search text is matched, and what a
//! valid new product looks like.

use std::collections::BTreeMap;

use super::{Currency, Lang};

/// A request for something wrong with one field: the field's name and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field as the client spelled it (`options[1].prices.KRW`).
    pub field: String,
    /// What is wrong with it, in English.
    pub reason: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), reason: reason.into() }
    }
}

/// The order of a product listing. Every order ends with the product id, so pages never
/// overlap or skip a product whatever the ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProductSort {
    /// Cheapest listed price first (ties: lower id first).
    PriceAsc,
    /// Dearest listed price first (ties: lower id first).
    PriceDesc,
    /// Most units sold in paid orders of the last 3 days first (ties: most recent sale, then
    /// lower id).
    Popular,
    /// Most recently created first (ties: higher id first); the default.
    #[default]
    Newest,
}

impl ProductSort {
    /// Parses the `sort` query value.
    pub fn parse(s: &str) -> Option<ProductSort> {
        match s {
            "price_asc" => Some(ProductSort::PriceAsc),
            "price_desc" => Some(ProductSort::PriceDesc),
            "popular" => Some(ProductSort::Popular),
            "newest" => Some(ProductSort::Newest),
            _ => None,
        }
    }
}

/// A `LIKE` pattern matching `q` anywhere, with `LIKE`'s own wildcards (`%`, `_`) and the escape
/// character taken literally: searching "50%" finds "50% off", not everything starting with 50.
pub fn contains_pattern(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Text in both of the shop's languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Localized {
    /// Korean.
    pub ko: String,
    /// English.
    pub en: String,
}

impl From<&str> for Localized {
    /// The same text in both languages.
    fn from(text: &str) -> Localized {
        Localized { ko: text.to_owned(), en: text.to_owned() }
    }
}

impl Localized {
    /// The text in a language.
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Ko => &self.ko,
            Lang::En => &self.en,
        }
    }
}

/// One option (SKU) of a new product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOption {
    /// Display name (sizes, colours: not translated).
    pub name: String,
    /// Price per currency, each currency once; at least one.
    pub prices: Vec<(Currency, i64)>,
    /// Initial physical stock.
    pub stock: i32,
}

/// A product an inventory manager wants to create, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    /// Name in both languages.
    pub name: Localized,
    /// Description in both languages (may be empty).
    pub description: Localized,
    /// Lowercase slug (`electronics`).
    pub category: String,
    /// Picture, an http(s) URL.
    pub image_url: Option<String>,
    /// Whether customers see it.
    pub on_sale: bool,
    /// At least one option.
    pub options: Vec<NewOption>,
}

/// Raw product input, before validation.
#[derive(Debug, Clone)]
pub struct RawProduct {
    /// Name in both languages.
    pub name: Localized,
    /// Description in both languages.
    pub description: Localized,
    /// Category slug.
    pub category: String,
    /// Picture URL, if any.
    pub image_url: Option<String>,
    /// Whether customers see it.
    pub on_sale: bool,
    /// The options.
    pub options: Vec<RawOption>,
}

/// Raw option input, before validation (prices keyed by whatever the client sent).
#[derive(Debug, Clone)]
pub struct RawOption {
    /// Option name.
    pub name: String,
    /// Currency code -> amount in minor units.
    pub prices: BTreeMap<String, i64>,
    /// Initial stock.
    pub stock: i64,
}

/// Longest product name the schema stores.
pub(crate) const MAX_PRODUCT_NAME: usize = 300;
/// Longest option name the schema stores.
pub(crate) const MAX_OPTION_NAME: usize = 200;
/// Longest description accepted.
pub(crate) const MAX_DESCRIPTION: usize = 10_000;
/// Most options one product may have.
const MAX_OPTIONS: usize = 100;
/// The largest price of an option, in minor units of its currency (₩40,000,000 or
/// $400,000.00). Bounded so that what is computed from prices (a cart line, an order's total, a
/// converted price) stays far inside 64 bits; migration 0009 holds the table to it too.
pub const MAX_PRICE: i64 = 40_000_000;

/// A price as given for `field`: a known currency and an amount from 0 to [`MAX_PRICE`].
pub(crate) fn checked_price(field: &str, code: &str, amount: i64) -> Result<(Currency, i64), FieldError> {
    let currency = Currency::parse(code).ok_or_else(|| FieldError::new(field, "only KRW and USD"))?;
    if !(0..=MAX_PRICE).contains(&amount) {
        return Err(FieldError::new(field, format!("must be from 0 to {MAX_PRICE}")));
    }
    Ok((currency, amount))
}

fn text(field: &str, value: &str, max: usize, required: bool) -> Result<String, FieldError> {
    if required { super::text::required(field, value, max) } else { super::text::optional(field, value, max) }
}

/// Whether a category is a lowercase slug: `a-z`, `0-9` and inner `-`, 1..=100 characters.
pub fn is_category_slug(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A category as given, if it is a storable slug (`category` named otherwise).
pub(crate) fn checked_category(category: &str) -> Result<(), FieldError> {
    super::text::storable("category", category)?;
    if !is_category_slug(category) {
        return Err(FieldError::new("category", "must be a lowercase slug such as `electronics` (a-z, 0-9, -)"));
    }
    Ok(())
}

/// A picture URL as given: none when absent or empty, else an http(s) URL of at most 2000
/// characters (`image_url` named otherwise).
pub(crate) fn picture(url: Option<&str>) -> Result<Option<String>, FieldError> {
    match url.filter(|u| !u.is_empty()) {
        None => Ok(None),
        Some(u)
            if (u.starts_with("https://") || u.starts_with("http://"))
                && u.chars().count() <= 2_000
                && !u.contains('\0') =>
        {
            Ok(Some(u.to_owned()))
        }
        Some(_) => Err(FieldError::new("image_url", "must be an http(s) URL of at most 2000 characters")),
    }
}

impl NewProduct {
    /// Validates every field of a creation request, naming the first bad one.
    pub fn validate(raw: RawProduct) -> Result<NewProduct, FieldError> {
        let RawProduct { name, description, category, image_url, on_sale, options } = raw;
        let category = category.as_str();
        let name = Localized {
            ko: text("name.ko", &name.ko, MAX_PRODUCT_NAME, true)?,
            en: text("name.en", &name.en, MAX_PRODUCT_NAME, true)?,
        };
        let description = Localized {
            ko: text("description.ko", &description.ko, MAX_DESCRIPTION, false)?,
            en: text("description.en", &description.en, MAX_DESCRIPTION, false)?,
        };
        checked_category(category)?;
        let image_url = picture(image_url.as_deref())?;
        if options.is_empty() {
            return Err(FieldError::new("options", "must have at least one option"));
        }
        if options.len() > MAX_OPTIONS {
            return Err(FieldError::new("options", format!("must have at most {MAX_OPTIONS} options")));
        }
        let mut validated: Vec<NewOption> = Vec::with_capacity(options.len());
        for (i, raw) in options.into_iter().enumerate() {
            let name = text(&format!("options[{i}].name"), &raw.name, MAX_OPTION_NAME, true)?;
            if validated.iter().any(|o| o.name == name) {
                return Err(FieldError::new(format!("options[{i}].name"), "duplicates another option's name"));
            }
            if raw.prices.is_empty() {
                return Err(FieldError::new(format!("options[{i}].prices"), "must have a price in KRW or USD"));
            }
            let mut prices = Vec::with_capacity(raw.prices.len());
            for (code, amount) in raw.prices {
                prices.push(checked_price(&format!("options[{i}].prices.{code}"), &code, amount)?);
            }
            let stock = i32::try_from(raw.stock)
                .ok()
                .filter(|s| *s >= 0)
                .ok_or_else(|| FieldError::new(format!("options[{i}].stock"), "must be from 0 to 2147483647"))?;
            validated.push(NewOption { name, prices, stock });
        }
        Ok(NewProduct { name, description, category: category.to_owned(), image_url, on_sale, options: validated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_in_search_text_are_taken_literally() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(contains_pattern("사과"), "%사과%");
    }

    #[test]
    fn sort_values_are_the_four_of_the_contract() {
        assert_eq!(ProductSort::parse("popular"), Some(ProductSort::Popular));
        assert_eq!(ProductSort::parse("cheapest"), None);
        assert_eq!(ProductSort::default(), ProductSort::Newest);
    }

    #[test]
    fn categories_are_lowercase_slugs() {
        assert!(is_category_slug("electronics") && is_category_slug("home-living"));
        assert!(!is_category_slug("Electronics") && !is_category_slug("") && !is_category_slug("a b"));
    }
}
