//! Paging of every list: `page` counts from 1, `size` defaults to 20 and is at most 100
//! (api.md, "Conventions"). One type for every list, so every list refuses the same things with
//! the same field names.

use super::catalog::FieldError;

/// A validated page of a list: `page` from 1, `size` 1..=[`PageRequest::MAX_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based page number.
    pub page: i64,
    /// Items per page.
    pub size: i64,
}

impl PageRequest {
    /// Items per page when the client does not say.
    pub const DEFAULT_SIZE: i64 = 20;
    /// The largest page a client may ask for.
    pub const MAX_SIZE: i64 = 100;
    /// The highest page number (far beyond any list; bounded so offsets never overflow).
    pub const MAX_PAGE: i64 = 1_000_000;

    /// Validates raw `page` / `size` query values (absent = default; empty is no integer, as
    /// the published document says).
    pub fn parse(page: Option<&str>, size: Option<&str>) -> Result<PageRequest, FieldError> {
        let number = |raw: Option<&str>, field: &str| match raw {
            None => Ok(None),
            Some(s) => s.parse::<i64>().map(Some).map_err(|_| Self::refused(field)),
        };
        let page = number(page, "page")?;
        if page.is_some_and(|p| p < 1) {
            return Err(Self::refused("page"));
        }
        PageRequest::new(page, number(size, "size")?)
    }

    /// Validates typed `page` / `size` parameters (absent = default).
    pub fn new(page: Option<i64>, size: Option<i64>) -> Result<PageRequest, FieldError> {
        PageRequest::build(page, size, false)
    }

    /// Like [`PageRequest::new`], but a `size` above [`PageRequest::MAX_SIZE`] is lowered to it
    /// instead of refused (the order history has always answered so).
    pub fn capped(page: Option<i64>, size: Option<i64>) -> Result<PageRequest, FieldError> {
        PageRequest::build(page, size, true)
    }

    fn build(page: Option<i64>, size: Option<i64>, cap: bool) -> Result<PageRequest, FieldError> {
        let page = page.unwrap_or(1);
        if !(1..=Self::MAX_PAGE).contains(&page) {
            return Err(Self::refused("page"));
        }
        let size = size.unwrap_or(Self::DEFAULT_SIZE);
        if size < 1 || (size > Self::MAX_SIZE && !cap) {
            return Err(Self::refused("size"));
        }
        let size = size.min(Self::MAX_SIZE);
        Ok(PageRequest { page, size })
    }

    fn refused(field: &str) -> FieldError {
        match field {
            "page" => FieldError::new("page", format!("must be an integer from 1 to {}", Self::MAX_PAGE)),
            _ => FieldError::new(field, format!("must be an integer from 1 to {}", Self::MAX_SIZE)),
        }
    }

    /// Rows to skip before this page.
    pub fn offset(self) -> i64 {
        (self.page - 1) * self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_defaults_and_limits() {
        assert_eq!(PageRequest::parse(None, None), Ok(PageRequest { page: 1, size: 20 }));
        assert_eq!(PageRequest::parse(Some("3"), Some("100")).unwrap().offset(), 200);
        assert_eq!(PageRequest::parse(Some("0"), None).unwrap_err().field, "page");
        assert_eq!(PageRequest::parse(None, Some("0")).unwrap_err().field, "size");
        assert_eq!(PageRequest::parse(None, Some("101")).unwrap_err().field, "size");
        assert_eq!(PageRequest::parse(Some("x"), None).unwrap_err().field, "page");
        assert_eq!(PageRequest::parse(None, Some("")).unwrap_err().field, "size");
        assert_eq!(PageRequest::parse(Some(&i64::MAX.to_string()), Some("100")).unwrap_err().field, "page");
    }

    #[test]
    fn typed_paging_refuses_the_same_and_the_capped_form_lowers_a_large_size() {
        assert_eq!(PageRequest::new(None, None), Ok(PageRequest { page: 1, size: 20 }));
        assert_eq!(PageRequest::new(Some(0), None).unwrap_err().field, "page");
        assert_eq!(PageRequest::new(None, Some(101)).unwrap_err().field, "size");
        assert_eq!(PageRequest::capped(Some(2), Some(500)), Ok(PageRequest { page: 2, size: 100 }));
        assert_eq!(PageRequest::capped(None, Some(0)).unwrap_err().field, "size");
    }
}
