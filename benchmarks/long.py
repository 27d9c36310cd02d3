"""Long conversation (`make bench-long`): --turns (50) spoken turns in one session,
watching for latency drift and memory growth.

A fresh embedded stack on free ports (or a running one: --gateway, and --asr,
--tts, --llm to watch their memory), one Converse session, real-time espeak-ng
questions one after another. After every turn: its e2e_ms and stages, and the
resident memory (RSS) of each process. Reports the drift (least-squares slope of
e2e_ms over the turns, the first 10 turns' p50 against the last 10's) and each
process's memory growth. The gateway keeps the history within its token budget,
so the LLM's prompt grows for the first turns, then stays level. A fresh stack's gateway keeps records
and a recording of the session (SQLite and a folder, as the embedded stack does), so the gateway's
memory includes the recorder's: it should stay flat (the recorder keeps only the last seconds of audio).

Writes benchmarks/results/long.json and long.png. A benchmark, not a test.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import grpc

from benchmarks.common import (
    BREAKDOWN,
    QUESTIONS,
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
from benchmarks.stats import percentile, run_info, slope, write_results
from voice_agent.client.converse import Conversation
from voice_ops.demo import DESIGN_TARGET_MS


async def conversation(stack: Stack, turns: int) -> tuple[dict[str, float], list[dict]]:
    rows = []
    before = stack.rss_mb()
    async with grpc.aio.insecure_channel(stack.gateway) as channel, Conversation(channel) as talk:
        for number in range(1, turns + 1):
            result = await talk.speak(spoken(QUESTIONS[(number - 1) % len(QUESTIONS)]))
            metrics = result.metrics()
            ok = "e2e_ms" in metrics and not result.errors
            row = {"turn": number, **(metrics if ok else {"error": True}), "rss_mb": stack.rss_mb()}
            rows.append(row)
            memory = ", ".join(f"{name} {mb:.0f}" for name, mb in row["rss_mb"].items())
            progress(f"  turn {number}/{turns}: e2e {metrics.get('e2e_ms', float('nan')):.0f} ms; RSS MB: {memory}")
    return before, rows


def drift(values: list[float], window: int) -> dict[str, float]:
    first, last = percentile(values[:window], 50), percentile(values[-window:], 50)
    return {
        "slope_ms_per_turn": round(slope(values), 2),
        f"first_{window}_p50": round(first, 1),
        f"last_{window}_p50": round(last, 1),
        "last_over_first": round(last / first, 3) if first else None,
    }


def report(before: dict[str, float], rows: list[dict]) -> dict[str, object]:
    good = [row for row in rows if "e2e_ms" in row]
    window = max(1, min(10, len(good) // 2))
    memory = {}
    for name in before:
        series = [row["rss_mb"][name] for row in rows if name in row["rss_mb"]]
        if series:
            memory[name] = {
                "before_mb": before[name],
                "after_turn_1_mb": series[0],
                "last_mb": series[-1],
                "growth_mb": round(series[-1] - series[0], 1),
                "slope_mb_per_turn": round(slope(series), 3),
            }
    return {
        "turns": len(rows),
        "failed_turns": len(rows) - len(good),
        "e2e_drift": drift([row["e2e_ms"] for row in good], window),
        "stage_drift": {stage: drift([row[stage] for row in good], window) for stage in BREAKDOWN},
        "memory": memory,
        "per_turn": rows,
    }


def plot(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    figure, (latency, memory) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    good = [row for row in rows if "e2e_ms" in row]
    turns = [row["turn"] for row in good]
    latency.plot(turns, [row["e2e_ms"] for row in good], "o-", markersize=3, label="e2e_ms")
    latency.plot(turns, [row["llm_ttft_ms"] for row in good], ".--", label="llm_ttft_ms")
    latency.axhline(DESIGN_TARGET_MS, color="green", linestyle="--", linewidth=1, label=f"target {DESIGN_TARGET_MS} ms")
    latency.set_ylabel("ms")
    latency.set_title("One long conversation: latency per turn")
    latency.legend(fontsize=8)
    latency.grid(alpha=0.3)
    for name in rows[0]["rss_mb"] if rows else []:
        memory.plot([r["turn"] for r in rows], [r["rss_mb"].get(name) for r in rows], "o-", markersize=3, label=name)
    memory.set_xlabel("turn")
    memory.xaxis.set_major_locator(MaxNLocator(integer=True))
    memory.set_ylabel("resident memory (MB)")
    memory.set_title("Memory of each process after each turn")
    memory.legend(fontsize=8)
    memory.grid(alpha=0.3)
    save_figure(figure, path)


def records_on(folder: Path) -> dict[str, list[str]]:
    """A fresh stack's gateway keeps records and recordings as the embedded stack does (SQLite and a folder,
    recording on): the gateway's memory over the turns includes the recorder's and the writer's."""
    records = ["--records-url", f"sqlite:///{folder / 'conversations.db'}", "--record"]
    return {"gateway": [*records, "--recordings-url", f"file://{folder / 'recordings'}"]}


def main() -> None:
    parser = arg_parser(__doc__, "long")
    add_stack_arguments(parser)
    parser.add_argument("--turns", type=int, help="turns in the session (default 50; --quick 3)")
    args = parser.parse_args()
    turns = args.turns or (3 if args.quick else 50)
    out = results_path(args.out, "long")
    progress("making the test speech with espeak-ng ...")
    for question in QUESTIONS:
        spoken(question)
    with tempfile.TemporaryDirectory() as logs, stack_from_args(args, Path(logs), records_on(Path(logs))) as stack:
        progress(f"one session of {turns} turns ...")
        before, rows = asyncio.run(conversation(stack, turns))
        description = stack.describe()
    results = {**run_info(), "stack": description, "settings": {"quick": args.quick}, **report(before, rows)}
    write_results(out, results)
    plot(rows, plot_path(out))


if __name__ == "__main__":
    main()
