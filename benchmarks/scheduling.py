"""What keeps the LLM off the cores the first phrase needs, side by side in one run (`make bench-scheduling`).

On this 2-core machine the LLM is still decoding the reply while the TTS synthesises its first phrase,
and both want every core. Each configuration is one way of sharing them:

- shared: the LLM on every core at nice 0, as every process was started before this benchmark;
- llm_nice: the LLM at nice 10, so that the kernel gives the TTS (nice 0) the cores whenever it wants them;
- llm_one_decode_thread: the LLM generates tokens on one core (it still reads the prompt on every core);
- llm_nice_one_decode_thread: both;
- first_phrase_2: a first phrase of 2 words instead of 4 (fewer tokens to wait for, less to synthesise);
- llm_nice_first_phrase_2: the LLM at nice 10 and a 2-word first phrase.

One ASR and one TTS (--engine: the TTS service's default), and per configuration its own embedded LLM
server and gateway (they differ in the LLM's process settings or the gateway's first phrase), all on free
ports at once. One Converse session per configuration, all open at once: each speaks one uncounted turn
(the start-up of the others is over by then), then they take turns in blocks of --block questions, the
order rotating each round, so that the machine's noise falls on all alike; each LLM server keeps its own
prompt cache, so no configuration evicts another's. Every configuration asks the same questions in the
same order and its LLM samples at temperature 0: each says the same replies, so the first phrases to
synthesise are the same and only the sharing of the cores differs (at the default 0.7, the replies'
first clauses varied from 1 to 4 words, and that alone moved a configuration's p50 by 100 ms).
Replies are the gateway's normal length (its --llm-max-tokens default).

Per configuration: e2e_ms, tts_ttfa_ms, llm_ttft_ms and vad_wait_ms p50/p95, and tts_ttfa_ms split in
two from the client's events: the first phrase's tokens (first agent text to the text that completes
the phrase the first audio chunk speaks) and its synthesis (that text to the first audio).

Writes benchmarks/results/scheduling.json and prints a table. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from benchmarks.common import (
    BACKENDS,
    QUESTIONS,
    CpuMeter,
    arg_parser,
    progress,
    results_path,
    settle,
    spoken,
    start_services,
)
from benchmarks.stats import run_info, summary, write_results
from services.tts.config import ENGINES, TtsConfig
from voice_agent.client.converse import Conversation, TurnResult
from voice_ops.stack import gateway_backend_args, service

# name -> (the LLM server's flags, the gateway's flags)
CONFIGURATIONS: dict[str, tuple[list[str], list[str]]] = {
    "shared": (["--nice", "0", "--threads", "0"], ["--first-phrase-words", "4"]),
    "llm_nice": (["--nice", "10", "--threads", "0"], ["--first-phrase-words", "4"]),
    "llm_one_decode_thread": (["--nice", "0", "--threads", "1"], ["--first-phrase-words", "4"]),
    "llm_nice_one_decode_thread": (["--nice", "10", "--threads", "1"], ["--first-phrase-words", "4"]),
    "first_phrase_2": (["--nice", "0", "--threads", "0"], ["--first-phrase-words", "2"]),
    "llm_nice_first_phrase_2": (["--nice", "10", "--threads", "0"], ["--first-phrase-words", "2"]),
}
TURN_TIMEOUT_S = 60.0
KEYS = ("e2e_ms", "tts_ttfa_ms", "first_phrase_tokens_ms", "first_phrase_synthesis_ms", "llm_ttft_ms", "vad_wait_ms")


def first_phrase_split(result: TurnResult) -> dict[str, float]:
    """tts_ttfa_ms in two, on the client's clock: waiting for the first phrase's tokens (first agent text
    to the text that completes the phrase the first audio chunk speaks), then synthesising it."""
    answer = result.answer()
    if answer is None:
        return {}
    texts = [(t, e.agent_text.delta) for t, e in result.of("agent_text") if e.agent_text.turn_id == answer.turn_id]
    audio = [(t, e.agent_audio) for t, e in result.of("agent_audio") if e.agent_audio.turn_id == answer.turn_id]
    if not texts or not audio:
        return {}
    first_audio_at, chunk = audio[0]
    length, complete_at = 0, None
    for arrived, delta in texts:
        length += len(delta)
        if length >= chunk.text_end:
            complete_at = arrived
            break
    if complete_at is None or complete_at > first_audio_at:
        return {}
    return {
        "first_phrase_tokens_ms": round((complete_at - texts[0][0]) * 1000, 1),
        "first_phrase_synthesis_ms": round((first_audio_at - complete_at) * 1000, 1),
    }


async def conversations(gateways: dict[str, str], turns: int, block: int) -> list[dict[str, Any]]:
    names = list(gateways)
    rounds = -(-turns // block)
    rows: list[dict[str, Any]] = []
    async with contextlib.AsyncExitStack() as stack:
        talks = {}
        for name, address in gateways.items():
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(address))
            talks[name] = await stack.enter_async_context(Conversation(channel))
        for name, talk in talks.items():
            progress(f"  {name}: an uncounted first turn")
            await talk.speak(spoken(QUESTIONS[-1]), max_wait_s=TURN_TIMEOUT_S)
            await settle(talk, quiet_s=0.5)
        for number in range(rounds):
            progress(f"round {number + 1}/{rounds}")
            for offset in range(len(names)):
                name = names[(number + offset) % len(names)]
                talk = talks[name]
                for index in range(number * block, min(turns, (number + 1) * block)):
                    question = QUESTIONS[index % len(QUESTIONS)]
                    start = len(talk.events)
                    result = await talk.speak(spoken(question), max_wait_s=TURN_TIMEOUT_S)
                    await settle(talk, quiet_s=0.5)
                    result = TurnResult(talk.events[start:], result.sent_at_ms)
                    row = {"config": name, "question": question, **result.metrics(), **first_phrase_split(result)}
                    row["errors"] = [f"{e.backend}:{e.code}" for e in result.errors]
                    rows.append(row)
                    progress(f"  {name}: " + ", ".join(f"{k} {row[k]:.0f}" for k in KEYS if k in row))
    return rows


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    good = [row for row in rows if "e2e_ms" in row and not row["errors"]]
    return {key: summary([row[key] for row in good if key in row]) for key in KEYS} | {"failed": len(rows) - len(good)}


def table(reports: dict[str, dict[str, Any]]) -> str:
    header = "| configuration | " + " | ".join(f"{key} p50 / p95" for key in KEYS) + " |"
    lines = [header, "|" + "---|" * (len(KEYS) + 1)]
    for name, result in reports.items():
        cells = [f"{result[key]['p50']:.0f} / {result[key]['p95']:.0f}" for key in KEYS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = arg_parser(__doc__, "scheduling")
    parser.add_argument("--engine", choices=ENGINES, default=TtsConfig.from_env().engine, help="TTS engine")
    parser.add_argument("--turns", type=int, help="counted questions per configuration (default 6; --quick 1)")
    parser.add_argument("--block", type=int, help="questions a configuration asks in a row (default 2)")
    args = parser.parse_args()
    turns = args.turns or (1 if args.quick else 6)
    block = min(turns, args.block or 2)
    configurations = dict(list(CONFIGURATIONS.items())[:2]) if args.quick else CONFIGURATIONS
    out = results_path(args.out, "scheduling")
    for question in QUESTIONS:
        spoken(question)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as logs:
        logs_dir = Path(logs)
        servers = start_services(
            [(name, service(name), ["--engine", args.engine] if name == "tts" else []) for name in BACKENDS[:2]]
            + [(f"llm-{name}", service("llm"), llm) for name, (llm, _) in configurations.items()],
            logs_dir,
        )
        try:
            gateways = start_services(
                [
                    (
                        name,
                        service("gateway"),
                        [
                            *gateway_backend_args(
                                servers["asr"].address, servers["tts"].address, servers[f"llm-{name}"].address
                            ),
                            *gateway_flags,
                            "--llm-temperature",
                            "0",
                        ],
                    )
                    for name, (_, gateway_flags) in configurations.items()
                ],
                logs_dir,
            )
            servers |= {f"gateway-{name}": server for name, server in gateways.items()}
            meter = CpuMeter({name: server.process.pid for name, server in servers.items()})
            rows = asyncio.run(conversations({name: s.address for name, s in gateways.items()}, turns, block))
            cpu = meter.stop()
        finally:
            for server in servers.values():
                server.stop()
    reports = {name: report([row for row in rows if row["config"] == name]) for name in configurations}
    results = {
        **run_info(),
        "tts_engine": args.engine,
        "configurations": {name: {"llm": llm, "gateway": gw} for name, (llm, gw) in configurations.items()},
        "turns_per_configuration": turns,
        "block": block,
        "runtime_s": round(time.perf_counter() - began, 1),
        "other_processes_cores": cpu["other_cores"],
        "report": reports,
        "turns": rows,
    }
    write_results(out, results)
    print(f"\nTTS {args.engine}; each configuration's own LLM server and gateway; ms\n")
    print(table(reports))


if __name__ == "__main__":
    main()
