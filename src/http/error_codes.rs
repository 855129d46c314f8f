//! Every error code the API answers with: its wire form, its HTTP status, and its message in
//! Korean and English (api.md lists the codes). Add a code here with both messages.

use std::{borrow::Cow, sync::LazyLock};

use axum::http::StatusCode;
use serde::{Serialize, Serializer};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{ObjectBuilder, RefOr, Schema, Type},
};

use crate::domain::Lang;

macro_rules! error_codes {
    ($( $variant:ident = $wire:literal => $status:ident, $ko:literal, $en:literal; )*) => {
        /// Every error code the API can answer with; the wire form is SCREAMING_SNAKE_CASE.
        ///
        /// Serialised and published from [`ErrorCode::as_str`] alone (hand-written `Serialize`
        /// and `ToSchema` below): derives cannot see a `serde(rename)` whose literal comes from a
        /// macro argument, and published the Rust names instead of the wire names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum ErrorCode { $( $variant, )* }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$( ErrorCode::$variant, )*];

            /// The HTTP status this code is answered with.
            pub fn status(self) -> StatusCode {
                match self { $( ErrorCode::$variant => StatusCode::$status, )* }
            }
            /// The human message in a language.
            pub fn message(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $( (ErrorCode::$variant, Lang::Ko) => $ko, (ErrorCode::$variant, Lang::En) => $en, )*
                }
            }
            /// The stable wire code, e.g. `INSUFFICIENT_STOCK`.
            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $wire, )* }
            }
        }
    };
}

