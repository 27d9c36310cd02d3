"""The operator CLI, as outside checks drive it: `voice-agent up|transcribe|down --json`."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile
from conftest import CLI, voice_agent
from support import free_port, spoken

from voice_agent.audio import Pcm16Audio, read_wav, write_wav
from voice_agent.client.converse import Conversation
from voice_agent.v1 import gateway_pb2, gateway_pb2_grpc
from voice_ops import cli
from voice_ops.samples import save, word_error_rate

SERVICES = ("asr", "tts", "llm", "gateway")


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "VOICE_STATE_DIR": str(tmp_path / "state")}
    for service in ("asr", "tts", "llm", "gateway"):
        port = free_port()
        env[f"VOICE_{service.upper()}_PORT"] = str(port)
        env[f"VOICE_{service.upper()}_METRICS_PORT"] = str(free_port())
        env[f"VOICE_{service.upper()}_ADDRESS"] = f"127.0.0.1:{port}"
    env["VOICE_GATEWAY_HTTP_PORT"] = str(free_port())
    return env


def test_up_transcribe_say_down(cli_env: dict[str, str], tmp_path: Path) -> None:
    text = "I would like to practice my presentation for tomorrow morning"
    sample = spoken(text)
    save(sample, tmp_path / "utterance.wav")
    try:
        started = voice_agent("up", env=cli_env)
        services = started["services"]
        http = f"127.0.0.1:{cli_env['VOICE_GATEWAY_HTTP_PORT']}"
        assert services == {
            **{name: cli_env[f"VOICE_{name.upper()}_ADDRESS"] for name in SERVICES},
            "realtime": f"ws://{http}/v1/realtime",
            "web": f"http://{http}/",
        }
        # What runs is said: the embedded default, Piper and an LLM that yields the cores.
        configuration = started["configuration"]
        assert configuration["tts"]["engine"] == "piper" and configuration["llm"]["nice"] == 10
        assert configuration["gateway"]["latency_mode"] == "fast"
        assert voice_agent("up", env=cli_env)["services"] == services  # idempotent: reuses what runs
        result = voice_agent("transcribe", str(tmp_path / "utterance.wav"), "--fast", env=cli_env)
        assert word_error_rate(text, result["text"]) <= 0.2, result
        (segment,) = result["segments"]
        assert abs(segment["start_ms"] - sample.speech_start_ms) <= 150
        assert abs(segment["end_ms"] - sample.speech_end_ms) <= 150

        said = voice_agent("say", "Take a deep breath.", "--out", str(tmp_path / "piper.wav"), env=cli_env)
        assert said["sample_rate"] == 22_050 and said["audio_ms"] > 500 and said["ttfa_ms"] > 0  # Piper, the default
        assert read_wav(tmp_path / "piper.wav").duration_ms == said["audio_ms"]

        voice_agent("up", "--tts-engine", "kokoro", env=cli_env)  # restarts the TTS with the other engine
        kokoro_wav = str(tmp_path / "kokoro.wav")
        said = voice_agent("say", "Take a deep breath.", "--engine", "kokoro", "--out", kokoro_wav, env=cli_env)
        assert said["sample_rate"] == 24_000
        heard = voice_agent("transcribe", kokoro_wav, "--fast", env=cli_env)["text"]
        assert word_error_rate("Take a deep breath.", heard) <= 0.1, heard

        turn = voice_agent(
            "talk", "--wav", str(tmp_path / "utterance.wav"), "--out", str(tmp_path / "r.wav"), env=cli_env
        )
        assert word_error_rate(text, turn["transcript"]) <= 0.2 and turn["reply"].strip()
        assert {"vad_wait_ms", "asr_ms", "llm_ttft_ms", "tts_ttfa_ms", "e2e_ms", "overhead_ms"} <= set(turn["metrics"])

        (tmp_path / "keys").write_text("# the app's key\nva-cli-key-1\n")
        voice_agent("up", "--api-keys", str(tmp_path / "keys"), env=cli_env)  # restarts the gateway with auth on
        talk = [*CLI, "talk", "--json", "--wav", str(tmp_path / "utterance.wav"), "--out", str(tmp_path / "r2.wav")]
        refused = subprocess.run(talk, env=cli_env, capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0 and json.loads(refused.stdout)["error"]["code"] == "UNAUTHENTICATED"
        allowed = voice_agent(*talk[len(CLI) : -1], str(tmp_path / "r2.wav"), "--token", "va-cli-key-1", env=cli_env)
        assert allowed["reply"].strip()
    finally:
        assert voice_agent("down", env=cli_env)["stopped"] == list(SERVICES)
    assert voice_agent("down", env=cli_env)["stopped"] == []


def test_errors_are_one_json_object_and_a_nonzero_exit(cli_env: dict[str, str], tmp_path: Path) -> None:
    save(spoken("hello"), tmp_path / "hello.wav")
    done = subprocess.run(
        [*CLI, "transcribe", str(tmp_path / "hello.wav"), "--json", "--asr", f"127.0.0.1:{free_port()}"],
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
            *CLI,
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
    assert set(models) == {
        "asr.whisper",
        "asr.vad",
        "asr.smart_turn",
        "tts.kokoro",
        "tts.kokoro.voices",
        "tts.piper",
        "llm.gemma",
    }
    assert all(info["bytes"] > 1_000_000 for info in models.values())


# A refused session (the gateway aborts Converse before it reads a message) while the client is
# already writing: grpc.aio reports INTERNAL "Internal error from Core" instead of the server's
# status for many such calls (grpc/grpc#36066; voice_agent.call_status.ServerStatus): 300 catch it each time.
# The two FAKE gateways below only refuse: a unit test of the client's status handling, which needs
# hundreds of refusals cheaply (the real gateway's refusal is tested in test_auth.py and above).
REFUSED_CALLS = 300
REFUSAL = (grpc.StatusCode.UNAUTHENTICATED, "missing credentials", (("refused-by", "auth"),))


class _FakeRefusingGateway(gateway_pb2_grpc.GatewayServicer):
    async def Converse(  # noqa: N802 - the gRPC method name
        self, request_iterator: AsyncIterator[gateway_pb2.ConverseRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gateway_pb2.ConverseResponse]:
        await context.abort(*REFUSAL)
        yield gateway_pb2.ConverseResponse()  # never reached: makes this a generator, as the gateway's is


class _FakeThreadedRefusingGateway(gateway_pb2_grpc.GatewayServicer):
    """For the in-process CLI, whose asyncio.run cannot share a loop with an aio server."""

    def Converse(  # noqa: N802 - the gRPC method name
        self, request_iterator: Iterator[gateway_pb2.ConverseRequest], context: grpc.ServicerContext
    ) -> Iterator[gateway_pb2.ConverseResponse]:
        code, details, trailers = REFUSAL
        context.set_trailing_metadata(trailers)
        context.abort(code, details)
        yield gateway_pb2.ConverseResponse()  # never reached


async def test_a_refused_session_reports_the_servers_status_not_internal() -> None:
    server = grpc.aio.server()
    gateway_pb2_grpc.add_GatewayServicer_to_server(_FakeRefusingGateway(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    seen: Counter[tuple[str, str, str]] = Counter()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for _ in range(REFUSED_CALLS):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    async with Conversation(channel) as conversation:
                        await conversation.ended(timeout_s=10)
                status = refused.value
                seen[status.code().name, status.details(), dict(status.trailing_metadata()).get("refused-by", "")] += 1
    finally:
        await server.stop(None)
    assert seen == {("UNAUTHENTICATED", "missing credentials", "auth"): REFUSED_CALLS}, dict(seen)


@pytest.fixture
def refusing_gateway() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    gateway_pb2_grpc.add_GatewayServicer_to_server(_FakeThreadedRefusingGateway(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def test_a_refused_talk_prints_the_servers_status(
    refusing_gateway: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`voice-agent talk --json` without a token, in-process so that many runs are cheap."""
    monkeypatch.delenv("VOICE_TLS_CA", raising=False)  # plaintext, as the server is
    write_wav(tmp_path / "silence.wav", Pcm16Audio(b"\0" * 32_000, 16_000))
    talk = ["talk", "--json", "--wav", str(tmp_path / "silence.wav"), "--out", str(tmp_path / "r.wav")]
    seen: Counter[tuple[object, str]] = Counter()
    for _ in range(REFUSED_CALLS):
        with pytest.raises(SystemExit) as exited:
            cli.main([*talk, "--gateway", refusing_gateway])
        seen[exited.value.code, json.loads(capsys.readouterr().out)["error"]["code"]] += 1
    assert seen == {(1, "UNAUTHENTICATED"): REFUSED_CALLS}, dict(seen)


