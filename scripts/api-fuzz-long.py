#!/usr/bin/env python3
"""The timed loop of `scripts/api-fuzz --long --duration S` (issue 19 part 4).

scripts/api-fuzz starts the server and mints the tokens, then runs this (Python 3, standard
library only). It runs Schemathesis against that one server again and again until the wall
time is spent: each round draws a fresh seed and runs it once per token (ADMIN, then
CUSTOMER), so a failure can be replayed with `API_FUZZ_SEED=<seed> scripts/api-fuzz --long`.
The last run is given what is left as its --max-time, so the loop ends on time. After every
run the server must still be alive and answer /healthz; a run whose report cannot be read is
counted as failed. Prints one line per run and writes the JSON summary that
scripts/reliability-record turns into docs/reliability.md.

Environment: API_FUZZ_TOKENS ("ROLE=token ROLE=token"), the rest are arguments.
"""

import argparse
import datetime
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request


def arguments():
    ap = argparse.ArgumentParser()
    ap.add_argument("--schemathesis", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--duration", type=int, required=True)
    ap.add_argument("--examples", type=int, required=True)
    ap.add_argument("--checks", required=True)
    ap.add_argument("--server-pid", type=int, required=True)
    ap.add_argument("--server-log", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--json", required=True)
    return ap.parse_args()


def alive(pid, base):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=10) as r:
            return r.status == 200
    except OSError:
        return False


def read_report(path):
    """(cases, failures, errors) from Schemathesis's JSON run report, or None."""
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError):
        return None
    return summarize(report)


def summarize(report):
    """What a Schemathesis 4 JSON run report says: test cases generated, failure groups
    (type, title, count, operations), errors, why it stopped, the warnings it printed."""
    cases = (report.get("test_cases") or {}).get("generated")
    failures = [
        {
            "type": f.get("type", ""),
            "title": str(f.get("title", ""))[:300],
            "count": f.get("count", 1),
            "operations": f.get("operations", []),
        }
        for f in report.get("failures") or []
    ]
    errors = [str(e.get("title", e))[:300] for e in report.get("errors") or []]
    warnings = {k: v for k, v in (report.get("warnings") or {}).items() if v}
    return {
        "cases": cases,
        "failures": failures,
        "errors": errors,
        "stop_reason": report.get("stop_reason"),
        "warnings": warnings,
    }


def server_errors(log):
    """The server's ERROR lines and panics, which a run may cause without failing a check."""
    errors, panics = 0, 0
    try:
        with open(log, errors="replace") as f:
            for line in f:
                if '"level":"ERROR"' in line or " ERROR " in line:
                    errors += 1
                if "panicked" in line:
                    panics += 1
    except OSError:
        pass
    return errors, panics


