"""Two gateways' code side by side in one run (`make bench-ab BASE=<commit>`): a refactor's cost.

One set of backends on free ports (ASR, TTS: the TTS service's default engine, the embedded LLM) serves
two gateways at once: this checkout's ("new") and the code of --base, a commit checked out into a
temporary git worktree ("base"), each with its own defaults. Then the same spoken questions go to both,
turn by turn, the order swapped every turn, so that the machine's noise falls on both alike, in three
session configurations:

- default: the session chooses nothing; what `make bench-e2e` measures (the gateway's fast mode);
- all_on and all_off: every latency technique on, or off; the two ends of `make bench-latency`.

Both conversations share the LLM server, whose prompt cache holds one prompt: each turn finds the other
gateway's prompt there, alike for both. Per gateway and configuration: e2e_ms p50/p95 (client-measured)
and the p50 of each stage, and new/base ratios of the p50s; with --quick, one round of the default
configuration only. Writes benchmarks/results/gateway_ab.json. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from benchmarks.common import (
    BACKENDS,
    BREAKDOWN,
    QUESTIONS,
    START_TIMEOUT_S,
    CpuMeter,
    arg_parser,
    progress,
    results_path,
    spoken,
    start_services,
)
from benchmarks.latency import configurations
from benchmarks.stats import run_info, summary, write_results
from services.tts.config import TtsConfig
from voice_agent.client.converse import Conversation
from voice_agent.service_spec import LOCAL_HOST
from voice_agent.v1 import gateway_pb2
from voice_ops.stack import ServiceProcess, free_port, gateway_backend_args, service

REPO = Path(__file__).resolve().parent.parent
GATEWAYS = ("base", "new")


@contextlib.contextmanager
def checkout(commit: str) -> Iterator[Path]:
    """``commit`` in a temporary git worktree, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="gateway-ab-") as parent:
        path = Path(parent) / "base"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), commit], check=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], check=False)


def start_gateway(code: Path, backend_args: list[str], log: Path) -> ServiceProcess:
    """`python -m gateway` from the checkout at ``code``: its own packages come first on the path."""
    port, metrics_port = free_port(), free_port()
    command = [sys.executable, "-m", "gateway", "--host", LOCAL_HOST, "--port", str(port)]
    command += ["--metrics-port", str(metrics_port), *backend_args]
    # Its HTTP port too (the Realtime front) is a free one: by the environment, which a base from before
    # that front ignores, where it would refuse an unknown flag.
    env = {**os.environ, "VOICE_GATEWAY_HTTP_PORT": str(free_port())}
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command, cwd=code, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    started = ServiceProcess(service("gateway"), process, f"{LOCAL_HOST}:{port}", log, metrics_port)
    started.wait_until_serving(START_TIMEOUT_S)
    return started


async def side_by_side(
    gateways: dict[str, str], name: str, latency: gateway_pb2.LatencyOptions | None, questions: list[str]
) -> list[dict[str, Any]]:
    options = {"latency": latency} if latency is not None else {}
    rows = []
    async with contextlib.AsyncExitStack() as stack:
        talks = {}
        for label, address in gateways.items():
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(address))
            talks[label] = await stack.enter_async_context(Conversation(channel, **options))
        for turn, question in enumerate(questions):
            for position, label in enumerate(GATEWAYS if turn % 2 == 0 else reversed(GATEWAYS)):
                result = await talks[label].speak(spoken(question))
                metrics = result.metrics()
                progress(f"  {name} {label} turn {turn + 1}: e2e_ms {metrics.get('e2e_ms')}")
                if "e2e_ms" in metrics and not result.errors:
                    rows.append({"config": name, "gateway": label, "turn": turn, "position": position, **metrics})
    return rows


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per configuration and gateway, the p50/p95 of e2e and each stage (the first turn left out: warm-up),
    and e2e's p50 by position in the pair of turns.

    The position matters: llama.cpp keeps one prompt, so the gateway that speaks second in a pair finds
    the other's prompt there and prefills its whole history again, while the first one (which also spoke
    last) finds its own. Positions alternate, but the second speaker's turns come later on odd and even
    turns alike only on average; so the verdict, new against base, is the mean of the two positions'
    ratios, each new against base in the same position."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(row["config"] for row in rows):
        per: dict[str, Any] = {}
        for label in GATEWAYS:
            warm = [r for r in rows if r["config"] == name and r["gateway"] == label and r["turn"] > 0]
            per[label] = {key: summary([r[key] for r in warm]) for key in (*BREAKDOWN, "e2e_ms")}
            for position in (0, 1):
                values = [r["e2e_ms"] for r in warm if r["position"] == position]
                per[label][f"e2e_ms_position_{position + 1}"] = summary(values)
        ratios = [
            per["new"][key]["p50"] / per["base"][key]["p50"]
            for key in ("e2e_ms_position_1", "e2e_ms_position_2")
            if per["base"][key]["n"] and per["new"][key]["n"] and per["base"][key]["p50"]
        ]
        per["e2e_p50_ratio_new_to_base"] = round(sum(ratios) / len(ratios), 3) if ratios else None
        out[name] = per
    return out


