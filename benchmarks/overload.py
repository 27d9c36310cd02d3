"""Overload: twice the measured capacity, against a gateway that admits only that many (`make bench-overload`).

The question (issue: sessions and quotas): at 2C concurrent users, where C is
the concurrency the load benchmark measured with e2e p95 within 20 % of one
conversation's, do the admitted conversations keep their p95 within 20 % of the
unloaded figure, and are the others refused at once?

A fresh embedded stack on free ports (ASR, TTS with Piper, llama.cpp + Gemma 3
270M; or running backends given by --asr, --tts and --llm) with two gateways on
the same backends: one with the default stream limit and one with
``--max-streams C``. The locust load test (loadtest/run.py, the scenario users
run; the same settings in every phase) then runs these phases:

1. ``unloaded``: 1 user against the gateway with the default limit;
2. ``overload``: 2C users against the gateway with ``--max-streams C``.
   Refused users wait the gateway's ``retry-after-ms`` hint and try again;
3. with --control, ``no_limit``: 2C users against the gateway with the default
   limit, which admits everyone: what the limit spares the admitted users.

The phases take turns, --rounds times (--phase-s each time), so that a change
in what else runs on the machine falls on all of them alike; each phase's
figures pool its rounds.

C (--capacity) defaults to what benchmarks/results/load.json measured: the most
conversations whose e2e p95 is within 20 % of the 1-conversation level's,
without errors (1 when load.json is missing or was a --quick run).

Per phase: the admitted turns' e2e_ms p50/p95 (client clock, exact percentiles
from the locustfile's samples) and LLM TTFT, failed turns, refused
conversations, the time to each refusal p50/p95, how many refusals carried a
retry hint, and per round the CPU of each process and the CPU others took.
Then the admitted p95 over the unloaded p95 against the 1.2 target. Writes
benchmarks/results/overload.json. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BACKENDS,
    RESULTS_DIR,
    CpuMeter,
    Stack,
    arg_parser,
    progress,
    results_path,
    running_stack,
    start_services,
)
from benchmarks.load import conversation
from benchmarks.stats import run_info, summary, write_results
from services.tts.config import TtsConfig
from voice_ops.stack import ServiceProcess, gateway_backend_args, service

ROOT = Path(__file__).resolve().parent.parent
LOAD_RESULTS = RESULTS_DIR / "load.json"
TARGET_RATIO = 1.2  # the bound: admitted p95 within 20 % of the unloaded p95
# The load test's settings in every phase: the same for all, so that only the load differs.
TURNS = 3
PAUSE_S = 1.0  # think time after each reply (fixed: more turns per phase than locust's 1-3 s default)
TURN_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0  # the turns in flight at the end finish and are counted
NOISY_CORES = 0.3  # CPU taken by processes outside the benchmark past which its run is flagged as noisy


def measured_capacity(load_results: Path) -> tuple[int, str]:
    """C from a load benchmark run: the most conversations with e2e p95 within TARGET_RATIO of the
    1-conversation level's p95, and no errors; 1 without a full run to read."""
    try:
        report = json.loads(load_results.read_text())
    except (OSError, ValueError):
        return 1, f"default: no readable {load_results.name}"
    levels = report.get("levels") or []
    if report.get("settings", {}).get("quick") or not levels or levels[0]["conversations"] != 1:
        return 1, f"default: {load_results.name} is not a full sweep"
    bound = TARGET_RATIO * levels[0]["e2e_ms"]["p95"]
    within = [lvl["conversations"] for lvl in levels if lvl["errors"] == 0 and lvl["e2e_ms"]["p95"] <= bound]
    capacity = max(within, default=1)
    figures = ", ".join(f"{lvl['conversations']}: {lvl['e2e_ms']['p95']:.0f}" for lvl in levels)
    return capacity, (
        f"{load_results.name} ({report.get('date', '?')}): e2e p95 ms by conversations {figures}; "
        f"the most within {TARGET_RATIO:g} x {levels[0]['e2e_ms']['p95']:.0f} = {bound:.0f} ms"
    )


def start_backends(logs: Path) -> Stack:
    """ASR, TTS (the TTS service's default engine, as in the load benchmark) and the embedded LLM on free
    ports, healthy; the gateways are started apart, with their limits."""
    engine = TtsConfig.from_env().engine
    progress(f"starting the embedded backends (tts: {engine}) ...")
    specs = [(name, service(name), ["--engine", engine] if name == "tts" else []) for name in BACKENDS]
    servers = start_services(specs, logs)
    return Stack(
        {name: s.address for name, s in servers.items()},
        {name: s.process.pid for name, s in servers.items()},
        engine,
        list(servers.values()),
    )


