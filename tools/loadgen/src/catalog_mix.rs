//! What `browse` reads: the catalog as a shop front shows it, found through the API before the
//! clock starts ([`Catalog::discover`]), and the mix of listing pages and product pages that
//! visitors ask for ([`VISITORS`], [`SORTS`], [`PAGES`], [`CATEGORY_SHARE`]).

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use anyhow::Context;
use hyper::{Method, header::HeaderValue};
use rand::{Rng, rngs::StdRng};
use serde::Serialize;

use super::{
    client::Target,
    engine::{Answer, Call, Workload},
    setup::Setup,
};

/// Route label of the product listing.
pub const LIST_ROUTE: &str = "GET /api/products";
/// Route label of the product page.
pub const DETAIL_ROUTE: &str = "GET /api/products/{id}";
/// Every listing read asks for this many items, as the shop front does.
pub const PAGE_SIZE: u32 = 20;

/// A visitor of one market, in that market's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visitor {
    /// `?market=` of every read.
    pub market: &'static str,
    /// `Accept-Language` of every read.
    pub language: &'static str,
}

/// Visitors per market, per cent: most of a Korean shop's traffic is Korean.
pub const VISITORS: [(Visitor, u32); 2] = [
    (Visitor { market: "KR", language: "ko-KR,ko;q=0.9" }, 70),
    (Visitor { market: "US", language: "en-US,en;q=0.9" }, 30),
];
/// Sorts of listing reads, per cent (`None`: the default order, as a first visit shows it).
pub const SORTS: [(Option<&str>, u32); 5] =
    [(None, 50), (Some("popular"), 20), (Some("newest"), 10), (Some("price_asc"), 10), (Some("price_desc"), 10)];
/// Pages of listing reads, per cent: few visitors go past the first. A page beyond the last one
/// of the market (or of the category) is read as page 1.
pub const PAGES: [(u32, u32); 3] = [(1, 60), (2, 25), (3, 15)];
/// Listing reads filtered by one category (chosen uniformly among the market's), per cent.
pub const CATEGORY_SHARE: u32 = 40;

/// The entry of a weighted table (weights add up to 100) that a roll in `0..100` falls on.
fn pick<T: Copy>(table: &[(T, u32)], roll: u32) -> (usize, T) {
    let mut acc = 0;
    for (i, (item, share)) in table.iter().enumerate() {
        acc += share;
        if roll < acc {
            return (i, *item);
        }
    }
    (0, table[0].0)
}

/// `s` percent-encoded for a query string (categories are slugs, but a catalog may hold others).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What one market's shop front lists.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Shelf {
    /// Products on sale in the market.
    pub ids: Vec<i64>,
    /// Their categories, with how many products each.
    pub categories: Vec<(String, u64)>,
}

impl Shelf {
    fn pages(items: u64) -> u32 {
        items.div_ceil(PAGE_SIZE.into()).max(1) as u32
    }
}

/// The catalog of every market of [`VISITORS`], in the same order.
#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    /// One shelf per market.
    pub shelves: Vec<Shelf>,
}

impl Catalog {
    /// Reads every market's listing, page by page (100 items a page).
    pub async fn discover(setup: &Setup, target: &Target) -> anyhow::Result<Catalog> {
        let mut shelves = Vec::new();
        for (visitor, _) in VISITORS {
            let mut shelf = Shelf::default();
            for page in 1.. {
                let path = format!("/api/products?market={}&size=100&page={page}", visitor.market);
                let listed = setup.admin_get(target, &path).await?;
                let items = listed["items"].as_array().with_context(|| format!("GET {path}: no items"))?;
                for item in items {
                    shelf.ids.push(item["id"].as_i64().with_context(|| format!("GET {path}: an item has no id"))?);
                    let category = item["category"].as_str().unwrap_or_default();
                    match shelf.categories.iter_mut().find(|(c, _)| c == category) {
                        Some((_, n)) => *n += 1,
                        None => shelf.categories.push((category.to_owned(), 1)),
                    }
                }
                if items.len() < 100 {
                    break;
                }
            }
            shelves.push(shelf);
        }
        anyhow::ensure!(
            !shelves[0].ids.is_empty(),
            "no product on sale in the {} market at {}: seed the catalog first (jupang seed)",
            VISITORS[0].0.market,
            target.base
        );
        Ok(Catalog { shelves })
    }
}

/// Which reads a phase of `browse` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Listing pages, in the mix.
    List,
    /// Product pages of listed products, uniformly.
    Detail,
}

/// How often each part of the mix was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MixCounts {
    visitors: [u64; VISITORS.len()],
    sorts: [u64; SORTS.len()],
    pages: [u64; PAGES.len()],
    category: u64,
}

