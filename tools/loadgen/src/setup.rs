//! Everything a scenario prepares before the clock starts: users (through `jupang seed`'s code
//! when `DATABASE_URL` is set), tokens signed with `JUPANG_JWT_SECRET` ([`crate::token`]), and a fresh sale or
//! product created through the admin API. None of this is on the hot path, so the ordinary
//! `reqwest` client does the admin calls.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{TimeDelta, Utc};
use hyper::header::HeaderValue;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::{
    Env,
    client::Target,
    token::{CUSTOMER, Minter, OPS_ADMIN},
};

/// The admin token's subject: a staff id no customer uses (no profile, so no market).
const ADMIN_ID: i64 = 900_000_001;
/// Lifetime of the tokens minted for a run.
const TOKEN_TTL_SECS: i64 = 24 * 3600;
/// Wallet balance of the users the load generator creates (as `jupang seed` gives them).
pub const USER_BALANCE: i64 = 1_000_000;

/// Keys, tokens, the admin client and (optionally) Postgres.
pub struct Setup {
    keys: Minter,
    admin: String,
    http: reqwest::Client,
    /// Postgres, when `DATABASE_URL` is set: users are ensured and convergence is checked.
    pub db: Option<PgPool>,
}

impl Setup {
    /// Uses `JUPANG_JWT_SECRET` (required) and `DATABASE_URL` (optional).
    pub async fn new(env: &Env) -> anyhow::Result<Setup> {
        let secret = env
            .jwt_secret
            .as_deref()
            .context("JUPANG_JWT_SECRET is required: the load generator signs its own tokens")?;
        let keys = Minter::new(secret.as_bytes());
        let admin = keys.mint(ADMIN_ID, &[OPS_ADMIN], TOKEN_TTL_SECS);
        let db = match &env.database_url {
            Some(url) => Some(jupang_seed::connect(url, 4).await.context("DATABASE_URL")?),
            None => None,
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Setup { keys, admin, http, db })
    }

    /// Makes sure users 1..=n exist (KR, [`USER_BALANCE`] for the ones created), as
    /// `jupang seed --users n` does. Without `DATABASE_URL` they are assumed to exist.
    pub async fn ensure_users(&self, n: u32) -> anyhow::Result<()> {
        if let Some(db) = &self.db {
            jupang_seed::ensure_users(db, n.into(), USER_BALANCE).await?;
        }
        Ok(())
    }

    /// `Bearer` header values of customers 1..=n; index `i` is user `i + 1`.
    pub fn customer_tokens(&self, n: u32) -> Vec<HeaderValue> {
        (1..=i64::from(n))
            .map(|u| {
                let token = self.keys.mint(u, &[CUSTOMER], TOKEN_TTL_SECS);
                HeaderValue::from_str(&format!("Bearer {token}")).expect("a JWT is a valid header value")
            })
            .collect()
    }

    async fn admin_post(&self, target: &Target, path: &str, body: Value) -> anyhow::Result<Value> {
        let res = self
            .http
            .post(target.url(path))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path} on {}", target.base))?;
        let status = res.status();
        let text = res.text().await?;
        anyhow::ensure!(status.is_success(), "POST {path} answered {status}: {text}");
        serde_json::from_str(&text).with_context(|| format!("POST {path}: not JSON: {text}"))
    }

    /// A PUT with the admin token, answered as JSON (2xx required).
    pub async fn admin_put(&self, target: &Target, path: &str, body: Value) -> anyhow::Result<Value> {
        let res = self.http.put(target.url(path)).bearer_auth(&self.admin).json(&body).send().await?;
        let status = res.status();
        let text = res.text().await?;
        anyhow::ensure!(status.is_success(), "PUT {path} answered {status}: {text}");
        Ok(serde_json::from_str(&text)?)
    }

    /// A GET with the admin token, answered as JSON.
    pub async fn admin_get(&self, target: &Target, path: &str) -> anyhow::Result<Value> {
        let res = self.http.get(target.url(path)).bearer_auth(&self.admin).send().await?;
        let status = res.status();
        let text = res.text().await?;
        anyhow::ensure!(status.is_success(), "GET {path} answered {status}: {text}");
        Ok(serde_json::from_str(&text)?)
    }

    /// A fresh flash sale of `quantity` coupons in the KR market, issuing from now for an hour.
    pub async fn create_coupon(&self, target: &Target, quantity: u32) -> anyhow::Result<i64> {
        let now = Utc::now();
        let body = json!({
            "name": format!("loadgen {}", now.format("%H:%M:%S%.3f")),
            "discount_type": "FIXED",
            "discount_value": 1_000,
            "market": "KR",
            "total_quantity": quantity,
            // A few seconds back, so the window is open whatever the clocks say.
            "issue_starts_at": now - TimeDelta::seconds(5),
            "issue_ends_at": now + TimeDelta::hours(1),
            "valid_days": 7,
        });
        let created = self.admin_post(target, "/api/admin/coupons", body).await?;
        created["id"].as_i64().context("the created coupon has no id")
    }

    /// A new on-sale product with one option of `stock` units at `price` KRW (and USD cents),
    /// in `category`. Returns (product id, option id).
    pub async fn create_product(
        &self,
        target: &Target,
        category: &str,
        stock: u32,
        price: i64,
    ) -> anyhow::Result<(i64, i64)> {
        let name = format!("loadgen {}", Utc::now().format("%H:%M:%S%.6f"));
        let body = json!({
            "name": {"ko": name, "en": name},
            "description": {"ko": "부하 테스트 상품", "en": "load test product"},
            "category": category,
            "on_sale": true,
            "options": [{"name": "기본", "prices": {"KRW": price, "USD": price / 10}, "stock": stock}],
        });
        let created = self.admin_post(target, "/api/admin/products", body).await?;
        let product = created["id"].as_i64().context("the created product has no id")?;
        let option = created["options"][0]["id"].as_i64().context("the created product has no option id")?;
        Ok((product, option))
    }
}

/// Waits until `GET /ready` answers 200 (or `timeout` passes).
pub async fn wait_ready(target: &Target, timeout: Duration) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let deadline = Instant::now() + timeout;
    loop {
        match http.get(target.url("/ready")).send().await {
            Ok(res) if res.status().is_success() => return Ok(()),
            _ if Instant::now() >= deadline => anyhow::bail!("{} not ready within {timeout:?}", target.base),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
