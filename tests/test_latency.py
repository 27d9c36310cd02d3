"""The latency techniques through the gateway, with the real ASR, LLM and TTS (issue 9).

The gateway under test runs in its default mode, fast; sessions switch techniques off with
``LatencyOptions``. Speed is measured by ``make bench-latency``; here only behaviour.
"""

from __future__ import annotations

import re
import urllib.request

import grpc
from support import ServiceProcess, spoken

from voice_agent.client.converse import Conversation, TurnResult
from voice_agent.v1 import gateway_pb2
from voice_ops.samples import PAUSE_SET, speak_with_pauses

QUESTION = "How can I sound more confident?"
BASELINE = gateway_pb2.LatencyOptions(
    preemptive_generation=False,
    reuse_pause_transcript=False,
    short_first_phrase=False,
    warm_paths=False,
    adaptive_endpointing=False,
    min_silence_ms=200,
)


def _preemptions(gateway: ServiceProcess, outcome: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    match = re.search(rf'^voice_gateway_preemptive_turns_total\{{outcome="{outcome}"\}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _kinds(result: TurnResult) -> list[str]:
    return [event.WhichOneof("event") for _, event in result.events]


def _audio_follows_the_final(result: TurnResult) -> None:
    """Nothing of the agent reaches the client before the user's final transcript, and the audio
    is one unbroken sequence (audio of a discarded reply would repeat sequence numbers)."""
    kinds = _kinds(result)
    final = kinds.index("final_transcript")
    assert all(index > final for index, kind in enumerate(kinds) if kind in ("agent_text", "agent_audio")), kinds
    audio = [event.agent_audio for _, event in result.of("agent_audio")]
    assert audio and [a.sequence_number for a in audio] == list(range(len(audio)))
    assert len({a.turn_id for a in audio}) == 1


async def test_a_reply_started_on_the_pause_is_kept_when_the_final_matches(
    gateway_channel: grpc.aio.Channel, gateway_server: ServiceProcess
) -> None:
    kept_before = _preemptions(gateway_server, "kept")
    async with Conversation(gateway_channel) as conversation:
        result = await conversation.speak(spoken(QUESTION).audio, max_wait_s=120)
    answer = result.answer()
    assert answer is not None and not result.errors, [(e.backend, e.message) for e in result.errors]
    assert answer.preemptive, "the reply should have started on the pause's transcript"
    assert _preemptions(gateway_server, "kept") == kept_before + 1
    _audio_follows_the_final(result)
    assert result.reply.strip()


async def test_a_reply_to_a_mid_sentence_pause_is_discarded_unheard(
    gateway_channel: grpc.aio.Channel, gateway_server: ServiceProcess
) -> None:
    """A pause after "about": a reply starts on "I want to tell you about", the speech resumes,
    and that reply is dropped; the turn answers the whole sentence, once. (600 ms rather than the
    pause set's 300: the pause's transcript must be ready before the speech resumes, on a busy CPU
    too; the end of turn still waits 700 ms after a sentence that stops mid-way.)"""
    sample = speak_with_pauses(PAUSE_SET[0], pause_ms=600)
    discarded_before = _preemptions(gateway_server, "discarded")
    async with Conversation(gateway_channel) as conversation:
        result = await conversation.speak(sample.audio, max_wait_s=120)
    assert not result.errors, [(e.backend, e.message) for e in result.errors]
    assert len(result.of("final_transcript")) == 1, result.transcript  # no false end of turn
    assert len(result.of("turn_metrics")) == 1
    assert "presentation" in result.transcript.lower(), result.transcript
    assert _preemptions(gateway_server, "discarded") > discarded_before
    _audio_follows_the_final(result)


async def test_a_session_can_turn_every_technique_off(gateway_channel: grpc.aio.Channel) -> None:
    async with Conversation(gateway_channel, latency=BASELINE) as conversation:
        result = await conversation.speak(spoken(QUESTION).audio, max_wait_s=120)
        typed = await conversation.type("And what else?", max_wait_s=120)
    for turn in (result, typed):
        answer = turn.answer()
        assert answer is not None and not answer.preemptive and not turn.errors
    finals = [event.final_transcript for _, event in result.of("final_transcript")]
    assert finals and not finals[0].reused  # transcribed at the end of speech, as before
