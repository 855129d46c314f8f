//! The audit log as tests read it, and the tools that prove a write is one transaction: a table
//! whose inserts fail on demand ([`fail_inserts`], [`heal_inserts`]), and a fingerprint of every
//! table's rows ([`db_fingerprint`]) to show that a failed write left nothing behind.

use std::collections::BTreeMap;

use jupang::http::auth::Role;
use reqwest::Method;
use serde_json::Value;
use sqlx::PgPool;

use super::{TestApp, json_of};

/// The id in tokens of the administrator who reads the log.
pub const AUDITOR: i64 = 930_001;

/// A page of `GET /api/admin/audit{query}` read by `ops_admin`.
pub async fn audit_log_page(app: &TestApp, query: &str) -> Value {
    let res = app
        .request(Method::GET, &format!("/api/admin/audit{query}"))
        .bearer_auth(app.token(AUDITOR, &[Role::OpsAdmin]))
        .send()
        .await
        .expect("request");
    json_of(res, 200).await
}

/// How many entries the log holds.
pub async fn audit_total(app: &TestApp) -> i64 {
    audit_log_page(app, "?size=1").await["total"].as_i64().expect("total")
}

/// Makes every insert into `table` of the test's database fail (a trigger that raises), until
/// [`heal_inserts`]: a fault inside the transaction of a write, at the very statement tested.
pub async fn fail_inserts(db: &PgPool, table: &str) {
    sqlx::raw_sql(&format!(
        "CREATE OR REPLACE FUNCTION jt_fail_insert() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'test fault: inserts into % fail', TG_TABLE_NAME; END $$;
         CREATE TRIGGER jt_fail_inserts BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION jt_fail_insert();"
    ))
    .execute(db)
    .await
    .expect("install the failing trigger");
}

/// Undoes [`fail_inserts`] on `table`.
pub async fn heal_inserts(db: &PgPool, table: &str) {
    sqlx::raw_sql(&format!("DROP TRIGGER jt_fail_inserts ON {table}")).execute(db).await.expect("drop the trigger");
}

/// Per table of the schema (migrations' bookkeeping aside), a digest of all its rows: two equal
/// fingerprints mean no row was added, changed or removed in between.
pub async fn db_fingerprint(db: &PgPool) -> BTreeMap<String, String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations'
         ORDER BY 1",
    )
    .fetch_all(db)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for table in tables {
        let digest: String = sqlx::query_scalar(&format!(
            r#"SELECT count(*) || ':' || md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) FROM "{table}" r"#
        ))
        .fetch_one(db)
        .await
        .unwrap();
        out.insert(table, digest);
    }
    out
}
