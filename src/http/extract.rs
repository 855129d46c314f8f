//! Request extractors whose rejections are contract errors: 400 `VALIDATION_ERROR` naming the
//! field, never axum's plain-text bodies. Use these instead of `axum::{Json, extract::{Path, Query}}`.

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{
        FromRequest, FromRequestParts, Request,
        path::ErrorKind,
        rejection::{BytesRejection, PathRejection},
    },
    http::{HeaderMap, StatusCode, header, request::Parts},
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{
    error::{ApiError, ErrorCode},
    language::ProfileLang,
    objects_only::ObjectsOnly,
};
use crate::domain::{Lang, text};

/// The caller's `Accept-Language`, or without one the language stored in the caller's profile
/// ([`super::language::ProfileLang`]); `None` when neither is known. Messages and product text use
/// [`AcceptLanguage::lang`] (Korean by default); the catalog also uses the preference to imply a
/// market (only for callers without a market of their own, who have no profile language).
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
        Ok(AcceptLanguage::of_request(parts))
    }
}

impl AcceptLanguage {
    /// The header, else the caller's profile language.
    pub fn of_request(parts: &Parts) -> AcceptLanguage {
        let header = AcceptLanguage::from_headers(&parts.headers);
        AcceptLanguage(header.0.or_else(|| parts.extensions.get::<ProfileLang>().map(|p| p.0)))
    }
}

/// The largest request body read, in bytes (axum's default body limit, which applies to every
/// body extractor); larger ones answer 413 `PAYLOAD_TOO_LARGE`.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// 413 `PAYLOAD_TOO_LARGE` with the limit.
pub fn payload_too_large() -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge).with_details(json!({ "limit_bytes": MAX_BODY_BYTES }))
}

/// A JSON body. Rejections name the offending field (`items[0].quantity`): 415
/// `UNSUPPORTED_MEDIA_TYPE` without a JSON `Content-Type`, 413 `PAYLOAD_TOO_LARGE` beyond
/// [`MAX_BODY_BYTES`], 400 `VALIDATION_ERROR` otherwise (a NUL anywhere included).
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
            return Err(ApiError::new(ErrorCode::UnsupportedMediaType)
                .with_details(json!({ "field": "Content-Type", "reason": "must be application/json" })));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e: BytesRejection| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                payload_too_large()
            } else {
                ApiError::validation("body", format!("could not read the body: {}", e.body_text()))
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses JSON, naming the field of the first error; a string (or key) holding NUL, which
/// Postgres `text` cannot store, is refused naming its field, and so is an array where an object
/// is wanted ([`ObjectsOnly`]), the body itself included.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // JSON can only spell NUL as the escape `\u0000` (a raw control byte is a syntax error), so
    // the full walk runs only for bodies containing that escape.
    if bytes.windows(6).any(|w| w == br"\u0000")
        && let Ok(value) = serde_json::from_slice::<Value>(bytes)
        && let Some(field) = nul_field(&value, String::new())
    {
        return Err(text::nul_error(field).into());
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(ObjectsOnly(&mut de)).or_else(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return Err(ApiError::validation("body", "malformed JSON"));
        }
        // JSON Schema counts `3.0` as the integer 3, and so does the published document; serde
        // does not. Retry with such numbers made integers before naming the first error.
        // The retry's error, if any, is the one to name: it no longer stops at such a number.
        let retried = match serde_json::from_slice::<Value>(bytes) {
            Ok(mut value) => {
                if integral_floats_to_integers(&mut value) {
                    serde_path_to_error::deserialize(ObjectsOnly(value))
                } else {
                    Err(e)
                }
            }
            Err(_) => Err(e),
        };
        let e = match retried {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let inner = e.inner();
        let (field, reason) = describe(&e.path().to_string(), &inner.to_string());
        Err(ApiError::validation(field, reason))
    })
}

/// Turns every number with a zero fraction that fits an `i64` into an integer; whether any was.
fn integral_floats_to_integers(value: &mut Value) -> bool {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // 2^63 is exactly representable; every f64 below it with no fraction fits an i64.
            if f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
                *value = Value::from(f as i64);
                return true;
            }
            false
        }
        Value::Array(items) => items.iter_mut().fold(false, |any, v| integral_floats_to_integers(v) | any),
        Value::Object(map) => map.values_mut().fold(false, |any, v| integral_floats_to_integers(v) | any),
        _ => false,
    }
}

