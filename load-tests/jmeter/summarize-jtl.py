#!/usr/bin/env python3
"""Summarises a JMeter CSV result file (.jtl) of open-run.jmx and judges it like the k6 script.

    summarize-jtl.py results.jtl [--p95-ms 500]

Prints one line per sampler label (count, failures, p50/p95/p99/max of `elapsed`), the outcome
counts of the issue requests (the `outcome` column that `-Jsample_variables=outcome` adds), and
the failure messages. Exit status 1 when any sample failed (an assertion, including the
tearDown verdict issued == min(N, M)) or when the p95 of the issue requests is above --p95-ms;
JMeter itself exits 0 whatever the samples did.

The file needs a header line (`-Jjmeter.save.saveservice.print_field_names=true`, the default in
JMeter 5).
"""

import argparse
import collections
import csv
import sys

ISSUE_LABEL = "POST /api/coupons/{id}/issue"


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list (what JMeter's reports use)."""
    if not sorted_values:
        return 0
    rank = max(1, -(-len(sorted_values) * p // 100))  # ceil(n * p / 100)
    return sorted_values[int(rank) - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("jtl")
    parser.add_argument("--p95-ms", type=int, default=500, help="threshold on p95 of the issue requests (ms)")
    args = parser.parse_args()

    elapsed = collections.defaultdict(list)
    failed = collections.Counter()
    outcomes = collections.Counter()
    messages = collections.Counter()
    with open(args.jtl, newline="", encoding="utf-8") as f:
        rows = csv.DictReader(f)
        if not rows.fieldnames or "elapsed" not in rows.fieldnames:
            sys.exit(f"{args.jtl}: no header line; run JMeter with -Jjmeter.save.saveservice.print_field_names=true")
        for row in rows:
            label = row["label"]
            elapsed[label].append(int(row["elapsed"]))
            if row["success"] != "true":
                failed[label] += 1
                messages[f"{label}: {row['responseCode']} {row.get('failureMessage') or row['responseMessage']}"] += 1
            if label.startswith(ISSUE_LABEL) and "outcome" in row:
                outcomes[f"{'second click' if label != ISSUE_LABEL else 'first click'} {row['outcome']}"] += 1

    print(f"{'label':58} {'count':>7} {'failed':>6} {'p50':>6} {'p95':>6} {'p99':>6} {'max':>6}  (ms)")
    for label, values in elapsed.items():
        values.sort()
        print(f"{label:58} {len(values):7} {failed[label]:6} {percentile(values, 50):6} {percentile(values, 95):6} "
              f"{percentile(values, 99):6} {values[-1]:6}")
    if outcomes:
        print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    for message, count in messages.most_common(10):
        print(f"failure x{count}: {message}")

    issue = sorted(elapsed.get(ISSUE_LABEL, []))
    p95 = percentile(issue, 95)
    verdict_ran = any(label.endswith("(verdict)") for label in elapsed)
    problems = []
    if sum(failed.values()):
        problems.append(f"{sum(failed.values())} failed sample(s)")
    if not issue:
        problems.append("no issue requests were made")
    elif p95 > args.p95_ms:
        problems.append(f"p95 of {ISSUE_LABEL} is {p95} ms > {args.p95_ms} ms")
    if not verdict_ran:
        problems.append("the tearDown verdict did not run")
    if problems:
        print("FAILED: " + "; ".join(problems))
        return 1
    print(f"PASSED: every answer allowed, server count == min(N, M), p95 {p95} ms <= {args.p95_ms} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
