"""The gateway alone (`make bench-gateway`): its own latency, throughput and CPU per
turn, up to hundreds of sessions, against instant loopback FAKE backends
(benchmarks/fakes.py: a fake ASR, TTS and OpenAI-compatible LLM that answer at
once and do no work), each fake its own process.

The real gateway process (python -m gateway) is started on free ports, pointed at
the fakes. Per level (1, 10, 50, 100, 200, 400 sessions) and per mode, every
session is its own Converse stream on its own connection and does --turns turns
with a pause of --pause-s (±50 %, random) before each:

- ``text``: typed turns (ConverseRequest.text); no audio.
- ``audio``: a live microphone: 100 ms chunks at real-time pace, silence between
  turns; a turn is 400 ms of fake speech and a last chunk that the fake ASR ends
  the utterance on at once (so the audio path, ASR events and barge-in checks run).

Latency: the turn sent (the typed text, or the utterance's last chunk) to the first
agent audio received, client-measured; with instant fakes it is the gateway's own
time plus the loopback transport and the client. Also: throughput (turns/s), the
gateway's CPU per turn (all its CPU in the level, streams and audio included, over
the turns) and cores used, its memory, and each process's CPU (the client, the
fakes and the gateway share this machine). Capacity per core: the most
sessions whose p95 stays under --threshold-ms, and those sessions over the gateway
cores they used. One turn per mode before the sweep warms it up and is not counted.

Writes benchmarks/results/gateway.json and gateway.png. A benchmark, not a test.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from benchmarks.common import (
    CpuMeter,
    arg_parser,
    plot_path,
    progress,
    pyplot,
    results_path,
    save_figure,
    start_services,
    tracing_on,
)
from benchmarks.fakes import END, KINDS, SPEECH, marker_chunk
from benchmarks.stats import percentile, process_memory_mb, run_info, summary, write_results
from voice_agent.client.converse import CHUNK_MS, session_config
from voice_agent.config import ServerConfig
from voice_agent.service_spec import ServiceSpec
from voice_agent.v1 import gateway_pb2, gateway_pb2_grpc
from voice_ops.stack import ServiceProcess, gateway_backend_args, service

LEVELS = (1, 10, 50, 100, 200, 400)
QUICK_LEVELS = (1, 5)
MODES = ("text", "audio")
RATE = 16_000
TURN_TIMEOUT_S = 30.0
SILENCE = marker_chunk(0, CHUNK_MS, RATE)
UTTERANCE = [marker_chunk(SPEECH, CHUNK_MS, RATE)] * 4 + [marker_chunk(END, CHUNK_MS, RATE)]
FAKE_SPECS = {
    kind: ServiceSpec(f"fake-{kind}", "benchmarks.fakes", ServerConfig, "/v1/models" if kind == "llm" else None)
    for kind in KINDS
}


def start(logs: Path) -> dict[str, ServiceProcess]:
    """The three fakes, then the real gateway on them (stream limit raised for the sweep)."""
    progress("starting the fake backends ...")
    fakes = start_services([(f"fake-{kind}", spec, [kind]) for kind, spec in FAKE_SPECS.items()], logs)
    try:
        progress("starting the gateway on them ...")
        args = [*gateway_backend_args(*(fakes[f"fake-{k}"].address for k in KINDS)), "--max-streams", "100000"]
        gateway = start_services([("gateway", service("gateway"), args)], logs)
    except BaseException:
        for fake in fakes.values():
            fake.stop()
        raise
    return {**fakes, **gateway}


class Session:
    """One Converse stream with a lean client: sends turns, times each to its first agent audio."""

    def __init__(self, stub: gateway_pb2_grpc.GatewayStub, mode: str) -> None:
        self.mode = mode
        self.latencies: list[float] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self._stub = stub
        self._texts: asyncio.Queue[str | None] = asyncio.Queue()
        self._speech: collections.deque[bytes] = collections.deque()
        self._ending = False
        self._sent_at: float | None = None
        self._audio_at: float | None = None
        self._done = asyncio.Event()
        self._closed = False  # the stream ended

    async def _requests(self) -> AsyncIterator[gateway_pb2.ConverseRequest]:
        yield gateway_pb2.ConverseRequest(config=session_config(RATE))
        if self.mode == "text":
            while (text := await self._texts.get()) is not None:
                self._sent_at = time.perf_counter()
                yield gateway_pb2.ConverseRequest(text=text)
        else:
            started, sent = time.perf_counter(), 0
            while not self._ending:
                await asyncio.sleep(max(0.0, started + sent * CHUNK_MS / 1000 - time.perf_counter()))
                chunk = self._speech.popleft() if self._speech else SILENCE
                sent += 1
                if chunk is UTTERANCE[-1]:
                    self._sent_at = time.perf_counter()
                yield gateway_pb2.ConverseRequest(audio=chunk)
        yield gateway_pb2.ConverseRequest(end=gateway_pb2.ConverseRequest.EndSession())

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        try:
            async for event in call:
                kind = event.WhichOneof("event")
                if kind == "agent_audio":
                    if self._audio_at is None:
                        self._audio_at = time.perf_counter()
                elif kind == "turn_metrics":
                    self._done.set()
                elif kind == "error":
                    self.errors[f"{event.error.backend}:{event.error.code}"] += 1
                    self._done.set()
        except grpc.aio.AioRpcError as error:
            self.errors[f"stream:{error.code().name}"] += 1
        finally:
            self._closed = True
            self._done.set()

    async def run(self, turns: int, pause_s: float, delay_s: float, rng: random.Random) -> None:
        await asyncio.sleep(delay_s)
        call = self._stub.Converse(self._requests())
        reader = asyncio.create_task(self._read(call))
        try:
            for _ in range(turns):
                await asyncio.sleep(pause_s * rng.uniform(0.5, 1.5))
                self._done.clear()
                self._sent_at = self._audio_at = None
                if self.mode == "text":
                    self._texts.put_nowait("Hello, can we practise my opening line?")
                else:
                    self._speech.extend(UTTERANCE)
                try:
                    await asyncio.wait_for(self._done.wait(), TURN_TIMEOUT_S)
                except TimeoutError:
                    self.errors["timeout"] += 1
                    break
                if self._closed:
                    break
                if self._sent_at is not None and self._audio_at is not None:
                    self.latencies.append((self._audio_at - self._sent_at) * 1000)
                else:
                    self.errors["no audio"] += 1
            self._ending = True
            self._texts.put_nowait(None)
            await asyncio.wait_for(reader, TURN_TIMEOUT_S)
        except TimeoutError:
            self.errors["stream did not end"] += 1
        finally:
            reader.cancel()
            call.cancel()


async def run_level(
    servers: dict[str, ServiceProcess], mode: str, n: int, turns: int, pause_s: float, rng: random.Random
) -> dict:
    gateway = servers["gateway"]
    pids = {name: server.process.pid for name, server in servers.items()} | {"client": os.getpid()}
    channels = [grpc.aio.insecure_channel(gateway.address) for _ in range(n)]
    sessions = [Session(gateway_pb2_grpc.GatewayStub(channel), mode) for channel in channels]
    meter = CpuMeter(pids)
    started = time.perf_counter()
    # Sessions open spread over one pause, so their turns do not all start at once.
    await asyncio.gather(*(s.run(turns, pause_s, rng.uniform(0, pause_s), rng) for s in sessions))
    wall_s = time.perf_counter() - started
    measured = meter.stop()
    cpu = measured["processes"]
    for channel in channels:
        await channel.close()
    latencies = [ms for s in sessions for ms in s.latencies]
    errors = sum((s.errors for s in sessions), collections.Counter())
    done = len(latencies)
    gateway_cpu_s = cpu["gateway"]["cpu_s"]
    return {
        "sessions": n,
        "turns": done,
        "errors": n * turns - done,
        "error_kinds": dict(errors),
        "latency_ms": {**summary(latencies), "p99": round(percentile(latencies, 99), 1)},
        "wall_s": round(wall_s, 1),
        "turns_per_s": round(done / wall_s, 1),
        "gateway_cpu_ms_per_turn": round(1000 * gateway_cpu_s / done, 2) if done else None,
        "gateway_cores": cpu["gateway"]["cores"],
        "gateway_rss_mb": process_memory_mb(gateway.process.pid)["rss_mb"],
        "process_cpu": cpu,
        "machine_cpu_busy": measured["machine_busy"],
        "other_processes_cores": measured["other_cores"],
    }


def capacity(levels: list[dict], threshold_ms: float) -> dict[str, object]:
    under = [lvl for lvl in levels if lvl["errors"] == 0 and lvl["latency_ms"]["p95"] <= threshold_ms]
    if not under:
        return {"most_sessions_p95_under_threshold": 0}
    best = max(under, key=lambda lvl: lvl["sessions"])
    cores = best["gateway_cores"]
    return {
        "most_sessions_p95_under_threshold": best["sessions"],
        "gateway_cores_used_there": cores,
        "gateway_cpu_ms_per_turn_there": best["gateway_cpu_ms_per_turn"],
        "turns_per_s_there": best["turns_per_s"],
        # A projection: the sessions one core of gateway CPU carries at this turn rate.
        "sessions_per_gateway_core": round(best["sessions"] / cores) if cores > 0 else None,
    }


def plot(results: dict, threshold_ms: float, path: Path) -> None:
    plt = pyplot()
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    figure, (latency, throughput, cpu) = plt.subplots(1, 3, figsize=(14, 4.5))
    for (mode, report), colour in zip(results["modes"].items(), ("tab:blue", "tab:orange"), strict=False):
        levels = report["levels"]
        xs = [lvl["sessions"] for lvl in levels]
        latency.plot(xs, [lvl["latency_ms"]["p50"] for lvl in levels], "o-", color=colour, label=f"{mode} p50")
        latency.plot(xs, [lvl["latency_ms"]["p95"] for lvl in levels], "s--", color=colour, label=f"{mode} p95")
        throughput.plot(xs, [lvl["turns_per_s"] for lvl in levels], "o-", color=colour, label=mode)
        cpu.plot(xs, [100 * lvl["gateway_cores"] for lvl in levels], "o-", color=colour, label=mode)
    latency.axhline(threshold_ms, color="red", linestyle=":", linewidth=1, label=f"{threshold_ms:.0f} ms")
    latency.set_yscale("log")
    latency.set_ylabel("ms, turn sent to first agent audio")
    latency.set_title("The gateway alone (FAKE instant backends)")
    throughput.set_ylabel("turns per second")
    throughput.set_title("Throughput")
    cpu.set_ylabel("% of one core")
    cpu.set_title("The gateway process's CPU")
    sessions = results["settings"]["levels"]
    for axes in (latency, throughput, cpu):
        axes.set_xscale("log")
        axes.set_xticks(sessions, [str(n) for n in sessions])
        axes.set_xlabel("concurrent sessions")
        for axis in (axes.xaxis, axes.yaxis):
            axis.set_minor_formatter(NullFormatter())
        axes.yaxis.set_major_formatter(ScalarFormatter())
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    latency.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    save_figure(figure, path)


def main() -> None:
    parser = arg_parser(__doc__, "gateway")
    parser.add_argument("--levels", help="sessions per level (default 1,10,50,100,200,400; --quick 1,5)")
    parser.add_argument("--modes", default=",".join(MODES), help="text, audio or both")
    parser.add_argument("--turns", type=int, help="turns per session (default 10; --quick 2)")
    parser.add_argument("--pause-s", type=float, help="mean pause before each turn (default 1.0; --quick 0.2)")
    parser.add_argument("--threshold-ms", type=float, default=50.0, help="p95 latency the capacity is counted at")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    levels = [int(v) for v in args.levels.split(",")] if args.levels else list(QUICK_LEVELS if args.quick else LEVELS)
    turns = args.turns or (2 if args.quick else 10)
    pause_s = args.pause_s if args.pause_s is not None else (0.2 if args.quick else 1.0)
    out = results_path(args.out, "gateway")
    rng = random.Random(args.seed)
    modes: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as logs:
        servers = start(Path(logs))
        try:
            progress("warm-up: one session, one turn per mode, not counted ...")
            for mode in args.modes.split(","):
                asyncio.run(run_level(servers, mode, 1, 1, 0.0, rng))
            for mode in args.modes.split(","):
                report: list[dict] = []
                for n in levels:
                    progress(f"{mode}: {n} session(s) x {turns} turn(s) ...")
                    level = asyncio.run(run_level(servers, mode, n, turns, pause_s, rng))
                    report.append(level)
                    cores = ", ".join(f"{k} {v['cores']:.2f}" for k, v in level["process_cpu"].items())
                    progress(
                        f"{mode} {n}: p50 {level['latency_ms']['p50']:.1f} / p95 {level['latency_ms']['p95']:.1f} ms, "
                        f"{level['turns_per_s']} turns/s, {level['errors']} errors, "
                        f"gateway {level['gateway_cpu_ms_per_turn']} ms CPU/turn, cores: {cores}, "
                        f"not ours: {level['other_processes_cores']}"
                    )
                modes[mode] = {"levels": report, "capacity": capacity(report, args.threshold_ms)}
        finally:
            for server in reversed(servers.values()):
                server.stop()
    results = {
        **run_info(),
        "backends": "FAKE: instant loopback fakes (benchmarks/fakes.py), each its own process",
        "tracing": tracing_on(),
        "settings": {
            "turns_per_session": turns,
            "pause_s": pause_s,
            "threshold_ms": args.threshold_ms,
            "levels": levels,
            "quick": args.quick,
        },
        "modes": modes,
    }
    write_results(out, results)
    plot(results, args.threshold_ms, plot_path(out))


if __name__ == "__main__":
    main()
