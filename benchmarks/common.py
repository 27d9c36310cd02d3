"""What the benchmarks share: their command line, the stack they measure (a fresh embedded
one on free ports, or a running one), the speech they say, the barge-in measurement,
progress lines and plots. Numbers (percentiles, CPU, memory, JSON) live in stats.py."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from benchmarks.stats import machine_cpu_s, process_cpu_s, process_memory_mb
from services.tts.config import ENGINES, TtsConfig
from voice_agent.audio import Pcm16Audio
from voice_agent.client.converse import STAGES, Conversation, TurnResult
from voice_agent.client.tts import synthesize
from voice_agent.service_spec import ServiceSpec
from voice_ops.samples import SpokenSample, speak
from voice_ops.stack import (
    ServiceProcess,
    describe_settings,
    gateway_backend_args,
    launch_on_free_ports,
    service,
    tts_engine,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BACKENDS = ("asr", "tts", "llm")
START_TIMEOUT_S = 180.0
BREAKDOWN = (*STAGES, "overhead_ms")
STAGE_COLOURS = dict(zip(BREAKDOWN, ("#9ecae1", "#6baed6", "#fd8d3c", "#74c476", "#bdbdbd"), strict=True))

# What the user says: one sentence a turn, spoken by espeak-ng.
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
# (question, what the user says over the agent's answer)
BARGE_INS = [
    ("Tell me how to prepare for a panel interview", "Wait I have a different question"),
    ("How do I answer why I want to leave my job", "Sorry can we go back to salary"),
    ("What is a good way to open my presentation", "Actually let me ask about slides"),
    ("How should I handle a difficult question", "Hold on what about my voice"),
    ("How can I stop saying um so often", "One moment please"),
]


# Natural speech: short answers, numbers and sentences with a real pause between clauses, as people
# answer a coach; spoken by the project's own TTS voices at several rates (natural_speech).
NATURAL_SENTENCES: tuple[tuple[str, ...], ...] = (
    ("Ten of clubs.",),
    ("Five five.",),
    ("Yes.",),
    ("No, thank you.",),
    ("Okay, sounds good.",),
    ("What time is the interview tomorrow?",),
    ("Can you repeat that, please?",),
    ("I think I need more practice", "with my introduction."),
    ("My flight leaves at seven thirty", "so I have to be quick."),
    ("Honestly,", "I am not sure what they want from me."),
    ("The meeting is on Tuesday at three o'clock.",),
    ("I spoke to my manager about the budget,", "and she said no."),
    ("Could you give me two or three examples?",),
    ("Well,", "I guess I could start with my background in sales."),
    ("Nine hundred and fifty dollars a month.",),
    ("Let's try that again.",),
    ("How do I stop saying um so often?",),
    ("My name is Priya and I work in marketing.",),
    ("That was much better, right?",),
    ("I have four years of experience", "as a software engineer."),
    ("Wait,", "go back to the second point."),
    ("Twelve.",),
    ("Queen of hearts.",),
    ("The salary they offered is sixty two thousand.",),
    ("I want to sound calm", "and confident", "when I speak."),
)
NATURAL_SPEEDS = (0.85, 1.0, 1.15, 1.3)
NATURAL_PAUSES_MS = (250, 400, 600)


async def natural_speech(
    voices: Sequence[tuple[str, str]], *, lead_ms: int = 300, tail_ms: int = 1000
) -> list[SpokenSample]:
    """NATURAL_SENTENCES in each (TTS address, voice), at 16 kHz: the rate cycles through NATURAL_SPEEDS
    and the pauses between parts through NATURAL_PAUSES_MS. The most natural speech these machines can
    make (voice_ops.samples.recorded_turns has real human speech, but only nine turns of it)."""
    samples, count = [], 0
    silence = b"\0" * 2 * 16  # 1 ms at 16 kHz
    for address, voice in voices:
        async with grpc.aio.insecure_channel(address) as channel:
            for parts in NATURAL_SENTENCES:
                speed = NATURAL_SPEEDS[count % len(NATURAL_SPEEDS)]
                speech = b""
                for index, part in enumerate(parts):
                    if index:
                        speech += silence * NATURAL_PAUSES_MS[(count + index) % len(NATURAL_PAUSES_MS)]
                    said = await synthesize(channel, part, voice=voice, speed=speed, sample_rate_hz=16_000)
                    speech += said.audio().data
                count += 1
                audio = Pcm16Audio(silence * lead_ms + speech + silence * tail_ms, 16_000)
                speech_ms = len(speech) // 32
                samples.append(SpokenSample(" ".join(parts), audio, lead_ms, lead_ms + speech_ms))
    return samples


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@functools.cache
def spoken(text: str, lead_ms: int = 300, tail_ms: int = 0) -> Pcm16Audio:
    """``text`` as espeak-ng speech at 16 kHz, made once per run."""
    return speak(text, lead_ms=lead_ms, tail_ms=tail_ms).audio


# ---- the command line


def arg_parser(doc: str | None, name: str) -> argparse.ArgumentParser:
    """``--out`` and ``--quick``, which every benchmark has."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR / f"{name}.json",
        help=f"JSON results file, or a directory to write {name}.json in; plots go beside it "
        f"(default {RESULTS_DIR / name}.json)",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run, to check that the benchmark works")
    return parser


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "the stack",
        "Without --gateway, a fresh embedded stack starts on free ports and stops at the end. With it, the "
        "benchmark talks to that running gateway; --asr, --tts and --llm (host:port) then only say which "
        "processes' CPU and memory to watch (found by their listening ports).",
    )
    group.add_argument("--gateway", help="a running gateway, host:port")
    for name in BACKENDS:
        group.add_argument(f"--{name}", help=f"the running {name} service, host:port")
    group.add_argument(
        "--engine",
        choices=ENGINES,
        default=TtsConfig.from_env().engine,
        help="TTS engine of a fresh stack (default: %(default)s)",
    )


