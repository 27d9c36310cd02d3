"""The benchmark commands run end to end at a tiny size (--quick) and write what they promise.

Speed is never asserted: only that each command finishes, and that its JSON has the
expected keys and sane values. The concurrency sweep, the long conversation and the
barge-ins talk to the session's stack (--gateway); the start benchmark starts its
own processes, the gateway benchmark its fakes and its own gateway, and the latency
benchmark its own stack (a gateway with short replies).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import ServiceProcess

from voice_agent.client.converse import STAGES

ROOT = Path(__file__).resolve().parent.parent
BREAKDOWN = {*STAGES, "overhead_ms"}
PNG = b"\x89PNG"


def bench(name: str, out: Path, *args: str, timeout_s: int = 300, result: str | None = None) -> dict:
    """Runs ``python -m benchmarks.<name> --quick --out <out>``; returns its JSON (``<result or name>.json``)."""
    command = [sys.executable, "-m", f"benchmarks.{name}", "--quick", "--out", str(out), *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, done.stderr[-5000:]
    return json.loads((out / f"{result or name}.json").read_text())


@pytest.fixture
def stack_args(
    gateway_server: ServiceProcess, asr_server: ServiceProcess, piper_server: ServiceProcess, llm_server: ServiceProcess
) -> list[str]:
    """Flags that point a benchmark at the session's running stack."""
    servers = {"gateway": gateway_server, "asr": asr_server, "tts": piper_server, "llm": llm_server}
    return [arg for name, server in servers.items() for arg in (f"--{name}", server.address)]


def is_png(path: Path) -> bool:
    return path.read_bytes()[:4] == PNG


def test_concurrency_sweep(tmp_path: Path, stack_args: list[str]) -> None:
    result = bench("load", tmp_path, *stack_args)
    assert result["stack"] == {"fresh": False, "tts_engine": "piper", "tracing": None, "settings": {}}
    levels = result["levels"]
    assert [level["conversations"] for level in levels] == [1, 2]
    for level in levels:
        assert level["errors"] == 0 and level["turns"] == level["conversations"], level
        assert 0 < level["e2e_ms"]["p50"] <= level["e2e_ms"]["p95"]
        assert set(level["stages_ms"]) == BREAKDOWN
        assert level["stages_ms"]["vad_wait_ms"]["p50"] > 0 and level["stages_ms"]["llm_ttft_ms"]["p50"] > 0
        # Each process was found by its port and measured.
        assert set(level["rss_mb"]) == {"gateway", "asr", "tts", "llm"}
        assert set(level["process_cpu"]) == {"gateway", "asr", "tts", "llm", "client"}
        assert all(mb > 0 for mb in level["rss_mb"].values())
    assert result["most_conversations_p95_under_limit"] in (0, 1, 2)
    assert is_png(tmp_path / "load.png") and is_png(tmp_path / "load_stages.png")


def test_gateway_alone_on_fakes(tmp_path: Path) -> None:
    result = bench("gateway", tmp_path)
    assert "FAKE" in result["backends"]
    assert set(result["modes"]) == {"text", "audio"}
    for mode in result["modes"].values():
        assert [level["sessions"] for level in mode["levels"]] == [1, 5]
        for level in mode["levels"]:
            assert level["errors"] == 0, level
            assert level["turns"] == 2 * level["sessions"]
            assert 0 < level["latency_ms"]["p50"] <= level["latency_ms"]["p95"] <= level["latency_ms"]["p99"]
            assert level["turns_per_s"] > 0 and level["gateway_rss_mb"] > 0
            assert {"gateway", "fake-asr", "fake-tts", "fake-llm", "client"} == set(level["process_cpu"])
        assert "most_sessions_p95_under_threshold" in mode["capacity"]
    assert is_png(tmp_path / "gateway.png")


def test_cold_and_warm_start(tmp_path: Path) -> None:
    result = bench("start", tmp_path, "--engines", "piper")
    assert set(result["cold"]) == {"asr", "tts-piper", "llm", "gateway"}
    for service in result["cold"].values():
        assert service["healthy_s_p50"] > 0 and len(service["healthy_s"]) == 1
        assert service["listening_s_p50"] is None or service["listening_s_p50"] <= service["healthy_s_p50"]
    assert result["cold"]["asr"]["load_s_own_log_p50"] > 0  # the service's own "ready in" line was found
    warm = result["warm"]
    assert warm["failed_turns"] == 0
    assert warm["first_turn_e2e_ms"]["n"] == 1 and warm["later_turns_e2e_ms"]["n"] == 1
    assert warm["first_over_later_p50"] > 0
    assert set(warm["first_turn_stages_p50_ms"]) == set(warm["later_turns_stages_p50_ms"]) == BREAKDOWN
    assert is_png(tmp_path / "start.png")


