"""The record of one conversation, as the stores keep it (docs/conversations.md).

Times on the conversation clock are ms from the conversation's start: the recording's timeline. Wall
times are Unix ms.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

#: A recording's audio (docs/conversations.md, "The recording"): its segments are raw PCM, 16-bit signed
#: little-endian, two interleaved channels (left: the user, right: the agent), at this rate, back to back on
#: the conversation clock (sample 0 is the conversation's start; silence is zeros, never a gap).
RECORDING_SAMPLE_RATE_HZ = 24000
RECORDING_CHANNELS = 2
RECORDING_SAMPLE_BYTES = 2
RECORDING_FRAME_BYTES = RECORDING_CHANNELS * RECORDING_SAMPLE_BYTES


class Status(enum.StrEnum):
    ACTIVE = "active"  # a stream is serving it
    DETACHED = "detached"  # its connection dropped: resumable within the resume window
    ENDED = "ended"  # the client ended it, or the resume window passed


class Role(enum.StrEnum):
    USER = "user"
    AGENT = "agent"


@dataclass(frozen=True)
class Item:
    """One thing said. ``item_id`` is unique within the conversation and stable, so a write is idempotent."""

    item_id: str  # "u<utterance>" / "a<turn>"
    role: Role
    text: str  # the agent's: the whole reply as generated
    start_ms: int
    end_ms: int
    turn_id: int = 0
    interrupted: bool = False
    heard_text: str = ""  # an interrupted agent item: what the user heard (the history keeps this)
    heard: bool = True  # False: produced while the client was away, never delivered
    metrics: dict[str, object] = field(default_factory=dict)  # TurnMetrics and turn-taking decisions


@dataclass(frozen=True)
class Header:
    """Who and how: written when the conversation starts."""

    conversation_id: str
    caller: str  # the caller's identity from auth; "anonymous" with auth off
    persona: str
    settings: dict[str, object]  # what a resume restores (SessionSettings, as JSON)
    started_at_ms: int


@dataclass
class Record:
    header: Header
    status: Status = Status.ACTIVE
    updated_at_ms: int = 0  # the last write: a detached conversation is resumable until this + the window
    ended_at_ms: int = 0
    last_turn_id: int = 0
    summary: str = ""  # written by the LLM when the conversation ended (memory on)
    recording_key: str = ""  # the recording store's key; "": no recording
    items: list[Item] = field(default_factory=list)  # by start_ms

    @property
    def conversation_id(self) -> str:
        return self.header.conversation_id
