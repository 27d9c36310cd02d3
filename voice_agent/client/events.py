"""The Python SDK's typed events (``VoiceSession`` yields them) and its reconnection policy."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

#: Codes that are never retried: the caller must change something first (or the session's limits ended it).
NOT_RETRIED = frozenset(
    {"UNAUTHENTICATED", "PERMISSION_DENIED", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "UNIMPLEMENTED"}
)


@dataclass(frozen=True)
class SessionStarted:
    """A stream started (also after each reconnection): the conversation's id, and whether it was resumed."""

    conversation_id: str
    resumed: bool
    resume_window_s: int
    last_turn_id: int


@dataclass(frozen=True)
class SpeechStarted:
    offset_ms: int  # in this stream's audio


@dataclass(frozen=True)
class SpeechEnded:
    offset_ms: int


@dataclass(frozen=True)
class Transcript:
    text: str
    final: bool


@dataclass(frozen=True)
class AgentText:
    turn_id: int
    delta: str


@dataclass(frozen=True)
class AgentAudio:
    """A chunk of the reply (PCM16LE mono), already handed to the playout."""

    turn_id: int
    pcm16: bytes
    sample_rate: int


@dataclass(frozen=True)
class InterruptionDecision:
    """What speech over the agent was: interruption, backchannel, noise or echo."""

    turn_id: int
    kind: str
    text: str


@dataclass(frozen=True)
class Interrupted:
    """The user interrupted the agent: the playout was flushed after ``played_ms`` of the reply, and the
    gateway was told (it keeps only the heard part in the history). ``heard_text``: the gateway's estimate."""

    turn_id: int
    heard_text: str
    played_ms: int


@dataclass(frozen=True)
class TurnMetrics:
    """The gateway's stages (wall-clock ms) and ``e2e_ms`` on this client's clock: from when the last audio
    before the end of speech (or the typed text) was sent to when the reply started playing (None: unmeasured)."""

    turn_id: int
    vad_wait_ms: float
    asr_ms: float
    llm_ttft_ms: float
    tts_ttfa_ms: float
    gateway_first_audio_ms: float
    llm_tokens: int
    interrupted: bool
    preemptive: bool
    e2e_ms: float | None


@dataclass(frozen=True)
class Error:
    """The gateway's error event (the stream's real status, also where grpc reports a made-up INTERNAL:
    grpc/grpc#36066), or the transport's status (backend "transport") where no event came.
    Backend asr/llm/tts: one turn failed, the session goes on."""

    code: str
    message: str
    retry_after_ms: int | None = None
    backend: str = "gateway"
    turn_id: int = 0


@dataclass(frozen=True)
class Reconnecting:
    """The stream ended with ``cause``; the next one starts in ``delay_ms`` (attempt 0: a fresh conversation,
    the old one could not be resumed)."""

    attempt: int
    delay_ms: float
    cause: Error


@dataclass(frozen=True)
class Closed:
    """The session is over: ``error`` None after ``close()``, or why it could not go on. The last event."""

    error: Error | None


Event = (
    SessionStarted
    | SpeechStarted
    | SpeechEnded
    | Transcript
    | AgentText
    | AgentAudio
    | InterruptionDecision
    | Interrupted
    | TurnMetrics
    | Error
    | Reconnecting
    | Closed
)


@dataclass
class ReconnectPolicy:
    """Capped exponential back-off for a lost transport, each wait drawn between half and all of the cap (so
    that clients do not come back together); exactly the server's retry_after_ms when it gave one (0 on a
    drain: at once); never for the codes in NOT_RETRIED; at most ``max_attempts`` in a row."""

    initial_ms: float = 250.0
    max_ms: float = 8_000.0
    max_attempts: int = 10
    random: random.Random = field(default_factory=random.Random)

    def delay_ms(self, attempt: int, cause: Error) -> float | None:
        """The wait before attempt ``attempt`` (1, 2, ...); None: do not reconnect."""
        if attempt > self.max_attempts or cause.code in NOT_RETRIED or cause.code == "OK":
            return None
        if cause.retry_after_ms is not None:
            return float(cause.retry_after_ms)
        cap = min(self.max_ms, self.initial_ms * 2 ** min(attempt - 1, 20))
        return self.random.uniform(cap / 2, cap)
