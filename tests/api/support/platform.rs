//! A data platform served over HTTPS by the test (rustls, with a CA made for the test by
//! rcgen), and what any test platform records of a request.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::Value;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Notify,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
    },
    server::TlsStream,
};

use super::app::unique;

/// One request the platform received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    /// Its `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// Its JSON body (null when not JSON).
    pub body: Value,
}

/// What the HTTPS platform holds.
#[derive(Default)]
pub struct PlatformState {
    /// Every request, in arrival order.
    pub received: Mutex<Vec<Received>>,
    /// While set, every request is answered 503 (and still counted).
    pub down: AtomicBool,
    /// While set, every request is counted and then held unanswered ([`HttpsPlatform::hold`]).
    held: AtomicBool,
    /// Wakes the held requests.
    released: Notify,
}

/// A data platform served over HTTPS on 127.0.0.1 with a certificate of a CA made for the
/// test; `ca_file` holds that CA (PEM), for `JUPANG_DATA_PLATFORM_CA`.
pub struct HttpsPlatform {
    /// `https://127.0.0.1:PORT/events`.
    pub url: String,
    /// The CA (PEM).
    pub ca_file: PathBuf,
    /// What it received, and its switch.
    pub state: Arc<PlatformState>,
}

/// Accepts TCP connections and completes their TLS handshake; a failed handshake is dropped.
struct TlsListener {
    tcp: TcpListener,
    tls: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else { continue };
            if let Ok(tls) = self.tls.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

impl HttpsPlatform {
    /// Starts it on a free port.
    pub async fn start() -> HttpsPlatform {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "Jupang test data platform CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf =
            CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&leaf_key, &ca, &ca_key).unwrap();
        let ca_file = std::env::temp_dir().join(format!("jupang-test-ca-{}.pem", unique()));
        std::fs::write(&ca_file, ca.pem()).unwrap();

        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let config =
            ServerConfig::builder().with_no_client_auth().with_single_cert(vec![leaf.der().clone()], key).unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/events", tcp.local_addr().unwrap());
        let state = Arc::new(PlatformState::default());
        async fn receive(State(s): State<Arc<PlatformState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let idempotency_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
            // Read before the request is counted: a test that sees the count may flip it safely.
            let down = s.down.load(Ordering::SeqCst);
            s.received.lock().unwrap().push(Received { at: Instant::now(), idempotency_key, body });
            loop {
                // Registered before the check, so a release in between is not missed.
                let released = s.released.notified();
                if !s.held.load(Ordering::SeqCst) {
                    break;
                }
                released.await;
            }
            if down { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::ACCEPTED }
        }
        let app = Router::new().route("/events", post(receive)).with_state(state.clone());
        let listener = TlsListener { tcp, tls: TlsAcceptor::from(Arc::new(config)) };
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        HttpsPlatform { url, ca_file, state }
    }

    /// From now on, requests are counted but not answered until [`HttpsPlatform::release`].
    pub fn hold(&self) {
        self.state.held.store(true, Ordering::SeqCst);
    }

    /// Answers the held requests, and the next ones at once.
    pub fn release(&self) {
        self.state.held.store(false, Ordering::SeqCst);
        self.state.released.notify_waiters();
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Points an app at it: URL and CA, a short backoff, many retries.
    pub fn vars(&self, vars: &mut BTreeMap<String, String>) {
        vars.insert("JUPANG_DATA_PLATFORM_URL".into(), self.url.clone());
        vars.insert("JUPANG_DATA_PLATFORM_CA".into(), self.ca_file.to_str().unwrap().to_owned());
        vars.insert("JUPANG_OUTBOX_BACKOFF_MS".into(), "50".into());
        vars.insert("JUPANG_OUTBOX_MAX_RETRIES".into(), "20".into());
    }
}

impl Drop for HttpsPlatform {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}
