"""The OpenAI Realtime API's client events (GA names and shapes), and no I/O; the server's are in
server_events.py.

``parse`` reads one client frame into a ``ClientEvent``: a core input (gateway/events.py), a
``SessionUpdate`` over ``SessionChoices``, or ``ClearAudio``; a frame it cannot take raises
``ClientError``, which names the problem and echoes the client's ``event_id``. docs/architecture.md
lists the subset served and what maps to what.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from gateway import events
from gateway.session_settings import SessionChoices
from voice_agent.contract import MAX_SILENCE_MS

#: The only audio either way: PCM16 mono at 24 kHz, the Realtime API's ``audio/pcm``.
SAMPLE_RATE = 24_000
AUDIO_FORMAT = {"type": "audio/pcm", "rate": SAMPLE_RATE}
#: The end-of-turn silence a session may choose (``silence_duration_ms``).
SILENCE_RANGE_MS = (50, MAX_SILENCE_MS)
#: SessionChoices fields by the Realtime session field that sets them, for error messages.
FIELD_NAMES = {
    "system_prompt": "instructions",
    "voice": "audio.output.voice",
    "latency": "audio.input.turn_detection",
    "barge_in": "audio.input.turn_detection.interrupt_response",
    "respond_automatically": "audio.input.turn_detection.create_response",
    "push_to_talk": "audio.input.turn_detection",
}


class ClientError(Exception):
    """A client event the session cannot take; the session goes on."""

    def __init__(self, message: str, *, event_id: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.event_id = event_id
        self.param = param


@dataclass(frozen=True)
class SessionUpdate:
    """A ``session.update``: the SessionChoices fields it sets (``latency``: merged, not replaced)."""

    changes: dict[str, Any]

    def apply(self, choices: SessionChoices) -> SessionChoices:
        changes = dict(self.changes)
        if "latency" in changes:
            changes["latency"] = {**choices.latency, **changes["latency"]}
        return replace(choices, **changes)


@dataclass(frozen=True)
class ClearAudio:
    """``input_audio_buffer.clear``."""


@dataclass(frozen=True)
class CreateItem:
    """A user's typed message (``conversation.item.create``): the input, and the item it becomes."""

    text_in: events.TextIn
    item_id: str | None


@dataclass(frozen=True)
class TruncateItem:
    """``conversation.item.truncate``: the client played ``audio_end_ms`` of an assistant item's audio. The
    socket maps the item to its turn (events.Truncate)."""

    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True)
class ClientEvent:
    type: str
    event_id: str | None
    action: events.Input | SessionUpdate | ClearAudio | CreateItem | TruncateItem


def initial_choices() -> SessionChoices:
    """A socket's choices before any ``session.update``: 24 kHz both ways, the gateway's defaults."""
    return SessionChoices(input_sample_rate=SAMPLE_RATE, output_sample_rate=SAMPLE_RATE)


# ---- client events


