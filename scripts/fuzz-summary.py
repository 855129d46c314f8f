#!/usr/bin/env python3
"""Summarises one schemathesis run from its JSON and NDJSON reports (--report json,ndjson).

    scripts/fuzz-summary.py REPORT_DIR LABEL

Prints the cases generated, the unique failures by kind (code, title, count, operations) with
one example each (operation, request, status, the first lines of the message), and the
errors. Exit status: 0 when the run found nothing, 1 when it found failures or errors, 2 when
the reports are missing or unreadable (the run itself broke).
"""
import glob
import json
import sys


def first(pattern):
    found = sorted(glob.glob(pattern))
    return found[-1] if found else None


def examples(ndjson_path):
    """One example per failure code: the first failing check of each code in the event log."""
    found = {}
    if not ndjson_path:
        return found
    with open(ndjson_path, encoding="utf-8") as f:
        for line in f:
            if '"failure_info"' not in line:
                continue
            event = json.loads(line).get("ScenarioFinished")
            if not event:
                continue
            recorder = event.get("recorder", {})
            for case_id, checks in recorder.get("checks", {}).items():
                for check in checks:
                    failure = (check.get("failure_info") or {}).get("failure") or {}
                    code = failure.get("code")
                    if not code or code in found:
                        continue
                    case = recorder.get("cases", {}).get(case_id, {}).get("value", {})
                    interaction = recorder.get("interactions", {}).get(case_id) or {}
                    response = interaction.get("response") or {}
                    path = case.get("path", "?")
                    for name, value in (case.get("path_parameters") or {}).items():
                        path = path.replace("{" + name + "}", str(value))
                    query = case.get("query") or {}
                    if query:
                        path += "?" + "&".join(f"{k}={v}" for k, v in query.items())
                    body = case.get("body")
                    body = "" if body is None else " " + json.dumps(body, ensure_ascii=True)[:160]
                    found[code] = {
                        "operation": failure.get("operation"),
                        "request": f'{case.get("method", "?")} {path[:200]}{body}',
                        "status": response.get("status_code"),
                        "message": failure.get("message", ""),
                    }
    return found


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    report_dir, label = sys.argv[1], sys.argv[2]
    report_path = first(f"{report_dir}/json-*.json")
    if not report_path:
        print(f"fuzz {label}: no JSON report in {report_dir}: schemathesis did not finish", file=sys.stderr)
        return 2
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    cases = report.get("test_cases", {})
    ops = report.get("operations", {})
    failures = report.get("failures", [])
    errors = report.get("errors", [])
    print(f"fuzz {label}: {cases.get('generated', 0)} cases generated over {ops.get('tested', 0)}/"
          f"{ops.get('total', 0)} operations in {report.get('running_time', 0):.0f} s (seed {report.get('seed')}, "
          f"stopped by {report.get('stop_reason')}); {cases.get('unique_failures', 0)} unique failures "
          f"in {cases.get('with_failures', 0)} cases, {len(errors)} errors")
    phases = report.get("phases", {})
    print("  phases: " + ", ".join(
        f"{name} {p.get('status')}" + (f" ({p['skip_reason']})" if p.get("skip_reason") else "")
        for name, p in phases.items()))
    samples = examples(first(f"{report_dir}/ndjson-*.ndjson"))
    for kind in sorted(failures, key=lambda k: -k.get("count", 0)):
        code = kind.get("code")
        operations = kind.get("operations", [])
        print(f"  {code} {kind.get('title')}: {kind.get('count')} in {len(operations)} operation(s)")
        sample = samples.get(code)
        if sample:
            message = " | ".join(line for line in sample["message"].splitlines()[:3] if line.strip())
            print(f"      e.g. {sample['request']} -> {sample['status']}: {message[:300]}")
    for error in errors[:10]:
        print(f"  error: {json.dumps(error)[:300]}")
    missing_auth = report.get("warnings", {}).get("missing_auth") or []
    if missing_auth:
        print(f"  note: {len(missing_auth)} operation(s) answered only 401/403 with this token")
    return 1 if failures or errors else 0


if __name__ == "__main__":
    sys.exit(main())
