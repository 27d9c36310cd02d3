"""Locust load test of the gateway's Converse stream: people talking to the coach.

Each simulated user holds conversations: one Converse stream per conversation,
a microphone that streams PCM16 at 16 kHz in 100 ms chunks at real-time pace
(speech during a turn, silence otherwise), recorded spoken questions from
loadtest/audio/, and a think-time pause after each reply, as a person takes.

Reported to locust, per user turn:

- ``grpc`` / ``turn``: response time = e2e_ms on this client's clock, from
  sending the last sample of the user's speech (the ASR's speech-end offset,
  mapped to when that chunk went out) to the first agent audio chunk received;
  the definition of voice_agent.client.converse, whose TurnResult computes it.
  A failure when the gateway sends an ErrorEvent, the stream fails (its gRPC
  code is in the message), or no answer comes within --turn-timeout.
- ``turn_metrics`` / ``llm_ttft`` and ``tts_ttfa``: the gateway's TurnMetrics.
- ``grpc`` / ``interruption``: each time the agent was talked over (--barge-in),
  from sending the first sample of that speech (the ASR's speech-start offset)
  to the gateway's Interruption notice.

Per conversation the gateway refused (RESOURCE_EXHAUSTED before any event: its
session limit or the caller's quota):

- ``session`` / ``refused``: response time = opening the stream to the refusal.
  Not a failure: refusing is what an overloaded gateway should do. The user
  waits the ``retry-after-ms`` the gateway put in the trailing metadata
  (--retry-default-ms without one, at most --retry-max-ms) and tries again.

With --samples FILE, every one of these is also appended to FILE as a JSON line
(exact times, the refusal's code and retry hint): run.py's summary reads it.

Run it against the running stack (``make loadtest``, or see loadtest/README.md):

    locust -f loadtest/locustfile.py --host 127.0.0.1:50051
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import gevent
import grpc
import grpc.experimental.gevent as grpc_gevent
from gevent.event import Event
from gevent.queue import Empty, Queue
from locust import User, events, task
from locust.stats import CSV_STATS_INTERVAL_SEC

from voice_agent.audio import PCM16_SAMPLE_BYTES, Pcm16Audio, read_wav
from voice_agent.client.converse import CHUNK_MS, TurnResult, session_config
from voice_agent.errors import RETRY_AFTER_KEY  # the gateway's retry hint on a refusal (milliseconds)
from voice_agent.v1 import gateway_pb2, gateway_pb2_grpc

# grpc's sync API blocks on its completion queue; this makes it yield to gevent,
# so that many users share one locust process. It must run before any channel exists.
grpc_gevent.init_gevent()

AUDIO_DIR = Path(__file__).resolve().parent / "audio"
SAMPLE_RATE = 16_000
DEFAULT_HOST = "127.0.0.1:50051"
# After the first agent audio: how long a reply may take to be spoken (the gateway paces it in real time).
REPLY_MAX_S = 120.0
CLOSE_WAIT_S = 5.0


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    """The scenario's settings: flags, or LOADTEST_* environment variables (the web UI shows them too)."""
    parser.add_argument("--turns", type=int, default=3, env_var="LOADTEST_TURNS", help="User turns per conversation")
    parser.add_argument(
        "--pause-min", type=float, default=1.0, env_var="LOADTEST_PAUSE_MIN_S", help="Shortest think time (s)"
    )
    parser.add_argument(
        "--pause-max", type=float, default=3.0, env_var="LOADTEST_PAUSE_MAX_S", help="Longest think time (s)"
    )
    parser.add_argument(
        "--turn-timeout",
        type=float,
        default=15.0,
        env_var="LOADTEST_TURN_TIMEOUT_S",
        help="Seconds from the end of the user's speech to the first agent audio before the turn fails",
    )
    parser.add_argument(
        "--barge-in",
        type=float,
        default=0.0,
        env_var="LOADTEST_BARGE_IN",
        help="Share of turns (0..1) in which the user talks over the agent's reply",
    )
    parser.add_argument(
        "--token", default="", env_var="LOADTEST_TOKEN", is_secret=True, help="Bearer token sent as metadata"
    )
    parser.add_argument(
        "--tls",
        type=lambda text: text.strip().lower() in {"1", "true", "yes", "on"},
        default=False,
        env_var="LOADTEST_TLS",
        help="true: TLS to the gateway (as behind Envoy); a grpcs:// host implies it",
    )
    parser.add_argument(
        "--tls-ca", default="", env_var="LOADTEST_TLS_CA", help="PEM file of the root certificates to trust"
    )
    parser.add_argument(
        "--retry-default-ms",
        type=float,
        default=1000.0,
        env_var="LOADTEST_RETRY_DEFAULT_MS",
        help=f"Wait after a refused conversation whose refusal has no {RETRY_AFTER_KEY} trailer (ms)",
    )
    parser.add_argument(
        "--retry-max-ms",
        type=float,
        default=10_000.0,
        env_var="LOADTEST_RETRY_MAX_MS",
        help=f"Longest wait after a refused conversation, whatever its {RETRY_AFTER_KEY} says (ms)",
    )
    parser.add_argument(
        "--samples",
        default="",
        env_var="LOADTEST_SAMPLES",
        help="Append every turn, stage time and refusal to this file, one JSON object a line",
    )


