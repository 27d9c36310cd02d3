"""End-to-end benchmark (`make bench-e2e`): spoken turns through the whole embedded stack.

For each TTS engine, a fresh stack on free ports (ASR, TTS, llama.cpp, gateway)
and one conversation of real-time-paced espeak-ng turns with silence between
them. Reports e2e_ms p50/p95 (client-measured, from the end of the user's
speech to the first agent audio), each stage, and overhead_ms. The first turn
is reported apart: it pays the LLM's cold prompt (no prefix cache yet).

Writes benchmarks/results/e2e.json. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import grpc

from benchmarks.stats import run_info, summary, write_results
from voice_agent.client.converse import STAGES, Conversation
from voice_agent.samples import speak
from voice_agent.stack import ServiceProcess, gateway_backend_args, start_on_free_ports

RESULTS = Path(__file__).resolve().parent / "results" / "e2e.json"
QUESTIONS = [
    "I have a job interview next week and I feel nervous",
    "What should I say when they ask about my biggest weakness",
    "How do I explain a gap in my resume",
    "Should I ask about the salary in the first interview",
    "How long should my answers be",
    "What if I do not know the answer to a question",
    "How do I talk about a project that failed",
    "What questions should I ask them at the end",
    "How can I sound more confident on a video call",
    "Thank you that really helps",
    "Can we practice one more answer",
]


def start_stack(engine: str, logs: Path) -> dict[str, ServiceProcess]:
    servers = {
        "asr": start_on_free_ports("asr", logs / "asr.log"),
        "tts": start_on_free_ports("tts", logs / f"tts-{engine}.log", "--engine", engine),
        "llm": start_on_free_ports("llm", logs / "llm.log"),
    }
    backends = gateway_backend_args(servers["asr"].address, servers["tts"].address, servers["llm"].address)
    servers["gateway"] = start_on_free_ports("gateway", logs / "gateway.log", *backends)
    return servers


async def conversation(gateway: str) -> list[dict[str, float]]:
    rows = []
    async with grpc.aio.insecure_channel(gateway) as channel, Conversation(channel) as talk:
        for number, question in enumerate(QUESTIONS, start=1):
            result = await talk.speak(speak(question, lead_ms=300, tail_ms=0).audio)
            metrics = result.metrics()
            print(f"  turn {number}: {metrics}", file=sys.stderr, flush=True)
            if "e2e_ms" in metrics and not result.errors:
                rows.append(metrics)
    return rows


def report(rows: list[dict[str, float]]) -> dict[str, object]:
    warm = rows[1:]
    keys = [*STAGES, "overhead_ms", "e2e_ms", "gateway_first_audio_ms"]
    return {
        "first_turn": rows[0] if rows else {},
        "warm_turns": {key: summary([row[key] for row in warm]) for key in keys},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    parser.add_argument("--engines", default="piper,kokoro", help="TTS engines, comma-separated")
    args = parser.parse_args()
    results: dict[str, object] = {**run_info(), "turns_per_engine": len(QUESTIONS)}
    for engine in args.engines.split(","):
        print(f"{engine}: starting the stack ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as logs:
            servers = start_stack(engine, Path(logs))
            try:
                results[engine] = report(asyncio.run(conversation(servers["gateway"].address)))
            finally:
                for server in servers.values():
                    server.stop()
    write_results(args.out, results)


if __name__ == "__main__":
    main()
