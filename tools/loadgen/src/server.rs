//! A child `jupang serve` for `compare` and `drain`: the issue strategy and the workers are
//! start-up settings, so each configuration gets its own process, started with the load
//! generator's environment plus its own variables (`JUPANG_ISSUE_STRATEGY`, `JUPANG_WORKERS`...)
//! and `JUPANG_LISTEN`, awaited on `/ready`, measured (peak resident memory) and stopped with
//! SIGTERM like an operator would.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context;
use tokio::process::{Child, Command};

use super::{client::Target, setup::wait_ready};

/// How long a child may take to become ready (it connects, preloads caches, hydrates).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a child may take to drain after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running child server.
pub struct ChildServer {
    child: Child,
    /// Where it listens.
    pub target: Target,
    /// Its process id.
    pub pid: u32,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

/// A port that was free a moment ago (bound and released; another process could take it in
/// between, which [`ChildServer::start`] survives by trying again).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The last lines of a log file, for an error message.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl ChildServer {
    /// Starts `bin serve` with `strategy` (or the inherited one), and waits until it is ready.
    pub async fn start(bin: &Path, strategy: Option<&str>, label: &str) -> anyhow::Result<ChildServer> {
        let vars: Vec<(&str, &str)> = strategy.map(|s| ("JUPANG_ISSUE_STRATEGY", s)).into_iter().collect();
        ChildServer::start_with(bin, &vars, label).await
    }

    /// Starts `bin serve` with `vars` on top of the inherited environment, and waits until it is
    /// ready.
    pub async fn start_with(bin: &Path, vars: &[(&str, &str)], label: &str) -> anyhow::Result<ChildServer> {
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let log = std::env::temp_dir().join(format!("jupang-loadgen-{label}-{}.log", std::process::id()));
            let out = std::fs::File::create(&log).with_context(|| format!("cannot write {}", log.display()))?;
            let mut cmd = Command::new(bin);
            cmd.arg("serve")
                .env("JUPANG_LISTEN", format!("127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .envs(vars.iter().copied())
                .kill_on_drop(true);
            let child = cmd.spawn().with_context(|| format!("cannot start {} serve", bin.display()))?;
            let pid = child.id().context("the child has no pid")?;
            let target = Target::parse(&format!("http://127.0.0.1:{port}"))?;
            let mut server = ChildServer { child, target, pid, log };
            match server.wait_ready().await {
                Ok(()) => return Ok(server),
                Err(e) => {
                    let lost_port = tail(&server.log, 20).contains("cannot listen");
                    let _ = server.child.kill().await;
                    if !lost_port {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.expect("three attempts ran"))
    }

    /// Waits for `/ready`, failing early if the child exits.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("serve exited ({status}) before it was ready:\n{}", tail(&self.log, 20));
            }
            if wait_ready(&self.target, Duration::from_millis(200)).await.is_ok() {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "serve not ready within {READY_TIMEOUT:?}; log {}:\n{}",
                self.log.display(),
                tail(&self.log, 20)
            );
        }
    }

    /// Peak resident memory so far (`VmHWM` of `/proc/<pid>/status`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Sends SIGTERM and waits for the graceful exit (killing it if it takes too long); the
    /// log file is removed when it exited cleanly.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        // `kill` from the system rather than a signal crate: one process, once per run.
        let sent = std::process::Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        if !sent.is_ok_and(|s| s.success()) {
            self.child.kill().await?;
        }
        let status = match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                self.child.kill().await?;
                anyhow::bail!("serve did not stop within {STOP_TIMEOUT:?} of SIGTERM; killed")
            }
        };
        anyhow::ensure!(status.success(), "serve exited with {status}; log {}", self.log.display());
        let _ = std::fs::remove_file(&self.log);
        Ok(())
    }
}