def _talk_json(wav: Path, gateway: str, capsys: pytest.CaptureFixture[str]) -> tuple[object, dict, str]:
    with pytest.raises(SystemExit) as exited:
        cli.main(
            ["talk", "--json", "--wav", str(wav), "--out", str(wav.with_suffix(".reply.wav")), "--gateway", gateway]
        )
    out, err = capsys.readouterr()
    (line,) = out.strip().splitlines()  # exactly one JSON object
    return exited.value.code, json.loads(line)["error"], err


def test_talk_takes_a_wav_as_people_have_them(
    refusing_gateway: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """44.1 kHz 24-bit stereo WAVE_FORMAT_EXTENSIBLE (the issue's file): read, and sent to the gateway (which
    refuses it here for want of a token: what matters is that it got there)."""
    monkeypatch.delenv("VOICE_TLS_CA", raising=False)
    soundfile.write(tmp_path / "q.wav", np.zeros((44_100, 2)), 44_100, subtype="PCM_24", format="WAVEX")
    code, error, _ = _talk_json(tmp_path / "q.wav", refusing_gateway, capsys)
    assert (code, error["code"]) == (1, "UNAUTHENTICATED")


def test_a_wav_that_cannot_be_read_is_one_line_and_a_nonzero_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "q.wav").write_text("not audio at all\n")
    soundfile.write(tmp_path / "hifi.wav", np.zeros(96_000), 96_000)
    unused = f"127.0.0.1:{free_port()}"  # never reached
    for name, problem in [("q.wav", "not a WAV file"), ("hifi.wav", "WAV at 96000 Hz: use 8000 to 48000 Hz")]:
        code, error, err = _talk_json(tmp_path / name, unused, capsys)
        assert (code, error["code"]) == (1, "ValueError") and problem in error["message"], error
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
