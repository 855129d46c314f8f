//! `jupang loadgen browse`: the catalog's reads against the `GET /health` ceiling, in one run on
//! one running server (`--target`). Three phases with the same load, each for `--requests` calls
//! or `--duration-secs`: `GET /health`, the product listing in a shop front's mix, and product
//! pages of the listed products ([`catalog_mix`] defines both). One table: req/s, p50, p99, max
//! and the ratio to the ceiling. The verdict: no 5xx, no transport error, every read answered
//! 200, and with `--p99-ms` each catalog phase's p99 within it. Each catalog phase is preceded by
//! `--warmup-requests` unmeasured calls of its own mix (5,000 by default; 0 measures the cold
//! start): the table is the steady state, not the first loads of a server that just started.
//!
//! `--with-open-run` runs a coupon open run on the same server, from the same process, on
//! connections of its own, from before the first phase starts until the last one ends; its
//! report and verdict come with the table (the ceiling is then measured under that load too).

use std::{
    fmt::Write,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use clap::Args;
use rand::{SeedableRng, rngs::StdRng};
use serde::Serialize;
use tokio::sync::Notify;

use super::{
    Common, Env, LoadArgs,
    catalog_mix::{Catalog, DETAIL_ROUTE, LIST_ROUTE, Phase, ReadPlan, Reader, VISITORS},
    client::Target,
    emit,
    engine::{self, RunOptions},
    open_run::{self, HEALTH_ROUTE, OpenRunReport, Prepared, Spec},
    report::LoadReport,
    sales::{Pick, SalesArgs},
    schedule::{Pacing, parse_rate, parse_ratio},
    setup::Setup,
    verdict::Verdict,
};

/// Options of `jupang loadgen browse`.
#[derive(Debug, Clone, Args)]
pub struct BrowseArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    load: LoadArgs,
    /// Calls per phase (default 10,000 unless --duration-secs is given).
    #[arg(long, conflicts_with = "duration_secs")]
    requests: Option<u64>,
    /// Seconds per phase.
    #[arg(long)]
    duration_secs: Option<u64>,
    /// Fail the verdict when the p99 of a catalog phase (corrected) exceeds this many ms.
    #[arg(long)]
    p99_ms: Option<f64>,
    /// Unmeasured calls of each catalog phase's mix sent just before its clock starts, so the
    /// phase measures the server's steady state rather than its cold caches (0: measure from cold).
    #[arg(long, default_value_t = 5_000)]
    warmup_requests: u64,
    #[command(flatten)]
    hammer: HammerArgs,
}

/// The coupon open run of `--with-open-run`.
#[derive(Debug, Clone, Args)]
struct HammerArgs {
    /// During the whole measurement, also run a coupon open run on the same server (fresh
    /// sales, connections of its own); its report and verdict come with the table.
    #[arg(long)]
    with_open_run: bool,
    /// People of that open run (they press again from the start when everyone has pressed).
    #[arg(long, default_value_t = 10_000, requires = "with_open_run")]
    open_people: u32,
    /// Coupons of each of its sales.
    #[arg(long, default_value_t = 1_000, requires = "with_open_run")]
    open_coupons: u32,
    /// Its fresh sales (people spread over them at random).
    #[arg(long, default_value_t = 1, requires = "with_open_run", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    open_sales: u32,
    /// Fraction of its people who double-click.
    #[arg(long, default_value_t = 0.2, requires = "with_open_run", value_parser = parse_ratio)]
    open_double_click_ratio: f64,
    /// Its connections: a closed loop over them, or with `--open-rate` the ones sending its arrivals.
    #[arg(long, default_value_t = 64, requires = "with_open_run")]
    open_connections: usize,
    /// Open model for the open run: this many presses per second.
    #[arg(long, requires = "with_open_run", value_parser = parse_rate)]
    open_rate: Option<f64>,
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Route label.
    pub route: String,
    /// Requests sent.
    pub requests: u64,
    /// Requests per second.
    pub throughput_rps: f64,
    /// Median latency, corrected, ms.
    pub p50_ms: f64,
    /// 99th percentile, corrected, ms.
    pub p99_ms: f64,
    /// Largest latency, ms.
    pub max_ms: f64,
    /// Throughput over the ceiling's.
    pub ratio_to_ceiling: Option<f64>,
}

/// What `browse` measured and concluded.
#[derive(Debug, Clone, Serialize)]
pub struct BrowseReport {
    /// `browse`.
    pub scenario: &'static str,
    /// The server's base URL.
    pub target: String,
    /// How the load was offered, in words.
    pub load: String,
    /// How long each phase ran: `10000 requests` or `30 s`.
    pub per_phase: String,
    /// Unmeasured calls sent before each catalog phase's clock started (`--warmup-requests`).
    pub warmup_requests: u64,
    /// Products on sale per market, as listed before the clock started.
    pub catalog: Vec<(String, usize)>,
    /// How often each part of the listing mix was sent.
    pub list_mix: Vec<(String, u64)>,
    /// How often each market's product pages were read.
    pub detail_mix: Vec<(String, u64)>,
    /// The table: ceiling, listing, product page.
    pub rows: Vec<Row>,
    /// Each phase in full.
    pub phases: Vec<LoadReport>,
    /// The coupon open run made during the measurement (`--with-open-run`).
    pub open_run: Option<OpenRunReport>,
    /// The checks of the reads.
    pub verdict: Verdict,
    /// The reads' verdict and the open run's both passed.
    pub passed: bool,
}

