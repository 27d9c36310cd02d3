"""Interruptions (`make bench-bargein`): how fast the agent stops when the user talks over it.

A fresh embedded stack on free ports (or a running one: --gateway), one Converse
session, --barge-ins (10) turns: the user asks a question and, once the agent's
first audio arrives, waits --delays-ms (cycled: 0, 300, 600 ms) and talks over it.
Times are client-measured from the ASR's speech-started event of the interruption,
as the client receives it (benchmarks.common.barge_in_timing, shared with
benchmarks.e2e):

- stop_ms: to the last agent audio chunk of the interrupted turn, p50/p95 (0 when
  none came after the event), and how many chunks came after it;
- interruption_event_ms: to the client's ``interruption`` event;
- unplayed_audio_at_cut_ms: agent audio the client holds unplayed at that moment
  (the gateway keeps up to its audio lead ahead of playback): the app drops it.

A barge-in that comes after the gateway has sent the agent's last audio (it runs up
to its audio lead ahead of playback) interrupts nothing there: counted as missed. Between
barge-ins the session waits until it is quiet. Writes benchmarks/results/bargein.json.
A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import grpc

from benchmarks.common import (
    BARGE_INS,
    Stack,
    add_stack_arguments,
    arg_parser,
    barge_in_timing,
    progress,
    results_path,
    settle,
    spoken,
    stack_from_args,
)
from benchmarks.stats import run_info, summary, write_results
from voice_agent.client.converse import Conversation

MEASURES = ("stop_ms", "chunks_after_speech_started", "interruption_event_ms", "unplayed_audio_at_cut_ms")


async def barge_ins(stack: Stack, count: int, delays_ms: list[int]) -> list[dict]:
    rows = []
    async with grpc.aio.insecure_channel(stack.gateway) as channel, Conversation(channel) as talk:
        for number in range(count):
            question, interruption = BARGE_INS[number % len(BARGE_INS)]
            delay = delays_ms[number % len(delays_ms)]
            result = await talk.speak(spoken(question), barge_in=spoken(interruption, lead_ms=delay))
            timing = barge_in_timing(result)
            row = {"delay_ms": delay, **(timing or {"missed": True}), "errors": len(result.errors)}
            rows.append(row)
            progress(f"  barge-in {number + 1}/{count} (after {delay} ms): {timing or 'missed: not interrupted'}")
            await settle(talk)
    return rows


def main() -> None:
    parser = arg_parser(__doc__, "bargein")
    add_stack_arguments(parser)
    parser.add_argument("--barge-ins", type=int, help="barge-ins (default 10; --quick 2)")
    parser.add_argument("--delays-ms", default="0,300,600", help="when the user talks over the agent, cycled")
    args = parser.parse_args()
    count = args.barge_ins or (2 if args.quick else 10)
    delays = [int(v) for v in args.delays_ms.split(",")]
    out = results_path(args.out, "bargein")
    progress("making the test speech with espeak-ng ...")
    for question, interruption in BARGE_INS:
        spoken(question)
        for delay in delays:
            spoken(interruption, lead_ms=delay)
    with tempfile.TemporaryDirectory() as logs, stack_from_args(args, Path(logs)) as stack:
        progress(f"{count} barge-ins in one session ...")
        rows = asyncio.run(barge_ins(stack, count, delays))
        description = stack.describe()
    cut = [row for row in rows if "stop_ms" in row]
    results = {
        **run_info(),
        "stack": description,
        "settings": {"barge_ins": count, "delays_ms": delays, "quick": args.quick},
        "interrupted": len(cut),
        "missed": len(rows) - len(cut),
        **{measure: summary([row[measure] for row in cut]) for measure in MEASURES},
        "chunks_after_speech_started_total": sum(row["chunks_after_speech_started"] for row in cut),
        "per_barge_in": rows,
    }
    write_results(out, results)


if __name__ == "__main__":
    main()
