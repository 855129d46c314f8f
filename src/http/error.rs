//! The API's one error type: a stable `code`, its HTTP status, and a message in Korean or English.
//!
//! Handlers return [`ApiError`]; turning it into a response leaves an [`ErrorPayload`] in the
//! response extensions, and the [`localize`] middleware renders the JSON body in the caller's
//! language. Internal faults are logged once, here at the boundary, and leave nothing behind
//! but `INTERNAL`.

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

pub use super::error_codes::ErrorCode;
use crate::{
    domain::{
        FieldError, Lang, Money,
        coupon::IssueError,
        discount::RedemptionError,
        order::{Rejection, TransitionError},
    },
    services::{
        Fault,
        admin::{
            coupons::CampaignError, fx::FxError, inventory::InventoryError, outbox::OutboxError,
            products::ProductError, users::UserAdminError,
        },
        cart::CartError,
        catalog::CatalogError,
        coupons::{CouponError, IssueFailure},
        idempotency::ReceiptError,
        orders::OrderError,
        payment_records::PaymentRecordError,
        popular::PopularError,
        profiles::ProfileError,
        waiting_room::WaitingRoomError,
        wallet::WalletError,
    },
};

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    details: Value,
    retry_after_secs: Option<u32>,
    /// Only for `INTERNAL`: the cause, logged at the boundary and never sent.
    source: Option<Cause>,
}

/// The cause of an internal error.
type Cause = Box<dyn std::error::Error + Send + Sync>;

/// What a localised error body is built from; travels in response extensions to [`localize`].
#[derive(Debug, Clone)]
pub struct ErrorPayload {
    /// The stable code.
    pub code: ErrorCode,
    /// Structured context (field names, available quantities...), never internals.
    pub details: Value,
}

/// The JSON error body of every 4xx/5xx answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human message in the caller's language.
    pub message: String,
    /// Context for the code; an empty object when there is none.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl ApiError {
    /// An error with a code and no details.
    pub fn new(code: ErrorCode) -> ApiError {
        ApiError { code, details: json!({}), retry_after_secs: None, source: None }
    }

    /// Adds structured details (merged over existing ones).
    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }

    /// 400 `VALIDATION_ERROR` naming the field and what is wrong with it.
    pub fn validation(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::ValidationError)
            .with_details(json!({ "field": field.into(), "reason": reason.into() }))
    }

    /// 503 `OVERLOADED` with a `Retry-After`.
    pub fn overloaded(retry_after_secs: u32) -> ApiError {
        ApiError { retry_after_secs: Some(retry_after_secs), ..ApiError::new(ErrorCode::Overloaded) }
    }

    /// 500 `INTERNAL`: the cause is logged once when the response is built and never sent.
    ///
    /// One exception, decided here because every store error funnels through this function
    /// (each service's `Fault`, below): a Postgres pool that gave no connection within
    /// `JUPANG_DB_ACQUIRE_TIMEOUT_MS` is overload, not a fault. It answers 503 `OVERLOADED` with
    /// `Retry-After` and is counted, not logged (a burst would flood the log).
    pub fn internal(source: impl Into<Cause>) -> ApiError {
        let source = source.into();
        if is_pool_timeout(source.as_ref()) {
            metrics::counter!(super::overload::HTTP_REQUESTS_SHED_TOTAL, "reason" => "db_pool").increment(1);
            return ApiError::overloaded(RETRY_AFTER_SECS);
        }
        ApiError { source: Some(source), ..ApiError::new(ErrorCode::Internal) }
    }

    /// The code, for callers that branch on it (and tests).
    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

/// The `Retry-After` of a shed request, in seconds: long enough for a burst to drain, short
/// enough that a client retrying on time is still early in a flash sale.
pub const RETRY_AFTER_SECS: u32 = 1;

/// Whether an error is, or was caused by, sqlx's "no pooled connection in time".
fn is_pool_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |cause| cause.source())
        .any(|cause| matches!(cause.downcast_ref::<sqlx::Error>(), Some(sqlx::Error::PoolTimedOut)))
}

/// Whether a Redis error means "not reachable right now" (down, restarting and still loading its
/// AOF, timing out, or a cluster without a master for a slot) rather than a bug.
fn redis_unavailable(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_cluster_error()
        || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
}

/// An error with its causes, `outer: inner: ...`, for the log.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(e), |cause| cause.source()).map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

