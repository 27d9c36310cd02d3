"""Concurrency sweep of the embedded stack (`make bench-load`).

A fresh embedded stack on free ports (ASR, TTS with the TTS service's default engine or --engine,
llama.cpp + Gemma 3 270M, gateway), then 1, 2, 4, 8, ... concurrent
conversations. Each conversation is its own Converse stream on its own
connection, a live microphone at real-time pace: it says --turns espeak-ng
questions, listens to each answer to its end, pauses --pause-s, asks the next.
Conversations start spread over --stagger-s, as people do not all speak at once.
One turn before the sweep warms the stack up and is reported apart.
The sweep stops after the level whose e2e_ms p95 passes --limit-ms (3 s), or
where half the turns fail, or at --max-level.

Per level: e2e_ms p50/p95 (client-measured), the stage breakdown (p50 of each
stage), errors, the CPU (cores) and memory of each process and the machine's
CPU use. Writes benchmarks/results/load.json, load.png (latency against
concurrency) and load_stages.png (the stage breakdown per level).

A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import tempfile
import time
from pathlib import Path

import grpc

from benchmarks.common import (
    BREAKDOWN,
    QUESTIONS,
    STAGE_COLOURS,
    CpuMeter,
    Stack,
    add_stack_arguments,
    arg_parser,
    plot_path,
    progress,
    pyplot,
    results_path,
    save_figure,
    spoken,
    stack_from_args,
)
from benchmarks.stats import run_info, summary, write_results
from voice_agent.client.converse import Conversation
from voice_ops.demo import DESIGN_TARGET_MS

TURN_TIMEOUT_S = 30.0
# Enough streams for the sweep on every service the benchmark starts (the defaults allow 64).
STREAM_LIMITS = {name: ["--max-streams", "1024"] for name in ("asr", "tts", "gateway")}


def levels(max_level: int) -> list[int]:
    out, level = [], 1
    while level <= max_level:
        out.append(level)
        level *= 2
    return out


async def conversation(gateway: str, index: int, turns: int, delay_s: float, pause_s: float) -> list[dict]:
    """One user: ``turns`` spoken questions; a row per turn (an ``error`` key when it failed)."""
    await asyncio.sleep(delay_s)
    rows: list[dict] = []
    try:
        async with grpc.aio.insecure_channel(gateway) as channel, Conversation(channel) as talk:
            for turn in range(turns):
                question = QUESTIONS[(3 * index + turn) % len(QUESTIONS)]
                try:
                    result = await talk.speak(spoken(question), max_wait_s=TURN_TIMEOUT_S)
                except TimeoutError:
                    rows.append({"turn": turn + 1, "error": "timeout"})
                    break
                metrics = result.metrics()
                errors = [f"{e.backend}:{e.code}" for e in result.errors]
                if errors or "e2e_ms" not in metrics:
                    rows.append({"turn": turn + 1, "error": errors[0] if errors else "no answer", **metrics})
                else:
                    rows.append({"turn": turn + 1, **metrics})
                await asyncio.sleep(pause_s)
    except grpc.aio.AioRpcError as error:
        rows.append({"turn": len(rows) + 1, "error": f"stream:{error.code().name}"})
    return rows


async def run_level(stack: Stack, n: int, turns: int, pause_s: float, stagger_s: float, rng: random.Random) -> dict:
    delays = [0.0] + [rng.uniform(0, stagger_s) for _ in range(n - 1)]
    meter = CpuMeter({**stack.pids, "client": os.getpid()})  # the client: this process, every microphone
    started = time.perf_counter()
    per_user = await asyncio.gather(
        *(conversation(stack.gateway, i, turns, delay, pause_s) for i, delay in enumerate(delays))
    )
    wall_s = time.perf_counter() - started
    cpu = meter.stop()
    rows = [row for user in per_user for row in user]
    good = [row for row in rows if "error" not in row]
    errors = n * turns - len(good)  # failed turns, and the turns a broken conversation never had
    e2e = [row["e2e_ms"] for row in good]
    return {
        "conversations": n,
        "turns": len(good),
        "errors": errors,
        "error_kinds": dict(collections.Counter(row["error"] for row in rows if "error" in row)),
        "e2e_ms": summary(e2e),
        "stages_ms": {stage: summary([row[stage] for row in good]) for stage in BREAKDOWN},
        "wall_s": round(wall_s, 1),
        "turns_per_s": round(len(good) / wall_s, 2),
        "process_cpu": cpu["processes"],
        "machine_cpu_busy": cpu["machine_busy"],
        "other_processes_cores": cpu["other_cores"],
        "rss_mb": stack.rss_mb(),
    }


def plot(levels_report: list[dict], limit_ms: float, results: Path) -> None:
    plt = pyplot()
    xs = [level["conversations"] for level in levels_report]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot(xs, [level["e2e_ms"]["p50"] for level in levels_report], "o-", label="e2e p50")
    axes.plot(xs, [level["e2e_ms"]["p95"] for level in levels_report], "s-", label="e2e p95")
    axes.axhline(DESIGN_TARGET_MS, color="green", linestyle="--", linewidth=1, label=f"target {DESIGN_TARGET_MS} ms")
    axes.axhline(limit_ms, color="red", linestyle=":", linewidth=1, label=f"sweep limit {limit_ms:.0f} ms (p95)")
    axes.set_xscale("log", base=2)
    axes.set_xticks(xs, [str(x) for x in xs])
    axes.set_xlabel("concurrent conversations")
    axes.set_ylabel("ms, end of the user's speech to the first agent audio")
    axes.set_title("Embedded stack on this machine: latency against concurrency")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    save_figure(figure, plot_path(results))

    figure, axes = plt.subplots(figsize=(7, 4.5))
    bottom = [0.0] * len(xs)
    labels = [str(x) for x in xs]
    for stage in BREAKDOWN:
        heights = [max(0.0, level["stages_ms"][stage]["p50"]) for level in levels_report]
        axes.bar(labels, heights, bottom=bottom, color=STAGE_COLOURS[stage], label=f"{stage} p50")
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.plot(labels, [level["e2e_ms"]["p50"] for level in levels_report], "k_", markersize=30, label="e2e_ms p50")
    axes.axhline(DESIGN_TARGET_MS, color="green", linestyle="--", linewidth=1, label=f"target {DESIGN_TARGET_MS} ms")
    axes.set_xlabel("concurrent conversations")
    axes.set_ylabel("ms (p50 of each stage, stacked)")
    axes.set_title("Where the time goes, per concurrency level")
    axes.set_ylim(0, 1.35 * max([*bottom, *(level["e2e_ms"]["p50"] for level in levels_report), DESIGN_TARGET_MS]))
    axes.legend(fontsize=7, loc="upper left", ncol=2)
    save_figure(figure, plot_path(results, "_stages"))


def main() -> None:
    parser = arg_parser(__doc__, "load")
    add_stack_arguments(parser)
    parser.add_argument("--turns", type=int, help="turns per conversation (default 4; --quick 1)")
    parser.add_argument("--max-level", type=int, help="most concurrent conversations (default 32; --quick 2)")
    parser.add_argument("--limit-ms", type=float, default=3000.0, help="stop after the level whose p95 passes this")
    parser.add_argument("--pause-s", type=float, default=1.0, help="the user's pause after each answer")
    parser.add_argument("--stagger-s", type=float, help="conversations start spread over this (default 3; --quick 0.5)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    turns = args.turns or (1 if args.quick else 4)
    max_level = args.max_level or (2 if args.quick else 32)
    stagger_s = args.stagger_s if args.stagger_s is not None else (0.5 if args.quick else 3.0)
    out = results_path(args.out, "load")
    rng = random.Random(args.seed)

    progress("making the test speech with espeak-ng ...")
    for question in QUESTIONS:
        spoken(question)
    report: list[dict] = []
    stopped = "max level reached"
    with tempfile.TemporaryDirectory() as logs, stack_from_args(args, Path(logs), STREAM_LIMITS) as stack:
        progress("warm-up: one turn, not counted ...")
        warmup = asyncio.run(conversation(stack.gateway, 0, 1, 0.0, 0.0))
        for n in levels(max_level):
            progress(f"level {n}: {n} conversation(s) x {turns} turn(s) ...")
            level = asyncio.run(run_level(stack, n, turns, args.pause_s, stagger_s, rng))
            report.append(level)
            cpu = ", ".join(f"{name} {v['cores']:.2f}" for name, v in level["process_cpu"].items())
            progress(
                f"level {n}: e2e p50 {level['e2e_ms']['p50']:.0f} / p95 {level['e2e_ms']['p95']:.0f} ms, "
                f"{level['turns']} turns, {level['errors']} errors, cores: {cpu}, machine busy "
                f"{100 * level['machine_cpu_busy']:.0f} % ({level['other_processes_cores']} cores not ours)"
            )
            if level["errors"] * 2 >= n * turns:
                stopped = f"half the turns failed at {n} conversations"
                break
            if not level["e2e_ms"]["p95"] <= args.limit_ms:
                stopped = f"p95 passed {args.limit_ms:.0f} ms at {n} conversations"
                break
        description = stack.describe()

    def most(limit: float) -> int:
        under = [lvl["conversations"] for lvl in report if lvl["e2e_ms"]["p95"] <= limit and lvl["errors"] == 0]
        return max(under, default=0)

    results = {
        **run_info(),
        "stack": description,
        "settings": {
            "turns_per_conversation": turns,
            "pause_s": args.pause_s,
            "stagger_s": stagger_s,
            "limit_ms": args.limit_ms,
            "max_level": max_level,
            "quick": args.quick,
        },
        "warmup_turn": warmup[0] if warmup else {},
        "stopped": stopped,
        "most_conversations_p95_under_target": most(DESIGN_TARGET_MS),
        "most_conversations_p95_under_limit": most(args.limit_ms),
        "levels": report,
    }
    write_results(out, results)
    plot(report, args.limit_ms, out)


if __name__ == "__main__":
    main()
