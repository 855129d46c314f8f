//! The consumer's metrics: names, HELP text, and the series of each sink at zero.

use crate::store::redis::streams::{coupons, orders};

/// `stream_pending_entries{stream}`: entries not yet persisted (delivered-unacknowledged plus
/// never delivered), summed over a sink's streams; the label is the sink's name, so it stays
/// low-cardinality however many coupons run.
pub const STREAM_PENDING_ENTRIES: &str = "stream_pending_entries";
/// `stream_persist_lag_seconds{stream}` (the sink's name, as in [`STREAM_PENDING_ENTRIES`]): age
/// of the oldest entry not yet persisted (0 when caught up); between housekeeping rounds, the age
/// of the oldest entry of the last committed batch.
pub const STREAM_PERSIST_LAG_SECONDS: &str = "stream_persist_lag_seconds";
/// `consumer_batch_size{sink}` histogram: entries per batch handed to the sink.
pub const CONSUMER_BATCH_SIZE: &str = "consumer_batch_size";
/// `stream_dead_letter_total{sink}`: entries moved to a dead-letter stream.
pub const STREAM_DEAD_LETTER_TOTAL: &str = "stream_dead_letter_total";

/// `coupon_sale_keys`: Redis keys the hydrated coupon sales still hold; closed sales lose theirs
/// once everything is persisted and reconciled (`housekeeping::retire_sales`).
pub const COUPON_SALE_KEYS: &str = "coupon_sale_keys";

/// Describes the consumer metrics and, when the consumer runs, creates the series of each sink
/// ([`SINKS`]) at zero.
pub fn register_metrics(running: bool) {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        STREAM_PENDING_ENTRIES,
        Unit::Count,
        "V2 stream entries not yet persisted into Postgres, by stream (sink)"
    );
    describe_gauge!(
        STREAM_PERSIST_LAG_SECONDS,
        Unit::Seconds,
        "Age of the oldest V2 stream entry not yet persisted (0 when caught up), by stream (sink)"
    );
    describe_histogram!(CONSUMER_BATCH_SIZE, Unit::Count, "Entries per batch the stream consumer persists");
    describe_counter!(STREAM_DEAD_LETTER_TOTAL, Unit::Count, "Stream entries moved to a dead-letter stream");
    describe_gauge!(
        COUPON_SALE_KEYS,
        Unit::Count,
        "Redis keys of hydrated coupon sales; a closed sale loses its keys once everything is persisted"
    );
    if running {
        metrics::gauge!(COUPON_SALE_KEYS).increment(0.0);
        for sink in SINKS {
            metrics::gauge!(STREAM_PENDING_ENTRIES, "stream" => sink).increment(0.0);
            metrics::gauge!(STREAM_PERSIST_LAG_SECONDS, "stream" => sink).increment(0.0);
            metrics::counter!(STREAM_DEAD_LETTER_TOTAL, "sink" => sink).increment(0);
            // Registering a histogram renders its buckets at zero.
            let _ = metrics::histogram!(CONSUMER_BATCH_SIZE, "sink" => sink);
        }
    }
}

/// The sinks `workers::spawn` runs, by name (their sources'
/// [`crate::store::redis::streams::StreamSource::name`]).
pub const SINKS: [&str; 2] = [coupons::NAME, orders::NAME];