impl From<Fault> for ApiError {
    /// Each cause on its own, so that a pool timeout is recognised as overload.
    fn from(f: Fault) -> Self {
        match f {
            Fault::Db(e) => ApiError::internal(e),
            Fault::Redis(e) if redis_unavailable(&e) => {
                // Not a bug: Redis is restarting, failing over or out of reach. Retryable, so
                // 503 with Retry-After (what admission has not acknowledged, it has not done).
                tracing::warn!(error.cause = %e, "Redis unavailable; request shed");
                metrics::counter!(super::overload::HTTP_REQUESTS_SHED_TOTAL, "reason" => "redis_unavailable")
                    .increment(1);
                ApiError::overloaded(RETRY_AFTER_SECS)
            }
            Fault::Redis(e) => ApiError::internal(e),
            // A load many readers waited on: still recognised as overload when it was one.
            Fault::Shared(inner) if matches!(&*inner, Fault::Db(sqlx::Error::PoolTimedOut)) => {
                ApiError::internal(sqlx::Error::PoolTimedOut)
            }
            // A batch of payments that failed for all its members on an unreachable Redis.
            Fault::Shared(inner) if matches!(&*inner, Fault::Redis(e) if redis_unavailable(e)) => {
                ApiError::overloaded(RETRY_AFTER_SECS)
            }
            f @ (Fault::Invariant(_) | Fault::Shared(_)) => ApiError::internal(f),
        }
    }
}

impl From<crate::auth::Forbidden> for ApiError {
    fn from(_: crate::auth::Forbidden) -> Self {
        ApiError::new(ErrorCode::Forbidden)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.source {
            tracing::error!(error.cause = chain(source.as_ref()), "internal error");
        }
        let mut res = render(&ErrorPayload { code: self.code, details: self.details.clone() }, Lang::Ko);
        if let Some(secs) = self.retry_after_secs {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res.extensions_mut().insert(ErrorPayload { code: self.code, details: self.details });
        res
    }
}

fn render(p: &ErrorPayload, lang: Lang) -> Response {
    let body = if p.details.as_object().is_some_and(serde_json::Map::is_empty) {
        Body::from(p.code.bare_body(lang))
    } else {
        let body = ErrorBody { code: p.code, message: p.code.message(lang).to_owned(), details: p.details.clone() };
        Body::from(serde_json::to_vec(&body).unwrap_or_default())
    };
    let mut res = Response::new(body);
    *res.status_mut() = p.code.status();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// Middleware: renders every error body in the language of the request's `Accept-Language` (else
/// the caller's profile language),
/// and gives the bodiless answers of the framework (405, timeouts) a contract body too.
pub async fn localize(req: Request, next: Next) -> Response {
    let header = super::extract::AcceptLanguage::from_headers(req.headers()).0;
    let res = next.run(req).await;
    // Without the header, the caller's profile language (left in the response by
    // `language::resolve`, which runs after authentication, inside this layer).
    let profile = res.extensions().get::<super::language::ProfileLang>().map(|p| p.0);
    let lang = header.or(profile).unwrap_or_default();
    let payload = match res.extensions().get::<ErrorPayload>() {
        Some(p) => p.clone(),
        None if res.status() == StatusCode::METHOD_NOT_ALLOWED => {
            ErrorPayload { code: ErrorCode::MethodNotAllowed, details: json!({}) }
        }
        None if res.status() == StatusCode::REQUEST_TIMEOUT => {
            ErrorPayload { code: ErrorCode::Timeout, details: json!({}) }
        }
        None => return res,
    };
    let (mut parts, _) = res.into_parts();
    let rendered = render(&payload, lang);
    parts.status = rendered.status();
    let (rparts, body) = rendered.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, rparts.headers[header::CONTENT_TYPE].clone());
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, body)
}

/// A handler panicked (caught at the boundary, answered 500 `INTERNAL`).
#[derive(Debug, thiserror::Error)]
#[error("handler panicked")]
pub struct Panicked;

/// Fallback for unknown routes: 404 `NOT_FOUND` with the contract body.
pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound)
}

