//! A TCP proxy for tests that need a dependency to go away: the app talks to the real server
//! through it, `kill()` makes the server look dead (refused connections, dropped sockets), and
//! `revive()` brings it back on the same address.

#![allow(dead_code)] // A test tool; not each test uses every method.

use std::net::SocketAddr;

use tokio::{
    net::{TcpListener, TcpStream},
    task::{JoinHandle, JoinSet},
};
use tokio_util::sync::CancellationToken;

/// A running proxy to one upstream address.
pub struct TcpProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    upstream: SocketAddr,
    stop: CancellationToken,
    acceptor: Option<JoinHandle<()>>,
}

impl TcpProxy {
    /// Listens on `127.0.0.1:0` and forwards each connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let acceptor = Some(Self::forward(listener, upstream, stop.clone()));
        TcpProxy { addr, upstream, stop, acceptor }
    }

    fn forward(listener: TcpListener, upstream: SocketAddr, token: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    accepted = listener.accept() => {
                        let Ok((mut client, _)) = accepted else { continue };
                        connections.spawn(async move {
                            if let Ok(mut server) = TcpStream::connect(upstream).await {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        });
                    }
                }
            }
            // Aborting the tasks drops both ends of every live connection.
            connections.shutdown().await;
            drop(listener);
        })
    }

    /// After [`TcpProxy::kill`]: listens again on the same address and forwards as before.
    pub async fn revive(&mut self) {
        assert!(self.acceptor.is_none(), "the proxy is running");
        // The port was just released; binding it again may briefly fail while the kernel lets go.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.stop = CancellationToken::new();
        self.acceptor = Some(Self::forward(listener, self.upstream, self.stop.clone()));
    }

    /// Stops accepting and drops every live connection; returns once both are done.
    pub async fn kill(&mut self) {
        self.stop.cancel();
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.await;
        }
    }

    /// A URL like `url` (`redis://`, `postgres://`) that goes through this proxy.
    pub fn url_through(&self, url: &str) -> String {
        self.redis_url(url)
    }

    /// A `redis://` URL like `url` that goes through this proxy.
    pub fn redis_url(&self, url: &str) -> String {
        let mut u = reqwest::Url::parse(url).expect("a valid REDIS_URL");
        u.set_host(Some(&self.addr.ip().to_string())).unwrap();
        u.set_port(Some(self.addr.port())).unwrap();
        u.to_string()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The socket address a `redis://host:port/` URL names.
pub async fn upstream_of(url: &str) -> SocketAddr {
    let u = reqwest::Url::parse(url).expect("a valid URL");
    let host = u.host_str().expect("a host").to_owned();
    let port = u.port().unwrap_or(6379);
    tokio::net::lookup_host((host.as_str(), port)).await.unwrap().next().expect("an address")
}
