//! Reading the Prometheus exposition of an app.

use std::collections::BTreeSet;

use super::app::TestApp;

/// The sum of the samples of `name` in a Prometheus exposition whose labels contain every one
/// of `labels` (e.g. `outcome="issued"`); 0 when there is none.
pub fn metric_value(exposition: &str, name: &str, labels: &[&str]) -> f64 {
    exposition
        .lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name) && labels.iter().all(|lbl| l.contains(lbl)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The names of the samples of an exposition (`x_bucket`, `x_sum`, `x_count` for a histogram).
pub fn sample_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

/// The app's `/metrics` exposition.
pub async fn scrape(app: &TestApp) -> String {
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    res.text().await.expect("an exposition")
}