error_codes! {
    ValidationError = "VALIDATION_ERROR" => BAD_REQUEST, "요청 값이 올바르지 않습니다", "The request is invalid";
    Unauthenticated = "UNAUTHENTICATED" => UNAUTHORIZED, "인증이 필요합니다", "Authentication is required";
    Forbidden = "FORBIDDEN" => FORBIDDEN, "이 작업을 수행할 권한이 없습니다", "You are not allowed to do this";
    NotFound = "NOT_FOUND" => NOT_FOUND, "요청한 경로를 찾을 수 없습니다", "No such route";
    MethodNotAllowed = "METHOD_NOT_ALLOWED" => METHOD_NOT_ALLOWED, "허용되지 않은 메서드입니다", "Method not allowed";
    UserNotFound = "USER_NOT_FOUND" => NOT_FOUND, "사용자를 찾을 수 없습니다", "User not found";
    ProductNotFound = "PRODUCT_NOT_FOUND" => NOT_FOUND, "상품을 찾을 수 없습니다", "Product not found";
    ProductOptionNotFound = "PRODUCT_OPTION_NOT_FOUND" => NOT_FOUND, "상품 옵션을 찾을 수 없습니다", "Product option not found";
    CartNotFound = "CART_NOT_FOUND" => NOT_FOUND, "장바구니를 찾을 수 없습니다", "Cart not found";
    CartItemNotFound = "CART_ITEM_NOT_FOUND" => NOT_FOUND, "장바구니 항목을 찾을 수 없습니다", "Cart item not found";
    OrderNotFound = "ORDER_NOT_FOUND" => NOT_FOUND, "주문을 찾을 수 없습니다", "Order not found";
    PaymentNotFound = "PAYMENT_NOT_FOUND" => NOT_FOUND, "결제 내역을 찾을 수 없습니다", "Payment not found";
    CouponNotFound = "COUPON_NOT_FOUND" => NOT_FOUND, "쿠폰을 찾을 수 없습니다", "Coupon not found";
    EventNotFound = "EVENT_NOT_FOUND" => NOT_FOUND, "이벤트를 찾을 수 없습니다", "Event not found";
    InsufficientStock = "INSUFFICIENT_STOCK" => BAD_REQUEST, "재고가 부족합니다", "Not enough stock";
    EmptyOrder = "EMPTY_ORDER" => BAD_REQUEST, "주문할 상품이 없습니다", "The order has no items";
    InsufficientBalance = "INSUFFICIENT_BALANCE" => BAD_REQUEST, "잔액이 부족합니다", "Not enough balance";
    OrderExpired = "ORDER_EXPIRED" => BAD_REQUEST, "주문서가 만료되었습니다. 주문서를 다시 생성하세요", "The order has expired; create the order again";
    OrderNotPayable = "ORDER_NOT_PAYABLE" => BAD_REQUEST, "결제할 수 없는 주문입니다", "The order cannot be paid";
    OrderNotCancellable = "ORDER_NOT_CANCELLABLE" => BAD_REQUEST, "취소할 수 없는 주문입니다", "The order cannot be cancelled";
    OrderNotFulfillable = "ORDER_NOT_FULFILLABLE" => CONFLICT, "결제 완료 상태의 주문만 출고할 수 있습니다", "Only a paid order can be fulfilled";
    OrderNotRefundable = "ORDER_NOT_REFUNDABLE" => CONFLICT, "환불할 수 없는 주문입니다", "The order cannot be refunded";
    RefundExceedsPaid = "REFUND_EXCEEDS_PAID" => BAD_REQUEST, "결제한 금액(수량)을 넘어 환불할 수 없습니다", "The refund exceeds what was paid and not yet refunded";
    AlreadyIssued = "ALREADY_ISSUED" => BAD_REQUEST, "이미 발급받은 쿠폰입니다", "You already have this coupon";
    CouponSoldOut = "COUPON_SOLD_OUT" => BAD_REQUEST, "선착순 마감", "sold out";
    CouponNotActive = "COUPON_NOT_ACTIVE" => BAD_REQUEST, "쿠폰 발급 기간이 아닙니다", "The coupon is not being issued now";
    ExpiredCoupon = "EXPIRED_COUPON" => BAD_REQUEST, "만료된 쿠폰입니다", "The coupon has expired";
    AlreadyUsed = "ALREADY_USED" => BAD_REQUEST, "이미 사용된 쿠폰입니다", "The coupon has already been used";
    InvalidCoupon = "INVALID_COUPON" => BAD_REQUEST, "사용할 수 없는 쿠폰입니다", "The coupon is not valid for you";
    CouponRevoked = "COUPON_REVOKED" => BAD_REQUEST, "회수된 쿠폰입니다", "The coupon has been revoked";
    CouponMinOrderAmount = "COUPON_MIN_ORDER_AMOUNT" => BAD_REQUEST, "쿠폰 최소 주문 금액에 미달합니다", "The order is below the coupon's minimum amount";
    CouponNotApplicable = "COUPON_NOT_APPLICABLE" => BAD_REQUEST, "이 주문에 적용할 수 없는 쿠폰입니다", "The coupon does not apply to this order";
    CouponUpdateNotAllowed = "COUPON_UPDATE_NOT_ALLOWED" => BAD_REQUEST, "발급이 시작된 쿠폰은 수량 증가와 발급 종료만 가능합니다", "Once issuing has started, a coupon may only gain quantity or end its window";
    StockBelowReserved = "STOCK_BELOW_RESERVED" => BAD_REQUEST, "예약된 수량보다 재고를 줄일 수 없습니다", "Stock cannot go below what is reserved";
    StockLimitExceeded = "STOCK_LIMIT_EXCEEDED" => BAD_REQUEST, "재고가 저장할 수 있는 최대치(2147483647)를 넘습니다", "Stock cannot exceed its maximum (2147483647)";
    MarketMismatch = "MARKET_MISMATCH" => BAD_REQUEST, "다른 시장의 상품이나 쿠폰입니다", "The item or coupon belongs to another market";
    ConcurrencyConflict = "CONCURRENCY_CONFLICT" => CONFLICT, "요청이 몰려 처리하지 못했습니다. 다시 시도하세요", "Too much contention; please retry";
    IdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED" => UNPROCESSABLE_ENTITY, "같은 멱등 키로 다른 요청을 보냈습니다", "This Idempotency-Key was used for a different request";
    IdempotencyInProgress = "IDEMPOTENCY_IN_PROGRESS" => CONFLICT, "같은 멱등 키의 요청이 처리 중입니다", "A request with this Idempotency-Key is still running";
    Overloaded = "OVERLOADED" => SERVICE_UNAVAILABLE, "요청이 많아 잠시 후 다시 시도하세요", "Overloaded; retry shortly";
    Timeout = "TIMEOUT" => SERVICE_UNAVAILABLE, "요청 처리 시간이 초과되었습니다", "The request took too long";
    PayloadTooLarge = "PAYLOAD_TOO_LARGE" => PAYLOAD_TOO_LARGE, "요청 본문이 너무 큽니다", "The request body is too large";
    UnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE" => UNSUPPORTED_MEDIA_TYPE, "요청 본문은 application/json 이어야 합니다", "The request body must be application/json";
    WaitingRoomPassRequired = "WAITING_ROOM_PASS_REQUIRED" => FORBIDDEN, "대기열 입장권이 필요합니다. 대기열에 입장해 순서를 기다리세요", "A waiting-room pass is required; enter the waiting room and wait for your turn";
    WaitingRoomNotFound = "WAITING_ROOM_NOT_FOUND" => NOT_FOUND, "이 이벤트에는 열린 대기열이 없습니다", "This event has no open waiting room";
    TicketNotFound = "TICKET_NOT_FOUND" => NOT_FOUND, "대기열 번호표를 찾을 수 없습니다", "Waiting-room ticket not found";
    Internal = "INTERNAL" => INTERNAL_SERVER_ERROR, "일시적인 오류가 발생했습니다", "Something went wrong on our side";
}

