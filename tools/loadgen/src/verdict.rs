//! Correctness verdicts: named checks that pass or fail, and waiting for Postgres to converge on
//! what the answers promised (the V2 paths persist asynchronously).

use std::{
    fmt::Write,
    future::Future,
    time::{Duration, Instant},
};

use serde::Serialize;

/// One check of a verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is checked, as a sentence.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// What was seen.
    pub detail: String,
}

/// All checks of a run; it passes when every check does.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    /// Every check passed.
    pub passed: bool,
    /// The checks, in order.
    pub checks: Vec<Check>,
}

impl Verdict {
    /// An empty verdict (passes until a check fails).
    pub fn new() -> Verdict {
        Verdict { passed: true, checks: Vec::new() }
    }

    /// Adds a check.
    pub fn check(&mut self, name: impl Into<String>, passed: bool, detail: impl Into<String>) {
        self.passed &= passed;
        self.checks.push(Check { name: name.into(), passed, detail: detail.into() });
    }

    /// `PASS` or `FAIL`.
    pub fn word(&self) -> &'static str {
        if self.passed { "PASS" } else { "FAIL" }
    }

    /// The checks as a Markdown table, then the overall verdict.
    pub fn markdown(&self) -> String {
        let mut s = String::from("| check | result | detail |\n| --- | --- | --- |\n");
        for c in &self.checks {
            let _ = writeln!(s, "| {} | {} | {} |", c.name, if c.passed { "pass" } else { "**FAIL**" }, c.detail);
        }
        let _ = writeln!(s, "\n**verdict: {}**", self.word());
        s
    }

    /// `Err` naming the failed checks, for the exit status.
    pub fn into_result(self) -> anyhow::Result<()> {
        if self.passed {
            return Ok(());
        }
        let failed: Vec<String> = self.checks.into_iter().filter(|c| !c.passed).map(|c| c.name).collect();
        anyhow::bail!("verdict FAIL: {}", failed.join("; "))
    }
}

/// How Postgres caught up with the answers.
#[derive(Debug, Clone, Serialize)]
pub struct Convergence {
    /// It agreed within the timeout.
    pub converged: bool,
    /// When it agreed (or the poll gave up), counted from the last answer of the run.
    pub after_last_response_ms: f64,
    /// What the last poll saw.
    pub last_seen: String,
}

/// Polls `probe` every 10 ms until it reports agreement (`Ok((true, what))`) or `timeout`
/// passes; times are counted from `last_answer`.
pub async fn converge<F, Fut>(last_answer: Instant, timeout: Duration, mut probe: F) -> anyhow::Result<Convergence>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<(bool, String)>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let (agreed, seen) = probe().await?;
        let now = Instant::now();
        if agreed || now >= deadline {
            return Ok(Convergence {
                converged: agreed,
                after_last_response_ms: now.saturating_duration_since(last_answer).as_secs_f64() * 1e3,
                last_seen: seen,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_failed_check_fails_the_verdict_and_is_named() {
        let mut v = Verdict::new();
        v.check("issued == min(people, coupons)", true, "50 == 50");
        assert!(v.passed);
        v.check("nobody issued twice", false, "3 people twice");
        assert_eq!(v.word(), "FAIL");
        assert!(v.markdown().contains("| nobody issued twice | **FAIL** | 3 people twice |"));
        let err = v.into_result().unwrap_err().to_string();
        assert!(err.contains("nobody issued twice") && !err.contains("min(people"), "{err}");
    }

    #[tokio::test]
    async fn convergence_gives_up_after_the_timeout_with_what_it_saw() {
        let c = converge(Instant::now(), Duration::from_millis(50), || async { Ok((false, "3 of 5".to_owned())) })
            .await
            .unwrap();
        assert!(!c.converged && c.after_last_response_ms >= 50.0 && c.last_seen == "3 of 5", "{c:?}");
        let mut polls = 0;
        let c = converge(Instant::now(), Duration::from_secs(5), || {
            polls += 1;
            let done = polls >= 3;
            async move { Ok((done, String::new())) }
        })
        .await
        .unwrap();
        assert!(c.converged && polls == 3);
    }
}