def test_long_conversation(tmp_path: Path, stack_args: list[str]) -> None:
    result = bench("long", tmp_path, *stack_args)
    assert result["turns"] == 3 and result["failed_turns"] == 0
    assert [row["turn"] for row in result["per_turn"]] == [1, 2, 3]
    assert {"slope_ms_per_turn", "first_1_p50", "last_1_p50"} <= set(result["e2e_drift"])
    assert set(result["stage_drift"]) == BREAKDOWN
    assert set(result["memory"]) == {"gateway", "asr", "tts", "llm"}
    for memory in result["memory"].values():
        assert memory["before_mb"] > 0 and memory["last_mb"] > 0
    assert is_png(tmp_path / "long.png")


def test_barge_ins(tmp_path: Path, stack_args: list[str]) -> None:
    result = bench("bargein", tmp_path, *stack_args)
    assert result["interrupted"] + result["missed"] == 2
    assert result["interrupted"] >= 1  # the first talks over the agent as its audio starts
    assert result["stop_ms"]["n"] == result["interrupted"]
    assert 0 <= result["stop_ms"]["p50"] <= result["stop_ms"]["p95"]
    assert result["interruption_event_ms"]["p50"] >= 0 and result["chunks_after_speech_started_total"] >= 0


def test_latency_techniques(tmp_path: Path) -> None:
    # Its own stack (Piper, short replies: a turn lasts as long as its reply plays): per configuration an
    # uncounted paused utterance and one question; one paused utterance per configuration straight into
    # the ASR; a two-point first-phrase sweep.
    result = bench("latency", tmp_path, "--engine", "piper", "--llm-max-tokens", "8")
    assert result["stack"]["fresh"] and result["stack"]["tts_engine"] == "piper"
    assert result["stack"]["llm_max_tokens"] == 8
    configs = result["configurations"]
    assert list(configs) == [
        "all_off",
        "preemptive_generation",
        "reuse_pause_transcript",
        "short_first_phrase",
        "warm_paths",
        "adaptive_endpointing",
        "all_on",
    ]
    for name, config in configs.items():
        options = config["options"]
        techniques = {key for key, on in options.items() if on is True}
        assert techniques == {"all_off": set(), "all_on": set(options) - {"min_silence_ms"}}.get(name, {name})
        assert options["min_silence_ms"] == (150 if name in ("adaptive_endpointing", "all_on") else 200)
        assert config["turns"] == 1 and config["failed_turns"] == 0, config
        assert 0 < config["e2e_ms"]["p50"] <= config["e2e_ms"]["p95"]
        assert set(config["stages_ms"]) == BREAKDOWN
        assert config["preemptions_kept"] is not None  # the gateway's counter was scraped
        assert result["pause_set_through_gateway"][name]["utterances"] == 1
    assert configs["all_off"]["preemptive_turns"] == 0 and configs["all_off"]["preemptions_kept"] == 0
    assert set(result["pause_set"]) == {"all_off", "adaptive_endpointing", "all_on"}
    for pause in result["pause_set"].values():
        assert pause["utterances"] == 1 and 0 <= pause["false_ends_of_turn"] <= 1
    assert set(result["first_phrase_sweep"]) == {"3", "50"}
    assert all(entry["ttfa_ms"]["p50"] > 0 for entry in result["first_phrase_sweep"].values())
    assert {"e2e_p50_all_on_over_all_off", "all_on_overhead_ms_p50", "all_on_false_ends_of_turn"} <= set(
        result["targets"]
    )
    assert is_png(tmp_path / "latency.png")


def test_sharing_the_cores(tmp_path: Path) -> None:
    # Its own ASR and TTS (the default engine), and per configuration its own LLM server and gateway: with
    # --quick the first two configurations, one counted turn each after an uncounted one.
    result = bench("scheduling", tmp_path)
    assert result["tts_engine"] == "piper" and result["configurations"]["llm_nice"]["llm"][:2] == ["--nice", "10"]
    assert list(result["report"]) == ["shared", "llm_nice"]
    for report in result["report"].values():
        assert report["failed"] == 0 and report["e2e_ms"]["n"] == 1 and report["tts_ttfa_ms"]["n"] == 1


