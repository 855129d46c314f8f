//! The FX rate table (`ops_admin`): `PUT` and `GET /admin/fx-rates`.

use axum::{Json, extract::State, middleware};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::{Caller, Role, require_roles},
    error::{ApiError, ErrorBody},
    extract,
};
use crate::{
    domain::fx::{Rate, USD_KRW},
    services::{AppState, admin::fx},
};

/// The FX routes (mounted under `/api`), behind the `ops_admin` gate.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_rates, put_rates))
        .route_layer(middleware::from_fn_with_state(&[Role::OpsAdmin][..], require_roles))
}

/// Rates by pair, as exact decimal strings. `USD/KRW` is how many KRW one USD costs; it prices
/// KRW-only options in USD and USD-only options in KRW. A pair left out is left as it is.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FxRates {
    /// KRW per USD: a positive decimal, up to 12 integer digits and 8 decimals (e.g. `1385.20`).
    #[serde(rename = "USD/KRW", default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 24, pattern = r"^([1-9][0-9]{0,11}(\x2e[0-9]{1,8})?|0\x2e0{0,7}[1-9][0-9]{0,7})$")]
    pub usd_krw: Option<String>,
}

impl FxRates {
    fn of(rates: Vec<(String, String)>) -> FxRates {
        let mut view = FxRates::default();
        for (pair, rate) in rates {
            if pair == USD_KRW {
                view.usd_krw = Some(rate);
            }
        }
        view
    }
}

/// The rates in force.
#[utoipa::path(
    get, path = "/admin/fx-rates", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, body = FxRates),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
)]
async fn get_rates(State(state): State<AppState>) -> Result<Json<FxRates>, ApiError> {
    Ok(Json(FxRates::of(fx::rates(&state).await?)))
}

/// Sets rates; every instance prices with them within a second (catalog, cart, new orders).
/// Orders placed before keep the prices they captured.
#[utoipa::path(
    put, path = "/admin/fx-rates", tag = "admin", request_body = FxRates, security(("bearer" = [])),
    responses(
        (status = 200, description = "Every rate in force afterwards", body = FxRates),
        (status = 400, description = "VALIDATION_ERROR naming the pair", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
)]
async fn put_rates(
    State(state): State<AppState>,
    caller: Caller,
    extract::Json(body): extract::Json<FxRates>,
) -> Result<Json<FxRates>, ApiError> {
    let mut rates = Vec::new();
    if let Some(raw) = &body.usd_krw {
        let rate = Rate::parse(raw).ok_or_else(|| {
            ApiError::validation(USD_KRW, "must be a positive decimal: up to 12 integer digits and 8 decimals")
        })?;
        rates.push((USD_KRW, rate));
    }
    Ok(Json(FxRates::of(fx::set(&state, &caller, &rates).await?)))
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    use crate::domain::fx::RATE_PATTERN;

    #[test]
    fn the_published_pattern_is_the_one_the_server_checks() {
        let schema = serde_json::to_value(super::FxRates::schema()).unwrap();
        assert_eq!(schema["properties"]["USD/KRW"]["pattern"], RATE_PATTERN);
    }
}
