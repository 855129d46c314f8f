//! A Redis server of the test's own (a real `redis-server` process on a free port, with its AOF
//! in a temporary directory), for tests that kill Redis: the shared test Redis must never die.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::app::unique;

/// A private `redis-server`; killed (and its directory removed) when dropped.
pub struct PrivateRedis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    appendfsync: &'static str,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts one with AOF persistence and the given fsync policy (`always`, `everysec`).
    pub async fn start(appendfsync: &'static str) -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("jupang-redis-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = PrivateRedis { port, dir, appendfsync, child: None };
        redis.spawn().await;
        redis
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the process and waits for a real PONG (not LOADING while it replays its AOF). A
    /// server that exits at once (its port not yet released by the one just killed) is started
    /// again.
    async fn spawn(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            assert!(tokio::time::Instant::now() < deadline, "the private Redis did not start within 10 s");
            let mut child = Command::new("redis-server")
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
                .args(["--appendonly", "yes", "--appendfsync", self.appendfsync])
                .arg("--dir")
                .arg(&self.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server (scripts/services.sh up installs it)");
            while child.try_wait().unwrap().is_none() {
                if self.pong().await {
                    self.child = Some(child);
                    return;
                }
                assert!(tokio::time::Instant::now() < deadline, "the private Redis did not answer within 10 s");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// A connection of its own.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url()).unwrap().get_multiplexed_async_connection().await.expect("connect")
    }

    async fn pong(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else { return false };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else { return false };
        redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok()
    }

    /// `kill -9`: no shutdown, no last fsync.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL redis-server");
            child.wait().unwrap();
        }
    }

    /// The file the server appends its writes to now (Redis 7's multi-part AOF: the `incr` part).
    fn incr_aof(&self) -> PathBuf {
        let dir = self.dir.join("appendonlydir");
        std::fs::read_dir(&dir)
            .expect("appendonlydir")
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".incr.aof"))
            .max()
            .expect("an incr AOF file")
    }

    /// How many bytes the AOF's current part holds.
    pub fn aof_len(&self) -> u64 {
        std::fs::metadata(self.incr_aof()).unwrap().len()
    }

    /// What a machine crash does to writes not yet fsynced: cuts the AOF's current part back to
    /// `len` bytes. Only with the server dead.
    pub fn lose_aof_tail(&self, len: u64) {
        assert!(self.child.is_none(), "the server must be dead");
        std::fs::OpenOptions::new().write(true).open(self.incr_aof()).unwrap().set_len(len).unwrap();
    }

    /// Starts it again on the same port and directory (it replays its AOF).
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
