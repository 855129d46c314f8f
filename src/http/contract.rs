//! The rules every route shares, written into the OpenAPI document in one place so that no
//! handler can forget them (each handler's `#[utoipa::path]` states only what is its own):
//!
//! - **Answers.** Every operation declares, with the [`ErrorBody`](super::error::ErrorBody)
//!   schema: 400 when it reads input (a path, query, header or body); 401 and 403 when it needs a
//!   token; 404 when it has a path parameter; 409 and 422 when it takes an `Idempotency-Key`
//!   (whose answers may carry `Idempotent-Replayed: true`); 413 and 415 when it reads a body; 500; and 503
//!   (`OVERLOADED` with `Retry-After`, or `TIMEOUT`).
//! - **Text.** Every request string the server reads without an enum or a format refuses NUL
//!   ([`text::NUL_FREE_PATTERN`]); one that must not be empty (`minLength` >= 1) must not be blank
//!   either ([`text::NOT_BLANK_PATTERN`]: the server trims it). Every query value is at most
//!   [`text::MAX_QUERY_VALUE`] characters.
//! - **Integers.** Every request integer states its range (64-bit unless the format says 32).
//! - **Markets.** A text `market` query parameter is `KR` or `US` (any case) or empty.
//! - **Users.** Every `user_id` path parameter is at least 1 (`auth::UserScope` refuses less).
//! - **Tickets.** A `ticket_id` path parameter has [`TICKET_ID_PATTERN`]'s form.
//! - **Paging.** `page` and `size` of every list: [`PageRequest`]'s bounds, unless the list
//!   declares its own.
//!
//! The extractors (`super::extract`) and [`PageRequest`] enforce what is written here.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use utoipa::{Modify, openapi::OpenApi};

use crate::{
    config::Config,
    domain::{
        PageRequest, text,
        waiting_room::{MAX_TICKET_ID, TICKET_ID_PATTERN},
    },
};

/// Writes the shared rules into the document (see the module documentation).
pub struct SharedRules;

impl Modify for SharedRules {
    fn modify(&self, openapi: &mut OpenApi) {
        let Ok(mut doc) = serde_json::to_value(&*openapi) else { return };
        apply(&mut doc);
        match serde_json::from_value(doc) {
            Ok(patched) => *openapi = patched,
            Err(e) => tracing::error!(error.cause = %e, "the shared OpenAPI rules could not be applied"),
        }
    }
}

/// Writes the limits this deployment configured into its document: the largest wallet charge
/// (`JUPANG_MAX_CHARGE`) is the `maximum` of a charge's `amount`.
pub fn configured_limits(openapi: &mut OpenApi, config: &Config) {
    use utoipa::openapi::{RefOr, schema::Schema};
    let charge = openapi.components.as_mut().and_then(|c| c.schemas.get_mut("ChargeRequest"));
    if let Some(RefOr::T(Schema::Object(charge))) = charge
        && let Some(RefOr::T(Schema::Object(amount))) = charge.properties.get_mut("amount")
    {
        amount.maximum = Some(config.max_charge.into());
    }
}

/// The HTTP methods an OpenAPI path item may hold.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn apply(doc: &mut Value) {
    let components = doc.pointer("/components/schemas").cloned().unwrap_or_else(|| json!({}));
    let mut request_schemas = BTreeSet::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            for method in METHODS {
                if let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) {
                    operation(op, &components, &mut request_schemas);
                }
            }
        }
    }
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for name in request_schemas {
            if let Some(schema) = schemas.get_mut(&name) {
                strings(schema, &mut |_| {});
            }
        }
    }
}

fn operation(op: &mut Map<String, Value>, components: &Value, request_schemas: &mut BTreeSet<String>) {
    let params = op.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
    let has_body = op.contains_key("requestBody");
    let has_path = params.iter().any(|p| p["in"] == "path");
    let secured = op.get("security").and_then(Value::as_array).is_some_and(|s| s.iter().any(|r| r != &json!({})));
    let mut errors: Vec<(&str, &str)> = Vec::new();
    if has_body || !params.is_empty() {
        errors.push(("400", "VALIDATION_ERROR naming the field, or a business rule"));
    }
    if secured {
        errors.push(("401", "UNAUTHENTICATED: no, an invalid or an expired token"));
        errors.push(("403", "FORBIDDEN: the token may not do this"));
    }
    if has_path {
        errors.push(("404", "The resource does not exist"));
    }
    let idempotent = params.iter().any(|p| p["in"] == "header" && p["name"] == "Idempotency-Key");
    if idempotent {
        errors.push(("409", "IDEMPOTENCY_IN_PROGRESS: the first request with this key still runs"));
        errors.push(("422", "IDEMPOTENCY_KEY_REUSED: the key was used for a different request"));
    }
    if has_body {
        errors.push(("413", "PAYLOAD_TOO_LARGE: the body is over 2 MiB"));
        errors.push(("415", "UNSUPPORTED_MEDIA_TYPE: the body is not application/json"));
    }
    errors.push(("500", "INTERNAL: a fault on our side; nothing about it is leaked"));
    let responses = op.entry("responses").or_insert_with(|| json!({}));
    if let Some(responses) = responses.as_object_mut() {
        for (status, description) in errors {
            responses.entry(status).or_insert_with(|| error_response(description));
        }
        let unavailable = responses.entry("503").or_insert_with(|| {
            error_response("OVERLOADED (with Retry-After) or TIMEOUT: retry later; nothing was changed by OVERLOADED")
        });
        unavailable["headers"]["Retry-After"] = json!({
            "description": "Seconds to wait before retrying (OVERLOADED only)",
            "schema": { "type": "integer", "minimum": 1 },
        });
        if idempotent {
            // A replayed answer says so, whatever its status.
            for (_, res) in
                responses.iter_mut().filter(|(status, _)| status.as_str() != "500" && status.as_str() != "503")
            {
                res["headers"][super::idempotency::REPLAYED_HEADER_NAME] = json!({
                    "description": "`true` when this is the stored answer to an earlier request with the same key",
                    "schema": { "type": "string", "enum": ["true"] },
                });
            }
        }
    }
    if let Some(list) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in list {
            parameter(p);
        }
    }
    if let Some(schema) = op.get_mut("requestBody").and_then(|b| b.pointer_mut("/content/application~1json/schema")) {
        collect_refs(&*schema, components, request_schemas);
        strings(schema, &mut |_| {});
    }
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } },
    })
}

