//! Users' profiles: read one, and change the language its messages and localised text follow
//! when a request carries no `Accept-Language`.

use super::{AppState, Fault, fault_conversions};
use crate::{
    domain::{Lang, Market},
    store::{
        pg::users::{self, ProfileRow},
        redis::notices::Topic,
    },
};

/// Why a profile request failed.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// No user with this id.
    #[error("no such user")]
    UserNotFound,
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

fault_conversions!(ProfileError);

/// A user's profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// User id.
    pub user_id: i64,
    /// Its market.
    pub market: Market,
    /// The language of its answers when a request names none.
    pub language: Lang,
}

fn profile(row: ProfileRow) -> (Profile, String) {
    let market = Market::parse(&row.market).unwrap_or(Market::Kr);
    let language = Lang::parse(&row.language).unwrap_or_else(|| Lang::of_market(market));
    (Profile { user_id: row.id, market, language }, row.name)
}

/// A user's profile and display name.
pub async fn get(state: &AppState, user_id: i64) -> Result<(Profile, String), ProfileError> {
    Ok(profile(users::profile(&state.db, user_id).await?.ok_or(ProfileError::UserNotFound)?))
}

/// Sets a user's language; answers the profile. This process answers in it at once; every other
/// instance drops its cached copy on the `user` notice (within about a millisecond, or
/// [`crate::store::redis::notices::CHECK_EVERY`] when the notice is lost).
pub async fn set_language(state: &AppState, user_id: i64, lang: Lang) -> Result<(Profile, String), ProfileError> {
    let row = users::set_language(&state.db, user_id, lang).await?.ok_or(ProfileError::UserNotFound)?;
    state.order_admission.users().set_language(user_id, lang);
    if let Err(e) = state.notices.publish(Topic::User, Some(user_id)).await {
        tracing::error!(user.id = user_id, error.cause = %e, "could not announce a language change; other instances answer in the old language until their next reload");
    }
    Ok(profile(row))
}
