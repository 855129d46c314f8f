//! An open run over K sales (`open-run --sales K`): which sale each person presses, and the
//! checks of what the sales gave out, per sale and in total. With one sale they are exactly
//! the checks an open run always made: min(people, coupons) issued, nobody twice, the server's
//! stats agree, and (with `DATABASE_URL`) Postgres holds exactly the coupons answered 201.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use clap::{Args, ValueEnum};
use rand::Rng;
use serde::Serialize;

use super::{
    client::Target,
    setup::Setup,
    verdict::{Convergence, Verdict, converge},
};

/// How each person's sale is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pick {
    /// Uniformly at random, once per person (a double click presses the same sale).
    Random,
    /// Round-robin by user id: user `u` presses sale `(u - 1) mod K`, so the sales get equal shares.
    RoundRobin,
}

/// Options of an open run over several sales.
#[derive(Debug, Clone, Copy, Args)]
pub struct SalesArgs {
    /// Fresh coupon sales the people are spread over, `--coupons` each; each person presses one.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub sales: u32,
    /// How each person's sale is chosen.
    #[arg(long, value_enum, default_value_t = Pick::Random)]
    pub pick: Pick,
}

impl Default for SalesArgs {
    fn default() -> SalesArgs {
        SalesArgs { sales: 1, pick: Pick::Random }
    }
}

/// The sale (0-based) of each person: index `u - 1` is user `u`.
pub fn assign(people: u32, sales: SalesArgs, rng: &mut impl Rng) -> Vec<u32> {
    (0..people)
        .map(|i| match sales.pick {
            Pick::Random => rng.random_range(0..sales.sales),
            Pick::RoundRobin => i % sales.sales,
        })
        .collect()
}

/// What one sale of an open run came to.
#[derive(Debug, Clone, Serialize)]
pub struct SaleResult {
    /// The sale's coupon id.
    pub coupon_id: i64,
    /// People who pressed this sale (at least once).
    pub people: u64,
    /// 201 answers.
    pub issued: u64,
    /// min(people, coupons).
    pub expected_issued: u64,
    /// What the server's coupon stats say was issued.
    pub stats_issued: Option<u64>,
}

/// What the presses of a run came to, before checking.
pub struct Tally<'a> {
    /// The coupon of each sale.
    pub coupons: &'a [i64],
    /// The sale of each person (index `u - 1`).
    pub sale_of: &'a [u32],
    /// People who pressed (each first press; a person may appear more than once).
    pub pressed: &'a [u32],
    /// People answered 201 (a person may appear more than once: that is the failure checked).
    pub winners: &'a [u32],
    /// Coupons per sale.
    pub per_sale: u32,
}