def start_gateway(stack: Stack, logs: Path, name: str, *args: str) -> ServiceProcess:
    """A gateway on the stack's backends with ``args``, healthy, watched as ``name``; one turn warms it up."""
    backends = gateway_backend_args(*(stack.addresses[backend] for backend in BACKENDS))
    gateway = start_services([(name, service("gateway"), [*backends, *args])], logs)[name]
    stack.started.append(gateway)
    stack.addresses[name] = gateway.address
    stack.pids[name] = gateway.process.pid
    progress(f"{name} serving on {gateway.address} ({' '.join(args) or 'default limits'}); a warm-up turn ...")
    asyncio.run(conversation(gateway.address, 0, 1, 0.0, 0.0))
    return gateway


def load_test(gateway: str, users: int, duration_s: int, results: Path) -> tuple[list[dict[str, Any]], int]:
    """loadtest/run.py (`make loadtest`) against ``gateway``: the locustfile's samples, and the exit code."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("LOADTEST_")}
    environ.update(
        LOADTEST_HOST=gateway,
        LOADTEST_RESULTS=str(results),
        LOADTEST_USERS=str(users),
        LOADTEST_SPAWN_RATE=str(users),  # all at once: the refusals start with the first second
        LOADTEST_TIME=f"{duration_s}s",
        LOADTEST_STOP_TIMEOUT=f"{STOP_TIMEOUT_S:g}",
        LOADTEST_TURNS=str(TURNS),
        LOADTEST_PAUSE_MIN_S=f"{PAUSE_S:g}",
        LOADTEST_PAUSE_MAX_S=f"{PAUSE_S:g}",
        LOADTEST_TURN_TIMEOUT_S=f"{TURN_TIMEOUT_S:g}",
    )
    command = [sys.executable, str(ROOT / "loadtest" / "run.py"), "--only-summary"]
    results.mkdir(parents=True, exist_ok=True)
    with open(results / "locust.log", "w") as log:
        code = subprocess.run(command, env=environ, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    samples = results / "converse_samples.jsonl"
    if not samples.exists():
        raise RuntimeError(f"the load test wrote no samples (exit code {code}); see {results / 'locust.log'}")
    with open(samples) as file:
        return [json.loads(line) for line in file if line.strip()], code


def run_round(stack: Stack, gateway: str, users: int, duration_s: int, results: Path) -> dict[str, Any]:
    """One phase's turn in a round: its samples, the locust exit code and the CPU it took."""
    meter = CpuMeter(dict(stack.pids))
    samples, code = load_test(stack.addresses[gateway], users, duration_s, results)
    cpu = meter.stop()
    return {
        "samples": samples,
        "locust_exit_code": code,
        "process_cpu": cpu["processes"],
        "machine_cpu_busy": cpu["machine_busy"],
        "other_processes_cores": cpu["other_cores"],
    }


