"""End-to-end benchmark (`make bench-e2e`): spoken turns through the whole embedded stack.

For each TTS engine, a fresh stack on free ports (ASR, TTS, llama.cpp, gateway)
and one conversation of real-time-paced espeak-ng turns with silence between
them. Reports e2e_ms p50/p95 (client-measured, from the end of the user's
speech to the first agent audio), each stage, overhead_ms and the gateway's
own share. The first turn is reported apart. Then five turns where the user
talks over the agent: the barge-in stop latency.

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
BARGE_INS = [
    ("Tell me how to prepare for a panel interview", "Wait I have a different question"),
    ("How do I answer why I want to leave my job", "Sorry can we go back to salary"),
    ("What is a good way to open my presentation", "Actually let me ask about slides"),
    ("How should I handle a difficult question", "Hold on what about my voice"),
    ("How can I stop saying um so often", "One moment please"),
]
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


async def barge_ins(gateway: str) -> list[float]:
    """Client-measured stop latency: from the speech-started event of the user talking over
    the agent to the last audio chunk of the interrupted turn (0 when none came after it)."""
    stops = []
    async with grpc.aio.insecure_channel(gateway) as channel, Conversation(channel) as talk:
        for question, interruption in BARGE_INS:
            audio = speak(question, lead_ms=300, tail_ms=0).audio
            result = await talk.speak(audio, barge_in=speak(interruption, lead_ms=0, tail_ms=0).audio)
            cut = result.of("interruption")
            if not cut:
                continue
            turn_id = cut[0][1].interruption.turn_id
            started = [t for t, _ in result.of("speech_started") if t < cut[0][0]][-1]
            last_audio = max(t for t, e in result.of("agent_audio") if e.agent_audio.turn_id == turn_id)
            stops.append(round(max(0.0, last_audio - started) * 1000, 1))
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
    parser.add_argument("--engines", default="piper,kokoro", help="TTS engines, comma-separated")
    args = parser.parse_args()
    results: dict[str, object] = {**run_info(), "turns_per_engine": len(QUESTIONS)}
    for engine in args.engines.split(","):
        print(f"{engine}: starting the stack ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as logs:
            servers = start_stack(engine, Path(logs))
            try:
                results[engine] = report(asyncio.run(conversation(servers["gateway"].address)))
                stops = asyncio.run(barge_ins(servers["gateway"].address))
                results[engine]["barge_in_stop_ms"] = {**summary(stops), "values": stops}  # type: ignore[index]
            finally:
                for server in servers.values():
                    server.stop()
    write_results(args.out, results)


if __name__ == "__main__":
    main()
