//! Guest carts: a cart for a caller without an account, named by an unguessable bearer token,
//! and its merge into a user's cart at sign-in.
//!
//! A guest cart behaves exactly like the user cart ([`super::cart`]: the same queries, stock
//! checks and refusals), priced in the market fixed when it was created. It lives in Postgres,
//! like the user cart, so the view, the stock checks and the merge are the user cart's own
//! queries and the merge is one transaction (see README "Guest carts" for the choice).
//!
//! The token is 256 bits from a CSPRNG (rand's ChaCha12 thread generator, seeded by the OS), shown once; only its SHA-256 is
//! stored, so a copy of the database opens no cart.

use chrono::{Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{
    AppState, Fault,
    cart::{self, Cart, CartError, CartLine},
};
use crate::{
    domain::{Currency, Market},
    store::pg::{
        cart::Owner,
        guest_carts::{self, GuestCart, MergedLine},
        users,
    },
};

/// How long a guest cart lives after its creation.
pub const TTL: Duration = Duration::days(30);

/// Characters of a token: 32 random bytes in lower-case hex.
pub const TOKEN_LEN: usize = 64;

/// A guest cart's bearer token, checked for shape (64 lower-case hex digits) but not for life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartToken(String);

impl CartToken {
    /// The token if `s` has a token's shape.
    pub fn parse(s: &str) -> Option<CartToken> {
        let ok = s.len() == TOKEN_LEN && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| CartToken(s.to_owned()))
    }

    /// The token's text (for the client that created it; never logged).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    fn random() -> CartToken {
        let mut bytes = [0u8; 32];
        // ThreadRng: ChaCha12, a CSPRNG seeded (and periodically reseeded) from the OS.
        rand::rng().fill_bytes(&mut bytes);
        CartToken(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// Creates an empty guest cart priced in `market`'s currency; answers its token.
pub async fn create(state: &AppState, market: Market) -> Result<CartToken, CartError> {
    let token = CartToken::random();
    guest_carts::create(&state.db, &token.hash(), market, Utc::now() + TTL).await?;
    Ok(token)
}

/// The live cart of a token, as the cart's owner and currency.
async fn open(state: &AppState, token: &CartToken) -> Result<(Owner, Currency), CartError> {
    let GuestCart { id, market } = guest_carts::find(&state.db, &token.hash()).await?.ok_or(CartError::CartNotFound)?;
    Ok((Owner::Guest(id), market.currency()))
}

/// The guest cart with its total (guests hold no coupons: the discount is 0).
pub async fn view(state: &AppState, token: &CartToken) -> Result<Cart, CartError> {
    let (owner, currency) = open(state, token).await?;
    cart::lines_of(state, owner, currency).await
}

/// Adds an option, as [`cart::add`] does for a user.
pub async fn add(
    state: &AppState,
    token: &CartToken,
    option_id: i64,
    quantity: i64,
) -> Result<(CartLine, Currency), CartError> {
    let (owner, currency) = open(state, token).await?;
    cart::add_to(state, owner, currency, option_id, quantity).await.map_err(merged_meanwhile)
}

/// A line added while a merge took the cart: the merge deleted the cart row after this request
/// found it, so the line's foreign key refuses it. The cart is gone, as a later request would
/// be told.
fn merged_meanwhile(e: CartError) -> CartError {
    match &e {
        CartError::Fault(Fault::Db(db)) if db.as_database_error().is_some_and(|d| d.is_foreign_key_violation()) => {
            CartError::CartNotFound
        }
        _ => e,
    }
}

/// Sets a line's quantity, as [`cart::set_quantity`] does for a user.
pub async fn set_quantity(
    state: &AppState,
    token: &CartToken,
    item_id: i64,
    quantity: i64,
) -> Result<(CartLine, Currency), CartError> {
    let (owner, currency) = open(state, token).await?;
    cart::set_quantity_of(state, owner, currency, item_id, quantity).await
}

/// Removes a line, as [`cart::remove`] does for a user.
pub async fn remove(state: &AppState, token: &CartToken, item_id: i64) -> Result<(), CartError> {
    let (owner, _) = open(state, token).await?;
    cart::remove_from(state, owner, item_id).await
}

/// What a merge did: the user's cart afterwards and the options that did not fully fit.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The user's cart after the merge.
    pub cart: Cart,
    /// Options whose combined quantity was more than is available (or that are not sold in the
    /// user's market), with what the cart holds now.
    pub capped: Vec<MergedLine>,
}

/// Merges the guest cart of `token` into the user's cart, then the guest cart is gone.
/// `CartNotFound` when the token names no live cart (a second merge of it included).
pub async fn merge(state: &AppState, user_id: i64, token: &CartToken) -> Result<Merged, CartError> {
    let user = users::find(&state.db, user_id).await?.ok_or(CartError::UserNotFound)?;
    let currency = user.balance().currency;
    let lines = guest_carts::merge_into(&state.db, &token.hash(), user.id, currency.code())
        .await?
        .ok_or(CartError::CartNotFound)?;
    let capped = lines.into_iter().filter(|l| l.quantity < l.requested).collect();
    let cart = cart::lines_of(state, Owner::User(user.id), currency).await?;
    Ok(Merged { cart, capped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_64_hex_digits_and_differ() {
        let (a, b) = (CartToken::random(), CartToken::random());
        assert_ne!(a, b);
        assert!(CartToken::parse(a.as_str()).is_some());
        assert!(CartToken::parse(&a.as_str().to_uppercase()).is_none());
        assert!(CartToken::parse(&a.as_str()[1..]).is_none());
        assert!(CartToken::parse("zz").is_none());
    }
}
