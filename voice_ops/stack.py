"""The embedded stack: every service as a local background process.

``up`` starts what is not already running and returns once all of it reports
SERVING on the standard gRPC health service; ``down`` stops what ``up``
started. Pid files and logs live in ``$VOICE_STATE_DIR`` (default
``~/.local/state/voice-agent``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

from gateway.config import SERVICE as GATEWAY
from services.asr.config import SERVICE as ASR
from services.llm.config import SERVICE as LLM
from services.tts.config import SERVICE as TTS
from voice_agent.config import Config, ServerConfig
from voice_agent.service_spec import LOCAL_HOST, ServiceSpec
from voice_agent.v1 import tts_pb2, tts_pb2_grpc

#: What ``up`` starts, in this order; each service declares its own (``SERVICE`` beside its config).
SERVICES = (ASR, TTS, LLM, GATEWAY)


def state_dir() -> Path:
    path = Path(os.environ.get("VOICE_STATE_DIR") or Path.home() / ".local" / "state" / "voice-agent")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pid_alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):  # not our child: init reaps it
        os.waitpid(pid, os.WNOHANG)  # reaps it if it is our own exited child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(name: str) -> int | None:
    try:
        pid = int((state_dir() / f"{name}.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _log_tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


# Below Linux's ephemeral range (32768-60999): a port the kernel hands out for port 0 is also the source
# port of the next outgoing connection, so a service started a minute later could find it taken.
_PORT_RANGE = range(20_000, 32_000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port free on the loopback interface now, outside the ephemeral range, not handed out before."""
    while True:
        port = random.choice(_PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((LOCAL_HOST, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


@dataclass
class ServiceProcess:
    """One service running as a child process."""

    spec: ServiceSpec
    process: subprocess.Popen[bytes]
    address: str
    log: Path
    metrics_port: int | None = None  # None: the service's configured default
    credentials: grpc.ChannelCredentials | None = None  # health checks over TLS; None: plaintext
    settings: Config | None = None  # what it runs with

    @property
    def name(self) -> str:
        return self.spec.name

    def wait_until_serving(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.spec.is_serving(self.address, self.credentials):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.process.returncode}:\n{_log_tail(self.log)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not healthy after {timeout_s:.0f} s:\n{_log_tail(self.log)}")
            time.sleep(0.2)

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, as Kubernetes sends it, then SIGKILL; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def launch(
    spec: ServiceSpec,
    log: Path,
    *args: str,
    port: int | None = None,
    metrics_port: int | None = None,
    http_port: int | None = None,
) -> ServiceProcess:
    """Starts ``spec`` on the loopback interface; a port not given is the service's configured one
    (flags, then ``VOICE_*`` environment, then the default), as the README and ``up --json`` state it."""
    port = port or spec.config.from_env().port
    command = [sys.executable, "-m", spec.module, "--host", LOCAL_HOST, "--port", str(port), *args]
    if metrics_port is not None and issubclass(spec.config, ServerConfig):
        command += ["--metrics-port", str(metrics_port)]
    if http_port is not None and _serves_http(spec) and "--http-port" not in args:
        command += ["--http-port", str(http_port)]
    settings = spec.settings(command[3:])
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the CLI, and a Ctrl-C in its terminal
        )
    return ServiceProcess(spec, process, f"{LOCAL_HOST}:{port}", log, metrics_port, settings=settings)


def launch_on_free_ports(spec: ServiceSpec, log: Path, *args: str) -> ServiceProcess:
    """Starts ``spec`` with every port it listens on free (gRPC, metrics, HTTP): beside a stack that
    holds the defaults. Returns at once; ``wait_until_serving`` waits for it."""
    metrics_port = free_port() if issubclass(spec.config, ServerConfig) else None
    http_port = free_port() if _serves_http(spec) else None
    return launch(spec, log, *args, port=free_port(), metrics_port=metrics_port, http_port=http_port)


def _serves_http(spec: ServiceSpec) -> bool:
    return "http_port" in spec.config.setting_names()


def service(name: str) -> ServiceSpec:
    return next(spec for spec in SERVICES if spec.name == name)


def start_on_free_ports(
    name: str, log: Path, *args: str, timeout_s: float = 120.0, credentials: grpc.ChannelCredentials | None = None
) -> ServiceProcess:
    """A service on free loopback ports, healthy: for tests and benchmarks beside a running stack.
    ``credentials``: it serves TLS (its health is checked with them)."""
    started = launch_on_free_ports(service(name), log, *args)
    started.credentials = credentials
    try:
        started.wait_until_serving(timeout_s)
    except (RuntimeError, TimeoutError):
        started.stop()
        raise
    return started


def gateway_backend_args(asr: str, tts: str, llm: str) -> list[str]:
    """The gateway's flags that point it at its backends' addresses."""
    return ["--asr-address", asr, "--tts-address", tts, "--llm-base-url", f"http://{llm}/v1"]


def embedded_records_args(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The embedded stack keeps its conversations in its state folder: the records in SQLite, the recordings
    in a folder, recording on (docs/conversations.md). A VOICE_GATEWAY_* variable that says otherwise wins."""
    folder = state_dir()
    args = []
    if "VOICE_GATEWAY_RECORDS_URL" not in environ:
        args += ["--records-url", f"sqlite:///{folder / 'conversations.db'}"]
    if "VOICE_GATEWAY_RECORDINGS_URL" not in environ:
        args += ["--recordings-url", f"file://{folder / 'recordings'}"]
    if "VOICE_GATEWAY_RECORD" not in environ:
        args += ["--record"]
    return args


def tts_engine(address: str, timeout_s: float = 2.0) -> str:
    """The engine a running TTS service runs."""
    with grpc.insecure_channel(address) as channel:
        return tts_pb2_grpc.TtsStub(channel).ListVoices(tts_pb2.ListVoicesRequest(), timeout=timeout_s).engine


def up(
    timeout_s: float = 300.0,
    progress: Callable[[str], None] = print,
    *,
    tts_engine_name: str | None = None,
    api_keys_file: str | None = None,
    latency_mode: str | None = None,
) -> dict[str, str]:
    """Starts every service not yet serving; returns name -> address once all are healthy.

    ``tts_engine_name`` picks the TTS engine; a TTS that ``up`` started with
    another engine is restarted with this one. ``api_keys_file`` turns on the
    gateway's static-key auth (restarting a gateway that ``up`` started).
    ``latency_mode`` ('baseline' or 'fast') restarts the gateway in that mode; 'baseline'
    also starts ASR and TTS (those not running yet) without their model warm-up.
    """
    addresses = {spec.name: spec.address() for spec in SERVICES}
    extra_args = {"gateway": gateway_backend_args(addresses["asr"], addresses["tts"], addresses["llm"])}
    extra_args["gateway"] += embedded_records_args()
    if tts_engine_name:
        extra_args["tts"] = ["--engine", tts_engine_name]
    if api_keys_file:
        extra_args["gateway"] += ["--api-keys-file", api_keys_file]
    if latency_mode:
        extra_args["gateway"] += ["--latency-mode", latency_mode]
        if latency_mode == "baseline":
            for name in ("asr", "tts"):
                extra_args[name] = [*extra_args.get(name, []), "--no-warmup"]
    starting = []
    for spec in SERVICES:
        address = addresses[spec.name]
        if spec.is_serving(address):
            restart = None
            if spec.name == "tts" and tts_engine_name and tts_engine(address) != tts_engine_name:
                restart = f"serving another engine; restarting it with {tts_engine_name}"
            elif spec.name == "gateway" and (api_keys_file or latency_mode):
                restart = "restarting it with " + " and ".join(
                    what
                    for what in (
                        api_keys_file and f"the API keys of {api_keys_file}",
                        latency_mode and f"latency mode {latency_mode}",
                    )
                    if what
                )
            if restart:
                progress(f"{spec.name}: {restart} ({address})")
                if not _stop(spec.name):
                    raise RuntimeError(f"the {spec.name} on {address} was not started by `voice-agent up`: stop it")
            else:
                progress(f"{spec.name}: already serving on {address}")
                continue
        elif (pid := _read_pid(spec.name)) is not None:
            # Ours, alive, but not answering yet (starting, or busy): never start a second one.
            progress(f"{spec.name}: already started (pid {pid}); waiting for it")
            _wait_for(spec, address, pid, timeout_s)
            continue
        log = state_dir() / f"{spec.name}.log"
        progress(f"{spec.name}: starting on {address} (log: {log})")
        started = launch(spec, log, *extra_args.get(spec.name, []))
        (state_dir() / f"{spec.name}.pid").write_text(str(started.process.pid))
        if started.settings is not None:
            (state_dir() / f"{spec.name}.settings.json").write_text(json.dumps(started.settings.describe()) + "\n")
        starting.append(started)
    for started in starting:
        started.wait_until_serving(timeout_s)
        progress(f"{started.name}: serving")
    return addresses


def web_endpoints() -> dict[str, str]:
    """The gateway's HTTP port as ``up`` starts it: the Realtime WebSocket API and the browser page."""
    http_port = GATEWAY.config.from_env().http_port  # type: ignore[attr-defined]
    if not http_port:
        return {}
    return {"realtime": f"ws://{LOCAL_HOST}:{http_port}/v1/realtime", "web": f"http://{LOCAL_HOST}:{http_port}/"}


def configuration() -> dict[str, dict[str, object]]:
    """What each service of the embedded stack runs with (``Config.describe``): as ``up`` started it, or,
    for a TTS that something else started, the engine it reports."""
    described: dict[str, dict[str, object]] = {}
    for spec in SERVICES:
        saved = state_dir() / f"{spec.name}.settings.json"
        if _read_pid(spec.name) is not None and saved.exists():
            described[spec.name] = json.loads(saved.read_text())
        elif spec.name == "tts" and spec.is_serving(address := spec.address()):
            described[spec.name] = {"engine": tts_engine(address), "started": "not by voice-agent up"}
        else:
            described[spec.name] = {"started": "not by voice-agent up"}
    return described


def describe_settings(configuration: dict[str, dict[str, object]]) -> str:
    """One line per service: ``tts: engine piper, voice ...``."""
    return "\n".join(
        f"{name}: " + ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in settings.items())
        for name, settings in configuration.items()
    )


def _wait_for(spec: ServiceSpec, address: str, pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not spec.is_serving(address):
        if not _pid_alive(pid):
            raise RuntimeError(f"{spec.name} (pid {pid}) exited:\n{_log_tail(state_dir() / f'{spec.name}.log')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{spec.name} (pid {pid}) not healthy after {timeout_s:.0f} s")
        time.sleep(0.2)


def _stop(name: str, timeout_s: float = 20.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout_s``, to what ``up`` started; False if nothing was running."""
    pid = _read_pid(name)
    (state_dir() / f"{name}.pid").unlink(missing_ok=True)
    (state_dir() / f"{name}.settings.json").unlink(missing_ok=True)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    return True


def down() -> list[str]:
    """Stops what ``up`` started."""
    return [spec.name for spec in SERVICES if _stop(spec.name)]