@events.test_stop.add_listener
def _flush_csv(environment, **_kwargs) -> None:
    """locust's CSV writer writes once a second and not at exit: give it one more tick, so that the
    turns that finished during --stop-timeout are in the CSV files too."""
    if environment.parsed_options and environment.parsed_options.csv_prefix:
        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.2)


# The --samples file, open during the test: locust's CSV keeps only rounded percentiles, and no gRPC
# codes or retry hints.
_samples: list[TextIO] = []


@events.test_start.add_listener
def _open_samples(environment, **_kwargs) -> None:
    path = environment.parsed_options.samples if environment.parsed_options else ""
    if path and not _samples:
        # Appending: with --processes, every worker writes its own lines to the same file.
        _samples.append(open(path, "a", buffering=1))  # noqa: SIM115 - open for the whole run


@events.request.add_listener
def _write_sample(request_type: str, name: str, response_time: float, response_length: int, **kwargs: Any) -> None:
    if not _samples:
        return
    exception, context = kwargs.get("exception"), kwargs.get("context") or {}
    row = {"type": request_type, "name": name, "ms": round(response_time, 1), "bytes": response_length}
    row["error"] = str(exception) if exception is not None else None
    _samples[0].write(json.dumps({**row, **context}) + "\n")


@events.quitting.add_listener
def _close_samples(**_kwargs) -> None:
    while _samples:
        _samples.pop().close()


def _recorded_turns() -> tuple[list[Pcm16Audio], Pcm16Audio]:
    questions = [read_wav(path) for path in sorted(AUDIO_DIR.glob("question-*.wav"))]
    if not questions:
        raise FileNotFoundError(f"no question-*.wav under {AUDIO_DIR}: run loadtest/make_audio.py")
    barge_in = read_wav(AUDIO_DIR / "barge-in.wav")
    for audio in (*questions, barge_in):
        if audio.sample_rate != SAMPLE_RATE:
            raise ValueError(f"the recorded turns must be {SAMPLE_RATE} Hz mono, not {audio.sample_rate} Hz")
    return questions, barge_in


QUESTIONS, BARGE_IN = _recorded_turns()


class TurnFailed(Exception):
    """A user turn without a proper answer; the message names the gRPC code."""


class SessionRefused(Exception):
    """The gateway refused the conversation before any event (RESOURCE_EXHAUSTED: its session limit or the
    caller's quota): ``after_ms`` from opening the stream, and the gateway's retry hint (None: it gave none)."""

    def __init__(self, code: str, message: str, retry_after_ms: int | None, after_ms: float) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.after_ms = after_ms
        self.retry_after_ms = retry_after_ms

    @classmethod
    def of_status(cls, error: grpc.RpcError, after_ms: float) -> SessionRefused:
        return cls(error.code().name, error.details(), retry_hint(error), after_ms)

    @classmethod
    def of_event(cls, error: gateway_pb2.ErrorEvent, after_ms: float) -> SessionRefused:
        """The gateway's error event that precedes its status: it arrives even where grpc reports a made-up
        INTERNAL for the status (grpc/grpc#36066: the microphone was still writing)."""
        hint = error.retry_after_ms if error.HasField("retry_after_ms") else None
        return cls(error.code, error.message, hint, after_ms)


