"""`make loadtest`: locust, headless, against the running stack; CSV and an HTML report in loadtest/results/.

Settings come from the environment (make passes its variables through):

    LOADTEST_HOST          the gateway, host:port (default: `voice-agent up`'s, 127.0.0.1:$VOICE_GATEWAY_PORT or 50051)
    LOADTEST_USERS         concurrent users (4)
    LOADTEST_SPAWN_RATE    users started per second (1)
    LOADTEST_TIME          run time, locust's syntax: 60s, 5m (60s)
    LOADTEST_STOP_TIMEOUT  seconds the turns in flight get to finish at the end (30)
    LOADTEST_RESULTS       where the CSV files and report.html go (loadtest/results)

and the locustfile's own (LOADTEST_TURNS, LOADTEST_PAUSE_MIN_S, LOADTEST_PAUSE_MAX_S,
LOADTEST_TURN_TIMEOUT_S, LOADTEST_BARGE_IN, LOADTEST_TOKEN, LOADTEST_TLS, LOADTEST_TLS_CA,
LOADTEST_RETRY_DEFAULT_MS, LOADTEST_RETRY_MAX_MS, LOADTEST_SAMPLES).
Arguments are passed on to locust. Exits with locust's code: 1 when any turn failed (a refused
conversation is not a failure).

At the end it prints a summary from the samples the locustfile wrote (converse_samples.jsonl):
the admitted turns' e2e_ms p50/p95, failed turns, refused conversations and their time to
refusal p50/p95; and writes it to converse_summary.json.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from voice_agent.service_spec import is_serving

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    env = os.environ
    host = env.get("LOADTEST_HOST") or f"127.0.0.1:{env.get('VOICE_GATEWAY_PORT') or 50051}"
    results = Path(env.get("LOADTEST_RESULTS") or HERE / "results")
    plaintext = "://" not in host and env.get("LOADTEST_TLS", "").lower() not in {"1", "true", "yes", "on"}
    if plaintext and not is_serving(host, timeout_s=3.0):
        print(f"no gateway is serving on {host}: start the stack with `make up`, or set LOADTEST_HOST", file=sys.stderr)
        return 2
    results.mkdir(parents=True, exist_ok=True)
    samples = Path(env.get("LOADTEST_SAMPLES") or results / "converse_samples.jsonl")
    samples.unlink(missing_ok=True)  # the locustfile appends (one writer per locust process)
    command = [
        *(sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless"),
        *("--host", host),
        *("--users", env.get("LOADTEST_USERS") or "4"),
        *("--spawn-rate", env.get("LOADTEST_SPAWN_RATE") or "1"),
        *("--run-time", env.get("LOADTEST_TIME") or "60s"),
        *("--stop-timeout", env.get("LOADTEST_STOP_TIMEOUT") or "30"),
        *("--csv", str(results / "converse"), "--html", str(results / "report.html")),
        *("--exit-code-on-error", "1"),
        *("--samples", str(samples)),
        *argv,
    ]
    print("+", " ".join(command), flush=True)
    code = subprocess.run(command, check=False).returncode
    if samples.exists():
        totals = summary(read_samples(samples))
        (results / "converse_summary.json").write_text(json.dumps(totals, indent=2) + "\n")
        print(describe(totals))
    print(f"results: {results}/converse_stats.csv, converse_failures.csv, report.html (locust exit code {code})")
    return code


def read_samples(path: Path) -> list[dict[str, Any]]:
    """The locustfile's --samples file: one JSON object per turn, stage time and refusal."""
    with open(path) as file:
        return [json.loads(line) for line in file if line.strip()]


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile, interpolated linearly between the closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 1)


def spread(values: list[float]) -> dict[str, float | int | None]:
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95)}


def summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """What a run says about admission: the admitted turns' latency, and the refusals' count and speed.
    Exact percentiles (locust's own round to 2 significant digits above 100 ms)."""
    turns = [s for s in samples if s["type"] == "grpc" and s["name"] == "turn"]
    refused = [s for s in samples if s["type"] == "session" and s["name"] == "refused"]
    hints = [s["retry_after_ms"] for s in refused if s.get("retry_after_ms") is not None]
    return {
        "admitted_e2e_ms": spread([s["ms"] for s in turns if s["error"] is None]),
        "failed_turns": sum(1 for s in turns if s["error"] is not None),
        "refused": len(refused),
        "refusal_ms": spread([s["ms"] for s in refused]),
        "refusal_codes": sorted({s.get("code", "") for s in refused}),
        "refusals_with_retry_hint": len(hints),
        "retry_hint_ms": {"min": min(hints), "max": max(hints)} if hints else None,
    }


def describe(totals: dict[str, Any]) -> str:
    e2e, refusal, hints = totals["admitted_e2e_ms"], totals["refusal_ms"], totals["retry_hint_ms"]
    lines = [
        f"admitted turns: {e2e['n']}, e2e_ms p50 {e2e['p50']} / p95 {e2e['p95']} ms",
        f"failed turns: {totals['failed_turns']}",
        f"refused conversations: {totals['refused']}",
    ]
    if totals["refused"]:
        lines.append(f"time to refusal: p50 {refusal['p50']} / p95 {refusal['p95']} ms")
        hint_range = f", {hints['min']} to {hints['max']} ms" if hints else ""
        lines.append(f"refusals with a retry hint: {totals['refusals_with_retry_hint']}{hint_range}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