/// The bounds of one parameter: paging, query text, and every string's pattern.
fn parameter(p: &mut Value) {
    let (name, place) = (p["name"].as_str().unwrap_or("").to_owned(), p["in"].as_str().unwrap_or("").to_owned());
    let Some(schema) = p.get_mut("schema") else { return };
    // `UserScope` refuses a `user_id` below 1 before anything else.
    if place == "path" && name == "user_id" {
        schema["minimum"] = json!(1);
    }
    if place == "path" && name == "ticket_id" {
        schema["pattern"] = json!(TICKET_ID_PATTERN);
        schema["maxLength"] = json!(MAX_TICKET_ID);
    }
    // A list that declares its own bounds (the order history, which lowers a larger size to
    // the maximum) keeps them.
    if place == "query" && (name == "page" || name == "size") && schema.get("minimum").is_none() {
        let max = if name == "page" { PageRequest::MAX_PAGE } else { PageRequest::MAX_SIZE };
        *schema = json!({ "type": "integer", "format": "int64", "minimum": 1, "maximum": max });
        return;
    }
    // Every catalog read parses it with `catalog::market_hint`: KR or US in any case, or empty.
    if place == "query" && name == "market" && schema.get("$ref").is_none() {
        schema["pattern"] = json!("^([Kk][Rr]|[Uu][Ss])?$");
    }
    strings(schema, &mut |s| {
        if place == "query" && s.get("maxLength").is_none() {
            s.insert("maxLength".into(), json!(text::MAX_QUERY_VALUE));
        }
    });
}

/// Gives every plain string of a schema (not following `$ref`s) its pattern, and every integer
/// the bounds of its format; `extra` may add more to each string.
fn strings(schema: &mut Value, extra: &mut dyn FnMut(&mut Map<String, Value>)) {
    let Some(obj) = schema.as_object_mut() else { return };
    let is_string = match obj.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    let is_integer = match obj.get("type") {
        Some(Value::String(t)) => t == "integer",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "integer"),
        _ => false,
    };
    if is_integer {
        // A 64-bit integer is all serde reads: the range is stated, not left to the format.
        let (min, max) = match obj.get("format").and_then(Value::as_str) {
            Some("int32") => (i64::from(i32::MIN), i64::from(i32::MAX)),
            _ => (i64::MIN, i64::MAX),
        };
        obj.entry("minimum").or_insert_with(|| json!(min));
        obj.entry("maximum").or_insert_with(|| json!(max));
    }
    if is_string && !obj.contains_key("enum") && !obj.contains_key("format") {
        extra(obj);
        if !obj.contains_key("pattern") {
            let required = obj.get("minLength").and_then(Value::as_u64).is_some_and(|n| n >= 1);
            let pattern = if required { text::NOT_BLANK_PATTERN } else { text::NUL_FREE_PATTERN };
            obj.insert("pattern".into(), json!(pattern));
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = obj.get_mut(key) {
            strings(sub, extra);
        }
    }
    if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
        for sub in props.values_mut() {
            strings(sub, extra);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(list) = obj.get_mut(key).and_then(Value::as_array_mut) {
            for sub in list {
                strings(sub, extra);
            }
        }
    }
}

/// Collects the component schemas a schema reaches through `$ref`s, transitively.
fn collect_refs(schema: &Value, components: &Value, found: &mut BTreeSet<String>) {
    match schema {
        Value::Object(obj) => {
            if let Some(name) = obj.get("$ref").and_then(Value::as_str).and_then(|r| r.rsplit('/').next())
                && found.insert(name.to_owned())
                && let Some(target) = components.get(name)
            {
                collect_refs(target, components, found);
            }
            obj.values().for_each(|v| collect_refs(v, components, found));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, components, found)),
        _ => {}
    }
}