def parse(frame: str | bytes) -> ClientEvent:
    """One client frame; raises ClientError naming what is wrong with it."""
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError) as error:
        raise ClientError(f"the frame is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ClientError(f"an event must be a JSON object, got {type(data).__name__}")
    event_id = data.get("event_id")
    if event_id is not None and not isinstance(event_id, str):
        raise ClientError("'event_id' must be a string", param="event_id")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ClientError("an event needs a string 'type'", event_id=event_id, param="type")
    reader = _READERS.get(kind)
    if reader is None:
        served = ", ".join(sorted(_READERS))
        raise ClientError(f"unknown or unsupported event type {_quoted(kind)}: served are {served}", event_id=event_id)
    try:
        return ClientEvent(kind, event_id, reader(data))
    except ClientError as error:
        error.event_id = event_id
        raise


def _append(data: dict[str, Any]) -> events.AudioIn:
    audio = _get(data, "audio", str)
    try:
        pcm = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ClientError(f"'audio' is not valid base64: {error}", param="audio") from None
    if len(pcm) % 2:
        raise ClientError("'audio' must be PCM16 (audio/pcm): an even number of bytes", param="audio")
    return events.AudioIn(pcm)


def _create_item(data: dict[str, Any]) -> CreateItem:
    item = _get(data, "item", dict)
    if item.get("type", "message") != "message" or item.get("role") != "user":
        raise ClientError("only user messages can be created (type 'message', role 'user')", param="item")
    item_id = _get(item, "id", str, "item.id", required=False)
    content = _get(item, "content", list, "item.content")
    texts = []
    for number, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "input_text" or not isinstance(part.get("text"), str):
            raise ClientError(
                "only 'input_text' content with a string 'text' is served", param=f"item.content[{number}]"
            )
        texts.append(part["text"])
    text = " ".join(texts).strip()
    if not text:
        raise ClientError("the message has no text", param="item.content")
    return CreateItem(events.TextIn(text, respond=False), item_id)


def _truncate(data: dict[str, Any]) -> TruncateItem:
    item_id = _get(data, "item_id", str)
    content_index = _get(data, "content_index", int)
    audio_end_ms = _get(data, "audio_end_ms", int)
    if content_index != 0:
        raise ClientError("an assistant item has one content part: content_index must be 0", param="content_index")
    if audio_end_ms < 0:
        raise ClientError("audio_end_ms must be 0 or more", param="audio_end_ms")
    return TruncateItem(item_id, content_index, audio_end_ms)


def _session_update(data: dict[str, Any]) -> SessionUpdate:
    session = _get(data, "session", dict)
    if session.get("type", "realtime") != "realtime":
        raise ClientError("only 'realtime' sessions are served", param="session.type")
    changes: dict[str, Any] = {}
    if "instructions" in session:
        changes["system_prompt"] = _get(session, "instructions", str, "session.instructions")
    if "output_modalities" in session:
        modalities = _get(session, "output_modalities", list, "session.output_modalities")
        if modalities != ["audio"]:
            raise ClientError("only output_modalities ['audio'] is served", param="session.output_modalities")
    audio = _get(session, "audio", dict, "session.audio", required=False) or {}
    for side in ("input", "output"):
        part = _get(audio, side, dict, f"session.audio.{side}", required=False) or {}
        if "format" in part:
            _check_format(part["format"], f"session.audio.{side}.format")
    output = _get(audio, "output", dict, "session.audio.output", required=False) or {}
    if "voice" in output:
        voice = output["voice"]
        if isinstance(voice, dict):
            voice = _get(voice, "id", str, "session.audio.output.voice.id")
        if not isinstance(voice, str):
            raise ClientError("'voice' must be a string or {'id': string}", param="session.audio.output.voice")
        changes["voice"] = voice
    audio_input = _get(audio, "input", dict, "session.audio.input", required=False) or {}
    if "turn_detection" in audio_input:
        changes |= _turn_detection(audio_input["turn_detection"])
    return SessionUpdate(changes)


def _turn_detection(detection: object) -> dict[str, Any]:
    param = "session.audio.input.turn_detection"
    if detection is None:  # the client commits each utterance, and asks for each reply
        return {"push_to_talk": True, "respond_automatically": False}
    if not isinstance(detection, dict):
        raise ClientError("'turn_detection' must be an object or null", param=param)
    kind = detection.get("type")
    if kind not in ("server_vad", "semantic_vad"):
        raise ClientError("turn_detection 'type' must be 'server_vad' or 'semantic_vad'", param=f"{param}.type")
    latency: dict[str, bool | int] = {"adaptive_endpointing": kind == "semantic_vad"}
    changes: dict[str, Any] = {"push_to_talk": False, "respond_automatically": True, "latency": latency}
    for name in ("create_response", "interrupt_response"):
        if detection.get(name) is not None:
            value = _get(detection, name, bool, f"{param}.{name}")
            changes["respond_automatically" if name == "create_response" else "barge_in"] = value
    if detection.get("silence_duration_ms") is not None:
        silence = _get(detection, "silence_duration_ms", int, f"{param}.silence_duration_ms")
        low, high = SILENCE_RANGE_MS
        if not low <= silence <= high:
            raise ClientError(f"silence_duration_ms must be in {low}..{high}", param=f"{param}.silence_duration_ms")
        latency["min_silence_ms"] = silence
    return changes


def _check_format(fmt: object, param: str) -> None:
    if not isinstance(fmt, dict):
        raise ClientError("an audio format must be an object", param=param)
    if fmt.get("type", "audio/pcm") != "audio/pcm" or fmt.get("rate", SAMPLE_RATE) != SAMPLE_RATE:
        raise ClientError(
            f"unsupported audio format {json.dumps(fmt)[:80]}: only audio/pcm at {SAMPLE_RATE} Hz is served",
            param=param,
        )


def _no_fields(action: events.Input | ClearAudio) -> Callable[[dict[str, Any]], events.Input | ClearAudio]:
    return lambda data: action


_READERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "session.update": _session_update,
    "input_audio_buffer.append": _append,
    "input_audio_buffer.commit": _no_fields(events.Commit()),
    "input_audio_buffer.clear": _no_fields(ClearAudio()),
    "conversation.item.create": _create_item,
    "conversation.item.truncate": _truncate,
    "response.create": _no_fields(events.Respond()),
    "response.cancel": _no_fields(events.CancelReply()),
}


def _get(data: dict[str, Any], key: str, kind: type, param: str | None = None, *, required: bool = True) -> Any:
    value = data.get(key)
    if value is None and not required:
        return None
    # bool is an int in Python, never in JSON's sense here.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        what = "missing" if value is None else f"a {type(value).__name__}"
        raise ClientError(
            f"'{param or key}' must be a {_JSON_TYPES.get(kind, kind.__name__)}, got {what}", param=param or key
        )
    return value


_JSON_TYPES = {str: "string", int: "integer", bool: "boolean", dict: "object", list: "array"}


def _quoted(value: str, limit: int = 64) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def changed_fields(before: SessionChoices, after: SessionChoices) -> list[str]:
    """The Realtime session fields that ``after`` sets otherwise than ``before``."""
    names = [FIELD_NAMES[name] for name in FIELD_NAMES if getattr(before, name) != getattr(after, name)]
    return sorted(set(names))