def results_path(out: Path, name: str) -> Path:
    return out / f"{name}.json" if out.is_dir() or not out.suffix else out


def plot_path(results: Path, suffix: str = "") -> Path:
    return results.with_name(f"{results.stem}{suffix}.png")


# ---- the stack


@dataclass
class Stack:
    """The processes a benchmark measures: name -> address, and the pids it can watch."""

    addresses: dict[str, str]
    pids: dict[str, int]
    engine: str
    started: list[ServiceProcess] = field(default_factory=list)  # what this benchmark started, and stops

    @property
    def gateway(self) -> str:
        return self.addresses["gateway"]

    def rss_mb(self) -> dict[str, float]:
        return {name: process_memory_mb(pid)["rss_mb"] for name, pid in self.pids.items() if _alive(pid)}

    def describe(self) -> dict[str, object]:
        """Whether the benchmark started the stack; its TTS engine; whether its processes trace (None: unknown);
        and what each process it started runs with (Config.describe)."""
        tracing = tracing_on() if self.started else None
        settings = {s.name: s.settings.describe() for s in self.started if s.settings is not None}
        return {"fresh": bool(self.started), "tts_engine": self.engine, "tracing": tracing, "settings": settings}

    def stop(self) -> None:
        for server in reversed(self.started):
            server.stop()
        self.started.clear()


def tracing_on() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def start_services(specs: list[tuple[str, ServiceSpec, list[str]]], logs: Path) -> dict[str, ServiceProcess]:
    """Starts each (key, spec, args) on free ports, all at once, and waits until all are healthy;
    stops them all if one fails."""
    started: dict[str, ServiceProcess] = {}
    try:
        for key, spec, args in specs:
            started[key] = launch_on_free_ports(spec, logs / f"{key}.log", *args)
        for server in started.values():
            server.wait_until_serving(START_TIMEOUT_S)
    except BaseException:
        for server in started.values():
            server.stop()
        raise
    return started


def start_stack(engine: str, logs: Path, extra_args: Mapping[str, Sequence[str]] | None = None) -> Stack:
    """ASR, TTS (``engine``), the embedded LLM, then the gateway, on free ports, healthy;
    ``extra_args`` adds flags per service name."""
    extra = extra_args or {}
    progress(f"starting the embedded stack (tts: {engine}) ...")
    own = {"tts": ["--engine", engine]}
    specs = [(name, service(name), [*own.get(name, []), *extra.get(name, ())]) for name in BACKENDS]
    backends = start_services(specs, logs)
    try:
        args = [*gateway_backend_args(*(backends[name].address for name in BACKENDS)), *extra.get("gateway", ())]
        gateway = start_services([("gateway", service("gateway"), args)], logs)["gateway"]
    except BaseException:
        for server in backends.values():
            server.stop()
        raise
    servers = {**backends, "gateway": gateway}
    progress("stack serving: " + ", ".join(f"{name} {s.address}" for name, s in servers.items()))
    settings = {name: s.settings.describe() for name, s in servers.items() if s.settings is not None}
    progress("the configuration measured:\n" + describe_settings(settings))
    return Stack(
        {name: s.address for name, s in servers.items()},
        {name: s.process.pid for name, s in servers.items()},
        engine,
        list(servers.values()),
    )