impl ErrorCode {
    /// The JSON error body of this code with no details (`{}`) in `lang`: exactly the bytes
    /// [`super::error::ErrorBody`] serialises to, rendered once per process. The refusals of the
    /// hot paths (a sold-out coupon's losers, by the tens of thousands per second) carry no
    /// details, and serialising the same bytes again for each of them was measurable work.
    pub fn bare_body(self, lang: Lang) -> &'static [u8] {
        static BODIES: LazyLock<Vec<[&'static [u8]; 2]>> = LazyLock::new(|| {
            ErrorCode::ALL.iter().map(|&code| [Lang::Ko, Lang::En].map(|lang| bare(code, lang))).collect()
        });
        // Declaration order is the order of `ALL`; a new language is a compile error here.
        BODIES[self as usize][match lang {
            Lang::Ko => 0,
            Lang::En => 1,
        }]
    }
}

/// Renders (and keeps for the process's life: a fixed, small table) a details-less body.
fn bare(code: ErrorCode, lang: Lang) -> &'static [u8] {
    let body = super::error::ErrorBody { code, message: code.message(lang).to_owned(), details: serde_json::json!({}) };
    Box::leak(serde_json::to_vec(&body).unwrap_or_default().into_boxed_slice())
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("Stable machine-readable error code (api.md lists them)."))
            .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
            .into()
    }
}

impl ToSchema for ErrorCode {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ErrorCode")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_enum_is_exactly_the_wire_form() {
        let schema = serde_json::to_value(ErrorCode::schema()).unwrap();
        let published: Vec<String> = serde_json::from_value(schema["enum"].clone()).unwrap();
        let wire: Vec<String> =
            ErrorCode::ALL.iter().map(|c| serde_json::to_value(c).unwrap().as_str().unwrap().to_owned()).collect();
        assert_eq!(published, wire);
        assert!(published.iter().any(|c| c == "VALIDATION_ERROR"));
        assert!(published.iter().all(|c| c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')));
    }

    #[test]
    fn every_bare_body_is_its_code_and_message_in_its_language_with_empty_details() {
        for &code in ErrorCode::ALL {
            for lang in [Lang::Ko, Lang::En] {
                let body: serde_json::Value = serde_json::from_slice(code.bare_body(lang)).unwrap();
                let expected =
                    serde_json::json!({ "code": code.as_str(), "message": code.message(lang), "details": {} });
                assert_eq!(body, expected, "{code:?} in {lang:?}");
            }
        }
        assert_ne!(ErrorCode::CouponSoldOut.bare_body(Lang::Ko), ErrorCode::CouponSoldOut.bare_body(Lang::En));
    }
}
