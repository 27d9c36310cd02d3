"""The load tests users run (loadtest/): a short locust run against the embedded stack, the failures it
must report (a gateway ErrorEvent, an unreachable gateway), the refusals of a gateway past its session
limit or a caller's quota (reported apart, not as failures), and the k6 script, checked with Node.

k6 itself is not installed here: its script is parsed by ``node --check`` and run by
loadtest/k6/dryrun/dryrun.mjs against a simulated gateway.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import ServiceProcess, free_port, start_service

from voice_agent.errors import RETRY_AFTER_KEY
from voice_ops.stack import gateway_backend_args

LOADTEST = Path(__file__).resolve().parents[1] / "loadtest"
K6_SCRIPT = LOADTEST / "k6" / "converse.js"


def loadtest(results: Path, host: str, *args: str, timeout_s: float = 120, **env: str) -> subprocess.CompletedProcess:
    """``make loadtest`` (loadtest/run.py) with these LOADTEST_* settings; nothing else from the caller's."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("LOADTEST_")}
    environ.update(LOADTEST_HOST=host, LOADTEST_RESULTS=str(results), **env)
    command = [sys.executable, str(LOADTEST / "run.py"), "--only-summary", *args]
    return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=timeout_s, check=False)


def stats(results: Path) -> dict[str, dict[str, str]]:
    """locust's CSV stats by request name."""
    with open(results / "converse_stats.csv", newline="") as file:
        return {row["Name"]: row for row in csv.DictReader(file)}


def failures(results: Path) -> list[str]:
    with open(results / "converse_failures.csv", newline="") as file:
        return [row["Error"] for row in csv.DictReader(file)]


def test_locust_conversations_against_the_embedded_stack(gateway_server: ServiceProcess, tmp_path: Path) -> None:
    run = loadtest(
        tmp_path,
        gateway_server.address,
        LOADTEST_USERS="2",
        LOADTEST_SPAWN_RATE="2",
        LOADTEST_TIME="15s",
        LOADTEST_TURNS="2",
        LOADTEST_PAUSE_MIN_S="0.5",
        LOADTEST_PAUSE_MAX_S="1",
        # Generous: a functional check that must not fail on a busy 2-core machine; CI's timings are not the point.
        LOADTEST_TURN_TIMEOUT_S="60",
        LOADTEST_STOP_TIMEOUT="60",
        timeout_s=180,
    )
    output = run.stdout[-3000:] + run.stderr[-3000:]
    assert run.returncode == 0, output
    rows = stats(tmp_path)
    turns = rows["turn"]
    assert turns["Type"] == "grpc"
    assert int(turns["Request Count"]) >= 2, output  # each user finishes its turn in flight (--stop-timeout)
    assert rows["Aggregated"]["Failure Count"] == "0", output
    assert failures(tmp_path) == []
    # e2e_ms on the client's clock spans the stages the gateway reports.
    for name in ("turn", "llm_ttft", "tts_ttfa"):
        assert rows[name]["Request Count"] == turns["Request Count"]
        assert 0 < float(rows[name]["Median Response Time"]) < 60_000, rows[name]
    assert float(turns["Min Response Time"]) > float(rows["tts_ttfa"]["Min Response Time"])
    assert (tmp_path / "report.html").stat().st_size > 0


def samples(results: Path) -> list[dict]:
    """The locustfile's samples (run.py asks for them): one JSON object per turn, stage time and refusal."""
    with open(results / "converse_samples.jsonl") as file:
        return [json.loads(line) for line in file]


@pytest.mark.parametrize("limit", ["max-streams", "per-caller-quota"])
def test_past_its_limit_the_gateway_refuses_conversations_at_once(
    limit: str, asr_server: ServiceProcess, piper_server: ServiceProcess, llm_server: ServiceProcess, tmp_path: Path
) -> None:
    """Two users, room for one conversation: the other is refused with RESOURCE_EXHAUSTED and a retry hint,
    quickly, and tries again after the hint; refusals are not failures, and the admitted turns all complete.
    How fast the admitted turns are under overload is measured by `make bench-overload`, not asserted here."""
    backends = gateway_backend_args(asr_server.address, piper_server.address, llm_server.address)
    # A short hint, so that the refused user tries again several times within the run.
    args, env = ["--retry-after-ms", "300"], {}
    if limit == "max-streams":
        args += ["--max-streams", "1"]
    else:  # one API key for both users, one conversation per credential; the gateway's own limit is far
        (tmp_path / "keys").write_text("the-only-key\n")
        args += ["--api-keys-file", str(tmp_path / "keys"), "--max-sessions-per-caller", "1"]
        env["LOADTEST_TOKEN"] = "the-only-key"
    gateway = start_service("gateway", tmp_path / "gateway.log", *backends, *args)
    try:
        run = loadtest(
            tmp_path,
            gateway.address,
            LOADTEST_USERS="2",
            LOADTEST_SPAWN_RATE="2",
            LOADTEST_TIME="8s",
            LOADTEST_TURNS="2",
            LOADTEST_PAUSE_MIN_S="0.5",
            LOADTEST_PAUSE_MAX_S="1",
            LOADTEST_TURN_TIMEOUT_S="60",  # generous, as above: a functional check on a busy machine
            LOADTEST_STOP_TIMEOUT="60",
            timeout_s=150,
            **env,
        )
    finally:
        gateway.stop()
    output = run.stdout[-3000:] + run.stderr[-3000:]
    assert run.returncode == 0, output  # refusals do not fail the run
    rows, taken = stats(tmp_path), samples(tmp_path)
    refused = [s for s in taken if s["name"] == "refused"]
    turns = [s for s in taken if s["name"] == "turn"]
    assert len(refused) >= 2, output  # refused, waited the hint, tried again and was refused again
    assert rows["refused"]["Type"] == "session" and rows["refused"]["Failure Count"] == "0"
    assert int(rows["refused"]["Request Count"]) == len(refused)
    # Refused before any work: each answer within a generous bound for a busy 2-core machine.
    assert all(s["code"] == "RESOURCE_EXHAUSTED" and 0 <= s["ms"] < 2000 for s in refused), refused
    # The admitted conversation's turns: all answered, none failed.
    assert turns and all(s["error"] is None and s["ms"] > 0 for s in turns), turns
    assert rows["Aggregated"]["Failure Count"] == "0" and failures(tmp_path) == [], output
    summary = json.loads((tmp_path / "converse_summary.json").read_text())
    assert summary["refused"] == len(refused) and summary["failed_turns"] == 0
    assert summary["admitted_e2e_ms"]["n"] == len(turns)
    assert f"refused conversations: {len(refused)}" in run.stdout
    # The retry hint: whole milliseconds in the trailing metadata (the gateway's --retry-after-ms, perhaps with
    # jitter); the user's wait before trying again is the hint.
    hints = [s["retry_after_ms"] for s in refused]
    assert all(isinstance(hint, int) and hint > 0 for hint in hints), f"{RETRY_AFTER_KEY}: {hints}"
    assert all(s["waited_ms"] == hint for s, hint in zip(refused, hints, strict=True))