def pooled(users: int, gateway: str, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A phase's figures over all its rounds, from the raw samples."""
    samples = [sample for one in rounds for sample in one["samples"]]
    turns = [s for s in samples if s["type"] == "grpc" and s["name"] == "turn"]
    answered = [s for s in turns if s["error"] is None]
    refused = [s for s in samples if s["type"] == "session" and s["name"] == "refused"]
    hints = [s["retry_after_ms"] for s in refused if s.get("retry_after_ms") is not None]
    ttft = [s["ms"] for s in samples if s["type"] == "turn_metrics" and s["name"] == "llm_ttft"]
    return {
        "users": users,
        "gateway": gateway,
        "admitted_e2e_ms": summary([s["ms"] for s in answered]),
        "admitted_llm_ttft_ms": summary(ttft),
        "failed_turns": len(turns) - len(answered),
        "turn_errors": sorted({s["error"] for s in turns if s["error"] is not None}),
        "refused": len(refused),
        "refusal_ms": summary([s["ms"] for s in refused]),
        "refusal_max_ms": max((s["ms"] for s in refused), default=None),
        "refusal_codes": sorted({s.get("code", "") for s in refused}),
        "refusals_with_retry_hint": len(hints),
        "retry_hint_ms": {"min": min(hints), "max": max(hints)} if hints else None,
        # The load generator is one of these "other" processes, but it takes a few hundredths of a core.
        "other_processes_cores_mean": round(sum(one["other_processes_cores"] for one in rounds) / len(rounds), 2),
        # Each round apart too: on a shared machine, the rounds that others left quiet say the most.
        "rounds": [
            {**round_figures(one["samples"]), **{key: value for key, value in one.items() if key != "samples"}}
            for one in rounds
        ],
    }


def round_figures(samples: list[dict[str, Any]]) -> dict[str, Any]:
    turns = [s["ms"] for s in samples if s["name"] == "turn" and s["error"] is None]
    refused = [s["ms"] for s in samples if s["name"] == "refused"]
    return {"admitted_e2e_ms": summary(turns), "refused": len(refused), "refusal_ms": summary(refused)}


def ratio(phase: dict[str, Any], unloaded: dict[str, Any]) -> float | None:
    loaded, base = phase["admitted_e2e_ms"]["p95"], unloaded["admitted_e2e_ms"]["p95"]
    return round(loaded / base, 3) if loaded == loaded and base == base and base else None  # NaN: no turns


def main() -> None:
    parser = arg_parser(__doc__, "overload")
    capacity, capacity_source = measured_capacity(LOAD_RESULTS)
    parser.add_argument(
        "--capacity",
        type=int,
        default=capacity,
        help=f"C: the limited gateway's --max-streams; the overload phase runs 2C users "
        f"(default {capacity}, {capacity_source})",
    )
    parser.add_argument("--rounds", type=int, help="times each phase runs, taking turns (default 2; --quick 1)")
    parser.add_argument("--phase-s", type=int, help="seconds of each phase in each round (default 45; --quick 12)")
    parser.add_argument("--control", action="store_true", help="also 2C users against the gateway without a limit")
    group = parser.add_argument_group(
        "the backends", "Running ASR, TTS and LLM (host:port, all three); without them a fresh embedded stack starts."
    )
    for name in BACKENDS:
        group.add_argument(f"--{name}", help=f"the running {name} service")
    args = parser.parse_args()
    if args.capacity != capacity:
        capacity_source = "--capacity"
    if args.capacity < 1:
        parser.error("--capacity must be at least 1")
    given = [name for name in BACKENDS if getattr(args, name)]
    if given and len(given) != len(BACKENDS):
        parser.error("--asr, --tts and --llm go together")
    rounds = args.rounds or (1 if args.quick else 2)
    phase_s = args.phase_s or (12 if args.quick else 45)
    out = results_path(args.out, "overload")
    c = args.capacity
    # name -> (users, gateway), in the order they take turns in each round
    phases = {"unloaded": (1, "gateway"), "overload": (2 * c, "gateway_limited")}
    if args.control:
        phases["no_limit"] = (2 * c, "gateway")

    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        stack = running_stack({name: getattr(args, name) for name in BACKENDS}) if given else start_backends(work)
        try:
            start_gateway(stack, work, "gateway")
            start_gateway(stack, work, "gateway_limited", "--max-streams", str(c))
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in phases}
            for number in range(1, rounds + 1):
                for name, (users, gateway) in phases.items():
                    progress(f"round {number}/{rounds}, {name}: {users} user(s) for {phase_s} s against {gateway} ...")
                    one = run_round(stack, gateway, users, phase_s, work / f"{name}-{number}")
                    runs[name].append(one)
                    figures = round_figures(one["samples"])
                    progress(
                        f"  admitted e2e {figures['admitted_e2e_ms']}; {figures['refused']} refused, refusal "
                        f"{figures['refusal_ms']}; other processes took {one['other_processes_cores']} cores"
                    )
            description = {**stack.describe(), "fresh": not given}
        finally:
            stack.stop()

    report = {name: pooled(users, gateway, runs[name]) for name, (users, gateway) in phases.items()}
    unloaded = report["unloaded"]
    ratios = {name: ratio(phase, unloaded) for name, phase in report.items() if name != "unloaded"}
    results = {
        **run_info(),
        "stack": description,
        "settings": {
            "capacity": c,
            "capacity_source": capacity_source,
            "overload_users": 2 * c,
            "rounds": rounds,
            "phase_s": phase_s,
            "turns_per_conversation": TURNS,
            "pause_s": PAUSE_S,
            "target_ratio": TARGET_RATIO,
            "quick": args.quick,
        },
        "phases": report,
        "admitted_p95_over_unloaded_p95": ratios,
        "within_target": {name: value is not None and value <= TARGET_RATIO for name, value in ratios.items()},
    }
    write_results(out, results)
    busy = {name: phase["other_processes_cores_mean"] for name, phase in report.items()}
    if max(busy.values()) > NOISY_CORES:
        progress(f"NOTE: other processes took {busy} cores on average: the machine was busy, the figures are noisy")
    overload = report["overload"]
    progress(
        f"unloaded p95 {unloaded['admitted_e2e_ms']['p95']} ms; {2 * c} users against --max-streams {c}: admitted "
        f"p95 {overload['admitted_e2e_ms']['p95']} ms (ratio {ratios['overload']}, target <= {TARGET_RATIO}), "
        f"{overload['refused']} refused, refusal p50 {overload['refusal_ms']['p50']} / "
        f"p95 {overload['refusal_ms']['p95']} ms"
    )


if __name__ == "__main__":
    main()
