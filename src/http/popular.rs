//! Popular products: the daily top-5 snapshot per market (seed 001 US-003) and the job that
//! writes it.
//!
//! The snapshot is computed by `POST /admin/jobs/popular-products` (`ops_admin`) from the last 3
//! days of PAID/FULFILLED orders before the run, and `GET /products/top` reads the latest one,
//! so the read is one indexed lookup however many orders there are. Intended to run daily at
//! 00:00 UTC by the `jobs` worker (`workers::jobs`, once across instances); an operator may run it now.
//! Products are ranked by units sold, ties by the more recent sale, then by product id; a
//! product is listed even if it went off sale after selling (the snapshot reports what sold).

use axum::{Json, extract::State, middleware, response::Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::catalog::market_hint;
use super::extract::AcceptLanguage;
use super::{
    auth::{Caller, MaybeCaller, Role, require_roles},
    caching::{self, Audience, IfNoneMatch, NotModified},
    error::{ApiError, ErrorBody},
    extract,
};
use crate::{
    domain::{Lang, Market, Money, fx::PriceSource},
    services::{AppState, popular},
};

/// The popular-products routes (mounted under `/api`): the public read and the gated job.
pub fn router() -> OpenApiRouter<AppState> {
    let ops = OpenApiRouter::new()
        .routes(routes!(run_job))
        .route_layer(middleware::from_fn_with_state(&[Role::OpsAdmin][..], require_roles));
    OpenApiRouter::new().routes(routes!(top_products)).merge(ops)
}

/// `?market=` of the popular products.
#[derive(Debug, Deserialize, IntoParams)]
pub struct TopQuery {
    /// `KR` or `US`; else the caller's market, else the one implied by `Accept-Language`, else KR.
    pub market: Option<String>,
}

/// One of the top products.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopItem<'a> {
    /// 1-5.
    pub rank: i32,
    /// The product.
    pub product_id: i64,
    /// Name in the language of `Accept-Language`.
    pub name: &'a str,
    /// Lowest option price in the market's currency (as the catalog shows it); null when no
    /// option is sold in the market any more.
    pub price: Option<Money>,
    /// Where the price came from: `list` (the option's own price in this currency) or `fx`
    /// (converted from its price in the other currency at the rate in force); null with `price`.
    pub price_source: Option<PriceSource>,
    /// Category.
    pub category: &'a str,
    /// Units sold in the 3 days before the snapshot.
    pub sold_quantity: i64,
    /// The most recent of those sales.
    pub last_sold_at: DateTime<Utc>,
}

/// The latest snapshot of a market.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopResponse<'a> {
    /// When the snapshot was computed; null when none was ever computed.
    pub generated_at: Option<DateTime<Utc>>,
    /// At most 5, best first; empty when nothing sold.
    pub items: Vec<TopItem<'a>>,
}

/// The top 5 products of the last 3 days, from the latest daily snapshot (kept in memory).
#[utoipa::path(
    get, path = "/products/top", tag = "catalog",
    params(TopQuery, ("If-None-Match" = Option<String>, Header, max_length = 1024, pattern = "^[\\x20-\\x7e]*$", description = "An `ETag` seen before: 304 when still current")),
    responses(
        (status = 200, body = TopResponse, headers(
            ("ETag" = String, description = "Strong tag of the body"),
            ("Cache-Control" = String, description = "`public, max-age=1`; `private, no-cache` when the caller's own market priced it"),
            ("Vary" = String, description = "`Accept-Language`"),
        )),
        NotModified,
        (status = 400, body = ErrorBody),
    ),
)]
async fn top_products(
    State(state): State<AppState>,
    caller: MaybeCaller,
    accept: AcceptLanguage,
    if_none_match: IfNoneMatch,
    extract::Query(q): extract::Query<TopQuery>,
) -> Result<Response, ApiError> {
    let hint = market_hint(q.market.as_deref(), &caller, accept)?;
    let lang = accept.lang();
    let answer = popular::top(&state, hint).await?;
    let audience = Audience::of(answer.personal);
    let Some((generated_at, rows)) = answer.value.as_ref() else {
        return Ok(caching::json(&TopResponse { generated_at: None, items: Vec::new() }, audience, &if_none_match));
    };
    let currency = answer.market.currency();
    let items = rows
        .iter()
        .map(|r| TopItem {
            rank: r.rank,
            product_id: r.product_id,
            name: match lang {
                Lang::Ko => &r.name_ko,
                Lang::En => &r.name_en,
            },
            price: r.priced().map(|(p, _)| Money::new(p, currency)),
            price_source: r.priced().map(|(_, source)| source),
            category: &r.category,
            sold_quantity: r.sold_quantity,
            last_sold_at: r.last_sold_at,
        })
        .collect();
    Ok(caching::json(&TopResponse { generated_at: Some(*generated_at), items }, audience, &if_none_match))
}

/// One market's part of a job run.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobMarket {
    /// The market.
    pub market: Market,
    /// Products ranked (0-5).
    pub ranked: u64,
}

/// What the job wrote.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobResponse {
    /// The UTC date the snapshot is filed under (its rows were replaced).
    pub snapshot_date: NaiveDate,
    /// The snapshot time: sales in the 3 days before it count.
    pub generated_at: DateTime<Utc>,
    /// Per market.
    pub markets: Vec<JobMarket>,
}

/// Runs the daily popular-products snapshot now (`ops_admin`); idempotent for the day.
#[utoipa::path(
    post, path = "/admin/jobs/popular-products", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = JobResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
)]
async fn run_job(State(state): State<AppState>, caller: Caller) -> Result<Json<JobResponse>, ApiError> {
    let run = popular::run_snapshot(&state, &caller).await?;
    let markets = run.markets.into_iter().map(|m| JobMarket { market: m.market, ranked: m.ranked }).collect();
    Ok(Json(JobResponse { snapshot_date: run.snapshot_date, generated_at: run.generated_at, markets }))
}