impl MixCounts {
    fn add(&mut self, other: &MixCounts) {
        let sum = |a: &mut [u64], b: &[u64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        sum(&mut self.visitors, &other.visitors);
        sum(&mut self.sorts, &other.sorts);
        sum(&mut self.pages, &other.pages);
        self.category += other.category;
    }

    /// `(label, count)` for every part of the mix (`market KR`, `sort popular`, `page 2`, ...).
    pub fn labelled(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> =
            VISITORS.iter().zip(self.visitors).map(|((v, _), n)| (format!("market {}", v.market), n)).collect();
        out.extend(SORTS.iter().zip(self.sorts).map(|((s, _), n)| (format!("sort {}", s.unwrap_or("default")), n)));
        out.extend(PAGES.iter().zip(self.pages).map(|((p, _), n)| (format!("page {p}"), n)));
        out.push(("category filter".into(), self.category));
        out
    }
}

/// The reads of one phase, shared by its connections.
pub struct ReadPlan {
    /// The catalog read.
    pub catalog: Arc<Catalog>,
    /// The phase.
    pub phase: Phase,
    /// Calls taken so far.
    pub taken: AtomicU64,
    /// Stop after this many calls (`None`: the run's duration ends it).
    pub limit: Option<u64>,
    /// `Accept-Language` values, one per visitor kind.
    pub languages: Vec<HeaderValue>,
}

impl ReadPlan {
    /// A plan for `phase` over `catalog`.
    pub fn new(catalog: Arc<Catalog>, phase: Phase, limit: Option<u64>) -> ReadPlan {
        let languages = VISITORS.iter().map(|(v, _)| HeaderValue::from_static(v.language)).collect();
        ReadPlan { catalog, phase, taken: AtomicU64::new(0), limit, languages }
    }
}

/// One connection's visitors.
pub struct Reader {
    plan: Arc<ReadPlan>,
    rng: StdRng,
    /// What this connection sent, by part of the mix.
    pub mix: MixCounts,
}

impl Reader {
    /// A connection's reader with its own random stream.
    pub fn new(plan: Arc<ReadPlan>, rng: StdRng) -> Reader {
        Reader { plan, rng, mix: MixCounts::default() }
    }

    /// The mix of all readers together.
    pub fn total(readers: &[Reader]) -> MixCounts {
        let mut all = MixCounts::default();
        readers.iter().for_each(|r| all.add(&r.mix));
        all
    }

    fn list_path(&mut self, v: usize, market: &str) -> String {
        let shelf = &self.plan.catalog.shelves[v];
        let (s, sort) = pick(&SORTS, self.rng.random_range(0..100));
        self.mix.sorts[s] += 1;
        let mut query = format!("/api/products?market={market}&size={PAGE_SIZE}");
        let mut items = shelf.ids.len() as u64;
        if !shelf.categories.is_empty() && self.rng.random_range(0..100) < CATEGORY_SHARE {
            let (category, n) = &shelf.categories[self.rng.random_range(0..shelf.categories.len())];
            self.mix.category += 1;
            query.push_str(&format!("&category={}", encode(category)));
            items = *n;
        }
        if let Some(sort) = sort {
            query.push_str(&format!("&sort={sort}"));
        }
        let (p, mut page) = pick(&PAGES, self.rng.random_range(0..100));
        if page > Shelf::pages(items) {
            page = 1;
        }
        self.mix.pages[if page == 1 { 0 } else { p }] += 1;
        query.push_str(&format!("&page={page}"));
        query
    }
}

impl Workload for Reader {
    fn next(&mut self) -> Option<Call> {
        if self.plan.limit.is_some_and(|l| self.plan.taken.fetch_add(1, Ordering::Relaxed) >= l) {
            return None;
        }
        let (mut v, mut visitor) = pick(&VISITORS, self.rng.random_range(0..100));
        if self.plan.catalog.shelves[v].ids.is_empty() {
            // Nothing on sale in that market: its visitors see the first market's shop.
            (v, visitor) = (0, VISITORS[0].0);
        }
        self.mix.visitors[v] += 1;
        let (route, path) = match self.plan.phase {
            Phase::List => (LIST_ROUTE, self.list_path(v, visitor.market)),
            Phase::Detail => {
                let ids = &self.plan.catalog.shelves[v].ids;
                let id = ids[self.rng.random_range(0..ids.len())];
                (DETAIL_ROUTE, format!("/api/products/{id}?market={}", visitor.market))
            }
        };
        let mut call = Call::new(route, Method::GET, path.parse().ok()?);
        call.language = Some(self.plan.languages[v].clone());
        Some(call)
    }

    fn answered(&mut self, _: &Call, _: &Answer<'_>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_of_the_mix_adds_up_to_a_hundred_and_rolls_fall_on_their_share() {
        assert_eq!(VISITORS.iter().map(|(_, p)| p).sum::<u32>(), 100);
        assert_eq!(SORTS.iter().map(|(_, p)| p).sum::<u32>(), 100);
        assert_eq!(PAGES.iter().map(|(_, p)| p).sum::<u32>(), 100);
        let counts = |n: usize| (0..100).filter(|r| pick(&SORTS, *r).0 == n).count() as u32;
        assert!(SORTS.iter().enumerate().all(|(i, (_, share))| counts(i) == *share));
        assert_eq!(pick(&PAGES, 59), (0, 1));
        assert_eq!(pick(&PAGES, 60), (1, 2));
        assert_eq!(pick(&PAGES, 99), (2, 3));
    }

    #[test]
    fn a_category_is_encoded_for_the_query_string() {
        assert_eq!(encode("electronics"), "electronics");
        assert_eq!(encode("home & living"), "home%20%26%20living");
        assert_eq!(encode("식품"), "%EC%8B%9D%ED%92%88");
    }

    #[test]
    fn a_page_past_the_end_of_a_short_listing_is_read_as_the_first() {
        assert_eq!((Shelf::pages(0), Shelf::pages(20), Shelf::pages(21), Shelf::pages(51)), (1, 1, 2, 3));
    }
}
