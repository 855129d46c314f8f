//! Parsing the configuration: defaults, refusals naming the variable, secrets kept out of sight.

use super::*;

fn base() -> BTreeMap<String, String> {
    [
        ("DATABASE_URL", "postgres://u:p@localhost/db"),
        ("REDIS_URL", "redis://localhost/"),
        ("JUPANG_JWT_SECRET", "0123456789abcdef0123"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn with(k: &str, v: &str) -> Result<Config, ConfigError> {
    let mut vars = base();
    vars.insert(k.into(), v.into());
    Config::from_vars(vars)
}

#[test]
fn defaults_follow_the_contract() {
    let c = Config::from_vars(base()).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.issue_strategy, IssueStrategy::RedisLua);
    assert_eq!(c.order_strategy, OrderStrategy::RedisLua);
    assert_eq!(c.order_ttl, Duration::from_secs(600));
    assert_eq!(c.expiry_sweep, Duration::from_secs(60));
    assert_eq!(c.workers, Workers::ALL);
    assert_eq!(c.outbox_backoff, Duration::from_secs(5));
    assert_eq!(c.outbox_max_retries, 3);
    assert_eq!(c.stream_claim_idle, Duration::from_secs(30));
    assert_eq!(c.stream_batch, 500);
    assert_eq!(c.stream_consumers, 4);
    assert_eq!(c.max_in_flight, 1024);
    assert_eq!(c.db_acquire_timeout, Duration::from_secs(2));
    assert_eq!(c.outbox_breaker_failures, 5);
    assert_eq!(c.outbox_breaker_open, Duration::from_secs(30));
    assert_eq!(c.data_platform_ca, None);
}

#[test]
fn the_pool_acquire_timeout_stays_below_the_request_timeout() {
    let short = with("JUPANG_REQUEST_TIMEOUT_MS", "1000").unwrap();
    assert_eq!(short.db_acquire_timeout, Duration::from_millis(500), "the default follows a short request timeout");
    let mut vars = base();
    vars.insert("JUPANG_REQUEST_TIMEOUT_MS".into(), "1000".into());
    vars.insert("JUPANG_DB_ACQUIRE_TIMEOUT_MS".into(), "1000".into());
    assert_eq!(Config::from_vars(vars).unwrap_err().var, "JUPANG_DB_ACQUIRE_TIMEOUT_MS");
    assert_eq!(with("JUPANG_DB_ACQUIRE_TIMEOUT_MS", "250").unwrap().db_acquire_timeout, Duration::from_millis(250));
}

#[test]
fn a_malformed_value_names_its_variable() {
    assert_eq!(with("JUPANG_ORDER_TTL_SECS", "ten").unwrap_err().var, "JUPANG_ORDER_TTL_SECS");
    assert_eq!(with("JUPANG_ISSUE_STRATEGY", "fast").unwrap_err().var, "JUPANG_ISSUE_STRATEGY");
    assert_eq!(with("JUPANG_LISTEN", "nowhere").unwrap_err().var, "JUPANG_LISTEN");
    assert_eq!(with("REDIS_URL", "localhost:6379").unwrap_err().var, "REDIS_URL");
    assert_eq!(with("JUPANG_WORKERS", "expiry,cron").unwrap_err().var, "JUPANG_WORKERS");
    assert_eq!(with("JUPANG_OUTBOX_MAX_RETRIES", "-1").unwrap_err().var, "JUPANG_OUTBOX_MAX_RETRIES");
    assert_eq!(with("JUPANG_OUTBOX_BACKOFF_MS", "0").unwrap_err().var, "JUPANG_OUTBOX_BACKOFF_MS");
    assert_eq!(with("JUPANG_STREAM_CLAIM_IDLE_MS", "soon").unwrap_err().var, "JUPANG_STREAM_CLAIM_IDLE_MS");
    assert_eq!(with("JUPANG_STREAM_BATCH", "0").unwrap_err().var, "JUPANG_STREAM_BATCH");
    assert_eq!(with("JUPANG_STREAM_BATCH", "10001").unwrap_err().var, "JUPANG_STREAM_BATCH");
    assert_eq!(with("JUPANG_DATA_PLATFORM_URL", "ftp://x/").unwrap_err().var, "JUPANG_DATA_PLATFORM_URL");
    assert_eq!(with("JUPANG_MAX_IN_FLIGHT", "0").unwrap_err().var, "JUPANG_MAX_IN_FLIGHT");
    assert_eq!(with("JUPANG_DB_ACQUIRE_TIMEOUT_MS", "2s").unwrap_err().var, "JUPANG_DB_ACQUIRE_TIMEOUT_MS");
    assert_eq!(with("JUPANG_OUTBOX_BREAKER_FAILURES", "0").unwrap_err().var, "JUPANG_OUTBOX_BREAKER_FAILURES");
    assert_eq!(with("JUPANG_OUTBOX_BREAKER_OPEN_SECS", "x").unwrap_err().var, "JUPANG_OUTBOX_BREAKER_OPEN_SECS");
}

#[test]
fn stream_consumers_are_1_to_16_and_a_value_outside_names_the_variable() {
    assert_eq!(with("JUPANG_STREAM_CONSUMERS", "1").unwrap().stream_consumers, 1);
    assert_eq!(with("JUPANG_STREAM_CONSUMERS", "16").unwrap().stream_consumers, 16);
    for bad in ["0", "17", "-1", "four", "2.5"] {
        let e = with("JUPANG_STREAM_CONSUMERS", bad).unwrap_err();
        assert_eq!(e.var, "JUPANG_STREAM_CONSUMERS", "{bad}");
        assert!(e.reason.contains("from 1 to 16"), "{bad}: {}", e.reason);
    }
}

#[test]
fn a_data_platform_ca_must_be_a_readable_pem_bundle() {
    let missing = with("JUPANG_DATA_PLATFORM_CA", "/nonexistent/ca.pem").unwrap_err();
    assert_eq!(missing.var, "JUPANG_DATA_PLATFORM_CA");
    let not_pem = std::env::temp_dir().join(format!("jupang-not-a-ca-{}.pem", std::process::id()));
    std::fs::write(&not_pem, "hello").unwrap();
    let refused = with("JUPANG_DATA_PLATFORM_CA", not_pem.to_str().unwrap()).unwrap_err();
    std::fs::remove_file(&not_pem).unwrap();
    assert_eq!(refused.var, "JUPANG_DATA_PLATFORM_CA");
}

#[test]
fn a_data_platform_url_with_credentials_is_never_echoed() {
    let e = with("JUPANG_DATA_PLATFORM_URL", "https://bot:pa55word@ex ample.com/events").unwrap_err();
    assert_eq!(e.var, "JUPANG_DATA_PLATFORM_URL");
    assert!(!e.to_string().contains("pa55word"));
    let e = with("JUPANG_DATA_PLATFORM_URL", "ftp://bot:pa55word@example.com/events").unwrap_err();
    assert!(!e.to_string().contains("pa55word"));
    assert_eq!(
        with("JUPANG_DATA_PLATFORM_URL", "http://127.0.0.1:9/e").unwrap().data_platform_url.as_deref(),
        Some("http://127.0.0.1:9/e")
    );
    assert_eq!(
        with("JUPANG_DATA_PLATFORM_URL", "https://127.0.0.1:9/e").unwrap().data_platform_url.as_deref(),
        Some("https://127.0.0.1:9/e"),
        "https:// is delivered over rustls"
    );
}

#[test]
fn an_unknown_jupang_variable_is_refused() {
    assert_eq!(with("JUPANG_ISSUE_STRATEGYY", "redis-lua").unwrap_err().var, "JUPANG_ISSUE_STRATEGYY");
}

#[test]
fn secrets_never_show_in_errors_or_debug() {
    let e = with("JUPANG_JWT_SECRET", "short-secret").unwrap_err();
    assert!(!e.to_string().contains("short-secret"));
    let c = Config::from_vars(base()).unwrap();
    assert!(!format!("{c:?}").contains("0123456789abcdef0123"));
    assert!(!format!("{c:?}").contains("u:p@"));
}

#[test]
fn a_worker_list_switches_each_worker() {
    let w: Workers = "expiry, outbox".parse().unwrap();
    assert!(w.expiry && w.outbox && !w.consumer && !w.reconcile && !w.jobs);
    let w: Workers = "jobs".parse().unwrap();
    assert_eq!(w, Workers { jobs: true, ..Workers::NONE });
}

#[test]
fn a_tool_reads_only_what_it_needs_and_a_blank_variable_is_missing() {
    let env = ToolEnv::from_vars(
        [("DATABASE_URL", "postgres://x/y"), ("REDIS_URL", " redis://r/ "), ("JUPANG_JWT_SECRET", "  ")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    );
    assert_eq!(env.database_url().unwrap(), "postgres://x/y");
    assert_eq!(env.redis_urls().unwrap(), ["redis://r/"]);
    assert_eq!(env.redis_prefix(), "jupang");
    assert_eq!(env.jwt_secret().unwrap_err().var, "JUPANG_JWT_SECRET");
}

#[test]
fn a_tool_reads_a_comma_separated_redis_url_as_the_cluster_nodes_serve_would_use() {
    let vars = |url: &str| [("REDIS_URL", url)].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let env = ToolEnv::from_vars(vars("redis://a:1/, redis://b:2/ ,redis://c:3/"));
    assert_eq!(env.redis_urls().unwrap(), ["redis://a:1/", "redis://b:2/", "redis://c:3/"]);
    assert_eq!(ToolEnv::from_vars(vars("redis://a:1/,http://b/")).redis_urls().unwrap_err().var, "REDIS_URL");
}
