"""The demo's summary of its turns: what `make demo` prints under its latency table."""

from __future__ import annotations

import pytest

from voice_ops.demo import DESIGN_TARGET_MS, EVERY_TURN_TARGET_MS, summary

pytestmark = pytest.mark.unit  # no model, no service: make test-unit


def test_the_summary_is_the_p50_and_the_max_of_the_turns_answered() -> None:
    rows = [{"e2e_ms": 500.0}, {"e2e_ms": 700.0}, {"vad_wait_ms": 160.0}, {"e2e_ms": 600.0}, {"e2e_ms": 900.0}]
    assert summary(rows) == {
        "turns": 4,
        "p50": 650.0,
        "max": 900.0,
        "target_p50": DESIGN_TARGET_MS,
        "target_max": EVERY_TURN_TARGET_MS,
    }
    assert summary([{"e2e_ms": 500.0}, {"e2e_ms": 700.0}, {"e2e_ms": 600.0}])["p50"] == 600.0
    assert summary([{"vad_wait_ms": 160.0}]) == {"turns": 0}