def main() -> None:
    parser = arg_parser(__doc__, "gateway_ab")
    parser.add_argument("--base", required=True, help="the commit (or branch) whose gateway code is the base")
    parser.add_argument("--rounds", type=int, default=2, help="times each configuration asks every question (2)")
    parser.add_argument("--questions", type=int, default=len(QUESTIONS), help="of the spoken questions (all)")
    args = parser.parse_args()
    configs: dict[str, gateway_pb2.LatencyOptions | None] = {"default": None}
    if not args.quick:
        configs |= {name: configurations()[name] for name in ("all_on", "all_off")}
    questions = QUESTIONS[: args.questions] * (1 if args.quick else args.rounds)
    engine = TtsConfig.from_env().engine
    with tempfile.TemporaryDirectory() as logs_dir, checkout(args.base) as base_code:
        logs = Path(logs_dir)
        progress(f"starting the backends (tts: {engine}) ...")
        specs = [(name, service(name), ["--engine", engine] if name == "tts" else []) for name in BACKENDS]
        backends = start_services(specs, logs)
        started: list[ServiceProcess] = list(backends.values())
        try:
            backend_args = gateway_backend_args(*(backends[name].address for name in BACKENDS))
            for label, code in (("base", base_code), ("new", REPO)):
                started.append(start_gateway(code, backend_args, logs / f"gateway-{label}.log"))
            gateways = {label: s.address for label, s in zip(GATEWAYS, started[-2:], strict=True)}
            # Each gateway's own CPU: on 2 cores, a gateway's cycles are the LLM's (it runs at nice 10).
            meter = CpuMeter({label: s.process.pid for label, s in zip(GATEWAYS, started[-2:], strict=True)})
            rows = []
            for name, latency in configs.items():
                progress(f"{name}: {len(questions)} questions to each gateway, alternating ...")
                rows += asyncio.run(side_by_side(gateways, name, latency, questions))
            cpu = meter.stop()
        finally:
            for server in reversed(started):
                server.stop()
    base_commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", args.base], capture_output=True, text=True)
    results = {
        **run_info(),
        "base": base_commit.stdout.strip(),
        "tts_engine": engine,
        "report": report(rows),
        "gateway_cpu": cpu,
    }
    write_results(results_path(args.out, "gateway_ab"), results)
    for name, per in results["report"].items():
        cells = ", ".join(
            f"{label} p50 {per[label]['e2e_ms']['p50']:.0f} p95 {per[label]['e2e_ms']['p95']:.0f}" for label in GATEWAYS
        )
        print(f"{name}: e2e_ms {cells}; new/base p50 {per['e2e_p50_ratio_new_to_base']}")
    used = results["gateway_cpu"]["processes"]  # type: ignore[index]
    print("gateway CPU: " + ", ".join(f"{label} {used[label]['cpu_s']} s" for label in GATEWAYS if label in used))


if __name__ == "__main__":
    main()