def retry_hint(error: grpc.RpcError) -> int | None:
    """The gateway's ``retry-after-ms`` trailer, when it sent a sane one."""
    for key, value in error.trailing_metadata() or ():
        if key == RETRY_AFTER_KEY:
            try:
                hint = int(value)
            except (TypeError, ValueError):
                return None
            return hint if hint >= 0 else None
    return None


class ConverseSession:
    """One Converse stream driven from greenlets: the sync twin of voice_agent.client.converse.Conversation.

    grpc consumes ``_requests`` (the microphone: speech when queued, else silence,
    one 100 ms chunk at a time at real-time pace) in a greenlet of its own; a
    reader greenlet collects the gateway's events with their arrival times, as
    TurnResult expects them.
    """

    def __init__(self, channel: grpc.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._stub = gateway_pb2_grpc.GatewayStub(channel)
        self._metadata = metadata or None
        self._silence = b"\0" * (SAMPLE_RATE * CHUNK_MS // 1000 * PCM16_SAMPLE_BYTES)
        self._speech: Queue[bytes] = Queue()
        self._arrived = Event()
        self._ending = False
        self.events: list[tuple[float, gateway_pb2.ConverseResponse]] = []
        self.sent_at_ms: dict[int, float] = {}  # audio offset (ms) -> when that chunk was sent
        self.failure: grpc.RpcError | None = None
        self.closed = False
        self.opened_at = 0.0
        self.closed_at = 0.0

    def open(self) -> None:
        self.opened_at = time.perf_counter()
        self._call = self._stub.Converse(self._requests(), metadata=self._metadata)
        self._reader = gevent.spawn(self._read)

    def close(self) -> None:
        """Ends the conversation (EndSession and half-close); the gateway closes the stream."""
        self._ending = True
        self._reader.join(CLOSE_WAIT_S)
        self.cancel()

    def cancel(self) -> None:
        self._ending = True
        self._call.cancel()
        self._reader.kill(block=False)

    def speak(self, audio: Pcm16Audio, timeout_s: float, barge_in: Pcm16Audio | None = None) -> TurnResult:
        """Says ``audio`` (and ``barge_in`` over the agent's first audio); returns this turn's events once
        the agent's answer ended. Raises TurnFailed on an error event, a failed stream or no answer in time,
        and SessionRefused when the gateway did not admit the conversation."""
        start = len(self.events)
        first_turn_id: list[int] = []

        def agent_audio() -> bool:  # or an answer without audio, which TurnResult.metrics() cannot time
            first_turn_id[:] = [e.agent_audio.turn_id for _, e in self.events[start:] if e.HasField("agent_audio")][:1]
            return bool(first_turn_id) or (barge_in is None and answered())

        def answered() -> bool:
            # With a barge-in the answer is a later turn than the one talked over.
            return any(
                e.HasField("turn_metrics")
                and not e.turn_metrics.interrupted
                and (barge_in is None or not first_turn_id or e.turn_metrics.turn_id > first_turn_id[0])
                for _, e in self.events[start:]
            )

        no_answer = f"no agent audio within {timeout_s:g} s of the end of the user's speech"
        self._say(audio)
        self._wait(start, agent_audio, audio.duration_ms / 1000 + timeout_s, no_answer)
        if barge_in is not None:
            self._say(barge_in)
            self._wait(start, answered, barge_in.duration_ms / 1000 + timeout_s + REPLY_MAX_S, no_answer)
        else:
            self._wait(start, answered, REPLY_MAX_S, f"the reply did not end within {REPLY_MAX_S:g} s")
        return TurnResult(self.events[start:], self.sent_at_ms)

    def _say(self, audio: Pcm16Audio) -> None:
        for chunk in audio.chunks(CHUNK_MS, pad=True):  # full 100 ms buffers keep the audio clock exact
            self._speech.put(chunk)

    def _wait(self, start: int, done: Callable[[], bool], timeout_s: float, late: str) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self._arrived.clear()
            if (refused := self._refused_by_event()) is not None:
                raise refused
            errors = [e.error for _, e in self.events[start:] if e.HasField("error")]
            if errors:
                error = errors[0]
                raise TurnFailed(f"{error.code} from {error.backend or 'gateway'}: {error.message}")
            if done():
                return
            if self.closed:
                if (refusal := self.refusal()) is not None:
                    raise SessionRefused.of_status(refusal, (self.closed_at - self.opened_at) * 1000)
                if self.failure is not None:
                    raise TurnFailed(f"stream failed: {self.failure.code().name}: {self.failure.details()}")
                raise TurnFailed("stream closed by the gateway mid-conversation")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TurnFailed(f"DEADLINE_EXCEEDED: {late}")
            self._arrived.wait(left)

    def _read(self) -> None:
        try:
            for event in self._call:
                self.events.append((time.perf_counter(), event))
                self._arrived.set()
        except grpc.RpcError as error:
            if not self._ending:
                self.failure = error
        finally:
            self.closed_at = time.perf_counter()
            self.closed = True
            self._arrived.set()

    def _refused_by_event(self) -> SessionRefused | None:
        """The gateway's refusal, as its first event: a RESOURCE_EXHAUSTED error from the gateway."""
        if not self.events:
            return None
        at, first = self.events[0]
        error = first.error
        if not first.HasField("error") or error.backend != "gateway" or error.code != "RESOURCE_EXHAUSTED":
            return None
        return SessionRefused.of_event(error, (at - self.opened_at) * 1000)

    def refusal(self) -> grpc.RpcError | None:
        """The gateway's refusal of the conversation: RESOURCE_EXHAUSTED before it sent anything. (The same
        code later in a conversation is a failure of that conversation, not a refusal.)"""
        failure = self.failure
        if failure is None or self.events or failure.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
            return None
        return failure

    def _requests(self) -> Iterator[gateway_pb2.ConverseRequest]:
        yield gateway_pb2.ConverseRequest(config=session_config(SAMPLE_RATE))
        started = time.perf_counter()
        offset_ms = 0
        while not self._ending:
            try:
                chunk = self._speech.get_nowait()
            except Empty:
                chunk = self._silence
            gevent.sleep(max(0.0, started + offset_ms / 1000 - time.perf_counter()))
            self.sent_at_ms[offset_ms] = time.perf_counter()
            offset_ms += CHUNK_MS
            yield gateway_pb2.ConverseRequest(audio=chunk)
        yield gateway_pb2.ConverseRequest(end=gateway_pb2.ConverseRequest.EndSession())


def gateway_channel(host: str | None, *, tls: bool, ca_file: str) -> grpc.Channel:
    """A channel of its own (its own connection, as each phone has) to ``host:port``; grpcs:// means TLS."""
    target = host or DEFAULT_HOST
    scheme, _, rest = target.partition("://")
    if rest:
        target, tls = rest.rstrip("/"), tls or scheme in ("grpcs", "https")
    options = [("grpc.use_local_subchannel_pool", 1)]
    if not tls:
        return grpc.insecure_channel(target, options=options)
    roots = Path(ca_file).read_bytes() if ca_file else None
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=roots), options=options)