/// The three phases, one after the other, with the same load.
async fn phases(
    target: &Target,
    catalog: &Arc<Catalog>,
    options: &RunOptions,
    limit: Option<u64>,
    warmup: u64,
) -> anyhow::Result<(Vec<LoadReport>, [Vec<(String, u64)>; 2])> {
    let label = |name: &str| options.progress.as_ref().map(|_| format!("browse {name}"));
    let mut ceiling_options = options.clone();
    ceiling_options.progress = label("GET /health");
    let ceiling = open_run::ceiling(target, limit.map_or(usize::MAX, |l| l as usize), ceiling_options).await?;
    let mut reports = vec![ceiling];
    let mut mixes = [Vec::new(), Vec::new()];
    let readers = |plan: Arc<ReadPlan>| -> Vec<Reader> {
        (0..options.pacing.connections())
            .map(|_| Reader::new(plan.clone(), StdRng::from_rng(&mut rand::rng())))
            .collect()
    };
    for (i, (phase, route)) in [(Phase::List, LIST_ROUTE), (Phase::Detail, DETAIL_ROUTE)].into_iter().enumerate() {
        if warmup > 0 {
            // A server that just started (or just dropped its catalog) loads every page and
            // product once; that burst is the cold start, not the read path under a sale.
            let plan = Arc::new(ReadPlan::new(catalog.clone(), phase, Some(warmup)));
            engine::run(target, RunOptions::new(options.pacing, options.timeout), readers(plan)).await?;
        }
        let readers = readers(Arc::new(ReadPlan::new(catalog.clone(), phase, limit)));
        let mut phase_options = options.clone();
        phase_options.progress = label(route);
        let (stats, readers) = engine::run(target, phase_options, readers).await?;
        reports.push(LoadReport::new(target, &stats));
        let mix = Reader::total(&readers).labelled();
        mixes[i] = match phase {
            Phase::List => mix,
            Phase::Detail => mix.into_iter().take(VISITORS.len()).collect(),
        };
    }
    Ok((reports, mixes))
}

fn row_of(route: &str, load: &LoadReport, ceiling_rps: f64) -> Row {
    Row {
        route: route.to_owned(),
        requests: load.requests,
        throughput_rps: load.throughput_rps,
        p50_ms: load.latency.p50_ms,
        p99_ms: load.latency.p99_ms,
        max_ms: load.latency.max_ms,
        ratio_to_ceiling: (ceiling_rps > 0.0).then(|| load.throughput_rps / ceiling_rps),
    }
}

fn verdict_of(phases: &[LoadReport], p99_bound_ms: Option<f64>) -> Verdict {
    let mut verdict = Verdict::new();
    let server_errors: u64 = phases.iter().map(LoadReport::server_errors).sum();
    verdict.check("no 5xx answer", server_errors == 0, format!("{server_errors} answers 5xx"));
    let transport: u64 = phases.iter().map(|p| p.transport_errors).sum();
    verdict.check("no transport error", transport == 0, format!("{transport} transport errors"));
    let reads = &phases[1..];
    let (total, ok): (u64, u64) =
        reads.iter().map(|p| (p.requests, p.with_status(200))).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    verdict.check("every catalog read answered 200", ok == total, format!("{ok} of {total} answered 200"));
    if let Some(bound) = p99_bound_ms {
        for (p, route) in reads.iter().zip([LIST_ROUTE, DETAIL_ROUTE]) {
            let p99 = p.latency.p99_ms;
            verdict.check(format!("p99 of `{route}` <= {bound} ms"), p99 <= bound, format!("p99 {p99:.2} ms"));
        }
    }
    verdict
}

