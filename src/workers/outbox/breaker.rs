//! The relay's circuit breaker: a data platform that keeps failing is left alone for a while
//! instead of being sent every due event (and every retry) as fast as they come.
//!
//! - **Closed** (0): events are sent, up to the relay's concurrency. After a failure, one new
//!   delivery at a time until a success: a platform that just failed is not sent 32 events at
//!   once, and the failures that open the breaker are the requests it received since (plus
//!   those that were already in flight). Deliveries in flight (a hanging one) never hold the
//!   next one back.
//! - **Open** (1): after `JUPANG_OUTBOX_BREAKER_FAILURES` consecutive failures, nothing is sent
//!   for `JUPANG_OUTBOX_BREAKER_OPEN_SECS`.
//! - **Half-open** (2): then one due event is sent as a probe; its success closes the breaker,
//!   its failure opens it again for another period.
//!
//! A delivery already on its way when the breaker opens still completes (its answer, either
//! way, is recorded like any other). The breaker belongs to one process: each instance finds
//! out on its own that the platform is down, with at most N requests.

use std::time::{Duration, Instant};

/// `outbox_breaker_state`: 0 closed, 1 open, 2 half-open.
pub const OUTBOX_BREAKER_STATE: &str = "outbox_breaker_state";

/// The contract's settings of the breaker.
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    /// Consecutive failed deliveries that open it (at least 1).
    pub failures: u32,
    /// How long it stays open before a probe.
    pub open_for: Duration,
}

/// Where the breaker stands; the number is the gauge's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Sending.
    Closed = 0,
    /// Sending nothing until the instant held by the breaker.
    Open = 1,
    /// One probe allowed.
    HalfOpen = 2,
}

impl State {
    /// Every state, by gauge value.
    pub const ALL: [State; 3] = [State::Closed, State::Open, State::HalfOpen];

    /// Its name for people (logs, the dashboard's value mappings of the gauge).
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }
}

/// The breaker's state machine; the relay holds it behind a mutex (no await while locked).
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    state: State,
    /// Consecutive failures while closed.
    failures: u32,
    /// When an open breaker half-opens.
    open_until: Instant,
    /// The one delivery allowed after a failure (or as the half-open probe) is on its way.
    trial: bool,
}

impl Breaker {
    /// A closed breaker; its gauge is set.
    pub fn new(settings: BreakerSettings) -> Breaker {
        let b = Breaker { settings, state: State::Closed, failures: 0, open_until: Instant::now(), trial: false };
        b.publish();
        b
    }

    /// Where it stands.
    #[cfg(test)]
    pub fn state(&self) -> State {
        self.state
    }

    /// How many events the relay may claim at `now`, with `free` slots. An open breaker whose
    /// period is over half-opens here.
    pub fn allowance(&mut self, now: Instant, free: usize) -> usize {
        if self.state == State::Open && now >= self.open_until {
            self.move_to(State::HalfOpen);
            self.trial = false;
        }
        match self.state {
            State::Closed if self.failures == 0 => free,
            State::Closed | State::HalfOpen if !self.trial => free.min(1),
            _ => 0,
        }
    }

    /// The relay claimed `n` events after asking [`Breaker::allowance`].
    pub fn claimed(&mut self, n: usize) {
        if n > 0 && (self.state == State::HalfOpen || self.failures > 0) {
            self.trial = true;
        }
    }

    /// A delivery succeeded: the platform is back.
    pub fn success(&mut self) {
        self.failures = 0;
        self.trial = false;
        if self.state != State::Closed {
            tracing::info!("outbox circuit breaker closed: the data platform answers again");
            self.move_to(State::Closed);
        }
    }

    /// A delivery failed at `now`.
    pub fn failure(&mut self, now: Instant) {
        self.trial = false;
        match self.state {
            State::Closed => {
                self.failures += 1;
                if self.failures >= self.settings.failures {
                    self.open(now);
                }
            }
            State::HalfOpen => self.open(now),
            // A delivery sent before the breaker opened: it changes nothing.
            State::Open => {}
        }
    }

    fn open(&mut self, now: Instant) {
        tracing::warn!(
            outbox.breaker_failures = self.settings.failures,
            outbox.breaker_open_secs = self.settings.open_for.as_secs(),
            "outbox circuit breaker open: the data platform keeps failing; sending nothing for a while"
        );
        self.failures = 0;
        self.trial = false;
        self.open_until = now + self.settings.open_for;
        self.move_to(State::Open);
    }

    fn move_to(&mut self, state: State) {
        tracing::debug!(outbox.breaker_state = state.name(), "outbox circuit breaker moved");
        self.state = state;
        self.publish();
    }

    fn publish(&self) {
        metrics::gauge!(OUTBOX_BREAKER_STATE).set(self.state as i32 as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: BreakerSettings = BreakerSettings { failures: 3, open_for: Duration::from_secs(30) };

    /// A breaker opened at `t` by three failures.
    fn opened_at(t: Instant) -> Breaker {
        let mut b = Breaker::new(SETTINGS);
        for _ in 0..3 {
            b.failure(t);
        }
        assert_eq!(b.state(), State::Open);
        b
    }

    #[test]
    fn it_opens_after_n_consecutive_failures_sending_one_at_a_time_once_failing() {
        let mut b = Breaker::new(SETTINGS);
        let t = Instant::now();
        assert_eq!(b.allowance(t, 32), 32);
        b.failure(t);
        assert_eq!(b.allowance(t, 32), 1, "one at a time after a failure");
        b.claimed(1);
        assert_eq!(b.allowance(t, 31), 0, "until that one is answered");
        b.failure(t);
        b.success();
        assert_eq!(b.allowance(t, 32), 32, "a success resets the count");
        for _ in 0..3 {
            b.failure(t);
        }
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.allowance(t + Duration::from_secs(29), 32), 0);
    }

    #[test]
    fn it_half_opens_with_one_probe_and_closes_on_its_success_or_reopens_on_its_failure() {
        let t = Instant::now();
        let mut b = opened_at(t);
        let later = t + Duration::from_secs(30);
        assert_eq!(b.allowance(later, 32), 1);
        assert_eq!(b.state(), State::HalfOpen);
        b.claimed(1);
        assert_eq!(b.allowance(later, 31), 0, "one probe only");
        b.failure(later);
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.allowance(later + Duration::from_secs(1), 32), 0);
        let again = later + Duration::from_secs(30);
        assert_eq!(b.allowance(again, 32), 1);
        b.claimed(1);
        b.success();
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.allowance(again, 32), 32, "the probe's success restores full concurrency");
    }

    #[test]
    fn a_half_open_breaker_without_a_due_event_probes_with_the_next_one() {
        let t = Instant::now();
        let mut b = opened_at(t);
        let later = t + Duration::from_secs(31);
        assert_eq!(b.allowance(later, 32), 1);
        b.claimed(0);
        assert_eq!(b.allowance(later, 32), 1, "nothing was sent: the probe is still to come");
    }
}
