//! What is sent and when: the shuffled presses of an open run (with double clicks) and the
//! intended send times of the open model.

use std::time::{Duration, Instant};

use rand::{Rng, seq::SliceRandom};

/// How the load is offered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Closed loop: each connection sends its next request as soon as the previous answer is in.
    Closed {
        /// Concurrent connections.
        connections: usize,
    },
    /// Open model: request `i` is due at `t0 + i / rate` whatever the answers do; a pool of
    /// `connections` sends them (a request waits for a free connection when all are busy, and
    /// that wait counts in its latency).
    Open {
        /// Arrivals per second.
        rate: f64,
        /// Connections sending.
        connections: usize,
    },
}

impl Pacing {
    /// Connections used.
    pub fn connections(&self) -> usize {
        match *self {
            Pacing::Closed { connections } | Pacing::Open { connections, .. } => connections,
        }
    }

    /// The intended send time of request `slot`, in the open model.
    pub fn intended(&self, t0: Instant, slot: u64) -> Option<Instant> {
        match *self {
            Pacing::Closed { .. } => None,
            Pacing::Open { rate, .. } => Some(t0 + Duration::from_secs_f64(slot as f64 / rate)),
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match *self {
            Pacing::Closed { connections } => format!("closed loop, {connections} connections"),
            Pacing::Open { rate, connections } => {
                format!("open model, {rate:.0} req/s over up to {connections} connections")
            }
        }
    }
}

/// The order in which people 1..=`people` press "get coupon": each once, shuffled, and
/// `round(people * double_click_ratio)` of them (chosen at random) a second time right after
/// their first press, as a double click does.
pub fn presses(people: u32, double_click_ratio: f64, rng: &mut impl Rng) -> Vec<u32> {
    let mut order: Vec<u32> = (1..=people).collect();
    order.shuffle(rng);
    let doubles = double_clickers(people, double_click_ratio, rng);
    let mut out = Vec::with_capacity(order.len() + doubles.iter().filter(|d| **d).count());
    for person in order {
        out.push(person);
        if doubles[person as usize] {
            out.push(person);
        }
    }
    out
}

/// `doubles[p]` says whether person `p` (1-based; index 0 unused) double-clicks.
fn double_clickers(people: u32, ratio: f64, rng: &mut impl Rng) -> Vec<bool> {
    let n = ((people as f64) * ratio.clamp(0.0, 1.0)).round() as usize;
    let mut doubles = vec![false; people as usize + 1];
    for p in rand::seq::index::sample(rng, people as usize, n.min(people as usize)) {
        doubles[p + 1] = true;
    }
    doubles
}

/// Parses a ratio in `0..=1` (clap value parser).
pub fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("expected a number from 0 to 1, not `{s}`")),
    }
}

/// Parses a positive rate (clap value parser).
pub fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("expected a positive number of requests per second, not `{s}`")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn everyone_presses_once_and_the_double_clickers_twice_in_a_row() {
        let mut rng = StdRng::seed_from_u64(7);
        let p = presses(1_000, 0.2, &mut rng);
        assert_eq!(p.len(), 1_200);
        let mut counts: HashMap<u32, usize> = HashMap::new();
        p.iter().for_each(|u| *counts.entry(*u).or_default() += 1);
        assert_eq!(counts.len(), 1_000, "every person presses");
        assert_eq!(counts.values().filter(|c| **c == 2).count(), 200);
        assert!(counts.values().all(|c| *c <= 2));
        for (i, u) in p.iter().enumerate() {
            if counts[u] == 2 {
                let next_or_prev = p.get(i + 1) == Some(u) || (i > 0 && p[i - 1] == *u);
                assert!(next_or_prev, "person {u}'s two presses are adjacent");
            }
        }
        assert_ne!(p[..10], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "shuffled");
    }

    #[test]
    fn ratios_at_the_ends_mean_nobody_or_everybody_double_clicks() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(presses(50, 0.0, &mut rng).len(), 50);
        assert_eq!(presses(50, 1.0, &mut rng).len(), 100);
        assert!(parse_ratio("1.5").is_err() && parse_ratio("-0.1").is_err() && parse_ratio("0.3").is_ok());
    }

    #[test]
    fn the_open_model_spaces_intended_times_by_one_over_the_rate() {
        let t0 = Instant::now();
        let open = Pacing::Open { rate: 1_000.0, connections: 4 };
        assert_eq!(open.intended(t0, 0), Some(t0));
        assert_eq!(open.intended(t0, 250), Some(t0 + Duration::from_millis(250)));
        assert_eq!(Pacing::Closed { connections: 4 }.intended(t0, 250), None);
    }
}
