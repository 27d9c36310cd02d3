"""The Java SDK (clients/java) against the real embedded stack: its JUnit 4 tests and its `talk` example, on
tests/client_stack.py's gateway (``--max-streams 1``, an API key, a TCP proxy in front; the JUnit tests call its
control URL to cut the connection or drain the gateway).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from client_stack import (
    API_KEY,
    Gateways,
    agent_item,
    control_server,
    conversation_record,
    kept_as_heard,
    sdk_gateways,
)
from support import spoken

from voice_agent.audio import read_wav, write_wav

ROOT = Path(__file__).resolve().parent.parent
JAVA = ROOT / "clients" / "java"
__all__ = ["sdk_gateways"]  # the fixture, for pytest


@pytest.fixture(scope="module")
def classpath() -> str:
    """`make clients`' Java part (a no-op when it is built), and the classpath the tests run with."""
    subprocess.run(["make", "-s", "-C", str(JAVA), "all"], check=True, timeout=300)
    done = subprocess.run(["make", "-s", "-C", str(JAVA), "classpath"], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _talk(sdk_gateways: Gateways, *args: str) -> tuple[int, dict[str, Any]]:
    env = {**os.environ, "VOICE_GATEWAY_ADDRESS": sdk_gateways.proxy.address}
    done = subprocess.run([str(JAVA / "talk"), *args], env=env, capture_output=True, text=True, timeout=300)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, (done.stdout, done.stderr)
    return done.returncode, json.loads(lines[0])


def test_the_talk_example_holds_one_spoken_turn(classpath: str, sdk_gateways: Gateways, tmp_path: Path) -> None:
    question = spoken("How do I prepare for a job interview?")
    write_wav(tmp_path / "question.wav", question.audio)
    code, result = _talk(
        sdk_gateways,
        "--wav",
        str(tmp_path / "question.wav"),
        "--out",
        str(tmp_path / "reply.wav"),
        "--token",
        API_KEY,
    )
    assert code == 0, result
    assert "interview" in result["transcript"].lower(), result
    assert result["reply"], result
    assert 0 < result["e2e_ms"] < 60_000, result
    reply = read_wav(tmp_path / "reply.wav")
    assert result["audio_ms"] > 500
    assert abs(reply.duration_ms - result["audio_ms"]) <= 1, result


def test_the_talk_example_reports_a_refusal_as_json(classpath: str, sdk_gateways: Gateways, tmp_path: Path) -> None:
    write_wav(tmp_path / "question.wav", spoken("Hello there.").audio)
    code, result = _talk(
        sdk_gateways, "--wav", str(tmp_path / "question.wav"), "--out", str(tmp_path / "r.wav"), "--token", "bad"
    )
    assert code != 0
    assert result["code"] == "UNAUTHENTICATED" and result["error"], result


async def test_the_sdk_against_the_stack(classpath: str, sdk_gateways: Gateways, tmp_path: Path) -> None:
    """clients/java's JUnit tests: the offline ones, then GatewaySessionIT's seven against the stack."""
    speech = tmp_path / "speech"
    speech.mkdir()
    write_wav(speech / "question-24k.wav", spoken("How do I prepare for a job interview?", sample_rate=24_000).audio)
    # Said with little lead, so that it is decided inside even a short reply ("Let's get started!" is 0.8 s).
    write_wav(speech / "interruption.wav", spoken("Wait, stop. Tell me something else instead.", lead_ms=100).audio)
    results_file = tmp_path / "results.json"
    with control_server(sdk_gateways) as control:
        env = {
            **os.environ,
            "VOICE_GATEWAY_ADDRESS": sdk_gateways.proxy.address,
            "VOICE_TEST_KEY": API_KEY,
            "VOICE_TEST_CONTROL": control,
            "VOICE_TEST_SPEECH_DIR": str(speech),
            "VOICE_TEST_RESULTS": str(results_file),
        }
        command = ["java", "-cp", classpath, "org.junit.runner.JUnitCore"]
        command += ["voiceagent.client.OfflineTest", "voiceagent.client.GatewaySessionIT"]
        done = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:] + sdk_gateways.log_tails()
    assert "OK (" in done.stdout
    results = json.loads(results_file.read_text())
    barge_in = results["barge_in"]
    assert 0 < barge_in["played_ms"] < barge_in["received_ms"]
    # The history keeps what the client said it played: the interrupted reply up to the truncation.
    turn = barge_in["turn_id"]
    record = await conversation_record(sdk_gateways, barge_in["conversation_id"], lambda r: agent_item(r, turn))
    kept_as_heard(agent_item(record, turn), barge_in["reply"])
    # The dropped connection's conversation, resumed: one history, the turns before and after the drop.
    dropped = results["dropped"]
    after = dropped["next_turn_id"]
    record = await conversation_record(sdk_gateways, dropped["conversation_id"], lambda r: agent_item(r, after))
    said = [(item.role, item.text) for item in record.items]
    assert said[0] == ("user", "My name is Ada and I am preparing for a nursing interview."), said
    assert ("user", "What is my name?") in said and agent_item(record, after) is not None, said
