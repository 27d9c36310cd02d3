"""TTS benchmark (`make bench-tts`).

Per engine (Kokoro int8 and Piper, each its own real server, every text sent to
both in turn so that they are measured side by side in one run):
- time to first audio, p50/p95, client-measured from the request to the first
  chunk, for a first phrase of 3-5 words and of 10-12 words;
- real-time factor for a three-sentence reply (time to the last chunk, and
  engine time, over the audio's length);
- the memory of the server process.

Writes benchmarks/results/tts.json. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

import grpc

from benchmarks.stats import process_memory_mb, run_info, summary, write_results
from voice_agent.client.tts import synthesize
from voice_ops.stack import ServiceProcess, start_on_free_ports

RESULTS = Path(__file__).resolve().parent / "results" / "tts.json"
ENGINES = ("kokoro", "piper")

# The first phrase of each text is its first clause: 3-5 words ...
SHORT_FIRST = [
    "Good question, let me explain how that works.",
    "That sounds really stressful, and it is common.",
    "Let's try that again, this time a bit slower.",
    "You did well there, especially at the start.",
    "Start with a story, then make your point.",
    "I hear you, and I think you are right.",
    "Take a slow breath, then answer the question.",
    "Your opening was strong, but the ending was rushed.",
]
# ... or 10-12 words.
LONG_FIRST = [
    "When you walk into the room tomorrow morning, look at the panel first.",
    "The most important thing to remember about this kind of interview, is preparation.",
    "If your manager pushes back on the deadline again next week, stay calm.",
    "Before you present the quarterly numbers to the whole team on Friday, rehearse twice.",
    "One simple way to sound more confident in meetings with senior people, is pausing.",
    "Whenever you feel your heart racing before a big presentation like this, breathe.",
    "The story you told about your first project at the company was great, honestly.",
    "Most people who struggle with small talk at conferences and big events, overthink it.",
]
REPLY = (
    "That was a much stronger answer than your first attempt. You explained the problem clearly and "
    "gave a concrete example. Next time, try to finish with one sentence about what you learned."
)


async def time_to_first_audio(channels: dict[str, grpc.aio.Channel], texts: list[str], words: int) -> dict:
    ttfa: dict[str, list[float]] = {engine: [] for engine in channels}
    for text in texts:
        for engine, channel in channels.items():
            result = await synthesize(channel, text, first_phrase_words=words)
            ttfa[engine].append(result.ttfa_ms or float("nan"))
    return {engine: summary(values) for engine, values in ttfa.items()}


async def real_time_factor(channels: dict[str, grpc.aio.Channel], repeats: int) -> dict:
    report = {}
    for engine, channel in channels.items():
        wall, engine_time = [], []
        for _ in range(repeats):
            result = await synthesize(channel, REPLY)
            audio_ms = result.audio().duration_ms
            wall.append((result.chunks[-1][0] - result.started) * 1000 / audio_ms)
            phrases = {c.phrase_index: c.timing.synthesis_ms for _, c in result.chunks}
            engine_time.append(sum(phrases.values()) / audio_ms)
        report[engine] = {
            "rtf_wall": round(statistics.median(wall), 3),
            "rtf_engine": round(statistics.median(engine_time), 3),
            "audio_ms": audio_ms,
        }
    return report


async def run(servers: dict[str, ServiceProcess], repeats: int) -> dict:
    channels = {engine: grpc.aio.insecure_channel(server.address) for engine, server in servers.items()}
    try:
        print("time to first audio, short first phrases ...", file=sys.stderr)
        short = await time_to_first_audio(channels, SHORT_FIRST, 5)
        print("time to first audio, long first phrases ...", file=sys.stderr)
        long = await time_to_first_audio(channels, LONG_FIRST, 12)
        print("real-time factor ...", file=sys.stderr)
        rtf = await real_time_factor(channels, repeats)
    finally:
        for channel in channels.values():
            await channel.close()
    return {
        "ttfa_ms_first_phrase_3_5_words": short,
        "ttfa_ms_first_phrase_10_12_words": long,
        "kokoro_over_piper_ttfa_p50": {
            "3_5_words": round(short["kokoro"]["p50"] / short["piper"]["p50"], 2),
            "10_12_words": round(long["kokoro"]["p50"] / long["piper"]["p50"], 2),
        },
        "three_sentence_reply": rtf,
        "memory": {engine: process_memory_mb(server.process.pid) for engine, server in servers.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    parser.add_argument("--repeats", type=int, default=3, help="three-sentence replies per engine")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logs:
        print("starting one TTS server per engine ...", file=sys.stderr)
        servers = {
            engine: start_on_free_ports("tts", Path(logs) / f"{engine}.log", "--engine", engine) for engine in ENGINES
        }
        try:
            results = {**run_info(), **asyncio.run(run(servers, args.repeats))}
        finally:
            for server in servers.values():
                server.stop()
    write_results(args.out, results)


if __name__ == "__main__":
    main()