def test_end_of_turn_detectors(tmp_path: Path) -> None:
    # Offline and in-process: --quick judges 2 sentences of each pause set (espeak's, and the recorded human
    # ones cut after a function word and after a clause) at each pause length and 2 complete sentences of each
    # set, with every detector; then the live part on its own ASR service (2 complete, 1 paused, each
    # detector). The e2e part (a whole stack) is left out here.
    result = bench("turn_end", tmp_path, "--parts", "offline,live")
    assert list(result["detectors"]) == ["text", "smart_turn", "both", "either"]
    for report in result["detectors"].values():
        assert report["pause_utterances"] == {"espeak_pause": 6, "human_pause": 6, "human_clause_pause": 6}
        assert report["complete_utterances"] == {"human": 4, "espeak": 2}
        assert all(0 <= report["false_ends"][f] <= 6 for f in report["false_ends"])
        assert report["vad_wait_ms"]["human"]["p50"] >= result["settings"]["min_silence_ms"]
        assert report["decision_ms"]["n"] >= 10 and report["decision_ms"]["p50"] > 0
    assert set(result["smart_turn_thresholds"]) == {"0.3", "0.5", "0.7", "0.9"}
    live = result["live"]["report"]
    assert list(live) == ["text", "smart_turn", "both"]
    for report in live.values():
        assert report["complete_utterances"] == 2 and report["vad_wait_ms"]["n"] == 2
        assert report["vad_wait_ms"]["p50"] >= result["settings"]["min_silence_ms"]
        assert sum(report["pause_utterances"].values()) == 1
    assert "e2e" not in result


def test_two_gateways_side_by_side(tmp_path: Path) -> None:
    # The base is this very commit: the two gateways run the same code, on one set of backends.
    # Three questions each, the first one uncounted (warm-up): each gateway speaks first once and second once.
    result = bench("gateway_ab", tmp_path, "--base", "HEAD", "--questions", "3")
    default = result["report"]["default"]
    assert list(result["report"]) == ["default"] and result["base"]
    for label in ("base", "new"):
        assert default[label]["e2e_ms"]["n"] == 2
        assert default[label]["e2e_ms_position_1"]["n"] == default[label]["e2e_ms_position_2"]["n"] == 1
    assert default["e2e_p50_ratio_new_to_base"] > 0
    assert set(result["gateway_cpu"]["processes"]) == {"base", "new"}


def test_realtime_against_converse(tmp_path: Path, stack_args: list[str], gateway_server: ServiceProcess) -> None:
    http_port = gateway_server.settings.http_port  # type: ignore[union-attr]
    result = bench("realtime", tmp_path, *stack_args, "--http-port", str(http_port))
    assert result["turns_per_front"] == 2
    for front in ("converse", "realtime"):
        assert result[front]["first_turn"]["e2e_ms"] > 0, result[front]
        assert result[front]["warm_turns"]["e2e_ms"]["n"] == 1


def test_turn_taking_on_natural_material(tmp_path: Path, stack_args: list[str]) -> None:
    """The default material, one case of a sentence and of the echo alone, through a -25 dB echo path."""
    sets = "sentence@-25 dB,echo@-25 dB"
    result = bench(
        "turns", tmp_path, *stack_args, "--cases", "1", "--sets", sets, timeout_s=300, result="turns-natural-default"
    )
    assert result["settings"]["material"] == "natural" and result["settings"]["echo_mode"] == "default"
    rows = {row["set"]: row for row in result["per_case"]}
    assert set(rows) == {"sentence", "echo"} and {row["level"] for row in rows.values()} == {"-25 dB"}
    assert rows["sentence"]["said"] and rows["sentence"]["echo_path"]  # a recorded speaker, a room and a speaker
    assert {target["set"] for target in result["targets"]} >= {"sentence interruptions at -25 dB"}
    assert all(target["met"] in ("met", "NOT met", "-") for target in result["targets"])  # rates: the benchmark's


def test_turn_taking_espeak_regression(tmp_path: Path, stack_args: list[str]) -> None:
    args = ("--material", "espeak", "--cost")  # 10 spoken cases and 5 turns: ~5 minutes
    result = bench("turns", tmp_path, *stack_args, *args, timeout_s=480)
    sets = result["sets"]
    assert set(sets) == {"backchannel", "intent", "noise", "echo", "echo_intent"}
    assert all(entry["cases"] == 2 for entry in sets.values())
    assert sets["intent"]["interrupted"] >= 1  # rates are the benchmark's; one "wait" interrupts
    steps = {"off", "decision", "decision+backchannels", "all (default)", "all + echo cancellation"}
    assert set(result["e2e_ms_by_technique"]) == steps
    assert all(cost["n"] == 1 for cost in result["e2e_ms_by_technique"].values())
    assert result["longest_gap_ms_uninterrupted"]["n"] == len(steps)
    assert is_png(tmp_path / "turns.png")


def test_personas(tmp_path: Path, stack_args: list[str]) -> None:
    result = bench("personas", tmp_path, *stack_args)
    total = result["total"]
    assert total["turns"] == 4 and total["failed"] == 0, total
    assert total["silent"] == 0 and total["label"] == 0, result["personas"]  # issue 22's targets, on two personas
    assert 0 < total["e2e_ms"]["p50"] <= total["e2e_ms"]["p95"]
