"""The stack the client SDKs' tests share (clients/java, voice_agent.client): one gateway with ``--max-streams 1``
and an API key, behind a TCP proxy that a test can cut (a lost network) and that follows the gateway when a test
drains it (SIGTERM; a new gateway takes its place, as a second replica behind a load balancer would).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from support import ServiceProcess, start_service

from gateway.config import LatencySettings
from voice_agent.v1 import conversations_pb2, conversations_pb2_grpc
from voice_ops.stack import gateway_backend_args

API_KEY = "va-client-sdk-test-key-5e1f"
RETRY_AFTER_MS = 700


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
                # shutdown wakes the pump blocked in recv on it: close alone would wait for that recv to return.
                sock.shutdown(socket.SHUT_RDWR)
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
        self._started = getattr(self, "_started", 0) + 1
        log = self._logs / f"gateway-{self._started}.log"
        return start_service("gateway", log, *self._args)

    def drain(self) -> None:
        """A new gateway takes the proxy's new connections, then the old one gets SIGTERM (and drains)."""
        replacement = self._start()
        self.proxy.upstream = replacement.address
        self.current.process.send_signal(signal.SIGTERM)
        self.stopped.append(self.current)
        self.current = replacement

    def log_tails(self, chars: int = 3000) -> str:
        return "".join(f"\n--- {g.log.name}:\n{g.log.read_text()[-chars:]}" for g in [*self.stopped, self.current])

    def close(self) -> None:
        self.proxy.close()
        for gateway in [*self.stopped, self.current]:
            gateway.stop()


@pytest.fixture(scope="module")
def sdk_gateways(
    tmp_path_factory: pytest.TempPathFactory,
    asr_server: ServiceProcess,
    piper_server: ServiceProcess,
    llm_server: ServiceProcess,
) -> Iterator[Gateways]:
    folder = tmp_path_factory.mktemp("java-gateways")
    keys = folder / "keys"
    keys.write_text(API_KEY + "\n")
    args = gateway_backend_args(asr_server.address, piper_server.address, llm_server.address)
    args += ["--max-streams", "1", "--api-keys-file", str(keys), "--retry-after-ms", str(RETRY_AFTER_MS)]
    # The backends share two cores with the rest of the suite: a slow token or phrase there is load, not what
    # these tests are about (the SDKs), so the gateway waits longer for them than in production.
    args += ["--llm-timeout-s", "60", "--backend-timeout-s", "60", "--idle-timeout-s", "180"]
    # The barge-in tests check that the SDK's flush stops the audio it has buffered. With the default 500 ms lead,
    # a decision slower than that on a loaded CI machine let the client play all it had ("played 800 of 800"):
    # how soon speech over the agent is decided is bench-turns' to measure, not these tests'.
    args += ["--audio-lead-ms", "3000"]
    # One SQLite store for every gateway the drain starts: the records (and resume) outlive a replica.
    args += ["--shutdown-grace-s", "5", "--records-url", f"sqlite:///{folder / 'records.db'}"]
    stack = Gateways(folder, args)
    yield stack
    stack.close()


@contextlib.contextmanager
def control_server(gateways: Gateways) -> Iterator[str]:
    """POST /drop and /drain for the JUnit tests; yields its URL."""

    class Control(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
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


async def conversation_record(
    gateways: Gateways,
    conversation_id: str,
    ready: Callable[[conversations_pb2.Conversation], bool],
    timeout_s: float = 20,
) -> conversations_pb2.Conversation:
    """The gateway's record of a conversation (its Conversations service, with the key), once ``ready`` says it
    holds what the test looks for: the record is written a few seconds behind the conversation."""
    metadata = (("authorization", f"Bearer {API_KEY}"),)
    async with grpc.aio.insecure_channel(gateways.proxy.address) as channel:
        stub = conversations_pb2_grpc.ConversationsStub(channel)
        deadline = asyncio.get_running_loop().time() + timeout_s
        request = conversations_pb2.GetConversationRequest(conversation_id=conversation_id)
        while True:
            try:
                record = await stub.GetConversation(request, metadata=metadata, timeout=10)
            except grpc.aio.AioRpcError as error:  # NOT_FOUND until its first write
                if error.code() != grpc.StatusCode.NOT_FOUND or asyncio.get_running_loop().time() > deadline:
                    raise
            else:
                if ready(record) or asyncio.get_running_loop().time() > deadline:
                    return record
            await asyncio.sleep(0.5)


def agent_item(record: conversations_pb2.Conversation, turn_id: int) -> conversations_pb2.ConversationItem | None:
    return next((i for i in record.items if i.role == "agent" and i.turn_id == turn_id), None)


def kept_as_heard(item: conversations_pb2.ConversationItem | None, reply: str) -> None:
    """The record keeps an interrupted reply as the client played it: the reply up to the cut, phrase by phrase
    (gateway/turn.py ``heard_text``). Shorter than the reply, unless the reply was one short first phrase
    (at most ``first_phrase_words``: "Let's get started!"), which is heard whole once it starts to play."""
    assert item is not None and item.interrupted, item
    assert reply.startswith(item.heard_text.strip()), (item, reply)
    one_phrase = len(item.text.split()) <= LatencySettings().first_phrase_words
    assert one_phrase or len(item.heard_text) < len(item.text), item
