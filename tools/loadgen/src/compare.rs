//! `jupang loadgen compare`: the same open run against every issue strategy, plus the ceiling
//! (`GET /health`, same requests and connections), each on a fresh sale served by its own child
//! `jupang serve`, in one run on one machine; one table with the ratios to the ceiling and to
//! `db-pessimistic`. `--markdown-out` writes that table with the machine and the command line:
//! the content of BENCHMARKS.md.

use std::{fmt::Write, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::{
    Env, emit,
    engine::RunOptions,
    open_run::{self, OpenRunReport, Prepared, Spec},
    report::LoadReport,
    sales::SalesArgs,
    schedule::{Pacing, parse_ratio},
    server::ChildServer,
    setup::Setup,
};

/// Options of `jupang loadgen compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// People 1..=N who press "get coupon" in each run.
    #[arg(long, default_value_t = 10_000)]
    people: u32,
    /// Coupons on each sale.
    #[arg(long, default_value_t = 1_000)]
    coupons: u32,
    /// Fraction of the people who press twice in a row.
    #[arg(long, default_value_t = 0.2, value_parser = parse_ratio)]
    double_click_ratio: f64,
    /// Keep-alive connections of the closed loop.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Strategies to compare, comma-separated (default: all four).
    #[arg(long, value_delimiter = ',', default_value = "db-pessimistic,db-optimistic,redis-lock,redis-lua", value_parser = parse_strategy)]
    strategies: Vec<&'static str>,
    /// The `jupang` binary to serve with (default: this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Also write the Markdown table, the machine and the command line to this file.
    #[arg(long)]
    markdown_out: Option<PathBuf>,
    /// Print one JSON document instead of Markdown.
    #[arg(long)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// How long Postgres may take to agree with the answers of each run.
    #[arg(long, default_value_t = 30)]
    converge_timeout_secs: u64,
    /// Per-request timeout.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Retries of retryable answers (409 CONCURRENCY_CONFLICT, 503 OVERLOADED).
    #[arg(long, default_value_t = 5)]
    retries: u32,
}

/// The contract's issue strategies (`JUPANG_ISSUE_STRATEGY`), in the order benchmarks list them.
/// Named by their contract strings: this crate does not link the server library.
pub const STRATEGIES: [&str; 4] = ["db-pessimistic", "db-optimistic", "redis-lock", "redis-lua"];

fn parse_strategy(s: &str) -> Result<&'static str, String> {
    STRATEGIES
        .into_iter()
        .find(|v| *v == s)
        .ok_or_else(|| "expected one of redis-lua, db-pessimistic, db-optimistic, redis-lock".into())
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `ceiling (GET /health)` or the strategy.
    pub scenario: String,
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
    /// Throughput over db-pessimistic's.
    pub ratio_to_db_pessimistic: Option<f64>,
    /// PASS, FAIL, ERROR, or `-` for the ceiling.
    pub verdict: String,
    /// Postgres agreed this long after the last answer.
    pub pg_converged_after_ms: Option<f64>,
    /// Peak resident memory of the child `serve` (VmHWM), KiB.
    pub serve_peak_rss_kib: Option<u64>,
    /// Why the run could not be made.
    pub error: Option<String>,
}

/// The machine the numbers come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPUs available (`nproc`).
    pub nproc: usize,
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// When the comparison ran (UTC, RFC 3339).
    pub date: String,
}

impl Machine {
    fn here() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim()))
            .unwrap_or("unknown")
            .to_owned();
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or("unknown".into(), |k| k.trim().into()),
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }
}

/// Everything `compare` measured.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    /// `compare`.
    pub scenario: &'static str,
    /// The machine.
    pub machine: Machine,
    /// The command line, as typed.
    pub command: String,
    /// People per run.
    pub people: u32,
    /// Coupons per sale.
    pub coupons: u32,
    /// Fraction double-clicking.
    pub double_click_ratio: f64,
    /// Requests per run (people plus double clicks).
    pub presses: u64,
    /// Connections.
    pub connections: usize,
    /// How long Postgres could take to agree, per run.
    pub converge_timeout_secs: u64,
    /// The table.
    pub rows: Vec<Row>,
    /// The ceiling run in full.
    pub ceiling: Option<LoadReport>,
    /// The strategy runs in full.
    pub runs: Vec<OpenRunReport>,
    /// Every run was made and every verdict passed.
    pub passed: bool,
}

