//! The hot-path HTTP client: one keep-alive HTTP/1.1 connection per task, on hyper's low-level
//! client (`hyper::client::conn::http1`). The load generator shares the machine with the server,
//! so every microsecond it spends is taken from the thing it measures: no pool, no redirects, no
//! proxy logic, no extra task per connection. The connection's driver future is polled by the
//! same task that sends, alongside each exchange.

use std::{
    future::Future,
    pin::{Pin, pin},
    task::Poll,
    time::Duration,
};

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, StatusCode, Uri,
    body::Bytes,
    client::conn::http1::{self, Connection, SendRequest},
    header::HeaderValue,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The request body type of every call.
pub type Body = Full<Bytes>;

/// Where the load goes: an `http://host:port` base URL.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port` without a trailing slash.
    pub base: String,
    /// `host:port`, what the TCP connection dials.
    pub authority: String,
    /// The `Host` header every request carries.
    pub host: HeaderValue,
}

impl Target {
    /// Parses `http://host[:port]` (a trailing slash or path is ignored; only plain HTTP).
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let uri: Uri = url.trim().parse().with_context(|| format!("--target `{url}` is not a URL"))?;
        anyhow::ensure!(uri.scheme_str() == Some("http"), "--target must be an http:// URL, not `{url}`");
        let host = uri.host().context("--target has no host")?;
        let authority = format!("{host}:{}", uri.port_u16().unwrap_or(80));
        Ok(Target {
            base: format!("http://{authority}"),
            host: HeaderValue::from_str(&authority).context("--target host")?,
            authority,
        })
    }

    /// The full URL of a path (`/api/...`), for the setup calls made with an ordinary client.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Why an exchange produced no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// The TCP connection could not be opened.
    Connect,
    /// The connection broke while sending or receiving.
    Io,
    /// No complete answer within the request timeout.
    Timeout,
}

impl TransportError {
    /// A short stable name (`connect`, `io`, `timeout`) for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportError::Connect => "connect",
            TransportError::Io => "io",
            TransportError::Timeout => "timeout",
        }
    }
}

/// An established connection: the handle to send on and the future that runs the protocol.
struct Live {
    sender: SendRequest<Body>,
    driver: Pin<Box<Connection<TokioIo<TcpStream>, Body>>>,
}

/// Polls `work` and the connection driver together: the driver moves the bytes, `work` waits
/// for them. `None` when the connection ended before `work` completed.
async fn drive<F: Future>(driver: &mut Pin<Box<Connection<TokioIo<TcpStream>, Body>>>, work: F) -> Option<F::Output> {
    let mut work = pin!(work);
    let ended = tokio::select! {
        biased;
        out = &mut work => return Some(out),
        _ = driver.as_mut() => true,
    };
    // The driver may have delivered the answer in the same poll in which it saw the end of the
    // connection (`Connection: close`): look once more before calling it lost.
    debug_assert!(ended);
    std::future::poll_fn(|cx| match work.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// One keep-alive connection that reconnects when it breaks.
pub struct Conn {
    target: std::sync::Arc<Target>,
    live: Option<Live>,
    opened: u64,
}

impl Conn {
    /// A connection to `target`, not opened yet.
    pub fn new(target: std::sync::Arc<Target>) -> Conn {
        Conn { target, live: None, opened: 0 }
    }

    /// Connections opened again after the first (one broke, timed out or was closed by the server).
    pub fn reconnects(&self) -> u64 {
        self.opened.saturating_sub(1)
    }

    /// Opens the TCP connection now (before the clock starts), unless it is open.
    pub async fn connect(&mut self) -> Result<(), TransportError> {
        if self.live.is_none() {
            let stream = TcpStream::connect(&self.target.authority).await.map_err(|_| TransportError::Connect)?;
            // Small requests and answers: Nagle's algorithm would only add delay.
            stream.set_nodelay(true).map_err(|_| TransportError::Connect)?;
            let (sender, driver) = http1::handshake(TokioIo::new(stream)).await.map_err(|_| TransportError::Connect)?;
            self.live = Some(Live { sender, driver: Box::pin(driver) });
            self.opened += 1;
        }
        Ok(())
    }

    /// Forgets the connection (after a timeout left it mid-exchange); the next call reconnects.
    pub fn reset(&mut self) {
        self.live = None;
    }

    /// Sends one request and reads the whole answer. A connection the server closed while idle
    /// is reopened silently; one that breaks during the exchange is an error (and is reopened
    /// by the next call).
    pub async fn exchange(&mut self, mut req: Request<Body>) -> Result<(StatusCode, Bytes), TransportError> {
        req.headers_mut().insert(hyper::header::HOST, self.target.host.clone());
        let ready = match self.live.as_mut() {
            Some(live) => matches!(drive(&mut live.driver, live.sender.ready()).await, Some(Ok(()))),
            None => false,
        };
        if !ready {
            self.live = None;
            self.connect().await?;
        }
        let Live { sender, driver } = self.live.as_mut().expect("connected above");
        let result = drive(driver, async {
            let res = sender.send_request(req).await.map_err(|_| TransportError::Io)?;
            let status = res.status();
            let body = res.into_body().collect().await.map_err(|_| TransportError::Io)?.to_bytes();
            Ok((status, body))
        })
        .await
        .unwrap_or(Err(TransportError::Io));
        if result.is_err() {
            self.live = None;
        }
        result
    }

    /// [`Conn::exchange`] bounded by `timeout`.
    pub async fn exchange_within(
        &mut self,
        req: Request<Body>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), TransportError> {
        match tokio::time::timeout(timeout, self.exchange(req)).await {
            Ok(result) => result,
            Err(_) => {
                self.reset();
                Err(TransportError::Timeout)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_keeps_host_and_port_and_refuses_https() {
        let t = Target::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!((t.base.as_str(), t.authority.as_str()), ("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert_eq!(Target::parse("http://localhost").unwrap().authority, "localhost:80");
        assert!(Target::parse("https://example.com").is_err());
    }
}
