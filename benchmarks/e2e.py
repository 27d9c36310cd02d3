"""End-to-end benchmark (`make bench-e2e`): spoken turns through the whole embedded stack.

The configuration a user gets by default (TTS engine, latency mode, reply length: every process's
own defaults), or more than one TTS engine with --engines: per engine, a fresh stack on free ports
(ASR, TTS, llama.cpp, gateway), its configuration printed, and one conversation of real-time-paced
espeak-ng turns with silence between them. Reports e2e_ms p50/p95 (client-measured, from the end of
the user's speech to the first agent audio), each stage, overhead_ms and the gateway's own share. The
first turn is reported apart. Then five turns where the user talks over the agent: the barge-in stop
latency.

Writes benchmarks/results/e2e.json. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import grpc

from benchmarks.common import BARGE_INS, QUESTIONS, barge_in_timing, spoken, start_stack
from benchmarks.stats import run_info, summary, write_results
from services.tts.config import TtsConfig
from voice_agent.client.converse import STAGES, Conversation

RESULTS = Path(__file__).resolve().parent / "results" / "e2e.json"
# Issue 14's targets for the default configuration with normal reply lengths (printed, not asserted).
TARGET_P50_MS = 700
TARGET_P95_MS = 900


async def conversation(gateway: str) -> list[dict[str, float]]:
    rows = []
    async with grpc.aio.insecure_channel(gateway) as channel, Conversation(channel) as talk:
        for number, question in enumerate(QUESTIONS, start=1):
            result = await talk.speak(spoken(question))
            metrics = result.metrics()
            print(f"  turn {number}: {metrics}", file=sys.stderr, flush=True)
            if "e2e_ms" in metrics and not result.errors:
                rows.append(metrics)
    return rows


async def barge_ins(gateway: str) -> list[float]:
    """Client-measured stop latency (benchmarks.common.barge_in_timing); benchmarks.bargein has more."""
    stops = []
    async with grpc.aio.insecure_channel(gateway) as channel, Conversation(channel) as talk:
        for question, interruption in BARGE_INS:
            result = await talk.speak(spoken(question), barge_in=spoken(interruption, lead_ms=0))
            if (timing := barge_in_timing(result)) is not None:
                stops.append(timing["stop_ms"])
    print(f"  barge-in stop latency (ms): {stops}", file=sys.stderr, flush=True)
    return stops


def report(rows: list[dict[str, float]]) -> dict[str, object]:
    warm = rows[1:]
    keys = [*STAGES, "overhead_ms", "e2e_ms", "gateway_first_audio_ms"]
    # The gateway's own share: from the final transcript to the first audio sent, less the
    # LLM's and TTS's own times.
    own = [row["gateway_first_audio_ms"] - row["llm_ttft_ms"] - row["tts_ttfa_ms"] for row in warm]
    return {
        "first_turn": rows[0] if rows else {},
        "warm_turns": {key: summary([row[key] for row in warm]) for key in keys},
        "gateway_own_ms": summary(own),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    parser.add_argument(
        "--engines",
        default=TtsConfig.from_env().engine,
        help="TTS engines, comma-separated (default: the TTS service's, %(default)s; e.g. piper,kokoro)",
    )
    args = parser.parse_args()
    results: dict[str, object] = {**run_info(), "turns_per_engine": len(QUESTIONS)}
    for engine in args.engines.split(","):
        print(f"{engine}: starting the stack ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as logs:
            stack = start_stack(engine, Path(logs))
            try:
                results[engine] = {
                    "configuration": stack.describe()["settings"],
                    **report(asyncio.run(conversation(stack.gateway))),
                }
                stops = asyncio.run(barge_ins(stack.gateway))
                results[engine]["barge_in_stop_ms"] = {**summary(stops), "values": stops}  # type: ignore[index]
            finally:
                stack.stop()
    write_results(args.out, results)
    for engine in args.engines.split(","):
        e2e, stages = results[engine]["warm_turns"]["e2e_ms"], results[engine]["warm_turns"]  # type: ignore[index]
        breakdown = ", ".join(f"{stage} {stages[stage]['p50']:.0f}" for stage in STAGES)
        print(
            f"{engine}: e2e_ms p50 {e2e['p50']:.0f}, p95 {e2e['p95']:.0f} over {e2e['n']} turns"
            f" (targets: p50 <= {TARGET_P50_MS}, p95 <= {TARGET_P95_MS}); stage p50s: {breakdown}"
        )


if __name__ == "__main__":
    main()
