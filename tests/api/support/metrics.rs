//! Reading metrics so that an assertion can fail.
//!
//! The recorder is global to a process, and every in-process test app of the test binary shares
//! it: a series whose labels other tests produce too (`payment_total{outcome="paid"}`) may have
//! been moved by any of them, so `>= 1` proves nothing. A test therefore reads either
//!
//! - a series whose labels only it produces (coupon ids are unique per test database, see
//!   [`super::app`]: `coupon_remaining{coupon_id="N"}` is one test's), or
//! - a recorder of its own: a child `jupang serve` ([`super::app::spawn_child_app_with`]), or
//!   [`with_own_recorder`] around a future that records directly,
//!
//! and asserts exact values.

use std::{collections::BTreeSet, future::Future, pin::Pin, task::Poll, time::Duration};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use super::app::TestApp;

/// The sum of the samples of `name` in a Prometheus exposition whose labels contain every one
/// of `labels` (e.g. `outcome="issued"`); 0 when there is none.
pub fn metric_value(exposition: &str, name: &str, labels: &[&str]) -> f64 {
    samples(exposition, name, labels).iter().sum()
}

/// The values of the samples of `name` whose labels contain every one of `labels`.
fn samples(exposition: &str, name: &str, labels: &[&str]) -> Vec<f64> {
    exposition
        .lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name) && labels.iter().all(|lbl| l.contains(lbl)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .collect()
}

/// The names of the samples of an exposition (`x_bucket`, `x_sum`, `x_count` for a histogram).
pub fn sample_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

/// Asserts that `name{labels}` is exactly one sample of value `want`: present, and not a sum.
#[track_caller]
pub fn assert_metric(exposition: &str, name: &str, labels: &[&str], want: f64) {
    let got = samples(exposition, name, labels);
    assert_eq!(got, [want], "{name} {labels:?}:\n{exposition}");
}

/// The app's `/metrics` exposition.
pub async fn scrape(app: &TestApp) -> String {
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    res.text().await.expect("an exposition")
}

/// Waits (at most 10 s) until `name{labels}` is `want` in the app's exposition, asserts it is
/// exactly that one sample, and returns the exposition. For what a background task records
/// just after the effect the test saw (a delivery recorded in Postgres, then counted).
pub async fn await_metric(app: &TestApp, name: &str, labels: &[&str], want: f64) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let exposition = scrape(app).await;
        if metric_value(&exposition, name, labels) == want || tokio::time::Instant::now() >= deadline {
            assert_metric(&exposition, name, labels, want);
            return exposition;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `future` with a Prometheus recorder of its own, and returns its output and what the
/// recorder holds. Only what the future records itself, while it is polled, counts: not what
/// tasks it spawns record, nor handles cached before.
pub async fn with_own_recorder<F: Future>(future: F) -> (F::Output, String) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let output = Recorded { future: Box::pin(future), recorder }.await;
    (output, handle.render())
}

/// A future polled with its own recorder installed for the current thread.
struct Recorded<F> {
    future: Pin<Box<F>>,
    recorder: PrometheusRecorder,
}

impl<F: Future> Future for Recorded<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        metrics::with_local_recorder(&this.recorder, || this.future.as_mut().poll(cx))
    }
}