/// `jupang loadgen browse`.
pub async fn run(args: BrowseArgs, env: &Env) -> anyhow::Result<()> {
    let target = args.common.target()?;
    let pacing = args.load.pacing()?;
    let setup = Setup::new(env).await?;
    let catalog = Arc::new(Catalog::discover(&setup, &target).await?);
    let limit = match (args.requests, args.duration_secs) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(10_000),
    };
    let mut options = args.common.options(pacing, "browse");
    options.duration = args.duration_secs.map(Duration::from_secs);
    let h = &args.hammer;
    // The open run's people, tokens and sales are made before either clock starts.
    let hammer = match h.with_open_run {
        false => None,
        true => {
            let spec = Spec {
                people: h.open_people,
                coupons: h.open_coupons,
                double_click_ratio: h.open_double_click_ratio,
                retries: 5,
                sales: SalesArgs { sales: h.open_sales, pick: Pick::Random },
            };
            let prepared = Prepared::new(&setup, spec).await?;
            let coupons = prepared.create_sales(&setup, &target).await?;
            Some((prepared, coupons))
        }
    };
    let (stop, started) = (Arc::new(AtomicBool::new(false)), Arc::new(Notify::new()));
    let measure = async {
        if hammer.is_some() {
            started.notified().await;
        }
        let measured = phases(&target, &catalog, &options, limit, args.warmup_requests).await;
        stop.store(true, Ordering::Relaxed);
        measured
    };
    let hammering = async {
        let Some((prepared, coupons)) = &hammer else { return Ok(None) };
        let pacing = match h.open_rate {
            Some(rate) => Pacing::Open { rate, connections: h.open_connections },
            None => Pacing::Closed { connections: h.open_connections },
        };
        let mut o = args.common.options(pacing, "browse open-run");
        (o.stop, o.started) = (Some(stop.clone()), Some(started.clone()));
        let report = open_run::execute_on(&setup, &target, prepared, coupons, o, args.common.converge_timeout()).await;
        // Never leave the reads waiting for a start that failed.
        started.notify_one();
        report.map(Some)
    };
    let (measured, open_run) = tokio::join!(measure, hammering);
    let ((phases, [list_mix, detail_mix]), open_run) = (measured?, open_run?);
    let ceiling_rps = phases[0].throughput_rps;
    let rows =
        [HEALTH_ROUTE, LIST_ROUTE, DETAIL_ROUTE].iter().zip(&phases).map(|(r, p)| row_of(r, p, ceiling_rps)).collect();
    let verdict = verdict_of(&phases, args.p99_ms);
    let report = BrowseReport {
        scenario: "browse",
        target: target.base.clone(),
        load: pacing.describe(),
        per_phase: limit.map_or_else(|| format!("{} s", args.duration_secs.unwrap_or(0)), |n| format!("{n} requests")),
        warmup_requests: args.warmup_requests,
        catalog: VISITORS.iter().zip(&catalog.shelves).map(|((v, _), s)| (v.market.to_owned(), s.ids.len())).collect(),
        list_mix,
        detail_mix,
        rows,
        passed: verdict.passed && open_run.as_ref().is_none_or(|o| o.verdict.passed),
        phases,
        open_run,
        verdict,
    };
    emit(args.common.json, &report, || markdown(&report))?;
    anyhow::ensure!(report.passed, "verdict FAIL: {}", failed(&report));
    Ok(())
}

fn failed(r: &BrowseReport) -> String {
    let checks = r.verdict.checks.iter().chain(r.open_run.iter().flat_map(|o| &o.verdict.checks));
    checks.filter(|c| !c.passed).map(|c| c.name.as_str()).collect::<Vec<_>>().join("; ")
}

/// The table, the mix, the outcomes and the verdicts.
pub fn markdown(r: &BrowseReport) -> String {
    let mut s = String::from("## jupang loadgen browse\n\n");
    let shops: Vec<String> = r.catalog.iter().map(|(m, n)| format!("{n} products in {m}")).collect();
    let _ = writeln!(
        s,
        "Catalog reads against the `GET /health` ceiling on {} ({}), one phase after the other, {} each \
         (each catalog phase after {} unmeasured calls of its mix), {}.\n",
        r.target,
        shops.join(", "),
        r.per_phase,
        r.warmup_requests,
        r.load
    );
    s.push_str("| route | requests | req/s | p50 ms | p99 ms | max ms | × ceiling |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for row in &r.rows {
        let ratio = row.ratio_to_ceiling.map_or("-".to_owned(), |x| format!("{x:.2}"));
        let _ = writeln!(
            s,
            "| `{}` | {} | {:.0} | {:.2} | {:.2} | {:.2} | {ratio} |",
            row.route, row.requests, row.throughput_rps, row.p50_ms, row.p99_ms, row.max_ms
        );
    }
    let _ = writeln!(s, "\nLatency: {}.\n", r.phases[0].correction_note);
    let mix = |m: &[(String, u64)]| m.iter().map(|(l, n)| format!("{l}: {n}")).collect::<Vec<_>>().join(", ");
    let _ = writeln!(s, "Listing mix sent: {}.\n\nProduct pages sent: {}.\n", mix(&r.list_mix), mix(&r.detail_mix));
    s.push_str("| route | outcome | count |\n| --- | --- | ---: |\n");
    for (row, phase) in r.rows.iter().zip(&r.phases) {
        for o in &phase.outcomes {
            let _ = writeln!(s, "| `{}` | {} | {} |", row.route, o.outcome, o.count);
        }
    }
    s.push('\n');
    s.push_str(&r.verdict.markdown());
    if let Some(open) = &r.open_run {
        let _ = write!(
            s,
            "\n### During the measurement: the coupon open run\n\n{}",
            open.markdown().replacen("## ", "#### ", 1)
        );
    }
    s
}