/// The checks of an open run over `tally.coupons`, added to `verdict`; returns the per-sale
/// results and, with `DATABASE_URL`, how Postgres caught up (counted from `last_answer`).
pub async fn check(
    setup: &Setup,
    target: &Target,
    tally: &Tally<'_>,
    last_answer: Instant,
    converge_timeout: Duration,
    verdict: &mut Verdict,
) -> anyhow::Result<(Vec<SaleResult>, Option<Convergence>)> {
    let k = tally.coupons.len();
    let sale = |u: u32| tally.sale_of[u as usize - 1] as usize;
    let (mut people, mut issued) = (vec![0u64; k], vec![0u64; k]);
    let mut seen = vec![false; tally.sale_of.len() + 1];
    for &u in tally.pressed {
        if !std::mem::replace(&mut seen[u as usize], true) {
            people[sale(u)] += 1;
        }
    }
    let mut wins: HashMap<u32, u32> = HashMap::new();
    for &u in tally.winners {
        *wins.entry(u).or_default() += 1;
        issued[sale(u)] += 1;
    }
    let mut sales: Vec<SaleResult> = (0..k)
        .map(|s| SaleResult {
            coupon_id: tally.coupons[s],
            people: people[s],
            issued: issued[s],
            expected_issued: people[s].min(tally.per_sale.into()),
            stats_issued: None,
        })
        .collect();
    let (total, expected) = (tally.winners.len() as u64, sales.iter().map(|s| s.expected_issued).sum::<u64>());
    let total_detail = format!("{total} answered 201, {expected} expected");
    if k == 1 {
        verdict.check("issued == min(people, coupons)", total == expected, total_detail);
    } else {
        let wrong: Vec<String> = sales
            .iter()
            .filter(|s| s.issued != s.expected_issued)
            .map(|s| format!("coupon {}: {} of {}", s.coupon_id, s.issued, s.expected_issued))
            .collect();
        verdict.check(
            "every sale issued exactly min(its people, coupons)",
            wrong.is_empty(),
            format!("{} of {k} sales exact{}", k - wrong.len(), listed(&wrong)),
        );
        verdict.check("issued == Σ min(people of sale k, coupons)", total == expected, total_detail);
    }
    let twice = wins.values().filter(|n| **n > 1).count();
    verdict.check("nobody was issued twice", twice == 0, format!("{twice} people answered 201 more than once"));

    for s in &mut sales {
        let stats = setup.admin_get(target, &format!("/api/admin/coupons/{}/stats", s.coupon_id)).await?;
        s.stats_issued = stats["issued"].as_u64();
    }
    let agree = sales.iter().filter(|s| s.stats_issued == Some(s.issued)).count();
    let stats_detail = match &sales[..] {
        [one] => format!("stats say issued = {}", one.stats_issued.map_or("?".into(), |n| n.to_string())),
        _ => format!("the stats of {agree} of {k} sales agree"),
    };
    verdict.check("the server's coupon stats count the same issues", agree == k, stats_detail);

    let Some(db) = &setup.db else {
        verdict.check("Postgres converged", true, "not checked: DATABASE_URL is not set");
        return Ok((sales, None));
    };
    let ids: Vec<i64> = tally.coupons.to_vec();
    let c = converge(last_answer, converge_timeout, || async {
        // A coupon without a row (a database other than the server's) is simply not converged.
        let rows: Vec<(i64, i64, i32)> = sqlx::query_as(
            "SELECT c.id, (SELECT count(*) FROM user_coupons u WHERE u.coupon_id = c.id), c.issued_quantity
             FROM coupons c WHERE c.id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(db)
        .await?;
        let found: HashMap<i64, (i64, i32)> = rows.into_iter().map(|(id, n, q)| (id, (n, q))).collect();
        let of = |s: &SaleResult| found.get(&s.coupon_id).copied().unwrap_or((0, 0));
        let agreed = sales.iter().filter(|s| of(s) == (s.issued as i64, s.issued as i32)).count();
        let (rows, counter) = sales.iter().map(of).fold((0, 0), |(r, q), (n, c)| (r + n, q + i64::from(c)));
        let seen = match k {
            1 => format!("{rows} rows, issued_quantity {counter}, {total} answered 201"),
            _ => format!("{rows} rows, issued_quantity {counter}, {total} answered 201; {agreed} of {k} sales agree"),
        };
        Ok((agreed == k, seen))
    })
    .await?;
    verdict.check(
        "Postgres converged on the 201s",
        c.converged,
        format!("{} after {:.0} ms from the last answer", c.last_seen, c.after_last_response_ms),
    );
    let held: HashSet<(i64, u32)> =
        sqlx::query_as::<_, (i64, i64)>("SELECT coupon_id, user_id FROM user_coupons WHERE coupon_id = ANY($1)")
            .bind(&ids)
            .fetch_all(db)
            .await?
            .into_iter()
            .map(|(c, u)| (c, u as u32))
            .collect();
    let answered: HashSet<(i64, u32)> = wins.keys().map(|&u| (tally.coupons[sale(u)], u)).collect();
    let (extra, missing) = (held.difference(&answered).count(), answered.difference(&held).count());
    verdict.check(
        "Postgres holds exactly the users answered 201",
        extra == 0 && missing == 0,
        format!("{missing} answered but not stored, {extra} stored but not answered"),
    );
    Ok((sales, Some(c)))
}

/// `": a; b; c"` for the first few items, or nothing.
fn listed(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        n if n <= 5 => format!(": {}", items.join("; ")),
        n => format!(": {}; and {} more", items[..5].join("; "), n - 5),
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn round_robin_gives_every_sale_an_equal_share_and_random_stays_in_range() {
        let mut rng = StdRng::seed_from_u64(3);
        let rr = assign(100, SalesArgs { sales: 4, pick: Pick::RoundRobin }, &mut rng);
        assert_eq!(rr[..5], [0, 1, 2, 3, 0], "user 1 presses sale 0, user 2 sale 1, ...");
        assert!((0..4).all(|s| rr.iter().filter(|x| **x == s).count() == 25));
        let random = assign(10_000, SalesArgs { sales: 20, pick: Pick::Random }, &mut rng);
        assert!(random.iter().all(|s| *s < 20));
        assert!((0..20).all(|s| random.iter().filter(|x| **x == s).count() > 350), "uniform enough");
        assert!(assign(50, SalesArgs::default(), &mut rng).iter().all(|s| *s == 0), "one sale: everyone on it");
    }
}