fn shell_quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c)) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn error_row(scenario: &str, e: &anyhow::Error) -> Row {
    Row {
        scenario: scenario.to_owned(),
        throughput_rps: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        max_ms: 0.0,
        ratio_to_ceiling: None,
        ratio_to_db_pessimistic: None,
        verdict: "ERROR".into(),
        pg_converged_after_ms: None,
        serve_peak_rss_kib: None,
        error: Some(format!("{e:#}")),
    }
}

fn row_of(scenario: &str, load: &LoadReport, verdict: &str, pg: Option<f64>, rss: Option<u64>) -> Row {
    Row {
        scenario: scenario.to_owned(),
        throughput_rps: load.throughput_rps,
        p50_ms: load.latency.p50_ms,
        p99_ms: load.latency.p99_ms,
        max_ms: load.latency.max_ms,
        ratio_to_ceiling: None,
        ratio_to_db_pessimistic: None,
        verdict: verdict.to_owned(),
        pg_converged_after_ms: pg,
        serve_peak_rss_kib: rss,
        error: None,
    }
}

/// Starts a child, runs `work` against it, notes its peak memory and stops it.
async fn on_child<T>(
    bin: &std::path::Path,
    strategy: Option<&str>,
    label: &str,
    quiet: bool,
    work: impl AsyncFnOnce(&ChildServer) -> anyhow::Result<T>,
) -> anyhow::Result<(T, Option<u64>)> {
    let server = ChildServer::start(bin, strategy, label).await?;
    let result = work(&server).await;
    let rss = server.peak_rss_kib();
    if !quiet {
        eprintln!(
            "compare {label}: serve peak RSS {} MiB",
            rss.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0))
        );
    }
    let stopped = server.stop().await;
    let value = result?;
    stopped?;
    Ok((value, rss))
}

/// `jupang loadgen compare`.
pub async fn run(args: CompareArgs, env: &Env) -> anyhow::Result<()> {
    let setup = Setup::new(env).await?;
    anyhow::ensure!(setup.db.is_some(), "compare needs DATABASE_URL (the children serve from it)");
    let bin = match &args.server_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("cannot locate this binary; give --server-bin")?,
    };
    // Users first: the children cache users' markets when they start.
    let spec = Spec {
        people: args.people,
        coupons: args.coupons,
        double_click_ratio: args.double_click_ratio,
        retries: args.retries,
        sales: SalesArgs::default(),
    };
    let prepared = Prepared::new(&setup, spec).await?;
    let options = |label: &str| {
        let mut options =
            RunOptions::new(Pacing::Closed { connections: args.connections }, Duration::from_millis(args.timeout_ms));
        options.progress = (!args.quiet).then(|| format!("compare {label}"));
        options
    };
    let converge_timeout = Duration::from_secs(args.converge_timeout_secs);
    let requests = prepared.presses.len();

    let mut rows = Vec::new();
    let ceiling = match on_child(&bin, None, "ceiling", args.quiet, async |s: &ChildServer| {
        open_run::ceiling(&s.target, requests, options("ceiling")).await
    })
    .await
    {
        Ok((load, rss)) => {
            rows.push(row_of("ceiling (GET /health)", &load, "-", None, rss));
            Some(load)
        }
        Err(e) => {
            rows.push(error_row("ceiling (GET /health)", &e));
            None
        }
    };
    let mut runs = Vec::new();
    for &label in &args.strategies {
        let result = on_child(&bin, Some(label), label, args.quiet, async |s: &ChildServer| {
            open_run::execute(&setup, &s.target, &prepared, options(label), converge_timeout).await
        })
        .await;
        match result {
            Ok((report, rss)) => {
                let pg = report.postgres.as_ref().map(|c| c.after_last_response_ms);
                rows.push(row_of(label, &report.load, report.verdict.word(), pg, rss));
                runs.push(report);
            }
            Err(e) => rows.push(error_row(label, &e)),
        }
    }
    let ceiling_rps = ceiling.as_ref().map(|c| c.throughput_rps);
    let pessimistic_rps =
        rows.iter().find(|r| r.scenario == "db-pessimistic" && r.error.is_none()).map(|r| r.throughput_rps);
    for row in rows.iter_mut().filter(|r| r.error.is_none()) {
        row.ratio_to_ceiling = ceiling_rps.filter(|c| *c > 0.0).map(|c| row.throughput_rps / c);
        row.ratio_to_db_pessimistic = pessimistic_rps.filter(|p| *p > 0.0).map(|p| row.throughput_rps / p);
    }
    let passed = rows.iter().all(|r| r.verdict == "PASS" || r.verdict == "-");
    let report = CompareReport {
        scenario: "compare",
        machine: Machine::here(),
        command: std::env::args().map(|a| shell_quote(&a)).collect::<Vec<_>>().join(" "),
        people: args.people,
        coupons: args.coupons,
        double_click_ratio: args.double_click_ratio,
        presses: requests as u64,
        connections: args.connections,
        converge_timeout_secs: args.converge_timeout_secs,
        rows,
        ceiling,
        runs,
        passed,
    };
    let markdown = markdown(&report);
    if let Some(path) = &args.markdown_out {
        std::fs::write(path, &markdown).with_context(|| format!("cannot write {}", path.display()))?;
    }
    emit(args.json, &report, || markdown)?;
    anyhow::ensure!(passed, "verdict FAIL: {}", failures(&report.rows));
    Ok(())
}

