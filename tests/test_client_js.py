"""The TypeScript SDK (clients/js) against the real embedded stack: its talk example, as the issue's contract
states it, and its ``node --test`` suites (turns, recovery, the React Native-style suite, the pure logic).

The SDK's npm packages come from ``make clients`` (``make test`` runs it first). The gateways here each run on
free ports: the main one with an API key, one at ``--max-streams 1`` for the refusal, and one the recovery
suite starts, drains with SIGTERM and starts again itself, on ports chosen here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ServiceProcess, free_port, running, spoken

from gateway.config import LatencySettings
from voice_agent.audio import read_wav, write_wav
from voice_ops.samples import word_error_rate
from voice_ops.stack import gateway_backend_args, service

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "clients" / "js"
NODE = shutil.which("node")
API_KEY = "va-js-sdk-test-key-5e1d"
QUESTION = "I have a job interview next week and I feel nervous"
INTERRUPTION = "Wait I have a different question"
# One suite file at a time, its tests in order; exits even if a failed test left a socket open.
NODE_TEST = ["--test", "--test-concurrency=1", "--test-force-exit", "--test-reporter=spec"]


@pytest.fixture(scope="module")
def installed() -> None:
    if NODE is None or not (JS / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("the TypeScript SDK's packages are not installed: `make clients` installs them")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("js-keys") / "keys"
    path.write_text(API_KEY + "\n")
    return path


def _backends(asr: ServiceProcess, tts: ServiceProcess, llm: ServiceProcess) -> list[str]:
    # --no-memory: a conversation's summary, written by the LLM as it ends, would hold the LLM's one slot
    # while the next test's turn waits for a token (the turn fails as stalled on a busy machine).
    return [*gateway_backend_args(asr.address, tts.address, llm.address), "--no-memory"]


def _realtime_url(gateway: ServiceProcess) -> str:
    return f"ws://127.0.0.1:{gateway.settings.http_port}/v1/realtime"


@pytest.fixture(scope="module")
def js_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    keys: Path,
    asr_server: ServiceProcess,
    piper_server: ServiceProcess,
    llm_server: ServiceProcess,
) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("js-gateway") / "gateway.log"
    with running("gateway", log, *_backends(asr_server, piper_server, llm_server), "--api-keys-file", str(keys)) as gw:
        yield gw


@pytest.fixture(scope="module")
def limited_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    keys: Path,
    asr_server: ServiceProcess,
    piper_server: ServiceProcess,
    llm_server: ServiceProcess,
) -> Iterator[ServiceProcess]:
    """One session at a time, refusals with a 700 ms retry hint."""
    log = tmp_path_factory.mktemp("js-limited") / "gateway.log"
    args = [*_backends(asr_server, piper_server, llm_server), "--api-keys-file", str(keys)]
    args += ["--max-streams", "1", "--retry-after-ms", "700"]
    with running("gateway", log, *args) as gw:
        yield gw


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("js-wavs")
    paths = {"question": folder / "question.wav", "interruption": folder / "interruption.wav"}
    write_wav(paths["question"], spoken(QUESTION, sample_rate=16_000, lead_ms=500, tail_ms=500).audio)
    write_wav(paths["interruption"], spoken(INTERRUPTION, sample_rate=16_000, lead_ms=0, tail_ms=0).audio)
    return paths


def _env(gateway: ServiceProcess, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICE_")}
    env |= {"VOICE_GATEWAY_ADDRESS": gateway.address, "VOICE_REALTIME_URL": _realtime_url(gateway)}
    return env | extra


def _talk(env: dict[str, str], *args: str) -> tuple[int, dict[str, object], str]:
    done = subprocess.run(
        [str(NODE), str(JS / "examples" / "talk.mjs"), *args], env=env, capture_output=True, text=True, timeout=120
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, (done.stdout, done.stderr)
    return done.returncode, json.loads(lines[0]), done.stderr


@pytest.mark.parametrize("transport", ["grpc", "realtime"])
def test_the_example_holds_a_spoken_turn(
    installed: None, js_gateway: ServiceProcess, wavs: dict[str, Path], tmp_path: Path, transport: str
) -> None:
    out = tmp_path / "reply.wav"
    args = ["--wav", str(wavs["question"]), "--out", str(out), "--token", API_KEY, "--transport", transport]
    code, result, stderr = _talk(_env(js_gateway), *args)
    assert code == 0, (result, stderr)
    assert word_error_rate(QUESTION, str(result["transcript"])) <= 0.3, result
    assert str(result["reply"]).strip(), result
    assert 0 < float(result["e2e_ms"]) < 30_000, result  # type: ignore[arg-type]
    reply = read_wav(out)
    assert abs(reply.duration_ms - float(result["audio_ms"])) <= 1, result  # type: ignore[arg-type]
    assert reply.duration_ms > 500, result


@pytest.mark.parametrize("transport", ["grpc", "realtime"])
def test_the_example_reports_a_refusal_as_json(
    installed: None, js_gateway: ServiceProcess, wavs: dict[str, Path], tmp_path: Path, transport: str
) -> None:
    args = [
        "--wav",
        str(wavs["question"]),
        "--out",
        str(tmp_path / "r.wav"),
        "--token",
        "wrong",
        "--transport",
        transport,
    ]
    code, result, _ = _talk(_env(js_gateway), *args)
    assert code != 0
    assert result["code"] == "UNAUTHENTICATED" and result["error"], result
    assert not (tmp_path / "r.wav").exists()


def _node_suite(suite: str, env: dict[str, str], timeout_s: float = 420) -> None:
    done = subprocess.run(
        [
            str(NODE),
            "--test",
            "--test-concurrency=1",
            "--test-force-exit",
            "--test-reporter=spec",
            f"test/{suite}.test.mjs",
        ],
        cwd=JS,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]


def test_the_turns_suite(installed: None, js_gateway: ServiceProcess, wavs: dict[str, Path]) -> None:
    """Typed turns, barge-in (playout flushed, truncation reported and applied), a wrong key: both transports."""
    env = _env(js_gateway, VOICE_API_KEY=API_KEY, VOICE_INTERRUPTION_WAV=str(wavs["interruption"]))
    env["VOICE_FIRST_PHRASE_WORDS"] = str(LatencySettings().first_phrase_words)  # see client_stack.kept_as_heard
    _node_suite("turns", env)


def test_the_recovery_suite(
    installed: None,
    js_gateway: ServiceProcess,
    limited_gateway: ServiceProcess,
    keys: Path,
    asr_server: ServiceProcess,
    piper_server: ServiceProcess,
    llm_server: ServiceProcess,
) -> None:
    """A refusal retried after its hint, a drain reconnected at once, a dropped TCP connection resumed."""
    port, http_port, metrics_port = free_port(), free_port(), free_port()
    command = [sys.executable, "-m", service("gateway").module, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--http-port", str(http_port), "--metrics-port", str(metrics_port), "--shutdown-grace-s", "2"]
    command += [*_backends(asr_server, piper_server, llm_server), "--api-keys-file", str(keys)]
    drain = {
        "command": command,
        "address": f"127.0.0.1:{port}",
        "url": f"ws://127.0.0.1:{http_port}/v1/realtime",
        "healthz": f"http://127.0.0.1:{http_port}/healthz",
    }
    env = _env(
        js_gateway,
        VOICE_API_KEY=API_KEY,
        VOICE_LIMITED_ADDRESS=limited_gateway.address,
        VOICE_LIMITED_URL=_realtime_url(limited_gateway),
        VOICE_DRAIN_GATEWAY=json.dumps(drain),
    )
    _node_suite("recovery", env)


def test_the_react_native_suite(installed: None, js_gateway: ServiceProcess) -> None:
    """The Realtime transport as React Native runs it: its WebSocket class injected, no Buffer, no Node API."""
    _node_suite("react-native", _env(js_gateway, VOICE_API_KEY=API_KEY))


@pytest.mark.unit
def test_the_pure_logic_suite() -> None:
    """Framing, resampling, base64, the back-off and the playout clock: no server."""
    if NODE is None:
        pytest.fail("Node.js is needed: apt-get install nodejs")
    done = subprocess.run(
        [str(NODE), "--test", "test/unit.test.mjs"], cwd=JS, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_the_grpc_status_suite(installed: None) -> None:
    """A stream's end as a session sees it: the gateway's ErrorEvent over grpc's made-up INTERNAL, the retry
    hint from the trailers, a lost connection; no server."""
    done = subprocess.run(
        [str(NODE), *NODE_TEST, "test/grpc-status.test.mjs"], cwd=JS, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_the_browser_bundle_is_current(installed: None, tmp_path: Path) -> None:
    """gateway/web's copy of the SDK (voice-agent-client.js) and its worklet are what `make clients` builds now."""
    subprocess.run([str(NODE), "scripts/build.mjs", "--check", str(tmp_path)], cwd=JS, check=True, timeout=60)
    web = ROOT / "gateway" / "web"
    for name in ("voice-agent-client.js", "pcm-worklet.js"):
        assert (tmp_path / name).read_text() == (web / name).read_text(), f"gateway/web/{name} is stale: make clients"


def test_the_type_declarations_compile(installed: None) -> None:
    """src/index.d.ts and src/browser.d.ts, used as an app would (test/types-check.ts), pass tsc --strict."""
    tsc = JS / "node_modules" / ".bin" / "tsc"
    done = subprocess.run([str(tsc), "-p", "tsconfig.json"], cwd=JS, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
