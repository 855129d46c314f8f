//! The V2 consumer framework on its own, with a minimal sink writing one row per entry into a
//! table of the test database: batches are persisted once, poison entries end in the
//! dead-letter stream after `MAX_DELIVERIES`, a batch Postgres rejects is split down to the
//! entries at fault, an outage is retried and never dead-lettered, a dead consumer's entries
//! are claimed.

use std::time::Duration;

use jupang::{
    store::redis::streams::{MAX_DELIVERIES, PersistError, StreamEntry, StreamSink},
    workers::consumer::{self, ConsumerSettings, GROUP},
};
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;

use crate::support::{
    TestApp, eventually, metric_value,
    proxy::{TcpProxy, upstream_of},
    redis_conn, redis_store, spawn_app, with_own_recorder,
};

/// Writes the `n` field of each entry into `sink_rows` (whose CHECK refuses a negative `n`); an
/// entry with a `poison` field is refused by the sink itself.
#[derive(Clone)]
struct RowSink {
    stream: String,
    /// The metric label: a test that reads the sink's metrics gives it a name of its own.
    name: &'static str,
}

impl StreamSink for RowSink {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn streams(&self) -> redis::RedisResult<Vec<String>> {
        Ok(vec![self.stream.clone()])
    }

    async fn persist<'a>(&'a self, tx: &'a mut PgConnection, entries: &'a [StreamEntry]) -> Result<(), PersistError> {
        let poison: Vec<String> =
            entries.iter().filter(|e| e.field("poison").is_some()).map(|e| e.id.clone()).collect();
        if !poison.is_empty() {
            return Err(PersistError::Poison { ids: poison, reason: "a poison field".into() });
        }
        let ns: Vec<i64> = entries.iter().map(|e| e.field("n").unwrap().parse().unwrap()).collect();
        sqlx::query("INSERT INTO sink_rows (n) SELECT * FROM unnest($1::bigint[]) ON CONFLICT DO NOTHING")
            .bind(&ns)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

async fn setup() -> (TestApp, RowSink) {
    let app = spawn_app().await;
    sqlx::raw_sql("CREATE TABLE sink_rows (n BIGINT PRIMARY KEY CHECK (n >= 0))").execute(&app.db).await.unwrap();
    let sink = RowSink { stream: format!("{}:{{test}}:stream", app.redis_prefix), name: "test_rows" };
    (app, sink)
}

fn settings(claim_idle_ms: u64) -> ConsumerSettings {
    let mut s = ConsumerSettings::new(Duration::from_millis(claim_idle_ms));
    s.block = Duration::from_millis(100);
    s.housekeeping_every = Duration::from_millis(100);
    s
}

async fn start(app: &TestApp, sink: &RowSink, settings: ConsumerSettings) -> CancellationToken {
    let token = CancellationToken::new();
    tokio::spawn(consumer::run(sink.clone(), app.db.clone(), redis_store(app).await, settings, token.clone()));
    token
}

async fn rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM sink_rows").fetch_one(&app.db).await.unwrap()
}

#[tokio::test]
async fn the_consumer_persists_every_entry_once_acknowledges_them_and_trims_the_stream() {
    let (app, sink) = setup().await;
    let mut r = redis_conn();
    for n in 0..1_200 {
        let _: String = redis::cmd("XADD").arg(&sink.stream).arg("*").arg("n").arg(n).query(&mut r).unwrap();
    }
    let stop = start(&app, &sink, settings(30_000)).await;
    eventually(10, "1,200 rows persisted", || async { rows(&app).await == 1_200 }).await;
    let redis = redis_store(&app).await;
    eventually(5, "no backlog", || async { consumer::backlog(&sink, &redis).await.unwrap() == 0 }).await;
    eventually(5, "acknowledged entries are trimmed", || async {
        let len: u64 = redis::cmd("XLEN").arg(&sink.stream).query(&mut redis_conn()).unwrap();
        len == 0
    })
    .await;
    stop.cancel();
}

#[tokio::test]
async fn a_poison_entry_is_dead_lettered_after_max_deliveries_and_the_rest_is_persisted() {
    let (app, sink) = setup().await;
    let mut r = redis_conn();
    for n in 0..10 {
        let _: String = redis::cmd("XADD").arg(&sink.stream).arg("*").arg("n").arg(n).query(&mut r).unwrap();
    }
    let bad: String = redis::cmd("XADD").arg(&sink.stream).arg("*").arg("poison").arg("1").query(&mut r).unwrap();
    let stop = start(&app, &sink, settings(30_000)).await;
    let dead = format!("{}:dead", sink.stream);
    eventually(10, "the poison entry reaches the dead-letter stream", || async {
        let len: u64 = redis::cmd("XLEN").arg(&dead).query(&mut redis_conn()).unwrap();
        len == 1
    })
    .await;
    assert_eq!(rows(&app).await, 10);
    let moved: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg(&dead).arg("-").arg("+").query(&mut r).unwrap();
    let fields: std::collections::HashMap<_, _> = moved[0].1.iter().cloned().collect();
    assert_eq!(fields["dead.source_id"], bad);
    assert_eq!(fields["dead.deliveries"], MAX_DELIVERIES.to_string());
    let pending: (u64, Option<String>, Option<String>, redis::Value) =
        redis::cmd("XPENDING").arg(&sink.stream).arg(GROUP).query(&mut r).unwrap();
    assert_eq!(pending.0, 0, "the dead-lettered entry is acknowledged");
    stop.cancel();
}

