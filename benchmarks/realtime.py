"""The Realtime WebSocket API against Converse (`make bench-realtime`): the same spoken turns, same stack.

One gateway; two sessions open side by side, one per front, each with a live microphone (speech, or
silence between turns, at real-time pace, in 100 ms chunks at 24 kHz); the turns alternate between
them. Over Converse, ``voice_agent.client.converse`` measures e2e_ms; over the WebSocket the official
``openai`` SDK's realtime client is the client, and e2e_ms is measured the same way: from when the
chunk carrying the last sample of speech (``speech_stopped``'s ``audio_end_ms``) was sent to the first
``response.output_audio.delta`` received. Reports each front's e2e_ms p50/p95 and the stage p50s
(from ``response.metadata`` over the WebSocket), the first turn of each apart.

Writes benchmarks/results/realtime.json. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import asyncio
import base64
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from openai import AsyncOpenAI

from benchmarks.common import QUESTIONS, add_stack_arguments, arg_parser, progress, results_path, stack_from_args
from benchmarks.stats import run_info, summary, write_results
from voice_agent.audio import Pcm16Audio
from voice_agent.client.converse import CHUNK_MS, STAGES, Conversation
from voice_ops.samples import speak

RATE = 24_000
TURN_TIMEOUT_S = 60.0


def spoken(text: str) -> Pcm16Audio:
    return speak(text, sample_rate=RATE, lead_ms=300, tail_ms=0).audio


class RealtimeMicrophone:
    """One Realtime session with a live microphone, as ``Conversation`` is for Converse."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._silence = b"\0" * (RATE * CHUNK_MS // 1000 * 2)
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        self.events: list[tuple[float, Any]] = []
        self.sent_at_ms: dict[int, float] = {}
        self._arrived = asyncio.Condition()
        self._tasks = [asyncio.create_task(self._send()), asyncio.create_task(self._read())]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _send(self) -> None:
        started, offset_ms = time.perf_counter(), 0
        while True:
            chunk = self._silence if self._outgoing.empty() else self._outgoing.get_nowait()
            await asyncio.sleep(max(0.0, started + offset_ms / 1000 - time.perf_counter()))
            self.sent_at_ms[offset_ms] = time.perf_counter()
            offset_ms += CHUNK_MS
            await self._connection.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())

    async def _read(self) -> None:
        async for event in self._connection:
            async with self._arrived:
                self.events.append((time.perf_counter(), event))
                self._arrived.notify_all()

    async def speak(self, audio: Pcm16Audio) -> dict[str, float]:
        start = len(self.events)
        for chunk in audio.chunks(CHUNK_MS, pad=True):
            self._outgoing.put_nowait(chunk)

        def answered() -> bool:
            return any(e.type == "response.done" and e.response.status != "cancelled" for _, e in self.events[start:])

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(answered), TURN_TIMEOUT_S)
        return self._metrics(self.events[start:])

    def _metrics(self, events: list[tuple[float, Any]]) -> dict[str, float]:
        done = [e for _, e in events if e.type == "response.done" and e.response.status == "completed"]
        if not done:
            return {}
        metadata = done[-1].response.metadata or {}
        result = {stage: float(metadata[stage]) for stage in STAGES if stage in metadata}
        response_id = done[-1].response.id
        audio = [t for t, e in events if e.type == "response.output_audio.delta" and e.response_id == response_id]
        stopped = [e for t, e in events if e.type == "input_audio_buffer.speech_stopped" and audio and t < audio[0]]
        if stopped and audio:
            sent = self.sent_at_ms.get(stopped[-1].audio_end_ms // CHUNK_MS * CHUNK_MS)
            if sent is not None:
                result["e2e_ms"] = round((audio[0] - sent) * 1000, 1)
        if "gateway_first_audio_ms" in metadata:
            result["gateway_first_audio_ms"] = float(metadata["gateway_first_audio_ms"])
        return result


async def alternate(gateway: str, realtime_url: str, questions: list[str]) -> dict[str, list[dict[str, float]]]:
    rows: dict[str, list[dict[str, float]]] = {"converse": [], "realtime": []}
    client = AsyncOpenAI(base_url=realtime_url.replace("ws://", "http://").removesuffix("/realtime"), api_key="none")
    async with (
        grpc.aio.insecure_channel(gateway) as channel,
        Conversation(channel, sample_rate=RATE) as converse,
        client.realtime.connect(model="voice-agent") as connection,
    ):
        microphone = RealtimeMicrophone(connection)
        try:
            for number, question in enumerate(questions):
                audio = spoken(question)
                for front in ("converse", "realtime") if number % 2 == 0 else ("realtime", "converse"):
                    if front == "converse":
                        result = await converse.speak(audio)
                        metrics = result.metrics() if not result.errors else {}
                    else:
                        metrics = await microphone.speak(audio)
                    progress(f"  turn {number + 1} over {front}: {metrics}")
                    if "e2e_ms" in metrics:
                        rows[front].append(metrics)
        finally:
            await microphone.close()
    return rows


def report(rows: list[dict[str, float]]) -> dict[str, object]:
    warm = rows[1:]
    keys = [*STAGES, "e2e_ms", "gateway_first_audio_ms"]
    return {
        "first_turn": rows[0] if rows else {},
        "warm_turns": {key: summary(values) for key in keys if (values := [row[key] for row in warm if key in row])},
    }


def main() -> None:
    parser = arg_parser(__doc__, "realtime")
    add_stack_arguments(parser)
    parser.add_argument("--http-port", type=int, default=8080, help="the running gateway's HTTP port (with --gateway)")
    args = parser.parse_args()
    questions = list(QUESTIONS[:2] if args.quick else QUESTIONS)
    with tempfile.TemporaryDirectory() as logs, stack_from_args(args, Path(logs)) as stack:
        http_port = args.http_port
        for server in stack.started:
            if server.name == "gateway" and server.settings is not None:
                http_port = server.settings.http_port  # type: ignore[attr-defined]
        realtime_url = f"ws://127.0.0.1:{http_port}/v1/realtime"
        progress(f"alternating {len(questions)} spoken turns a front: Converse {stack.gateway}, {realtime_url}")
        rows = asyncio.run(alternate(stack.gateway, realtime_url, questions))
        results = {
            **run_info(),
            "stack": stack.describe(),
            "turns_per_front": len(questions),
            **{front: report(front_rows) for front, front_rows in rows.items()},
        }
    out = results_path(args.out, "realtime")
    write_results(out, results)
    for front in ("converse", "realtime"):
        e2e = results[front]["warm_turns"].get("e2e_ms", {})  # type: ignore[attr-defined]
        print(f"{front}: e2e_ms p50 {e2e.get('p50', float('nan')):.0f}, p95 {e2e.get('p95', float('nan')):.0f}")


if __name__ == "__main__":
    main()
