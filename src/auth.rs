//! Who is calling: the roles of the contract, the claims of a Jupang token (JWT, HS256), the
//! keys that sign and verify them, and the authenticated [`Caller`].
//!
//! A leaf module: the HTTP layer's extractors (`http::auth`) build a [`Caller`] from the bearer
//! token, the application state holds the [`JwtKeys`], and `jupang token` mints tokens with them.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The caller may not act for the user it named (answered 403 `FORBIDDEN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the caller may not act for this user")]
pub struct Forbidden;

/// A role a token can carry. The contract's `guest` is no token at all: an anonymous caller
/// (`http::auth::MaybeCaller(None)`) browses and keeps a guest cart, and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A shopper acting for itself.
    Customer,
    /// Customer service: reads customers' data.
    CsAgent,
    /// Adjusts stock and reads the inventory audit log.
    InventoryManager,
    /// Runs coupon campaigns.
    MarketingManager,
    /// May do everything.
    OpsAdmin,
    /// The external data platform (event re-delivery only).
    DataPlatform,
}

impl Role {
    /// Parses the claim spelling (`customer`, `ops_admin`, ...).
    pub fn parse(s: &str) -> Option<Role> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// The claims of a Jupang token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id as a decimal string (RFC 7519).
    pub sub: String,
    /// Roles; `["customer"]` when absent.
    #[serde(default = "default_roles")]
    pub roles: Vec<Role>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

fn default_roles() -> Vec<Role> {
    vec![Role::Customer]
}

/// The HS256 keys, built once from `JUPANG_JWT_SECRET`.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    /// Keys for a shared secret.
    pub fn new(secret: &[u8]) -> JwtKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        JwtKeys { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation }
    }

    /// Signs a token for a user with roles, valid for `ttl_secs`.
    pub fn mint(&self, user_id: i64, roles: &[Role], ttl_secs: i64) -> String {
        let claims =
            Claims { sub: user_id.to_string(), roles: roles.to_vec(), exp: chrono::Utc::now().timestamp() + ttl_secs };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail")
    }

    /// Verifies a token and returns the caller it names.
    pub fn verify(&self, token: &str) -> Option<Caller> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let user_id = data.claims.sub.parse::<i64>().ok().filter(|id| *id > 0)?;
        let roles = if data.claims.roles.is_empty() { default_roles() } else { data.claims.roles };
        Some(Caller { user_id, roles: Arc::from(roles) })
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's subject.
    pub user_id: i64,
    /// The token's roles.
    pub roles: Arc<[Role]>,
}

impl Caller {
    /// Whether the caller holds a role (`ops_admin` holds them all).
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&Role::OpsAdmin) || self.roles.contains(&role)
    }

    /// The contract's rule for a `user_id` in a request body: it must be the token's subject
    /// (an `ops_admin` may act for anyone).
    pub fn ensure_is(&self, user_id: i64) -> Result<(), Forbidden> {
        if user_id == self.user_id || self.has(Role::OpsAdmin) { Ok(()) } else { Err(Forbidden) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_a_forged_one_does_not() {
        let keys = JwtKeys::new(b"0123456789abcdef-secret");
        let token = keys.mint(42, &[Role::Customer, Role::CsAgent], 60);
        let caller = keys.verify(&token).unwrap();
        assert_eq!(caller.user_id, 42);
        assert!(caller.has(Role::CsAgent) && !caller.has(Role::OpsAdmin));
        let other = JwtKeys::new(b"another-secret-0123456789");
        assert!(other.verify(&token).is_none());
        assert!(keys.verify(&keys.mint(42, &[], -3600)).is_none(), "expired");
    }

    #[test]
    fn ops_admin_holds_every_role() {
        let c = Caller { user_id: 1, roles: Arc::from(vec![Role::OpsAdmin]) };
        assert!(c.has(Role::InventoryManager) && c.has(Role::MarketingManager));
    }
}