fn failures(rows: &[Row]) -> String {
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| r.verdict != "PASS" && r.verdict != "-")
        .map(|r| format!("{} {}", r.scenario, r.error.as_deref().unwrap_or(&r.verdict)))
        .collect();
    failed.join("; ")
}

/// The table, the machine and the command, as BENCHMARKS.md holds them.
pub fn markdown(r: &CompareReport) -> String {
    let mut s = String::from("## jupang loadgen compare\n\n");
    let _ = writeln!(
        s,
        "{} people ({:.0}% double-clicking: {} requests per run) on a fresh sale of {} coupons per strategy, \
         closed loop over {} keep-alive connections; the load generator runs on the same machine as the server.\n",
        r.people,
        r.double_click_ratio * 100.0,
        r.presses,
        r.coupons,
        r.connections
    );
    s.push_str("| scenario | req/s | p50 ms | p99 ms | max ms | × ceiling | × db-pessimistic | verdict | PG converged after | serve peak RSS |\n");
    s.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |\n");
    let ratio = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x:.2}"));
    for row in &r.rows {
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.throughput_rps,
            row.p50_ms,
            row.p99_ms,
            row.max_ms,
            ratio(row.ratio_to_ceiling),
            ratio(row.ratio_to_db_pessimistic),
            row.verdict,
            row.pg_converged_after_ms.map_or("-".to_owned(), |ms| format!("{ms:.0} ms")),
            row.serve_peak_rss_kib.map_or("-".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
        );
    }
    for row in r.rows.iter().filter(|r| r.error.is_some()) {
        let _ = writeln!(s, "\n{}: {}", row.scenario, row.error.as_deref().unwrap_or_default());
    }
    let _ = writeln!(
        s,
        "\nLatency: corrected for coordinated omission post hoc (closed loop; expected interval = connections / \
         throughput of each run). Verdict: exactly min(people, coupons) issued, nobody twice, the server's stats \
         agree, Postgres holds exactly the coupons answered 201 (converged within {} s of the last answer).\n",
        r.converge_timeout_secs
    );
    let m = &r.machine;
    let _ = writeln!(s, "| machine | |\n| --- | --- |");
    let _ = writeln!(
        s,
        "| CPUs (nproc) | {} |\n| CPU model | {} |\n| kernel | {} |\n| date | {} |",
        m.nproc, m.cpu_model, m.kernel, m.date
    );
    let _ = writeln!(s, "\nCommand:\n\n```sh\n{}\n```", r.command);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_are_the_contract_strings_and_nothing_else() {
        for s in ["redis-lua", "db-pessimistic", "db-optimistic", "redis-lock"] {
            assert_eq!(parse_strategy(s), Ok(s));
        }
        assert!(parse_strategy("redis_lua").is_err());
        assert!(parse_strategy("").is_err());
    }
}
