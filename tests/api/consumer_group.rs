//! Several consumer tasks in one group (`JUPANG_STREAM_CONSUMERS`): their batches commit in
//! parallel, every entry still reaches Postgres exactly once, nothing is acknowledged before its
//! commit, and the pending entries of a process killed with its consumers mid-batch are claimed
//! by the next one.

use std::time::Duration;

use jupang::{
    store::redis::streams::{PersistError, StreamEntry, StreamSink},
    workers::consumer::{self, ConsumerSettings, GROUP},
};
use serde_json::json;
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;

use crate::support::{
    acknowledged, child, coupon_keys, create_coupon, eventually, open_run, persisted, redis_conn, redis_store, settled,
    spawn_app, stored,
};

/// Writes each entry's `n` into `group_rows` (a redelivery changes nothing there) and into
/// `group_log` (which keeps every committed write, so a second persist of an entry shows), and
/// the span of its transaction into `group_batches`; each batch takes at least 20 ms.
#[derive(Clone)]
struct LoggingSink {
    stream: String,
}

impl StreamSink for LoggingSink {
    fn name(&self) -> &'static str {
        "test_group_rows"
    }

    async fn streams(&self) -> redis::RedisResult<Vec<String>> {
        Ok(vec![self.stream.clone()])
    }

    async fn persist<'a>(&'a self, tx: &'a mut PgConnection, entries: &'a [StreamEntry]) -> Result<(), PersistError> {
        let ns: Vec<i64> = entries.iter().map(|e| e.field("n").unwrap().parse().unwrap()).collect();
        sqlx::query("INSERT INTO group_rows (n) SELECT * FROM unnest($1::bigint[]) ON CONFLICT DO NOTHING")
            .bind(&ns)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO group_log (n) SELECT * FROM unnest($1::bigint[])").bind(&ns).execute(&mut *tx).await?;
        sqlx::query("SELECT pg_sleep(0.02)").execute(&mut *tx).await?;
        sqlx::query("INSERT INTO group_batches (started, ended) VALUES (now(), clock_timestamp())")
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

/// The tables [`LoggingSink`] writes, in the test's own database.
async fn logging_tables(app: &crate::support::TestApp) {
    sqlx::raw_sql(
        "CREATE TABLE group_rows (n BIGINT PRIMARY KEY);
         CREATE TABLE group_log (n BIGINT NOT NULL);
         CREATE TABLE group_batches (started TIMESTAMPTZ NOT NULL, ended TIMESTAMPTZ NOT NULL);",
    )
    .execute(&app.db)
    .await
    .unwrap();
}

#[tokio::test]
async fn four_consumers_of_one_group_persist_every_entry_exactly_once_with_their_batches_in_parallel() {
    let app = spawn_app().await;
    logging_tables(&app).await;
    let sink = LoggingSink { stream: format!("{}:{{test}}:stream", app.redis_prefix) };
    let mut r = redis_conn();
    for n in 0..2_000 {
        let _: String = redis::cmd("XADD").arg(&sink.stream).arg("*").arg("n").arg(n).query(&mut r).unwrap();
    }
    let mut settings = ConsumerSettings::new(Duration::from_secs(30));
    settings.batch = 50;
    settings.block = Duration::from_millis(100);
    let redis = redis_store(&app).await;
    let stop = CancellationToken::new();
    let tasks = consumer::spawn_group(sink.clone(), &app.db, &redis, settings, 4, &stop);
    assert_eq!(tasks.len(), 4);

    let count = |sql: &'static str| {
        let db = app.db.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&db).await.unwrap() }
    };
    eventually(30, "2,000 rows persisted", || async { count("SELECT count(*) FROM group_rows").await == 2_000 }).await;
    eventually(5, "no backlog", || async { consumer::backlog(&sink, &redis).await.unwrap() == 0 }).await;
    assert_eq!(count("SELECT count(*) FROM group_log").await, 2_000, "an entry was persisted twice");
    let overlapping = count(
        "SELECT count(*) FROM group_batches a JOIN group_batches b
             ON a.ctid < b.ctid AND a.started < b.ended AND b.started < a.ended",
    )
    .await;
    assert!(overlapping > 0, "no two batches were ever open at the same time");
    let consumers: Vec<redis::Value> =
        redis::cmd("XINFO").arg("CONSUMERS").arg(&sink.stream).arg(GROUP).query(&mut r).unwrap();
    assert_eq!(consumers.len(), 4, "four consumers, each under its own name");
    let dead: u64 = redis::cmd("XLEN").arg(format!("{}:dead", sink.stream)).query(&mut r).unwrap();
    assert_eq!(dead, 0);
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
}

