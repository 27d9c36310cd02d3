"""The OpenAI Realtime API's server events (GA names and shapes), from the conversation's events; no I/O.

``error_event`` and ``session_object`` (a session as ``session.created`` / ``session.updated`` carry it)
build single events. ``Translator`` turns the conversation's events into server event dicts, in order:
user items per utterance, one response per agent turn (``response.created`` ... ``response.done``), the
turn's timings in ``response.metadata``. Events go out without ``event_id``, which the socket adds.
docs/architecture.md lists the subset served and what maps to what.
"""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gateway import events
from gateway.realtime.protocol import AUDIO_FORMAT, SAMPLE_RATE, ClientError
from gateway.session_settings import SessionChoices, SessionSettings
from voice_agent.audio import float_to_pcm16, pcm16_to_float, resample


def error_event(
    message: str,
    *,
    kind: str = "invalid_request_error",
    code: str | None = None,
    event_id: str | None = None,
    param: str | None = None,
    retry_after_ms: int | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "code": code, "message": message, "param": param, "event_id": event_id}
    if retry_after_ms is not None:
        error["retry_after_ms"] = retry_after_ms  # an extension: when to try again
    return {"type": "error", "error": error}


def session_object(session_id: str, model: str, choices: SessionChoices, settings: SessionSettings) -> dict[str, Any]:
    """A session as ``session.created`` and ``session.updated`` describe it: what is in effect."""
    plan = settings.plan
    detection: dict[str, Any] | None = None
    if not choices.push_to_talk:
        detection = {
            "type": "semantic_vad" if plan.adaptive_endpointing else "server_vad",
            "create_response": settings.respond_automatically,
            "interrupt_response": settings.barge_in,
            "silence_duration_ms": plan.min_silence_ms,
        }
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": settings.system_prompt,
        "audio": {
            "input": {"format": dict(AUDIO_FORMAT), "transcription": None, "turn_detection": detection},
            "output": {"format": dict(AUDIO_FORMAT), "voice": settings.voice or "default", "speed": 1.0},
        },
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
    }


def _item(item_id: str, role: str, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": role,
        "status": status,
        "content": content,
    }


@dataclass
class _Response:
    response_id: str
    item_id: str
    turn_id: int
    text: str = ""
    heard: str | None = None  # set by an interruption
    first_audio_at: float | None = None
    speech_end_at: float | None = None  # the end of the user's speech it answers, by the gateway's clock


@dataclass
class _Spoken:
    turn_id: int
    audio_ms: float = 0.0


#: Assistant items a conversation.item.truncate may still name (as the core keeps its recent turns).
RECENT_ITEMS = 8


@dataclass
class _Utterance:
    item_id: str
    interim: str = ""