class ConverseUser(User):
    """A person in coaching conversations: --turns spoken questions per Converse stream, a think-time pause
    (--pause-min..--pause-max s) after each reply, then a new conversation. A refused conversation is
    tried again after the gateway's retry hint instead of the think time."""

    _retry_after_s: float | None = None

    def wait_time(self) -> float:
        # Locust calls this between tasks too, so a refused conversation's retry wait is taken here:
        # a stopping test interrupts it like any think time.
        if self._retry_after_s is not None:
            wait_s, self._retry_after_s = self._retry_after_s, None
            return wait_s
        options = self.environment.parsed_options
        return random.uniform(options.pause_min, options.pause_max)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self._channel = gateway_channel(self.host, tls=options.tls, ca_file=options.tls_ca)
        self._metadata = (("authorization", f"Bearer {options.token}"),) if options.token else ()

    def on_stop(self) -> None:
        self._channel.close()

    @task
    def conversation(self) -> None:
        options = self.environment.parsed_options
        session = ConverseSession(self._channel, self._metadata)
        session.open()
        try:
            for number in range(options.turns):
                if number:
                    self.wait()  # thinking after the reply (a stopping test ends the conversation here)
                barge_in = BARGE_IN if random.random() < options.barge_in else None
                if not self._turn(session, random.choice(QUESTIONS), barge_in, options.turn_timeout):
                    break
        except SessionRefused as refusal:
            session.cancel()  # the stream ends with the refusal's status: a no-op but for the reader greenlet
            self._refused(refusal)
            return
        except BaseException:
            session.cancel()  # the test is stopping (StopUser, GreenletExit): the stream is cancelled
            raise
        session.close()

    def _turn(self, session: ConverseSession, audio: Pcm16Audio, barge_in: Pcm16Audio | None, timeout: float) -> bool:
        """One user turn, reported; False when the conversation cannot go on."""
        started = time.perf_counter()
        try:
            result = session.speak(audio, timeout, barge_in)
        except TurnFailed as failure:
            # For a failure, the time from the end of the user's speech to the failure.
            waited_ms = max(0.0, (time.perf_counter() - started) * 1000 - audio.duration_ms)
            self._fire("grpc", "turn", waited_ms, 0, failure)
            return False  # a new conversation: what is left of this one could spill into the next turn
        self._report_interruptions(result)
        metrics = result.metrics()
        answer = result.answer()
        if "e2e_ms" not in metrics or answer is None:
            self._fire("grpc", "turn", 0.0, 0, TurnFailed("answered without audio, or without a speech-ended event"))
            return False
        reply_bytes = sum(
            len(e.agent_audio.audio) for _, e in result.of("agent_audio") if e.agent_audio.turn_id == answer.turn_id
        )
        self._fire("grpc", "turn", metrics["e2e_ms"], reply_bytes)
        self._fire("turn_metrics", "llm_ttft", metrics["llm_ttft_ms"], answer.llm_tokens)
        self._fire("turn_metrics", "tts_ttfa", metrics["tts_ttfa_ms"], 0)
        return True

    def _refused(self, refusal: SessionRefused) -> None:
        """Reports a refused conversation (not as a failure) and sets the wait before the next try."""
        options = self.environment.parsed_options
        hint = refusal.retry_after_ms
        wait_ms = min(float(hint) if hint is not None else options.retry_default_ms, options.retry_max_ms)
        self._retry_after_s = max(0.0, wait_ms) / 1000
        context = {"code": refusal.code, "retry_after_ms": hint, "waited_ms": round(wait_ms, 1)}
        self._fire("session", "refused", refusal.after_ms, 0, context=context)

    def _report_interruptions(self, result: TurnResult) -> None:
        """Each Interruption, timed from when the first sample of the speech that talked over the agent was
        sent (the ASR's speech-start offset, mapped to the send time of its chunk) to the notice."""
        speech_sent_at = None
        for at, event in result.events:
            if event.HasField("speech_started"):
                speech_sent_at = result.sent_at_ms.get(event.speech_started.offset_ms // CHUNK_MS * CHUNK_MS)
            elif event.HasField("interruption") and speech_sent_at is not None:
                self._fire("grpc", "interruption", (at - speech_sent_at) * 1000, len(event.interruption.heard_text))

    def _fire(
        self,
        kind: str,
        name: str,
        response_time: float,
        length: int,
        exception: Exception | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.environment.events.request.fire(
            request_type=kind,
            name=name,
            response_time=response_time,
            response_length=length,
            exception=exception,
            context=context or {},
        )