/// The summary form of `XPENDING`: count, smallest and largest id, then (consumer, count).
type PendingSummary = (u64, Option<String>, Option<String>, Option<Vec<(String, String)>>);

/// `XPENDING <stream> persist`: consumer -> entries it holds unacknowledged.
fn pending_by_consumer(stream: &str) -> Vec<(String, u64)> {
    let (_, _, _, consumers): PendingSummary =
        redis::cmd("XPENDING").arg(stream).arg(GROUP).query(&mut redis_conn()).unwrap();
    consumers.unwrap_or_default().into_iter().map(|(c, n)| (c, n.parse().unwrap())).collect()
}

#[tokio::test]
async fn a_serve_killed_while_its_four_consumers_hold_uncommitted_batches_loses_none_and_the_next_one_claims_them() {
    let app = spawn_app().await;
    let coupon = create_coupon(&app, 600, json!({})).await;
    let users = app.create_users(600, "KR", 0).await;
    let vars = [
        ("JUPANG_WORKERS", "consumer"),
        ("JUPANG_STREAM_CONSUMERS", "4"),
        ("JUPANG_STREAM_BATCH", "50"),
        ("JUPANG_STREAM_CLAIM_IDLE_MS", "500"),
    ];
    // Every batch's insert waits on this lock, after its consumer has read (and holds) it.
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE user_coupons IN SHARE MODE").execute(&mut *lock).await.unwrap();
    let mut first = child::serve_app(&app, &vars).await;
    let shots = open_run(&app, &[format!("http://{}", first.addr)], coupon, &users, 32).await;
    let issued = acknowledged(&shots, false);
    assert_eq!(issued.len(), 600);

    let stream = coupon_keys(&app, coupon).stream;
    eventually(15, "four consumers each hold a batch", || async {
        let held = pending_by_consumer(&stream);
        held.len() == 4 && held.iter().all(|(_, n)| *n > 0)
    })
    .await;
    first.child.kill().await.unwrap();
    // The killed process's transactions can never commit now; let their inserts run into that.
    lock.rollback().await.unwrap();
    assert_eq!(persisted(&app.db, coupon).await, (0, 0, 0), "nothing was committed before the kill");

    let mut second = child::serve_app(&app, &vars).await;
    settled(&app).await;
    assert!(pending_by_consumer(&stream).is_empty(), "every entry acknowledged");
    assert_eq!(stored(&app.db, coupon).await, issued, "Postgres holds exactly what was acknowledged");
    assert_eq!(persisted(&app.db, coupon).await, (600, 600, 600), "counter, rows, coupon.issued events");
    let dead: u64 = redis::cmd("XLEN").arg(format!("{stream}:dead")).query(&mut redis_conn()).unwrap();
    assert_eq!(dead, 0);
    second.child.kill().await.unwrap();
}

#[tokio::test]
async fn the_most_consumers_allowed_on_both_stream_kinds_each_get_a_blocking_reader_of_their_own() {
    let app = spawn_app().await;
    logging_tables(&app).await;
    // Two sinks, like the coupon and order streams of one process, at JUPANG_STREAM_CONSUMERS's
    // maximum: 32 blocking readers, each holding its dedicated connection between reads.
    let sinks: Vec<LoggingSink> = ["coupons", "orders"]
        .iter()
        .map(|kind| LoggingSink { stream: format!("{}:{{test-{kind}}}:stream", app.redis_prefix) })
        .collect();
    let mut r = redis_conn();
    for (i, sink) in sinks.iter().enumerate() {
        for n in 0..100 {
            let _: String =
                redis::cmd("XADD").arg(&sink.stream).arg("*").arg("n").arg(i * 1_000 + n).query(&mut r).unwrap();
        }
    }
    let mut settings = ConsumerSettings::new(Duration::from_secs(30));
    settings.batch = 5;
    settings.block = Duration::from_millis(100);
    let redis = redis_store(&app).await;
    let stop = CancellationToken::new();
    let tasks: Vec<_> = sinks
        .iter()
        .flat_map(|s| consumer::spawn_group(s.clone(), &app.db, &redis, settings.clone(), 16, &stop))
        .collect();
    assert_eq!(tasks.len(), 32);

    eventually(15, "every one of the 32 consumers has read its stream", || async {
        // Until the group exists, XINFO answers NOGROUP.
        sinks.iter().all(|s| {
            redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(&s.stream)
                .arg(GROUP)
                .query::<Vec<redis::Value>>(&mut redis_conn())
                .is_ok_and(|consumers| consumers.len() == 16)
        })
    })
    .await;
    eventually(15, "200 rows persisted", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM group_rows").fetch_one(&app.db).await.unwrap() == 200
    })
    .await;
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
}
