//! Bearer tokens for a run, minted here: this crate does not link the server library (the
//! `jupang` binary depends on it, and Cargo forbids the cycle), so it follows the contract's
//! token format itself (api.md, "Conventions"): HS256 over `JUPANG_JWT_SECRET`, claims `sub`
//! (the user id as a decimal string), `roles` (the contract's role names) and `exp`.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// The contract's role of a customer.
pub const CUSTOMER: &str = "customer";
/// The contract's role that may do everything.
pub const OPS_ADMIN: &str = "ops_admin";

#[derive(Serialize)]
struct Claims<'a> {
    sub: String,
    roles: &'a [&'a str],
    exp: i64,
}

/// Signs tokens with the server's secret.
pub struct Minter {
    key: EncodingKey,
}

impl Minter {
    /// A minter for the server's `JUPANG_JWT_SECRET`.
    pub fn new(secret: &[u8]) -> Minter {
        Minter { key: EncodingKey::from_secret(secret) }
    }

    /// A token for `user_id` with `roles`, valid for `ttl_secs` from now.
    pub fn mint(&self, user_id: i64, roles: &[&str], ttl_secs: i64) -> String {
        let claims = Claims { sub: user_id.to_string(), roles, exp: chrono::Utc::now().timestamp() + ttl_secs };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .expect("HS256 signing with an in-memory key cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::Value;

    use super::*;

    #[test]
    fn a_token_carries_the_contract_claims_signed_with_hs256() {
        let token = Minter::new(b"a-test-secret-of-32-bytes-length").mint(42, &[OPS_ADMIN], 60);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Value>(
            &token,
            &DecodingKey::from_secret(b"a-test-secret-of-32-bytes-length"),
            &validation,
        )
        .expect("verifies with the same secret");
        assert_eq!(data.header.alg, Algorithm::HS256);
        assert_eq!(data.claims["sub"], "42", "sub is the decimal user id as a string");
        assert_eq!(data.claims["roles"], serde_json::json!(["ops_admin"]));
        let exp = data.claims["exp"].as_i64().unwrap();
        assert!((exp - chrono::Utc::now().timestamp() - 60).abs() <= 2, "exp is now + ttl: {exp}");
        let wrong = jsonwebtoken::decode::<Value>(
            &token,
            &DecodingKey::from_secret(b"another-secret-another-secret!!!"),
            &validation,
        );
        assert!(wrong.is_err(), "another secret does not verify it");
    }
}
