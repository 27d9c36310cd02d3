"""The Java SDK (clients/java) against the real embedded stack: its JUnit 4 tests and its `talk` example.

One gateway with ``--max-streams 1`` and an API key serves them all, behind a TCP proxy that the tests can cut
(a lost network) and that follows the gateway when a test drains it (SIGTERM; a new gateway takes its place, as
a second replica behind a load balancer would). The JUnit tests call the control URL for both.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import ServiceProcess, spoken, start_service

from voice_agent.audio import read_wav, write_wav

ROOT = Path(__file__).resolve().parent.parent
JAVA = ROOT / "clients" / "java"
API_KEY = "va-java-sdk-test-key-5e1f"
RETRY_AFTER_MS = 700


@pytest.fixture(scope="module")
def classpath() -> str:
    """`make clients`' Java part (a no-op when it is built), and the classpath the tests run with."""
    subprocess.run(["make", "-s", "-C", str(JAVA), "all"], check=True, timeout=300)
    done = subprocess.run(["make", "-s", "-C", str(JAVA), "classpath"], check=True, capture_output=True, text=True)
    return done.stdout.strip()


class TcpProxy:
    """Forwards every connection on a free loopback port to ``upstream``. ``drop`` resets them all, as a lost
    network does; ``upstream`` may change (new connections go to the new address)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            host, port = self.upstream.rsplit(":", 1)
            try:
                server = socket.create_connection((host, int(port)), timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def drop(self) -> None:
        """Resets every open connection (RST, no goodbye), both sides."""
        with self._lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()

    def close(self) -> None:
        self._listener.close()
        self.drop()


class Gateways:
    """The gateway the proxy points at, and the drain that replaces it."""

    def __init__(self, logs: Path, args: list[str]) -> None:
        self._logs, self._args = logs, args
        self.stopped: list[ServiceProcess] = []
        self.current = self._start()
        self.proxy = TcpProxy(self.current.address)

    def _start(self) -> ServiceProcess:
        log = self._logs / f"gateway-{len(self.stopped)}.log"
        return start_service("gateway", log, *self._args)

    def drain(self) -> None:
        """A new gateway takes the proxy's new connections, then the old one gets SIGTERM (and drains)."""
        replacement = self._start()
        self.proxy.upstream = replacement.address
        self.current.process.send_signal(signal.SIGTERM)
        self.stopped.append(self.current)
        self.current = replacement

    def close(self) -> None:
        self.proxy.close()
        for gateway in [*self.stopped, self.current]:
            gateway.stop()


@pytest.fixture(scope="module")
def gateways(
    tmp_path_factory: pytest.TempPathFactory,
    asr_server: ServiceProcess,
    piper_server: ServiceProcess,
    llm_server: ServiceProcess,
) -> Iterator[Gateways]:
    from conftest import gateway_args

    folder = tmp_path_factory.mktemp("java-gateways")
    keys = folder / "keys"
    keys.write_text(API_KEY + "\n")
    args = gateway_args(asr_server, piper_server, llm_server)
    args += ["--max-streams", "1", "--api-keys-file", str(keys), "--retry-after-ms", str(RETRY_AFTER_MS)]
    args += ["--shutdown-grace-s", "5"]
    stack = Gateways(folder, args)
    yield stack
    stack.close()


@contextlib.contextmanager
def control_server(gateways: Gateways) -> Iterator[str]:
    """POST /drop and /drain for the JUnit tests; yields its URL."""

    class Control(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            actions = {"/drop": gateways.proxy.drop, "/drain": gateways.drain}
            action = actions.get(self.path)
            if action is not None:
                action()
            self.send_response(200 if action else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _talk(gateways: Gateways, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    env = {**os.environ, "VOICE_GATEWAY_ADDRESS": gateways.proxy.address}
    done = subprocess.run([str(JAVA / "talk"), *args], env=env, capture_output=True, text=True, timeout=300)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, (done.stdout, done.stderr)
    return done.returncode, json.loads(lines[0])


def test_the_talk_example_holds_one_spoken_turn(classpath: str, gateways: Gateways, tmp_path: Path) -> None:
    question = spoken("How do I prepare for a job interview?")
    write_wav(tmp_path / "question.wav", question.audio)
    code, result = _talk(
        gateways, tmp_path, "--wav", str(tmp_path / "question.wav"), "--out", str(tmp_path / "reply.wav"), "--token", API_KEY
    )
    assert code == 0, result
    assert "interview" in result["transcript"].lower(), result
    assert result["reply"], result
    assert 0 < result["e2e_ms"] < 60_000, result
    reply = read_wav(tmp_path / "reply.wav")
    assert result["audio_ms"] > 500
    assert abs(reply.duration_ms - result["audio_ms"]) <= 1, result


def test_the_talk_example_reports_a_refusal_as_json(classpath: str, gateways: Gateways, tmp_path: Path) -> None:
    write_wav(tmp_path / "question.wav", spoken("Hello there.").audio)
    code, result = _talk(
        gateways, tmp_path, "--wav", str(tmp_path / "question.wav"), "--out", str(tmp_path / "r.wav"), "--token", "bad"
    )
    assert code != 0
    assert result["code"] == "UNAUTHENTICATED" and result["error"], result


def test_the_sdk_against_the_stack(classpath: str, gateways: Gateways, tmp_path: Path) -> None:
    """clients/java's JUnit tests: the offline ones, then GatewaySessionIT's seven against the stack."""
    speech = tmp_path / "speech"
    speech.mkdir()
    write_wav(speech / "question-24k.wav", spoken("How do I prepare for a job interview?", sample_rate=24_000).audio)
    write_wav(speech / "interruption.wav", spoken("Wait, stop. Tell me something else instead.").audio)
    results = tmp_path / "results.json"
    with control_server(gateways) as control:
        env = {
            **os.environ,
            "VOICE_GATEWAY_ADDRESS": gateways.proxy.address,
            "VOICE_TEST_KEY": API_KEY,
            "VOICE_TEST_CONTROL": control,
            "VOICE_TEST_SPEECH_DIR": str(speech),
            "VOICE_TEST_RESULTS": str(results),
        }
        command = ["java", "-cp", classpath, "org.junit.runner.JUnitCore"]
        command += ["voiceagent.client.OfflineTest", "voiceagent.client.GatewaySessionIT"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-4000:]
    assert "OK (" in done.stdout
    barge_in = json.loads(results.read_text())["barge_in"]
    assert 0 < barge_in["played_ms"] < barge_in["received_ms"]
