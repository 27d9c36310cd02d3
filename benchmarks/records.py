"""Records and recording on against off, side by side in one run (`make bench-records`): their cost on e2e.

One set of backends on free ports serves two gateways of this checkout at once: "off" keeps its records in
memory (``memory://``, the gateway's default: the recorder runs, nothing reaches a disk) and records no
audio; "on" keeps them in SQLite and records every conversation's stereo audio in a folder, as the
embedded stack does. Memory (the LLM's summaries) is off in both: it costs an LLM call after a
conversation, not a turn. The same spoken questions go to both, turn by turn, the order swapped every
turn so that the machine's noise falls on both alike. Per gateway: e2e_ms p50/p95 (client-measured), the
p50 of each stage, the on/off ratio of e2e's p50 (the mean of the two positions' ratios, as bench-ab),
and each gateway's CPU. Writes benchmarks/results/records.json. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path
from typing import Any

import grpc

from benchmarks.common import (
    BACKENDS,
    BREAKDOWN,
    QUESTIONS,
    CpuMeter,
    arg_parser,
    progress,
    results_path,
    spoken,
    start_services,
)
from benchmarks.gateway_ab import REPO, start_gateway
from benchmarks.stats import run_info, summary, write_results
from services.tts.config import TtsConfig
from voice_agent.client.converse import Conversation
from voice_ops.stack import ServiceProcess, gateway_backend_args, service

LABELS = ("off", "on")


def records_args(label: str, folder: Path) -> list[str]:
    if label == "off":
        return ["--records-url", "memory://", "--no-record", "--no-memory"]
    return [
        "--records-url",
        f"sqlite:///{folder / 'conversations.db'}",
        "--recordings-url",
        f"file://{folder / 'recordings'}",
        "--record",
        "--no-memory",
    ]


async def side_by_side(gateways: dict[str, str], questions: list[str]) -> list[dict[str, Any]]:
    rows = []
    async with contextlib.AsyncExitStack() as stack:
        talks = {}
        for label, address in gateways.items():
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(address))
            talks[label] = await stack.enter_async_context(Conversation(channel))
        for turn, question in enumerate(questions):
            for position, label in enumerate(LABELS if turn % 2 == 0 else reversed(LABELS)):
                result = await talks[label].speak(spoken(question))
                metrics = result.metrics()
                progress(f"  records {label} turn {turn + 1}: e2e_ms {metrics.get('e2e_ms')}")
                if "e2e_ms" in metrics and not result.errors:
                    rows.append({"gateway": label, "turn": turn, "position": position, **metrics})
    return rows


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per gateway the p50/p95 of e2e and each stage (the first turn left out: warm-up); the verdict is the
    mean over the two positions in a pair of turns of on/off e2e p50 (see gateway_ab.report for why)."""
    out: dict[str, Any] = {}
    for label in LABELS:
        warm = [r for r in rows if r["gateway"] == label and r["turn"] > 0]
        out[label] = {key: summary([r[key] for r in warm]) for key in (*BREAKDOWN, "e2e_ms")}
        for position in (0, 1):
            out[label][f"e2e_ms_position_{position + 1}"] = summary(
                [r["e2e_ms"] for r in warm if r["position"] == position]
            )
    ratios = [
        out["on"][key]["p50"] / out["off"][key]["p50"]
        for key in ("e2e_ms_position_1", "e2e_ms_position_2")
        if out["off"][key]["n"] and out["on"][key]["n"] and out["off"][key]["p50"]
    ]
    out["e2e_p50_ratio_on_to_off"] = round(sum(ratios) / len(ratios), 3) if ratios else None
    return out


def main() -> None:
    parser = arg_parser(__doc__, "records")
    parser.add_argument("--rounds", type=int, default=2, help="times each question is asked of each gateway (2)")
    args = parser.parse_args()
    questions = QUESTIONS[:3] if args.quick else QUESTIONS * args.rounds
    engine = TtsConfig.from_env().engine
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        progress(f"starting the backends (tts: {engine}) ...")
        specs = [(name, service(name), ["--engine", engine] if name == "tts" else []) for name in BACKENDS]
        backends = start_services(specs, folder)
        started: list[ServiceProcess] = list(backends.values())
        try:
            backend_args = gateway_backend_args(*(backends[name].address for name in BACKENDS))
            for label in LABELS:
                args_ = [*backend_args, *records_args(label, folder)]
                started.append(start_gateway(REPO, args_, folder / f"gateway-{label}.log"))
            gateways = {label: s.address for label, s in zip(LABELS, started[-2:], strict=True)}
            meter = CpuMeter({label: s.process.pid for label, s in zip(LABELS, started[-2:], strict=True)})
            rows = asyncio.run(side_by_side(gateways, questions))
            cpu = meter.stop()
        finally:
            for server in reversed(started):
                server.stop()
        recorded_mb = sum(f.stat().st_size for f in (folder / "recordings").rglob("*") if f.is_file()) / 2**20
    results = {**run_info(), "tts_engine": engine, "report": report(rows), "gateway_cpu": cpu}
    results["recordings_mb"] = round(recorded_mb, 1)
    write_results(results_path(args.out, "records"), results)
    per = results["report"]
    cells = ", ".join(
        f"{label} p50 {per[label]['e2e_ms']['p50']:.0f} p95 {per[label]['e2e_ms']['p95']:.0f}" for label in LABELS
    )
    print(f"e2e_ms {cells}; on/off p50 {per['e2e_p50_ratio_on_to_off']}; recordings {results['recordings_mb']} MB")


if __name__ == "__main__":
    main()