@dataclass
class Translator:
    """The conversation's events as Realtime server events, in order; one socket's state."""

    clock: Callable[[], float] = time.perf_counter
    conversation_id: str = "conv_default"
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _utterances: dict[int, _Utterance] = field(default_factory=dict)
    _response: _Response | None = None
    _last_turn: int = 0
    _last_item: str | None = None
    _cancel_requested: bool = False
    _speech_end_at: float | None = None
    #: The assistant items a client may truncate: the turn of each and its audio so far (ms), latest last.
    _spoken: dict[str, _Spoken] = field(default_factory=dict)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    @property
    def responding(self) -> bool:
        return self._response is not None

    def cancel_requested(self) -> None:
        self._cancel_requested = True

    def truncation(self, item_id: str, audio_end_ms: int) -> events.Truncate:
        """The core's input for ``conversation.item.truncate``; ClientError as OpenAI's server answers a bad one."""
        spoken = self._spoken.get(item_id)
        if spoken is None:
            raise ClientError(f"no assistant item with id {item_id!r} to truncate", param="item_id")
        if audio_end_ms > spoken.audio_ms + 20:  # a client's rounding
            raise ClientError(
                f"audio_end_ms {audio_end_ms} is past the {spoken.audio_ms:.0f} ms of audio the item has",
                param="audio_end_ms",
            )
        return events.Truncate(spoken.turn_id, audio_end_ms)

    def user_text(self, item_id: str | None, text: str) -> list[dict[str, Any]]:
        """A typed user message, as ``conversation.item.added`` and ``.done``."""
        item = _item(item_id or self.new_id("item"), "user", "completed", [{"type": "input_text", "text": text}])
        return self._added(item, done=True)

    def translate(self, event: events.Event) -> list[dict[str, Any]]:
        match event:
            case events.SessionStarted():
                return []  # session.created carried the id already (session.id)
            case events.SpeechStarted():
                utterance = self._utterances[event.utterance_id] = _Utterance(self.new_id("item"))
                return [
                    {
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": event.offset_ms,
                        "item_id": utterance.item_id,
                    }
                ]
            case events.SpeechEnded():
                utterance = self._utterance(event.utterance_id)
                self._speech_end_at = event.at  # the core's clock of the audio: no second clock here
                item = _item(utterance.item_id, "user", "in_progress", [{"type": "input_audio", "transcript": None}])
                return [
                    {
                        "type": "input_audio_buffer.speech_stopped",
                        "audio_end_ms": event.offset_ms,
                        "item_id": item["id"],
                    },
                    {
                        "type": "input_audio_buffer.committed",
                        "item_id": item["id"],
                        "previous_item_id": self._last_item,
                    },
                    *self._added(item),
                ]
            case events.Transcript(final=False):
                utterance = self._utterance(event.utterance_id)
                text, before = event.text, utterance.interim
                utterance.interim = text
                if not text.startswith(before) or text == before:
                    return []  # a revision: the completed transcript will carry it
                return [self._transcription_delta(utterance.item_id, text[len(before) :])]
            case events.Transcript(final=True):
                utterance = self._utterances.pop(event.utterance_id, None) or _Utterance(self.new_id("item"))
                seconds = max(event.end_ms - event.start_ms, 0) / 1000
                content = [{"type": "input_audio", "transcript": event.text}]
                return [
                    {
                        "type": "conversation.item.input_audio_transcription.completed",
                        "item_id": utterance.item_id,
                        "content_index": 0,
                        "transcript": event.text,
                        "usage": {"type": "duration", "seconds": seconds},
                    },
                    {"type": "conversation.item.done", "item": _item(utterance.item_id, "user", "completed", content)},
                ]
            case events.AgentText():
                out, response = self._open(event.turn_id)
                if response is None:
                    return out
                response.text += event.delta
                return [*out, self._part_event(response, "response.output_audio_transcript.delta", delta=event.delta)]
            case events.AgentAudio():
                out, response = self._open(event.turn_id)
                if response is None:
                    return out
                if response.first_audio_at is None:
                    response.first_audio_at = self.clock()
                audio = _at_24k(event.audio, event.sample_rate_hz)
                self._spoken[response.item_id].audio_ms += len(audio) / 2 / SAMPLE_RATE * 1000
                delta = base64.b64encode(audio).decode()
                return [*out, self._part_event(response, "response.output_audio.delta", delta=delta)]
            case events.Interruption():
                out, response = self._open(event.turn_id)
                if response is not None:
                    response.heard = event.heard_text
                return out
            case events.Truncated():
                item_id = next((i for i, s in self._spoken.items() if s.turn_id == event.turn_id), None)
                if item_id is None:
                    return []
                return [
                    {
                        "type": "conversation.item.truncated",
                        "item_id": item_id,
                        "content_index": 0,
                        "audio_end_ms": event.audio_end_ms,
                    }
                ]
            case events.InterruptionDecision():
                return []  # the Realtime API has no such event: the decision shows in the metrics only
            case events.TurnMetrics():
                out, response = self._open(event.turn_id)
                if response is None:
                    return out
                status = "cancelled" if event.interrupted or response.heard is not None else "completed"
                metadata = self._metadata(event, response)
                if status == "completed" and response.first_audio_at is None:  # never a silent success
                    return [*out, *self._close(response, "failed", metadata=metadata, error=NO_OUTPUT)]
                return [*out, *self._close(response, status, metadata=metadata)]
            case events.Error():
                if event.turn_id and event.turn_id >= self._last_turn:
                    out, response = self._open(event.turn_id)
                    if response is not None:
                        failure = {"type": "server_error", "code": event.code, "message": event.message}
                        return [*out, _core_error(event), *self._close(response, "failed", error=failure)]
                return [_core_error(event)]
        return []

    # ---- user items

    def _utterance(self, utterance_id: int) -> _Utterance:
        if utterance_id not in self._utterances:
            self._utterances[utterance_id] = _Utterance(self.new_id("item"))
        return self._utterances[utterance_id]

    def _transcription_delta(self, item_id: str, delta: str) -> dict[str, Any]:
        return {
            "type": "conversation.item.input_audio_transcription.delta",
            "item_id": item_id,
            "content_index": 0,
            "delta": delta,
        }

    def _added(self, item: dict[str, Any], *, done: bool = False) -> list[dict[str, Any]]:
        previous, self._last_item = self._last_item, item["id"]
        added = [{"type": "conversation.item.added", "previous_item_id": previous, "item": item}]
        if done:
            added.append({"type": "conversation.item.done", "previous_item_id": previous, "item": item})
        return added

    # ---- responses: one per agent turn

    def _open(self, turn_id: int) -> tuple[list[dict[str, Any]], _Response | None]:
        """The response of ``turn_id``, opened on its first event; None for a turn already ended."""
        if self._response is not None and self._response.turn_id == turn_id:
            return [], self._response
        if turn_id <= self._last_turn:
            return [], None
        out: list[dict[str, Any]] = []
        if self._response is not None:  # a turn that ended without saying so (never expected)
            out += self._close(self._response, "cancelled")
        self._last_turn = turn_id
        response = self._response = _Response(self.new_id("resp"), self.new_id("item"), turn_id)
        self._spoken[response.item_id] = _Spoken(turn_id)
        while len(self._spoken) > RECENT_ITEMS:
            del self._spoken[next(iter(self._spoken))]
        response.speech_end_at, self._speech_end_at = self._speech_end_at, None
        item = _item(response.item_id, "assistant", "in_progress", [])
        out += [
            {"type": "response.created", "response": self._response_object(response, "in_progress")},
            {
                "type": "response.output_item.added",
                "response_id": response.response_id,
                "output_index": 0,
                "item": item,
            },
            *self._added(item),
            self._part_event(response, "response.content_part.added", part={"type": "audio", "transcript": ""}),
        ]
        return out, response

    def _close(
        self,
        response: _Response,
        status: str,
        *,
        metadata: dict[str, str] | None = None,
        error: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        self._response = None
        transcript = response.heard if response.heard is not None else response.text
        reason = None
        if status == "cancelled":
            reason = "client_cancelled" if self._cancel_requested else "turn_detected"
        self._cancel_requested = False
        content = [{"type": "output_audio", "transcript": transcript}]
        item = _item(response.item_id, "assistant", "completed" if status == "completed" else "incomplete", content)
        done = self._response_object(response, status, output=[item], metadata=metadata)
        if reason or error:
            done["status_details"] = {"type": status, "reason": reason, "error": error}
        return [
            self._part_event(response, "response.output_audio.done"),
            self._part_event(response, "response.output_audio_transcript.done", transcript=transcript),
            self._part_event(response, "response.content_part.done", part={"type": "audio", "transcript": transcript}),
            {"type": "response.output_item.done", "response_id": response.response_id, "output_index": 0, "item": item},
            {"type": "conversation.item.done", "item": item},
            {"type": "response.done", "response": done},
        ]

    def _part_event(self, response: _Response, kind: str, **fields: Any) -> dict[str, Any]:
        return {
            "type": kind,
            "response_id": response.response_id,
            "item_id": response.item_id,
            "output_index": 0,
            "content_index": 0,
            **fields,
        }

    def _response_object(
        self,
        response: _Response,
        status: str,
        *,
        output: list[dict[str, Any]] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        return {
            "id": response.response_id,
            "object": "realtime.response",
            "status": status,
            "status_details": None,
            "output": output or [],
            "output_modalities": ["audio"],
            "audio": {"output": {"format": dict(AUDIO_FORMAT)}},
            "conversation_id": self.conversation_id,
            "metadata": metadata,
        }

    def _metadata(self, metrics: events.TurnMetrics, response: _Response) -> dict[str, str]:
        """The turn's timings (docs/architecture.md's names), as strings: response.metadata's type."""
        values: dict[str, str] = {
            "turn_id": str(metrics.turn_id),
            "vad_wait_ms": f"{metrics.vad_wait_ms:.1f}",
            "asr_ms": f"{metrics.asr_ms:.1f}",
            "llm_ttft_ms": f"{metrics.llm_ttft_ms:.1f}",
            "tts_ttfa_ms": f"{metrics.tts_ttfa_ms:.1f}",
            "gateway_first_audio_ms": f"{metrics.gateway_first_audio_ms:.1f}",
            "llm_tokens": str(metrics.llm_tokens),
            "preemptive": str(metrics.preemptive).lower(),
        }
        if response.speech_end_at is not None and response.first_audio_at is not None:
            values["e2e_ms"] = f"{(response.first_audio_at - response.speech_end_at) * 1000:.1f}"
        return values


#: A turn that ended with no audio and no error said (the core says a fallback line rather than nothing,
#: so this is a last guard): ``response.done`` reports it failed, never completed.
NO_OUTPUT = {"type": "server_error", "code": "no_output", "message": "the agent's reply produced no audio"}


def _core_error(event: events.Error) -> dict[str, Any]:
    client = event.code in ("INVALID_ARGUMENT", "FAILED_PRECONDITION")
    message = event.message if event.backend == "gateway" else f"{event.backend}: {event.message}"
    return error_event(message, kind="invalid_request_error" if client else "server_error", code=event.code)


def _at_24k(pcm: bytes, rate: int) -> bytes:
    if rate == SAMPLE_RATE or not pcm:
        return pcm
    return float_to_pcm16(resample(pcm16_to_float(pcm), rate, SAMPLE_RATE).astype(np.float32))
