//! A real Prometheus (the Debian package, `/usr/bin/prometheus`) scraping a child `jupang serve`
//! that has had a little traffic.

use std::{path::PathBuf, process::Stdio, time::Duration};

use axum::{Router, http::StatusCode, routing::post};
use serde_json::{Value, json};
use tokio::{
    process::{Child, Command},
    time::Instant,
};

use super::{
    app::{TestApp, spawn_child_app_with, unique},
    catalog::option,
    coupons::{create_coupon, issue},
    http::{assert_error, json_of},
    orders::{pay, placed},
};

/// A private Prometheus process scraping one target every second, with its data in a temporary
/// directory; killed (and the directory removed) when dropped.
pub struct Prometheus {
    child: Child,
    url: String,
    dir: PathBuf,
    client: reqwest::Client,
}

/// The Prometheus binary: `JUPANG_PROMETHEUS`, else `prometheus` on the `PATH`, else the Debian
/// package's path. Missing, the test fails: it must not pass without having seen a Prometheus.
fn prometheus_binary() -> PathBuf {
    if let Ok(path) = std::env::var("JUPANG_PROMETHEUS") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("prometheus")).find(|p| p.is_file()));
    on_path.or_else(|| Some(PathBuf::from("/usr/bin/prometheus")).filter(|p| p.is_file())).unwrap_or_else(|| {
        panic!(
            "no prometheus binary: install the Debian package (`apt-get install prometheus`, or run \
             `scripts/services.sh up` as root, which does it without starting the system service) or set \
             JUPANG_PROMETHEUS to a prometheus binary"
        )
    })
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`) as job `jupang`, and waits until it is ready.
    pub async fn start(target: &str) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("jupang-prometheus-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: jupang\n    metrics_path: /metrics\n    static_configs:\n      \
             - targets: [\"{target}\"]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let binary = prometheus_binary();
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                let _ = std::fs::remove_dir_all(&dir);
                panic!("cannot start {}: {e} (JUPANG_PROMETHEUS, or the Debian package)", binary.display())
            });
        let mut prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
            client: reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = prometheus.client.get(format!("{}/-/ready", prometheus.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return prometheus;
            }
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("prometheus exited ({status}) before it was ready:\n{}", prometheus.log());
            }
            assert!(Instant::now() < deadline, "prometheus not ready within 30 s:\n{}", prometheus.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query: the result vector, or Prometheus's error.
    pub async fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let q: String = form_urlencoded::byte_serialize(promql.as_bytes()).collect();
        let res = self.client.get(format!("{}/api/v1/query?query={q}", self.url)).send().await;
        let body: Value = res.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(body["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The value of a query answering one sample, if it does.
    pub async fn value(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql).await.ok()?;
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// What Prometheus says about its targets (for failure messages).
    pub async fn targets(&self) -> String {
        let res = self.client.get(format!("{}/api/v1/targets", self.url)).send().await;
        match res {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => e.to_string(),
        }
    }

    /// Kills the process and removes its data.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        // A dying Prometheus may still write into its directory: wait (briefly) until it is gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A data platform that accepts every event, so the outbox worker delivers; returns its URL.
pub async fn accepting_platform() -> String {
    let app = Router::new().route("/events", post(|| async { StatusCode::ACCEPTED }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A child `jupang serve` with every worker on, delivering to an accepting data platform.
pub async fn serve_everything() -> TestApp {
    let platform = accepting_platform().await;
    spawn_child_app_with(|v| {
        v.insert("JUPANG_WORKERS".into(), "all".into());
        v.insert("JUPANG_DATA_PLATFORM_URL".into(), platform);
    })
    .await
}

/// A running [`serve_everything`] that has had a little traffic (an issue and a double click,
/// an order and its payment, so the labelled series have values to show), and a real
/// Prometheus scraping it.
pub struct Scraped {
    /// The server.
    pub app: TestApp,
    /// Its scraper.
    pub prometheus: Prometheus,
}

/// Starts a [`Scraped`].
pub async fn scraped() -> Scraped {
    let app = serve_everything().await;
    let coupon = create_coupon(&app, 10, json!({ "min_order_amount": 0 })).await;
    let option = option(&app, 10_000, 5).await;
    let user = app.create_user("KR", 100_000).await;
    json_of(issue(&app, coupon, user).await, 201).await;
    assert_error(issue(&app, coupon, user).await, 400, "ALREADY_ISSUED").await;
    let order = placed(&app, user, &[(option, 1)]).await;
    json_of(pay(&app, user, &order, None).await, 200).await;
    let prometheus = Prometheus::start(app.base.trim_start_matches("http://")).await;
    Scraped { app, prometheus }
}