def running_stack(addresses: dict[str, str]) -> Stack:
    """A stack someone else runs; its processes are found by their listening ports."""
    pids = {name: pid for name, address in addresses.items() if (pid := listening_pid(address)) is not None}
    engine = "unknown"
    if "tts" in addresses:
        with contextlib.suppress(Exception):
            engine = tts_engine(addresses["tts"])
    return Stack(addresses, pids, engine)


@contextlib.contextmanager
def stack_from_args(
    args: argparse.Namespace, logs: Path, extra_args: Mapping[str, Sequence[str]] | None = None
) -> Iterator[Stack]:
    """The running stack the arguments name, or a fresh embedded one that stops afterwards."""
    if args.gateway:
        addresses = {"gateway": args.gateway, **{n: getattr(args, n) for n in BACKENDS if getattr(args, n)}}
        yield running_stack(addresses)
        return
    stack = start_stack(args.engine, logs, extra_args)
    try:
        yield stack
    finally:
        stack.stop()


def listening_pid(address: str) -> int | None:
    """The pid of the process listening on ``address``'s TCP port on this machine, from /proc."""
    port = int(address.rsplit(":", 1)[1])
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    sockets.add(f"socket:[{fields[9]}]")
    if not sockets:
        return None
    for fds in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in sockets for fd in fds.iterdir()):
                return int(fds.parent.name)
    return None


class CpuMeter:
    """The CPU each watched process used over an interval, in cores (CPU seconds per wall second),
    and the machine's: how busy all its cores were, and how many cores went to other processes
    (another workload on the machine makes the figures noisy)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._wall = time.perf_counter()
        self._start = self._read()
        self._machine = machine_cpu_s()

    def _read(self) -> dict[str, float]:
        return {name: process_cpu_s(pid) for name, pid in self._pids.items() if _alive(pid)}

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self._wall
        end, (busy, total) = self._read(), machine_cpu_s()
        used = {name: end[name] - self._start[name] for name in end if name in self._start}
        busy_fraction = (busy - self._machine[0]) / max(1e-9, total - self._machine[1])
        return {
            "processes": {name: {"cpu_s": round(s, 2), "cores": round(s / wall, 3)} for name, s in used.items()},
            "machine_busy": round(busy_fraction, 3),
            "other_cores": round(busy_fraction * (os.cpu_count() or 1) - sum(used.values()) / wall, 2),
        }


# ---- turns


async def settle(talk: Conversation, quiet_s: float = 1.5, max_s: float = 30.0) -> None:
    """Waits until the session has been quiet for ``quiet_s``: no late turn spills into the next measurement."""
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline:
        seen = len(talk.events)
        await asyncio.sleep(quiet_s)
        if len(talk.events) == seen:
            return


def barge_in_timing(result: TurnResult) -> dict[str, float] | None:
    """A barge-in as the client saw it, times from the ASR's speech-started event of the user
    talking over the agent (the last one before the interruption event), as the client got it:

    - ``stop_ms``: to the last agent audio chunk of the interrupted turn (0 if none came after it);
    - ``chunks_after_speech_started``: that turn's audio chunks received after the event;
    - ``interruption_event_ms``: to the ``interruption`` event;
    - ``unplayed_audio_at_cut_ms``: agent audio received but not yet played (playing from the
      first chunk on) when the interruption came: what the app must drop from its buffer.

    None if the agent was not interrupted."""
    cuts = result.of("interruption")
    if not cuts:
        return None
    cut_at, event = cuts[0]
    turn_id = event.interruption.turn_id
    starts = [t for t, _ in result.of("speech_started") if t <= cut_at]
    audio = [(t, e.agent_audio) for t, e in result.of("agent_audio") if e.agent_audio.turn_id == turn_id]
    if not starts or not audio:
        return None
    started = starts[-1]
    received_s = sum(len(a.audio) / 2 / a.sample_rate_hz for t, a in audio if t <= cut_at)
    return {
        "stop_ms": round(max(0.0, max(t for t, _ in audio) - started) * 1000, 1),
        "chunks_after_speech_started": sum(1 for t, _ in audio if t > started),
        "interruption_event_ms": round((cut_at - started) * 1000, 1),
        "unplayed_audio_at_cut_ms": round(max(0.0, received_s - (cut_at - audio[0][0])) * 1000, 1),
    }


# ---- plots


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot().close(figure)
    progress(f"plot written to {path}")
