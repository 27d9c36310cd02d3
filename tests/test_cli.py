"""The operator CLI, as outside checks drive it: `voice-agent up|transcribe|down --json`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import free_port, spoken

from voice_agent.audio import read_wav
from voice_agent.samples import save, word_error_rate

CLI = str(Path(sys.executable).parent / "voice-agent")
SERVICES = ("asr", "tts", "llm", "gateway")


def voice_agent(*args: str, env: dict[str, str], timeout: float = 300) -> dict:
    done = subprocess.run([CLI, *args, "--json"], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.strip().splitlines()  # exactly one JSON object
    return json.loads(line)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "VOICE_STATE_DIR": str(tmp_path / "state")}
    for service in ("asr", "tts", "llm", "gateway"):
        port = free_port()
        env[f"VOICE_{service.upper()}_PORT"] = str(port)
        env[f"VOICE_{service.upper()}_METRICS_PORT"] = str(free_port())
        env[f"VOICE_{service.upper()}_ADDRESS"] = f"127.0.0.1:{port}"
    return env


def test_up_transcribe_say_down(cli_env: dict[str, str], tmp_path: Path) -> None:
    text = "I would like to practice my presentation for tomorrow morning"
    sample = spoken(text)
    save(sample, tmp_path / "utterance.wav")
    try:
        services = voice_agent("up", env=cli_env)["services"]
        assert services == {name: cli_env[f"VOICE_{name.upper()}_ADDRESS"] for name in SERVICES}
        assert voice_agent("up", env=cli_env)["services"] == services  # idempotent: reuses what runs
        result = voice_agent("transcribe", str(tmp_path / "utterance.wav"), "--fast", env=cli_env)
        assert word_error_rate(text, result["text"]) <= 0.2, result
        (segment,) = result["segments"]
        assert abs(segment["start_ms"] - sample.speech_start_ms) <= 150
        assert abs(segment["end_ms"] - sample.speech_end_ms) <= 150

        said = voice_agent("say", "Take a deep breath.", "--out", str(tmp_path / "kokoro.wav"), env=cli_env)
        assert said["sample_rate"] == 24_000 and said["audio_ms"] > 500 and said["ttfa_ms"] > 0
        assert read_wav(tmp_path / "kokoro.wav").duration_ms == said["audio_ms"]

        voice_agent("up", "--tts-engine", "piper", env=cli_env)  # restarts the TTS with the other engine
        piper_wav = str(tmp_path / "piper.wav")
        said = voice_agent("say", "Take a deep breath.", "--engine", "piper", "--out", piper_wav, env=cli_env)
        assert said["sample_rate"] == 22_050
        heard = voice_agent("transcribe", piper_wav, "--fast", env=cli_env)["text"]
        assert word_error_rate("Take a deep breath.", heard) <= 0.1, heard

        turn = voice_agent(
            "talk", "--wav", str(tmp_path / "utterance.wav"), "--out", str(tmp_path / "r.wav"), env=cli_env
        )
        assert word_error_rate(text, turn["transcript"]) <= 0.2 and turn["reply"].strip()
        assert {"vad_wait_ms", "asr_ms", "llm_ttft_ms", "tts_ttfa_ms", "e2e_ms", "overhead_ms"} <= set(turn["metrics"])

        (tmp_path / "keys").write_text("# the app's key\nva-cli-key-1\n")
        voice_agent("up", "--api-keys", str(tmp_path / "keys"), env=cli_env)  # restarts the gateway with auth on
        talk = [CLI, "talk", "--json", "--wav", str(tmp_path / "utterance.wav"), "--out", str(tmp_path / "r2.wav")]
        refused = subprocess.run(talk, env=cli_env, capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0 and json.loads(refused.stdout)["error"]["code"] == "UNAUTHENTICATED"
        allowed = voice_agent(*talk[1:-1], str(tmp_path / "r2.wav"), "--token", "va-cli-key-1", env=cli_env)
        assert allowed["reply"].strip()
    finally:
        assert voice_agent("down", env=cli_env)["stopped"] == list(SERVICES)
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


def test_say_against_the_wrong_engine_fails_clearly(cli_env: dict[str, str], tts_server, tmp_path: Path) -> None:
    engine = {"kokoro": "piper", "piper": "kokoro"}[tts_server.engine]
    done = subprocess.run(
        [
            CLI,
            "say",
            "Hello.",
            "--out",
            str(tmp_path / "x.wav"),
            "--json",
            "--engine",
            engine,
            "--tts",
            tts_server.address,
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "INVALID_ARGUMENT" and tts_server.engine in error["message"]


def test_models_are_the_embedded_ones(cli_env: dict[str, str]) -> None:
    models = voice_agent("models", env=cli_env)["models"]
    assert set(models) == {"asr.whisper", "asr.vad", "tts.kokoro", "tts.kokoro.voices", "tts.piper", "llm.gemma"}
    assert all(info["bytes"] > 1_000_000 for info in models.values())