// ------------------------------------------------------------ every service error, mapped once

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::validation(e.field, e.reason)
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::UserNotFound => ApiError::new(ErrorCode::UserNotFound),
            Rejection::OptionNotFound { option_id } => {
                ApiError::new(ErrorCode::ProductOptionNotFound).with_details(json!({ "product_option_id": option_id }))
            }
            Rejection::MarketMismatch { option_id } => {
                ApiError::new(ErrorCode::MarketMismatch).with_details(json!({ "product_option_id": option_id }))
            }
            Rejection::InsufficientStock { option_id, available, requested } => ApiError::new(
                ErrorCode::InsufficientStock,
            )
            .with_details(json!({ "product_option_id": option_id, "available": available, "requested": requested })),
            Rejection::EmptyOrder => ApiError::new(ErrorCode::EmptyOrder),
            Rejection::CartItemNotFound => ApiError::new(ErrorCode::CartItemNotFound),
            Rejection::OrderNotFound => ApiError::new(ErrorCode::OrderNotFound),
            Rejection::Transition(t) => ApiError::new(match t {
                TransitionError::NotPayable => ErrorCode::OrderNotPayable,
                TransitionError::NotPaid => ErrorCode::OrderNotFulfillable,
                TransitionError::NotRefundable => ErrorCode::OrderNotRefundable,
                TransitionError::Expired => ErrorCode::OrderExpired,
                TransitionError::NotCancellable | TransitionError::NotPending => ErrorCode::OrderNotCancellable,
            }),
            Rejection::Coupon(c) => match c {
                RedemptionError::Expired => ApiError::new(ErrorCode::ExpiredCoupon),
                RedemptionError::AlreadyUsed => ApiError::new(ErrorCode::AlreadyUsed),
                RedemptionError::Revoked => ApiError::new(ErrorCode::CouponRevoked),
                RedemptionError::Invalid => ApiError::new(ErrorCode::InvalidCoupon),
                RedemptionError::NotApplicable => ApiError::new(ErrorCode::CouponNotApplicable),
                RedemptionError::MinOrderAmount { min_order_amount, order_total } => {
                    ApiError::new(ErrorCode::CouponMinOrderAmount)
                        .with_details(json!({ "min_order_amount": min_order_amount, "order_total": order_total }))
                }
            },
            Rejection::RefundExceedsPaid { option_id, refundable, requested } => {
                let details = match option_id {
                    Some(id) => {
                        json!({ "product_option_id": id, "refundable_quantity": refundable, "requested": requested })
                    }
                    None => json!({ "refundable_amount": refundable, "requested": requested }),
                };
                ApiError::new(ErrorCode::RefundExceedsPaid).with_details(details)
            }
            Rejection::InsufficientBalance { currency, balance, required } => {
                ApiError::new(ErrorCode::InsufficientBalance).with_details(json!({
                    "balance": Money::new(balance, currency), "required": Money::new(required, currency),
                }))
            }
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::Rejected(r) => r.into(),
            OrderError::Receipt(e) => e.into(),
            OrderError::Fault(f) => f.into(),
        }
    }
}

impl From<ReceiptError> for ApiError {
    fn from(e: ReceiptError) -> Self {
        match e {
            // This attempt overran its lease and another took the key over: it must not commit.
            ReceiptError::TakenOver => ApiError::new(ErrorCode::IdempotencyInProgress),
            ReceiptError::Render(e) => ApiError::internal(e),
            ReceiptError::Db(e) => ApiError::internal(e),
        }
    }
}

impl From<IssueFailure> for ApiError {
    fn from(f: IssueFailure) -> ApiError {
        match f {
            IssueFailure::CouponNotFound => ApiError::new(ErrorCode::CouponNotFound),
            IssueFailure::UserNotFound => ApiError::new(ErrorCode::UserNotFound),
            IssueFailure::MarketMismatch => ApiError::new(ErrorCode::MarketMismatch),
            IssueFailure::Rule(IssueError::NotActive) => ApiError::new(ErrorCode::CouponNotActive),
            IssueFailure::Rule(IssueError::AlreadyIssued) => ApiError::new(ErrorCode::AlreadyIssued),
            IssueFailure::Rule(IssueError::SoldOut) => ApiError::new(ErrorCode::CouponSoldOut),
            IssueFailure::Conflict => ApiError::new(ErrorCode::ConcurrencyConflict),
            IssueFailure::Fault(f) => f.into(),
        }
    }
}

impl From<CouponError> for ApiError {
    fn from(e: CouponError) -> Self {
        match e {
            CouponError::CouponNotFound => ApiError::new(ErrorCode::CouponNotFound),
            CouponError::UserNotFound => ApiError::new(ErrorCode::UserNotFound),
            CouponError::Fault(f) => f.into(),
        }
    }
}

impl From<CampaignError> for ApiError {
    fn from(e: CampaignError) -> Self {
        match e {
            CampaignError::NotFound => ApiError::new(ErrorCode::CouponNotFound),
            CampaignError::Invalid(e) => ApiError::validation(e.field, e.reason),
            CampaignError::Field(e) => e.into(),
            CampaignError::UnknownProduct => ApiError::validation("product_ids", "names a product that does not exist"),
            CampaignError::NotAllowed { field } => {
                ApiError::new(ErrorCode::CouponUpdateNotAllowed).with_details(json!({ "field": field }))
            }
            CampaignError::BelowIssued { issued } => ApiError::new(ErrorCode::CouponUpdateNotAllowed)
                .with_details(json!({ "field": "total_quantity", "issued": issued })),
            CampaignError::Fault(f) => f.into(),
        }
    }
}

impl From<CartError> for ApiError {
    fn from(e: CartError) -> Self {
        match e {
            CartError::UserNotFound => ApiError::new(ErrorCode::UserNotFound),
            CartError::CartNotFound => ApiError::new(ErrorCode::CartNotFound),
            CartError::Rejected(r) => r.into(),
            CartError::Fault(f) => f.into(),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::ProductNotFound { product_id } => {
                ApiError::new(ErrorCode::ProductNotFound).with_details(json!({ "product_id": product_id }))
            }
            CatalogError::Fault(f) => f.into(),
        }
    }
}

