//! The cart: lines priced in the user's currency with live availability, a preview of a held
//! coupon's discount, and changes. The cart reserves nothing; the order re-checks under lock.

use chrono::Utc;
use uuid::Uuid;

use super::{AppState, Fault, fault_conversions};
pub use crate::store::pg::cart::CartLine;
use crate::{
    domain::{
        Currency,
        discount::{DiscountLine, validate_redemption},
        order::Rejection,
    },
    store::pg::{
        cart::{self, Owner},
        orders::StoreError,
        redemption,
        users::{self, UserRow},
    },
};

/// Why a cart request failed.
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    /// No user with this id.
    #[error("no such user")]
    UserNotFound,
    /// No live guest cart with this token (unknown, expired or merged).
    #[error("no such guest cart")]
    CartNotFound,
    /// A business rule refused it (unknown option or line, another market, not enough stock).
    #[error("rejected: {0:?}")]
    Rejected(Rejection),
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

fault_conversions!(CartError);

impl From<StoreError> for CartError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rejected(r) => CartError::Rejected(r),
            StoreError::Db(e) => CartError::Fault(e.into()),
        }
    }
}

/// The whole cart with its totals.
#[derive(Debug, Clone)]
pub struct Cart {
    /// The user's currency, of every amount.
    pub currency: Currency,
    /// The lines, oldest first.
    pub lines: Vec<CartLine>,
    /// Sum of the subtotals.
    pub total: i64,
    /// The previewed coupon's discount; 0 when none or not applicable.
    pub discount: i64,
}

async fn user(state: &AppState, user_id: i64) -> Result<UserRow, CartError> {
    users::find(&state.db, user_id).await?.ok_or(CartError::UserNotFound)
}

/// The cart, with the discount `user_coupon_id` would give (a preview never fails: a coupon that
/// would be refused at payment shows 0).
pub async fn view(state: &AppState, user_id: i64, user_coupon_id: Option<Uuid>) -> Result<Cart, CartError> {
    let user = user(state, user_id).await?;
    let currency = user.balance().currency;
    let mut cart = lines_of(state, Owner::User(user.id), currency).await?;
    let (lines, total) = (&cart.lines, cart.total);
    if let Some(uc) = user_coupon_id {
        // A V2 coupon issued a moment ago may not be persisted yet.
        state.coupon_admission.ensure_persisted(user.id, uc).await?;
        if let Some(held) = redemption::find(&state.db, uc).await? {
            let dlines: Vec<DiscountLine> = lines
                .iter()
                .map(|l| DiscountLine {
                    product_id: l.product_id,
                    category: l.category.clone(),
                    subtotal: l.subtotal(),
                })
                .collect();
            cart.discount = validate_redemption(&held.held, user.id, Utc::now(), &held.rule, &dlines, user.market())
                .unwrap_or(0)
                .min(total);
        }
    }
    Ok(cart)
}

/// Any cart's lines and total in `currency`, without a discount.
pub(crate) async fn lines_of(state: &AppState, owner: Owner, currency: Currency) -> Result<Cart, CartError> {
    let lines = cart::lines(&state.db, owner, currency.code()).await?;
    let total: i64 = lines.iter().map(CartLine::subtotal).sum();
    Ok(Cart { currency, lines, total, discount: 0 })
}

/// Adds `quantity` of an option (accumulating onto an existing line); answers the line.
pub async fn add(
    state: &AppState,
    user_id: i64,
    option_id: i64,
    quantity: i64,
) -> Result<(CartLine, Currency), CartError> {
    let user = user(state, user_id).await?;
    add_to(state, Owner::User(user.id), user.balance().currency, option_id, quantity).await
}

/// [`add`] for any cart priced in `currency`.
pub(crate) async fn add_to(
    state: &AppState,
    owner: Owner,
    currency: Currency,
    option_id: i64,
    quantity: i64,
) -> Result<(CartLine, Currency), CartError> {
    Ok((cart::add(&state.db, owner, currency.code(), option_id, quantity).await?, currency))
}

/// Sets a line's quantity (re-checking stock); answers the line.
pub async fn set_quantity(
    state: &AppState,
    user_id: i64,
    item_id: i64,
    quantity: i64,
) -> Result<(CartLine, Currency), CartError> {
    let user = user(state, user_id).await?;
    set_quantity_of(state, Owner::User(user.id), user.balance().currency, item_id, quantity).await
}

/// [`set_quantity`] for any cart priced in `currency`.
pub(crate) async fn set_quantity_of(
    state: &AppState,
    owner: Owner,
    currency: Currency,
    item_id: i64,
    quantity: i64,
) -> Result<(CartLine, Currency), CartError> {
    cart::set_quantity(&state.db, owner, currency.code(), item_id, quantity).await?;
    priced_line(state, owner, currency, item_id).await
}

/// A line of a cart priced in `currency`, with the currency.
async fn priced_line(
    state: &AppState,
    owner: Owner,
    currency: Currency,
    item_id: i64,
) -> Result<(CartLine, Currency), CartError> {
    let line = cart::line(&state.db, owner, currency.code(), item_id).await?.ok_or(Rejection::CartItemNotFound)?;
    Ok((line, currency))
}

/// Removes a line of the user's cart.
pub async fn remove(state: &AppState, user_id: i64, item_id: i64) -> Result<(), CartError> {
    remove_from(state, Owner::User(user_id), item_id).await
}

/// Removes a line of any cart.
pub(crate) async fn remove_from(state: &AppState, owner: Owner, item_id: i64) -> Result<(), CartError> {
    if cart::remove(&state.db, owner, item_id).await? { Ok(()) } else { Err(Rejection::CartItemNotFound.into()) }
}

impl From<Rejection> for CartError {
    fn from(r: Rejection) -> Self {
        CartError::Rejected(r)
    }
}