def main():
    a = arguments()
    tokens = [pair.split("=", 1) for pair in os.environ.get("API_FUZZ_TOKENS", "").split()]
    if not tokens:
        sys.exit("api-fuzz-long: API_FUZZ_TOKENS is empty")
    rng = random.SystemRandom()
    started = time.monotonic()
    started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    deadline = started + a.duration
    runs, broken = [], []
    round_no = 0
    server_ok = True
    while server_ok and deadline - time.monotonic() >= 10:
        round_no += 1
        seed = rng.randrange(1, 2**31)
        for role, token in tokens:
            left = int(deadline - time.monotonic())
            if left < 10:
                break
            # --max-time makes Schemathesis repeat its phases until the time is spent, so it
            # is given only to a run that might not fit in what is left.
            longest = max((r["secs"] for r in runs), default=None)
            capped = longest is None or left < 1.5 * longest
            report = os.path.join(a.work, f"run-{round_no}-{role}.json")
            log = os.path.join(a.work, f"run-{round_no}-{role}.log")
            cmd = [
                a.schemathesis, "run", a.base + "/api/v1/openapi.json",
                "--url", a.base,
                "--header", f"Authorization: Bearer {token}",
                "--checks", a.checks,
                "--max-examples", str(a.examples),
                "--seed", str(seed),
                "--workers", "1",
                "--request-timeout", "40",
                "--generation-database", "none",
                "--report", "json",
                "--report-json-path", report,
                "--no-color",
            ]  # fmt: skip
            if capped and longest is not None:
                cmd += ["--max-time", str(left)]
            t0 = time.monotonic()
            try:
                with open(log, "w") as out:
                    proc = subprocess.Popen(cmd, cwd=a.work, stdout=out, stderr=subprocess.STDOUT)
                    try:
                        code = proc.wait(timeout=left + 60)
                    except subprocess.TimeoutExpired:
                        # The first run has no --max-time: past the deadline it is interrupted
                        # (Schemathesis writes its report on SIGINT).
                        proc.send_signal(signal.SIGINT)
                        try:
                            code = proc.wait(timeout=60)
                        except subprocess.TimeoutExpired:
                            proc.kill()
                            code = proc.wait()
                        code = f"interrupted ({code})"
            except OSError as e:
                code = f"not started: {e}"
            secs = round(time.monotonic() - t0, 1)
            got = read_report(report)
            run = {"round": round_no, "seed": seed, "role": role, "secs": secs, "exit": code}
            if got is None:
                run.update(cases=None, failures=[], errors=["no readable report"])
                broken.append(f"round {round_no} as {role} (seed {seed}): no readable report, exit {code}")
            else:
                run.update(got)
                if got["failures"] or got["errors"] or code not in (0,) and not str(code).startswith("interrupted"):
                    broken.append(
                        f"round {round_no} as {role} (seed {seed}): exit {code}, "
                        f"{len(got['failures'])} failures, {len(got['errors'])} errors"
                    )
            runs.append(run)
            print(
                f"  round {round_no} as {role}, seed {seed}: {run['cases']} cases, "
                f"{len(run['failures'])} failures, {len(run['errors'])} errors, exit {code}, {secs} s",
                file=sys.stderr,
                flush=True,
            )
            for f in run["failures"][:5]:
                print(f"    FAILURE {', '.join(f['operations'][:3])}: {f['title'][:160]} (x{f['count']})", file=sys.stderr)
            if run["failures"] or run["errors"]:
                keep = os.path.join(os.path.dirname(os.path.abspath(a.json)), f"run-{round_no}-{role}.log")
                os.makedirs(os.path.dirname(keep), exist_ok=True)
                with open(log, "rb") as src, open(keep, "wb") as dst:
                    dst.write(src.read())
            if not alive(a.server_pid, a.base):
                server_ok = False
                broken.append(f"the server died or stopped answering /healthz after round {round_no} as {role}")
                break
    errors, panics = server_errors(a.server_log)
    if panics:
        broken.append(f"{panics} panics in the server's log")
    total = sum(r["cases"] or 0 for r in runs)
    result = {
        "started_at": started_at,
        "duration_secs": a.duration,
        "wall_secs": round(time.monotonic() - started, 1),
        "examples_per_operation": a.examples,
        "checks": a.checks.split(","),
        "roles": [role for role, _ in tokens],
        "rounds": round_no,
        "runs": runs,
        "cases": total,
        "failures": sum(f["count"] for r in runs for f in r["failures"]),
        "server_alive": server_ok and alive(a.server_pid, a.base),
        "server_error_lines": errors,
        "server_panics": panics,
        "broken": broken,
        "ok": not broken,
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(result, f, indent=2)
    print(
        f"{'PASS' if result['ok'] else 'FAIL'} api-fuzz --long: {len(runs)} runs in {round_no} rounds, "
        f"{total:,} cases, {result['failures']} failures, {result['wall_secs']:.0f} s; {errors} ERROR lines "
        f"in the server's log; summary in {a.json}",
        file=sys.stderr,
    )
    for b in broken:
        print(f"  BROKEN {b}", file=sys.stderr)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