#[tokio::test]
async fn entries_of_a_consumer_that_died_are_claimed_after_the_idle_threshold() {
    let (app, sink) = setup().await;
    let mut r = redis_conn();
    let _: () =
        redis::cmd("XGROUP").arg("CREATE").arg(&sink.stream).arg(GROUP).arg("0").arg("MKSTREAM").query(&mut r).unwrap();
    for n in 0..5 {
        let _: String = redis::cmd("XADD").arg(&sink.stream).arg("*").arg("n").arg(n).query(&mut r).unwrap();
    }
    // A consumer reads them and dies before persisting anything.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg("dead-one")
        .arg("STREAMS")
        .arg(&sink.stream)
        .arg(">")
        .query(&mut r)
        .unwrap();
    let stop = start(&app, &sink, settings(300)).await;
    eventually(10, "the 5 claimed entries persisted", || async { rows(&app).await == 5 }).await;
    stop.cancel();
}

fn xadd(stream: &str, n: i64) -> String {
    redis::cmd("XADD").arg(stream).arg("*").arg("n").arg(n).query(&mut redis_conn()).unwrap()
}

fn xlen(stream: &str) -> u64 {
    redis::cmd("XLEN").arg(stream).query(&mut redis_conn()).unwrap()
}

#[tokio::test]
async fn a_batch_postgres_rejects_is_split_until_each_refused_entry_is_dead_lettered_once() {
    let (app, mut sink) = setup().await;
    sink.name = "test_rejected_rows";
    // 40 entries in one batch; two of them break the table's CHECK, which the sink cannot see.
    let mut refused = Vec::new();
    for n in 0..40 {
        let value = if n == 7 || n == 29 { -n } else { n };
        let id = xadd(&sink.stream, value);
        if value < 0 {
            refused.push(id);
        }
    }
    let (redis, stop, dead) = (redis_store(&app).await, CancellationToken::new(), format!("{}:dead", sink.stream));
    let run = consumer::run(sink.clone(), app.db.clone(), redis.clone(), settings(30_000), stop.clone());
    let checks = async {
        eventually(20, "both refused entries dead-lettered", || async { xlen(&dead) == 2 }).await;
        assert_eq!(rows(&app).await, 38, "everything else persisted");
        // The stream is not blocked: what comes next is persisted too.
        for n in 100..110 {
            xadd(&sink.stream, n);
        }
        eventually(10, "the later entries persisted", || async { rows(&app).await == 48 }).await;
        eventually(5, "nothing left pending", || async { consumer::backlog(&sink, &redis).await.unwrap() == 0 }).await;
        stop.cancel();
    };
    let (_, exposition) = with_own_recorder(async { tokio::join!(run, checks) }).await;

    let moved: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg(&dead).arg("-").arg("+").query(&mut redis_conn()).unwrap();
    let mut sources: Vec<String> = moved
        .iter()
        .map(|(_, fields)| {
            let fields: std::collections::HashMap<_, _> = fields.iter().cloned().collect();
            assert_eq!(fields["dead.deliveries"], MAX_DELIVERIES.to_string());
            assert!(fields["dead.reason"].contains("rejected by Postgres"), "{fields:?}");
            fields["dead.source_id"].clone()
        })
        .collect();
    sources.sort();
    refused.sort();
    assert_eq!(sources, refused, "exactly the refused entries, once each");
    assert_eq!(metric_value(&exposition, "stream_dead_letter_total", &["sink=\"test_rejected_rows\""]), 2.0);
    let stored: Vec<i64> = sqlx::query_scalar("SELECT n FROM sink_rows ORDER BY n").fetch_all(&app.db).await.unwrap();
    let expected: Vec<i64> = (0..40).filter(|n| *n != 7 && *n != 29).chain(100..110).collect();
    assert_eq!(stored, expected);
}

#[tokio::test]
async fn a_batch_is_retried_while_postgres_is_down_and_never_dead_lettered() {
    let (app, sink) = setup().await;
    let direct = app.config.database_url.expose().to_owned();
    let mut proxy = TcpProxy::start(upstream_of(&direct).await).await;
    let db = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect(&proxy.url_through(&direct))
        .await
        .unwrap();
    proxy.kill().await;
    let first = xadd(&sink.stream, 1);
    for n in 2..10 {
        xadd(&sink.stream, n);
    }
    let stop = CancellationToken::new();
    tokio::spawn(consumer::run(sink.clone(), db, redis_store(&app).await, settings(30_000), stop.clone()));
    // Delivered more often than a poison entry may be: an outage is not the entry's fault.
    eventually(40, "the batch retried beyond MAX_DELIVERIES", || async {
        // NOGROUP until the consumer's first round.
        let pending: redis::RedisResult<Vec<(String, String, u64, u64)>> =
            redis::cmd("XPENDING").arg(&sink.stream).arg(GROUP).arg(&first).arg(&first).arg(1).query(&mut redis_conn());
        pending.is_ok_and(|p| p.first().is_some_and(|p| p.3 > MAX_DELIVERIES))
    })
    .await;
    let dead = format!("{}:dead", sink.stream);
    assert_eq!(xlen(&dead), 0);
    assert_eq!(rows(&app).await, 0);

    proxy.revive().await;
    eventually(20, "the batch persisted once Postgres is back", || async { rows(&app).await == 9 }).await;
    assert_eq!(xlen(&dead), 0, "nothing dead-lettered");
    stop.cancel();
}