def test_a_gateway_error_event_fails_the_run(
    asr_server: ServiceProcess, piper_server: ServiceProcess, tmp_path: Path
) -> None:
    """The LLM is unreachable: the gateway answers each turn with an ErrorEvent, and locust exits 1."""
    backends = gateway_backend_args(asr_server.address, piper_server.address, f"127.0.0.1:{free_port()}")
    gateway = start_service("gateway", tmp_path / "gateway.log", *backends)
    try:
        run = loadtest(tmp_path, gateway.address, LOADTEST_USERS="1", LOADTEST_TIME="4s", LOADTEST_TURNS="1")
    finally:
        gateway.stop()
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    errors = failures(tmp_path)
    assert errors and all("UNAVAILABLE from llm" in error for error in errors), errors
    assert int(stats(tmp_path)["turn"]["Failure Count"]) >= 1


def test_an_unreachable_gateway_fails_the_run(tmp_path: Path) -> None:
    host = f"127.0.0.1:{free_port()}"
    # run.py refuses to start without a gateway that answers its health check ...
    assert loadtest(tmp_path, host).returncode == 2
    # ... and locust itself reports every turn of a dead stream as a failure, with its gRPC code.
    command = [sys.executable, "-m", "locust", "-f", str(LOADTEST / "locustfile.py"), "--headless", "--host", host]
    command += [
        "-u",
        "1",
        "-t",
        "2s",
        "--csv",
        str(tmp_path / "converse"),
        "--only-summary",
        "--pause-min",
        "0.2",
        "--pause-max",
        "0.5",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1, run.stderr[-3000:]
    errors = failures(tmp_path)
    assert errors and all("stream failed: UNAVAILABLE" in error for error in errors), errors


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("Node.js is needed to check the k6 script: apt-get install nodejs")
    return path


def test_the_k6_script_parses(tmp_path: Path) -> None:
    # node parses ES modules (k6's `import ... from 'k6/...'`) in a .mjs file without resolving the imports.
    copy = tmp_path / "converse.mjs"
    shutil.copy(K6_SCRIPT, copy)
    check = subprocess.run([node(), "--check", str(copy)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr


def dryrun(**env: str) -> dict:
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("LOADTEST_", "DRYRUN_"))}
    environ.update(DRYRUN_SPEED="20", LOADTEST_PAUSE_MIN_S="0.2", LOADTEST_PAUSE_MAX_S="0.5", **env)
    command = [node(), str(LOADTEST / "k6" / "dryrun" / "dryrun.mjs"), str(K6_SCRIPT)]
    run = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_the_k6_scenario_against_a_simulated_gateway() -> None:
    """Every turn timed (the simulated gateway answers 400 ms after the speech ended), barge-ins counted."""
    result = dryrun(LOADTEST_TURNS="2", LOADTEST_BARGE_IN="1")
    metrics, gateway = result["metrics"], result["gateway"]
    assert gateway["configs"] == gateway["ends"] == 1
    assert gateway["replies"] == 2 and gateway["interruptions"] == 2
    assert len(metrics["e2e_ms"]) == 2 and all(300 < value < 600 for value in metrics["e2e_ms"]), metrics
    assert metrics["llm_ttft_ms"] == [120, 120] and metrics["tts_ttfa_ms"] == [180, 180]
    assert metrics["turn_failures"] == [0, 0] and metrics["gateway_errors"] == []
    assert metrics["interruptions"] == [1, 1]
    thresholds = result["options"]["thresholds"]
    assert thresholds["turn_failures"] == ["rate==0"] and thresholds["e2e_ms"][0].startswith("p(95)<")


def test_the_k6_scenario_counts_gateway_errors() -> None:
    metrics = dryrun(DRYRUN_FAIL="llm", DRYRUN_ITERATIONS="2")["metrics"]
    assert metrics["turn_failures"] == [1, 1] and metrics["gateway_errors"] == [1, 1]
    assert metrics["e2e_ms"] == []