/// The path (`items[0].name`, `body` at the top) of the first string or key holding NUL.
fn nul_field(value: &Value, path: String) -> Option<String> {
    let here = || if path.is_empty() { "body".to_owned() } else { path.clone() };
    match value {
        Value::String(s) if s.contains('\0') => Some(here()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| nul_field(v, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                return Some(here());
            }
            nul_field(v, if path.is_empty() { k.clone() } else { format!("{path}.{k}") })
        }),
        _ => None,
    }
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
        // The common case, on every id route (the hottest ones included), needs no map of the
        // parameters nor copies of their names and values: a decoded parameter can hold NUL only
        // if the path spells it `%00`, and a value that deserialises at once has no error to name.
        if !parts.uri.path().contains("%00")
            && let Ok(AxumPath(v)) = AxumPath::<T>::from_request_parts(parts, state).await
        {
            return Ok(Path(v));
        }
        // Each parameter is parsed alone first so the error can name it.
        let raw = AxumPath::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::validation("path", e.body_text()))?;
        if let Some(name) = first_nul(raw.0.iter()) {
            return Err(text::nul_error(name).into());
        }
        match AxumPath::<T>::from_request_parts(parts, state).await {
            Ok(AxumPath(v)) => Ok(Path(v)),
            Err(_) if raw.0.values().any(|v| integral_text(v).is_some()) => {
                // As for bodies and queries: `5.0` is the integer 5 to JSON Schema. The
                // parameters in route order, one value or an array, as `Path` would read them.
                let params = axum::extract::RawPathParams::from_request_parts(parts, state)
                    .await
                    .map_err(|e| ApiError::validation("path", e.body_text()))?;
                let mut values: Vec<Value> = params
                    .iter()
                    .map(|(_, v)| {
                        integral_text(v).unwrap_or(v).parse::<i64>().map_or_else(|_| Value::from(v), Value::from)
                    })
                    .collect();
                let value = if values.len() == 1 { values.remove(0) } else { Value::Array(values) };
                // The first value that is no integer even without its zero fraction (one too
                // large for 64 bits before any other: `event_id` `1e20`'s digits `.0`, not the
                // valid `event_type` beside it), else no UUID either.
                let field = || {
                    let mut names: Vec<_> = raw.0.keys().collect();
                    names.sort_by_key(|k| (integral_text(&raw.0[*k]).is_none(), *k));
                    names
                        .into_iter()
                        .find(|k| {
                            let v = &raw.0[*k];
                            integral_text(v).unwrap_or(v).parse::<i64>().is_err() && uuid::Uuid::parse_str(v).is_err()
                        })
                        .cloned()
                };
                serde_json::from_value::<T>(value).map(Path).map_err(|_| {
                    ApiError::validation(field().unwrap_or_else(|| "path".to_owned()), "not a valid identifier")
                })
            }
            Err(rejection) => {
                // The key axum names, when it names one (an integer or UUID that did not parse);
                // else the first parameter that is neither (an enum's value, which axum does
                // not attribute).
                let field = rejected_key(&rejection).unwrap_or_else(|| {
                    let mut names: Vec<_> = raw.0.keys().cloned().collect();
                    names.sort();
                    names
                        .into_iter()
                        .find(|k| raw.0[k].parse::<i64>().is_err() && uuid::Uuid::parse_str(&raw.0[k]).is_err())
                        .unwrap_or_else(|| "path".to_owned())
                });
                Err(ApiError::validation(field, "not a valid identifier"))
            }
        }
    }
}

/// The path parameter a rejection names, if it names one.
fn rejected_key(rejection: &PathRejection) -> Option<String> {
    let PathRejection::FailedToDeserializePathParams(e) = rejection else { return None };
    match e.kind() {
        ErrorKind::ParseErrorAtKey { key, .. }
        | ErrorKind::DeserializeError { key, .. }
        | ErrorKind::InvalidUtf8InPathParam { key } => Some(key.clone()),
        _ => None,
    }
}

