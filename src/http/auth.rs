//! Bearer-token authentication (JWT, HS256) and the authorization rules of the contract.
//!
//! The [`authenticate`] middleware decodes the token once per request. Handlers then state what
//! they need by their argument types, so the rules live here and nowhere else:
//! - [`Caller`]: any valid token (401 `UNAUTHENTICATED` otherwise);
//! - [`UserScope`]: a `/users/{user_id}/...` route; the caller must be that user, an `ops_admin`,
//!   or a `cs_agent` reading (GET) — 403 `FORBIDDEN` otherwise;
//! - [`require_roles`]: a route layer for role-gated routes (`ops_admin` passes every gate).

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{FromRequestParts, Path as AxumPath, Request, State},
    http::{Method, header, request::Parts},
    middleware::Next,
    response::Response,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorCode};

/// A role a token can carry.
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

    /// The contract's rule for a `user_id` in a request body: it must be the token's subject.
    pub fn ensure_is(&self, user_id: i64) -> Result<(), ApiError> {
        if user_id == self.user_id || self.has(Role::OpsAdmin) {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::Forbidden))
        }
    }
}

/// What [`authenticate`] found in the `Authorization` header.
#[derive(Debug, Clone)]
enum Authentication {
    Anonymous,
    Invalid,
    Valid(Caller),
}

/// Middleware: decodes the bearer token once and leaves the outcome for the extractors.
pub async fn authenticate(State(keys): State<Arc<JwtKeys>>, mut req: Request, next: Next) -> Response {
    let outcome = match req.headers().get(header::AUTHORIZATION) {
        None => Authentication::Anonymous,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.strip_prefix("Bearer ").or_else(|| s.strip_prefix("bearer ")))
            .and_then(|t| keys.verify(t.trim()))
            .map_or(Authentication::Invalid, Authentication::Valid),
    };
    req.extensions_mut().insert(outcome);
    next.run(req).await
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Authentication>() {
            Some(Authentication::Valid(c)) => Ok(c.clone()),
            _ => Err(ApiError::new(ErrorCode::Unauthenticated)),
        }
    }
}

/// The caller, if a valid token was given; public routes use it to personalise (market).
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(MaybeCaller(match parts.extensions.get::<Authentication>() {
            Some(Authentication::Valid(c)) => Some(c.clone()),
            _ => None,
        }))
    }
}

/// A `/users/{user_id}/...` route, authorised for the caller.
#[derive(Debug, Clone)]
pub struct UserScope {
    /// The user the route is about (already authorised).
    pub user_id: i64,
    /// Who is calling.
    pub caller: Caller,
}

impl<S: Send + Sync> FromRequestParts<S> for UserScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let params = AxumPath::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::validation("path", e.body_text()))?;
        let user_id = params
            .get("user_id")
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| ApiError::validation("user_id", "must be a positive integer"))?;
        let reading = parts.method == Method::GET || parts.method == Method::HEAD;
        let allowed = caller.user_id == user_id || caller.has(Role::OpsAdmin) || (reading && caller.has(Role::CsAgent));
        if !allowed {
            return Err(ApiError::new(ErrorCode::Forbidden));
        }
        Ok(UserScope { user_id, caller })
    }
}

/// Route layer: only callers holding one of `roles` (or `ops_admin`) get through;
/// 401 without a valid token, 403 with one that lacks the role.
pub async fn require_roles(
    State(roles): State<&'static [Role]>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = match req.extensions().get::<Authentication>() {
        Some(Authentication::Valid(c)) => c,
        _ => return Err(ApiError::new(ErrorCode::Unauthenticated)),
    };
    if !roles.iter().any(|r| caller.has(*r)) {
        return Err(ApiError::new(ErrorCode::Forbidden));
    }
    Ok(next.run(req).await)
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
