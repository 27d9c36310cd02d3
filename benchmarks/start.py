"""Cold and warm start (`make bench-start`).

Cold: each service process alone, one after another on free ports, from the
process's start to healthy (gRPC health SERVING; for the LLM server, /v1/models
answering), with the moment its port first accepted a connection (the imports
done, the model loading) and the service's own "ready in" figure from its log.
Services: asr, tts with each engine of --engines, llm, then the gateway on them.
The models' files are in the OS page cache after the first start: repetition 1
is reported apart, as a first start after a reboot would be at least that slow.

Warm: on that fresh stack (TTS: --stack-engine), one conversation of --turns
real-time spoken turns at once: the first turn's e2e_ms (and stages) against the
later turns'. The stack is stopped and started again for each repetition.

Writes benchmarks/results/start.json. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import asyncio
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from benchmarks.common import (
    BACKENDS,
    BREAKDOWN,
    QUESTIONS,
    START_TIMEOUT_S,
    arg_parser,
    plot_path,
    progress,
    pyplot,
    results_path,
    save_figure,
    spoken,
    tracing_on,
)
from benchmarks.stats import percentile, run_info, summary, write_results
from services.tts.config import TtsConfig
from voice_agent.client.converse import Conversation
from voice_ops.stack import ServiceProcess, gateway_backend_args, launch_on_free_ports, service

READY_LINE = re.compile(r"ready in ([0-9.]+) s")
POLL_S = 0.05


def _accepts(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port))) == 0


def cold_start(name: str, log: Path, *args: str) -> tuple[ServiceProcess, dict[str, float | None]]:
    """Starts ``name`` and times it to listening and to healthy; returns the running process."""
    spec = service(name)
    started = time.perf_counter()
    server = launch_on_free_ports(spec, log, *args)
    listening_s = None
    try:
        while True:
            if server.process.poll() is not None or time.perf_counter() - started > START_TIMEOUT_S:
                server.wait_until_serving(0)  # raises with the log's tail
            if listening_s is None and _accepts(server.address):
                listening_s = time.perf_counter() - started
            if listening_s is not None and spec.is_serving(server.address):
                break
            time.sleep(POLL_S)
    except BaseException:
        server.stop()
        raise
    healthy_s = time.perf_counter() - started
    ready = READY_LINE.findall(log.read_text(errors="replace"))
    return server, {
        "healthy_s": round(healthy_s, 2),
        "listening_s": round(listening_s, 2) if listening_s is not None else None,
        "load_s_own_log": float(ready[-1]) if ready else None,
    }


async def warm_turns(gateway: str, turns: int) -> list[dict[str, float]]:
    rows = []
    async with grpc.aio.insecure_channel(gateway) as channel, Conversation(channel) as talk:
        for number in range(turns):
            result = await talk.speak(spoken(QUESTIONS[number % len(QUESTIONS)]))
            metrics = result.metrics()
            progress(f"    turn {number + 1}: e2e {metrics.get('e2e_ms', float('nan')):.0f} ms")
            rows.append(metrics if "e2e_ms" in metrics and not result.errors else {})
    return rows


def repetition(engines: list[str], stack_engine: str, turns: int, logs: Path) -> tuple[dict, list[dict]]:
    """One cold start of every service, then the warm turns on the fresh stack; stops it all."""
    cold: dict[str, dict] = {}
    running: dict[str, ServiceProcess] = {}
    try:
        for key, name, args in [
            ("asr", "asr", []),
            *((f"tts-{engine}", "tts", ["--engine", engine]) for engine in engines),
            ("llm", "llm", []),
        ]:
            server, cold[key] = cold_start(name, logs / f"{key}.log", *args)
            progress(f"  {key}: healthy in {cold[key]['healthy_s']} s (listening at {cold[key]['listening_s']} s)")
            if name == "tts" and key != f"tts-{stack_engine}":
                server.stop()
            else:
                running["tts" if name == "tts" else name] = server
        backends = gateway_backend_args(*(running[name].address for name in BACKENDS))
        running["gateway"], cold["gateway"] = cold_start("gateway", logs / "gateway.log", *backends)
        progress(f"  gateway: healthy in {cold['gateway']['healthy_s']} s")
        rows = asyncio.run(warm_turns(running["gateway"].address, turns))
    finally:
        for server in reversed(running.values()):
            server.stop()
    return cold, rows


def main() -> None:
    parser = arg_parser(__doc__, "start")
    parser.add_argument("--repeats", type=int, help="stack starts (default 3; --quick 1)")
    parser.add_argument("--turns", type=int, help="warm turns per start (default 6; --quick 2)")
    parser.add_argument("--engines", default="kokoro,piper", help="TTS engines to cold-start, comma-separated")
    parser.add_argument(
        "--stack-engine",
        default=TtsConfig.from_env().engine,
        help="the TTS engine of the stack the turns go through (default: the TTS service's, %(default)s)",
    )
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    turns = max(2, args.turns or (2 if args.quick else 6))
    engines = args.engines.split(",")
    if args.stack_engine not in engines:
        engines.append(args.stack_engine)
    out = results_path(args.out, "start")

    progress("making the test speech with espeak-ng ...")
    for question in QUESTIONS[:turns]:
        spoken(question)
    colds: list[dict] = []
    conversations: list[list[dict]] = []
    for number in range(1, repeats + 1):
        progress(f"start {number} of {repeats}:")
        with tempfile.TemporaryDirectory() as logs:
            cold, rows = repetition(engines, args.stack_engine, turns, Path(logs))
        colds.append(cold)
        conversations.append(rows)

    cold_report = {}
    for key in colds[0]:
        healthy = [c[key]["healthy_s"] for c in colds]
        listening = [c[key]["listening_s"] for c in colds if c[key]["listening_s"] is not None]
        loads = [c[key]["load_s_own_log"] for c in colds if c[key]["load_s_own_log"] is not None]
        cold_report[key] = {
            "healthy_s_p50": round(percentile(healthy, 50), 2),
            "healthy_s_first": healthy[0],
            "healthy_s": healthy,
            "listening_s_p50": round(percentile(listening, 50), 2) if listening else None,
            "load_s_own_log_p50": round(percentile(loads, 50), 2) if loads else None,
        }
    firsts = [rows[0] for rows in conversations if rows and rows[0]]
    laters = [row for rows in conversations for row in rows[1:] if row]
    failed = sum(1 for rows in conversations for row in rows if not row)
    first_e2e = [row["e2e_ms"] for row in firsts]
    later_e2e = [row["e2e_ms"] for row in laters]
    warm_report = {
        "first_turn_e2e_ms": {**summary(first_e2e), "values": first_e2e},
        "later_turns_e2e_ms": summary(later_e2e),
        "first_over_later_p50": round(percentile(first_e2e, 50) / percentile(later_e2e, 50), 2)
        if first_e2e and later_e2e
        else None,
        "first_turn_stages_p50_ms": {s: round(percentile([r[s] for r in firsts], 50), 1) for s in BREAKDOWN},
        "later_turns_stages_p50_ms": {s: round(percentile([r[s] for r in laters], 50), 1) for s in BREAKDOWN},
        "failed_turns": failed,
    }
    results = {
        **run_info(),
        "tracing": tracing_on(),
        "settings": {
            "repeats": repeats,
            "turns_per_start": turns,
            "engines": engines,
            "stack_engine": args.stack_engine,
            "quick": args.quick,
        },
        "cold": cold_report,
        "warm": warm_report,
    }
    write_results(out, results)
    plot(cold_report, warm_report, plot_path(out))


def plot(cold: dict[str, dict], warm: dict[str, Any], path: Path) -> None:
    """Start to healthy per service, and the first turn after start against later turns."""
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [3, 1]})
    names = list(cold)
    left.bar(names, [cold[name]["healthy_s_p50"] for name in names], color="tab:blue")
    left.set_ylabel("s, process start to healthy (p50)")
    left.set_title("Cold start per service")
    first, later = warm["first_turn_e2e_ms"].get("p50"), warm["later_turns_e2e_ms"].get("p50")
    right.bar(["first turn", "later turns"], [first or 0, later or 0], color=["tab:orange", "tab:green"])
    right.set_ylabel("e2e_ms p50")
    right.set_title("Warm: first turn vs later")
    for axis in (left, right):
        axis.grid(axis="y", alpha=0.3)
    save_figure(figure, path)
    progress(f"plot written to {path}")


if __name__ == "__main__":
    main()
