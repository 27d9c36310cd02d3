"""The README, followed literally, as a new user does: `voice-agent up` on the default ports, the URLs it
prints, the page and /healthz there, a Realtime turn through the official `openai` client with a persona of
one's own, a `voice-agent talk` turn with a WAV as people's files come (44.1 kHz, 24-bit, stereo, recorded
human speech), the keyed page after `voice-agent up --api-keys`, and `voice-agent down` (readme_stack's
teardown). tests/test_browser.py holds a turn in Chromium at the same printed URL.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from conftest import CLI, voice_agent
from openai import AsyncOpenAI

from gateway.reply_text import SPEAKER_LABELS
from voice_agent.audio import pcm16_to_float, resample
from voice_ops.samples import recorded_turns, word_error_rate

REALTIME_RATE = 24_000
PERSONA = "You are the head of engineering at a startup, mentoring a junior developer."
KEY = "readme-key"


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def test_up_prints_the_readme_urls_and_they_answer(readme_stack: dict[str, Any]) -> None:
    services = readme_stack["services"]
    # The README's words: "open http://127.0.0.1:8080/".
    assert services["web"] == "http://127.0.0.1:8080/"
    assert services["realtime"] == "ws://127.0.0.1:8080/v1/realtime"
    assert services["gateway"] == "127.0.0.1:50051"
    status, page = fetch(services["web"])
    assert status == 200 and "<html" in page.lower() and "app.js" in page
    status, health = fetch(services["web"] + "healthz")
    assert status == 200, health


def _longest_recorded_turn() -> Any:
    return max(recorded_turns(), key=lambda sample: sample.speech_end_ms - sample.speech_start_ms)


async def test_a_realtime_turn_at_the_printed_url_with_a_persona_of_ones_own(readme_stack: dict[str, Any]) -> None:
    realtime = readme_stack["services"]["realtime"]
    sample = _longest_recorded_turn()  # a person on a telephone, not espeak
    pcm = sample.audio.resampled(REALTIME_RATE).data
    base = realtime.removesuffix("/realtime")
    client = AsyncOpenAI(api_key="none", base_url=base.replace("ws://", "http://"), websocket_base_url=base)
    seen: list[Any] = []
    async with client.realtime.connect(model="voice-agent") as connection:
        await connection.session.update(session={"type": "realtime", "instructions": PERSONA})
        step = REALTIME_RATE * 2 // 10
        for start in range(0, len(pcm), step):
            await connection.input_audio_buffer.append(audio=base64.b64encode(pcm[start : start + step]).decode())
            await asyncio.sleep(0.1)
        async with asyncio.timeout(90):
            async for event in connection:
                seen.append(event)
                if event.type == "response.done":
                    break
    kinds = [event.type for event in seen]
    assert "error" not in kinds, [e for e in seen if e.type == "error"]
    done = seen[-1]
    assert done.response.status == "completed", done.response
    audio = b"".join(base64.b64decode(e.delta) for e in seen if e.type == "response.output_audio.delta")
    assert len(audio) > REALTIME_RATE * 2 // 4  # a spoken reply: over 250 ms
    reply = next(e.transcript for e in seen if e.type == "response.output_audio_transcript.done")
    assert reply.strip() and not any(f"{label}:" in reply.lower() for label in SPEAKER_LABELS), reply


def test_talk_with_a_44k_24bit_stereo_recording(readme_stack: dict[str, Any], tmp_path: Path) -> None:
    """`voice-agent talk --wav question.wav --out reply.wav`, the README's command, with a WAV as a desktop
    recorder writes it, at the gateway address the README's `up` printed."""
    sample = _longest_recorded_turn()
    mono = resample(pcm16_to_float(sample.audio.data), sample.audio.sample_rate, 44_100)
    stereo = np.stack([mono, mono * 0.8], axis=1)
    question = tmp_path / "question.wav"
    soundfile.write(question, stereo, 44_100, subtype="PCM_24")
    assert soundfile.info(str(question)).format_info.startswith("WAV") and soundfile.info(str(question)).channels == 2
    env = readme_stack["env"]
    turn = voice_agent("talk", "--wav", str(question), "--out", str(tmp_path / "reply.wav"), env=env, timeout=120)
    assert not turn["errors"], turn
    assert word_error_rate(sample.text, turn["transcript"]) <= 0.5, turn
    assert turn["reply"].strip() and turn["reply_audio_ms"] > 250, turn


def test_api_keys_keep_the_printed_urls(readme_stack: dict[str, Any], tmp_path: Path) -> None:
    """`voice-agent up --api-keys FILE` restarts the gateway: still on the README's ports, now keyed."""
    env = readme_stack["env"]
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY}\n")
    restarted = voice_agent("up", "--api-keys", str(keys), env=env)
    assert restarted["services"] == readme_stack["services"]
    web = restarted["services"]["web"]
    assert fetch(web)[0] == 200 and fetch(f"{web}?key={KEY}")[0] == 200
    refused = subprocess.run(
        [*CLI, "talk", "--json", "--wav", "/dev/null", "--out", str(tmp_path / "r.wav")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0, refused.stdout
