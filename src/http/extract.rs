//! Request extractors whose rejections are contract errors: 400 `VALIDATION_ERROR` naming the
//! field, never axum's plain-text bodies. Use these instead of `axum::{Json, extract::{Path, Query}}`.

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{HeaderMap, header, request::Parts},
};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::domain::Lang;

/// The caller's `Accept-Language`: `None` when the header is absent or names no supported
/// language. Messages and product text use [`AcceptLanguage::lang`] (Korean by default); the
/// catalog also uses the raw preference to imply a market.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptLanguage(pub Option<Lang>);

impl AcceptLanguage {
    /// Reads the header.
    pub fn from_headers(headers: &HeaderMap) -> AcceptLanguage {
        AcceptLanguage(
            headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).map(Lang::from_accept_language),
        )
    }

    /// The language to answer in: the preference, else Korean.
    pub fn lang(self) -> Lang {
        self.0.unwrap_or_default()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AcceptLanguage {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(AcceptLanguage::from_headers(&parts.headers))
    }
}

/// A JSON body. Rejections name the offending field (`items[0].quantity`).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json") || ct.contains("+json"));
        if !is_json {
            return Err(ApiError::validation("body", "Content-Type must be application/json"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e: BytesRejection| {
            ApiError::validation("body", format!("could not read the body: {}", e.body_text()))
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses JSON, naming the field of the first error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::validation("body", "malformed JSON");
        }
        let (field, reason) = describe(&e.path().to_string(), &inner.to_string());
        ApiError::validation(field, reason)
    })
}

/// Turns serde's path and message into (field, reason). Serde reports a missing field at the
/// parent's path with the name only in the message, so the name is lifted out of it.
fn describe(path: &str, message: &str) -> (String, String) {
    let message = message.split(" at line ").next().unwrap_or(message).to_owned();
    let missing = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()).map(str::to_owned);
    let field = match (missing, path) {
        (Some(m), "." | "") => m,
        (Some(m), p) => format!("{p}.{m}"),
        (None, "." | "") => "body".to_owned(),
        (None, p) => p.to_owned(),
    };
    (field, message)
}

/// Path parameters. A bad id answers 400 `VALIDATION_ERROR` naming the parameter.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::Path as AxumPath;
        // Each parameter is parsed alone first so the error can name it.
        let raw = AxumPath::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::validation("path", e.body_text()))?;
        match AxumPath::<T>::from_request_parts(parts, state).await {
            Ok(AxumPath(v)) => Ok(Path(v)),
            Err(_) => {
                let mut names: Vec<_> = raw.0.keys().cloned().collect();
                names.sort();
                let field = names
                    .into_iter()
                    .find(|k| raw.0[k].parse::<i64>().is_err() && uuid::Uuid::parse_str(&raw.0[k]).is_err())
                    .unwrap_or_else(|| "path".to_owned());
                Err(ApiError::validation(field, "not a valid identifier"))
            }
        }
    }
}

/// Query-string parameters. Rejections name the parameter.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let (field, reason) = describe(&e.path().to_string(), &e.inner().to_string());
            ApiError::validation(if field == "body" { "query".to_owned() } else { field }, reason)
        })
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        quantity: u32,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Order {
        user_id: i64,
        items: Vec<Item>,
    }

    fn field_of(json: &str) -> String {
        let e = parse_json::<Order>(json.as_bytes()).unwrap_err();
        let body = format!("{e:?}");
        body.split("\"field\": String(\"").nth(1).unwrap().split('"').next().unwrap().to_owned()
    }

    #[test]
    fn errors_name_the_field_even_when_nested_or_missing() {
        assert_eq!(field_of(r#"{"items": []}"#), "user_id");
        assert_eq!(field_of(r#"{"user_id": "x", "items": []}"#), "user_id");
        assert_eq!(field_of(r#"{"user_id": 1, "items": [{"quantity": -1}]}"#), "items[0].quantity");
        assert_eq!(field_of(r#"{"user_id": 1, "items": [{}]}"#), "items[0].quantity");
        assert_eq!(field_of(r#"{"user_id": 1,"#), "body");
    }
}
