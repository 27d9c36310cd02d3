"""Helpers shared by the tests: real service processes and spoken test material."""

from __future__ import annotations

import functools
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from voice_agent.samples import SpokenSample, speak
from voice_agent.stack import is_serving

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    address: str
    metrics_port: int
    log: Path

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, as Kubernetes sends it; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)


def start_service(module: str, log: Path, *args: str, timeout_s: float = 120.0) -> ServerProcess:
    port, metrics_port = free_port(), free_port()
    command = [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--metrics-port", str(metrics_port), *args]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    server = ServerProcess(process, f"127.0.0.1:{port}", metrics_port, log)
    deadline = time.monotonic() + timeout_s
    while not is_serving(server.address):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{module} did not become healthy:\n{log.read_text()}")
        time.sleep(0.2)
    return server


@functools.cache
def spoken(text: str, sample_rate: int = 16_000, lead_ms: int = 500, tail_ms: int = 1000) -> SpokenSample:
    """espeak-ng speech with known silences, made once per test session."""
    return speak(text, sample_rate=sample_rate, lead_ms=lead_ms, tail_ms=tail_ms)