impl From<WalletError> for ApiError {
    fn from(e: WalletError) -> Self {
        match e {
            WalletError::UserNotFound => ApiError::new(ErrorCode::UserNotFound),
            WalletError::InvalidAmount { max } => {
                ApiError::validation("amount", format!("must be an integer from 1 to {max}"))
            }
            WalletError::BalanceOverflow => ApiError::validation("amount", "the balance would exceed its maximum"),
            WalletError::Receipt(e) => e.into(),
            WalletError::Fault(f) => f.into(),
        }
    }
}

impl From<PopularError> for ApiError {
    fn from(e: PopularError) -> Self {
        match e {
            PopularError::Fault(f) => f.into(),
        }
    }
}

impl From<InventoryError> for ApiError {
    fn from(e: InventoryError) -> Self {
        match e {
            InventoryError::OptionNotFound => ApiError::new(ErrorCode::ProductOptionNotFound),
            InventoryError::LimitExceeded { option_id, stock, delta, max_delta } => {
                ApiError::new(ErrorCode::StockLimitExceeded).with_details(json!({
                    "product_option_id": option_id,
                    "stock": stock,
                    "delta": delta,
                    "max_delta": max_delta,
                }))
            }
            InventoryError::BelowReserved { option_id, stock, reserved, delta, min_delta } => {
                ApiError::new(ErrorCode::StockBelowReserved).with_details(json!({
                    "product_option_id": option_id,
                    "stock": stock,
                    "reserved": reserved,
                    "delta": delta,
                    "min_delta": min_delta,
                }))
            }
            InventoryError::Fault(f) => f.into(),
        }
    }
}

impl From<OutboxError> for ApiError {
    fn from(e: OutboxError) -> Self {
        match e {
            OutboxError::EventNotFound { event_id } => {
                ApiError::new(ErrorCode::EventNotFound).with_details(json!({ "event_id": event_id }))
            }
            OutboxError::Fault(f) => f.into(),
        }
    }
}

impl From<ProductError> for ApiError {
    fn from(e: ProductError) -> Self {
        match e {
            ProductError::NotFound { product_id } => {
                ApiError::new(ErrorCode::ProductNotFound).with_details(json!({ "product_id": product_id }))
            }
            ProductError::Invalid(e) => e.into(),
            ProductError::Fault(f) => f.into(),
        }
    }
}

impl From<FxError> for ApiError {
    fn from(e: FxError) -> Self {
        match e {
            FxError::Fault(f) => f.into(),
        }
    }
}

impl From<UserAdminError> for ApiError {
    fn from(e: UserAdminError) -> Self {
        match e {
            UserAdminError::Fault(f) => f.into(),
        }
    }
}

impl From<ProfileError> for ApiError {
    fn from(e: ProfileError) -> Self {
        match e {
            ProfileError::UserNotFound => ApiError::new(ErrorCode::UserNotFound),
            ProfileError::Fault(f) => f.into(),
        }
    }
}

impl From<PaymentRecordError> for ApiError {
    fn from(e: PaymentRecordError) -> Self {
        match e {
            PaymentRecordError::PaymentNotFound => ApiError::new(ErrorCode::PaymentNotFound),
            PaymentRecordError::UserNotFound => ApiError::new(ErrorCode::UserNotFound),
            PaymentRecordError::Fault(f) => f.into(),
        }
    }
}

impl From<WaitingRoomError> for ApiError {
    fn from(e: WaitingRoomError) -> Self {
        use crate::domain::waiting_room::EventKind;
        match e {
            WaitingRoomError::EventNotFound(EventKind::Coupon) => ApiError::new(ErrorCode::CouponNotFound),
            WaitingRoomError::EventNotFound(EventKind::Product) => ApiError::new(ErrorCode::ProductNotFound),
            WaitingRoomError::NoRoom => ApiError::new(ErrorCode::WaitingRoomNotFound),
            WaitingRoomError::TicketNotFound => ApiError::new(ErrorCode::TicketNotFound),
            WaitingRoomError::PassRequired(event, refusal) => ApiError::new(ErrorCode::WaitingRoomPassRequired)
                .with_details(json!({
                    "event_type": event.kind.as_str(),
                    "event_id": event.id,
                    "reason": refusal.as_str(),
                    "enter": format!("POST /api/waiting-rooms/{}/{}/tickets", event.kind.as_str(), event.id),
                    "header": "X-Waiting-Room-Pass",
                })),
            WaitingRoomError::Fault(f) => f.into(),
        }
    }
}
