"""The operator CLI, as outside checks drive it: `voice-agent up|transcribe|down --json`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import free_port, spoken

from voice_agent.samples import save, word_error_rate

CLI = str(Path(sys.executable).parent / "voice-agent")


def voice_agent(*args: str, env: dict[str, str], timeout: float = 300) -> dict:
    done = subprocess.run([CLI, *args, "--json"], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.strip().splitlines()  # exactly one JSON object
    return json.loads(line)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    port = free_port()
    return {
        **os.environ,
        "VOICE_STATE_DIR": str(tmp_path / "state"),
        "VOICE_ASR_PORT": str(port),
        "VOICE_ASR_METRICS_PORT": str(free_port()),
        "VOICE_ASR_ADDRESS": f"127.0.0.1:{port}",
    }


def test_up_transcribe_down(cli_env: dict[str, str], tmp_path: Path) -> None:
    text = "I would like to practice my presentation for tomorrow morning"
    sample = spoken(text)
    save(sample, tmp_path / "utterance.wav")
    try:
        services = voice_agent("up", env=cli_env)["services"]
        assert services == {"asr": cli_env["VOICE_ASR_ADDRESS"]}
        assert voice_agent("up", env=cli_env)["services"] == services  # idempotent: reuses what runs
        result = voice_agent("transcribe", str(tmp_path / "utterance.wav"), "--fast", env=cli_env)
        assert word_error_rate(text, result["text"]) <= 0.2, result
        (segment,) = result["segments"]
        assert abs(segment["start_ms"] - sample.speech_start_ms) <= 150
        assert abs(segment["end_ms"] - sample.speech_end_ms) <= 150
    finally:
        assert voice_agent("down", env=cli_env)["stopped"] == ["asr"]
    assert voice_agent("down", env=cli_env)["stopped"] == []


def test_errors_are_one_json_object_and_a_nonzero_exit(cli_env: dict[str, str], tmp_path: Path) -> None:
    save(spoken("hello"), tmp_path / "hello.wav")
    done = subprocess.run(
        [CLI, "transcribe", str(tmp_path / "hello.wav"), "--json", "--asr", f"127.0.0.1:{free_port()}"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["code"] == "UNAVAILABLE"


def test_models_are_the_embedded_ones(cli_env: dict[str, str]) -> None:
    models = voice_agent("models", env=cli_env)["models"]
    assert set(models) == {"asr.whisper", "asr.vad"}
    assert all(info["bytes"] > 1_000_000 for info in models.values())