/// Query-string parameters. Rejections name the parameter.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        // Every value: storable (a URI cannot hold a raw NUL byte, only its escape `%00`) and at
        // most `MAX_QUERY_VALUE` characters, as the document declares.
        for (name, value) in form_urlencoded_parse(query) {
            if name.contains('\0') {
                return Err(text::nul_error("query").into());
            }
            let field = name.into_owned();
            if value.contains('\0') {
                return Err(text::nul_error(field).into());
            }
            if value.chars().count() > text::MAX_QUERY_VALUE {
                return Err(ApiError::validation(
                    field,
                    format!("must be at most {} characters", text::MAX_QUERY_VALUE),
                ));
            }
        }
        let parse = |query: &str| {
            serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(form_urlencoded_parse(query)))
        };
        parse(query).map(Query).or_else(|e| {
            // As for bodies: `243.0` is the integer 243 to JSON Schema (see `parse_json`).
            let mut changed = false;
            let mut rewritten = form_urlencoded::Serializer::new(String::new());
            for (name, value) in form_urlencoded_parse(query) {
                let integer = integral_text(&value);
                changed |= integer.is_some();
                rewritten.append_pair(&name, integer.unwrap_or(&value));
            }
            let retried = if changed { parse(&rewritten.finish()) } else { Err(e) };
            let e = match retried {
                Ok(v) => return Ok(Query(v)),
                Err(e) => e,
            };
            let (field, reason) = describe(&e.path().to_string(), &e.inner().to_string());
            Err(ApiError::validation(if field == "body" { "query".to_owned() } else { field }, reason))
        })
    }
}

/// A path or query integer read as text: `12` or `12.0` (JSON Schema's integer), else 400
/// `VALIDATION_ERROR` naming `field`.
pub fn integer(value: &str, field: &str) -> Result<i64, ApiError> {
    integral_text(value)
        .unwrap_or(value)
        .parse::<i64>()
        .map_err(|_| ApiError::validation(field, "not a valid identifier"))
}

/// `-12` of `-12.000`; `None` for anything else.
fn integral_text(value: &str) -> Option<&str> {
    let (whole, fraction) = value.split_once('.')?;
    let digits = whole.strip_prefix('-').unwrap_or(whole);
    let integral =
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && fraction.bytes().all(|b| b == b'0');
    integral.then_some(whole)
}

/// The name of the first (name, value) pair whose name or value holds NUL.
fn first_nul<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> Option<String> {
    pairs
        .into_iter()
        .find(|(k, v)| k.as_ref().contains('\0') || v.as_ref().contains('\0'))
        .map(|(k, _)| k.as_ref().to_owned())
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
        assert_eq!(field_of(r#"{"user_id": 1.5, "items": []}"#), "user_id");
        assert_eq!(field_of(r#"{"user_id": 7.0, "items": [{"quantity": 1e30}]}"#), "items[0].quantity");
        assert_eq!(
            (integral_text("-12.00"), integral_text("3."), integral_text("1.5")),
            (Some("-12"), Some("3"), None)
        );
        assert_eq!((integral_text(".0"), integral_text("a.0")), (None, None));
        assert!(parse_json::<Order>(br#"{"user_id": 7.0, "items": [{"quantity": 2e0}]}"#).is_ok());
        assert_eq!(field_of(r#"{"user_id": 1,"#), "body");
    }

    #[test]
    fn an_array_where_an_object_is_wanted_is_refused_naming_its_field() {
        // Plain serde reads both as the structs, field by field in order.
        assert!(serde_json::from_str::<Order>(r#"[1, [[2]]]"#).is_ok());
        assert_eq!(field_of(r#"[1, []]"#), "body");
        assert_eq!(field_of(r#"{"user_id": 1, "items": [[2]]}"#), "items[0]");
        assert_eq!(field_of(r#"{"user_id": 1.0, "items": [[2]]}"#), "items[0]");
    }

    #[test]
    fn a_nul_anywhere_in_a_body_is_refused_naming_its_field() {
        assert_eq!(field_of(r#"{"user_id": 1, "items": [], "x": "a\u0000b"}"#), "x");
        assert_eq!(field_of(r#"{"user_id": 1, "items": [{"quantity": 1, "n": ["\u0000"]}]}"#), "items[0].n[0]");
        assert_eq!(field_of(r#"{"user_id": 1, "items": [], "a\u0000": 1}"#), "body");
        // An escaped backslash before `u0000` is no NUL: the body parses on (and fails on `items`).
        assert_eq!(field_of(r#"{"user_id": 1, "x": "\\u0000"}"#), "items");
    }
}
