"""The conversation core's typed inputs and events.

A front (the gRPC ``Converse`` adapter in serving.py, and any other) turns what its
client sends into inputs, and the events the conversation emits into its own wire
format. Nothing here knows a wire format; the field names follow the gateway's
contract (docs/architecture.md), so that a front's conversion is a copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# ---- inputs: what the user does


@dataclass(frozen=True)
class AudioIn:
    """A chunk of the user's microphone audio: PCM16 at the session's input rate."""

    pcm: bytes


@dataclass(frozen=True)
class TextIn:
    """Typed user text: a turn of its own."""

    text: str
    respond: bool = True  # False: it joins the history as the user's, and a Respond starts the reply


@dataclass(frozen=True)
class Commit:
    """The user's audio so far is a finished utterance (push to talk): the ASR ends it now."""


@dataclass(frozen=True)
class Respond:
    """Reply now, to the history as it is."""


@dataclass(frozen=True)
class CancelReply:
    """Stop the reply in flight, as a barge-in does: the history keeps what was heard."""


@dataclass(frozen=True)
class EndOfInput:
    """The user is done: the utterance in progress is finished, then the conversation ends."""


@dataclass(frozen=True)
class Truncate:
    """How much of a turn's reply audio the client played before it stopped (an interruption flushed its
    playout): the history keeps the text of that much. The client's measure beats the gateway's estimate."""

    turn_id: int
    audio_end_ms: int  # from the turn's first AgentAudio


Input = AudioIn | TextIn | Commit | Respond | CancelReply | EndOfInput | Truncate

# ---- events: what the client hears


@dataclass(frozen=True)
class SessionStarted:
    """The first event of every conversation: its id, to resume it with after a dropped connection."""

    conversation_id: str
    resumed: bool = False  # an earlier stream's conversation, resumed
    resume_window_s: int = 0  # how long after a dropped connection it can be resumed
    last_turn_id: int = 0  # the last turn id used so far: the next agent turn is above it


@dataclass(frozen=True)
class SpeechStarted:
    utterance_id: int
    offset_ms: int  # in the session's input audio, since its ASR stream began


@dataclass(frozen=True)
class SpeechEnded:
    utterance_id: int
    offset_ms: int
    decision_offset_ms: int  # how much audio the decision had heard: offset_ms + the end-of-turn wait
    reason: str  # silence, max_duration or end_of_stream
    #: When the speech ended, by the gateway's clock of the audio it received (perf_counter; the Listener's
    #: AudioClock, the one clock of every front); None where that audio is no longer remembered.
    at: float | None = None


@dataclass(frozen=True)
class Transcript:
    utterance_id: int
    text: str
    final: bool  # else an interim, which a later one replaces
    start_ms: int = 0
    end_ms: int = 0
    processing_ms: float = 0.0
    inference_ms: float = 0.0
    reused: bool = False  # the final is its pause's transcript, not transcribed again


@dataclass(frozen=True)
class AgentText:
    turn_id: int
    delta: str


@dataclass(frozen=True)
class AgentAudio:
    turn_id: int
    sequence_number: int
    audio: bytes
    sample_rate_hz: int
    text_start: int  # the characters of the reply this audio speaks
    text_end: int


@dataclass(frozen=True)
class Interruption:
    turn_id: int
    heard_text: str  # what of the reply had started playing: the history keeps this much


@dataclass(frozen=True)
class Truncated:
    """A Truncate applied: the history now keeps ``heard_text`` of the turn's reply."""

    turn_id: int
    audio_end_ms: int
    heard_text: str


@dataclass(frozen=True)
class InterruptionDecision:
    """What speech that began over the agent was: interruption, backchannel, noise or echo."""

    turn_id: int
    kind: str
    decision_ms: float  # from the speech's start, by the audio's clock, to the decision
    text: str = ""  # the transcript it was decided on


@dataclass(frozen=True)
class TurnMetrics:
    """A turn's timings under the names of docs/architecture.md, as the gateway measures them."""

    turn_id: int
    vad_wait_ms: float
    asr_ms: float
    llm_ttft_ms: float
    tts_ttfa_ms: float
    gateway_first_audio_ms: float
    llm_tokens: int
    interrupted: bool
    preemptive: bool


@dataclass(frozen=True)
class Error:
    """A failure the conversation survives (a backend's, or one bad message), or the one that ends it."""

    code: str  # a gRPC status code's name
    message: str
    backend: str = "gateway"  # asr, llm, tts or gateway
    turn_id: int = 0  # the turn it failed; 0: none


Event = (
    SessionStarted
    | SpeechStarted
    | SpeechEnded
    | Transcript
    | AgentText
    | AgentAudio
    | Interruption
    | Truncated
    | InterruptionDecision
    | TurnMetrics
    | Error
)
Emit = Callable[[Event], None]
