"""Smart Turn v3.2 from the pipecat-ai wheel: it loads, its features are Pipecat's, and it tells a
finished question from one cut mid-sentence. No timing asserts (benchmarks/turn_end.py measures)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from services.asr.models import smart_turn_path
from services.asr.smart_turn import WINDOW_SAMPLES, SmartTurn, features, last_window
from voice_agent.audio import pcm16_to_float
from voice_ops.samples import speak


@pytest.fixture(scope="module")
def smart_turn() -> SmartTurn:
    return SmartTurn()


def pause_audio(text: str) -> np.ndarray:
    """What the ASR hands the detector at a pause: the onset pad, the speech, speech_pad_ms of silence."""
    return pcm16_to_float(speak(text, lead_ms=300, tail_ms=100).audio.data)


def test_the_model_is_the_one_in_the_pipecat_wheel(smart_turn: SmartTurn) -> None:
    assert smart_turn.model_path == smart_turn_path()
    assert smart_turn.model_path.name == "smart-turn-v3.2-cpu.onnx" and "pipecat" in smart_turn.model_path.parts
    assert 0.0 <= smart_turn.predict(np.zeros(16_000, dtype=np.float32)) <= 1.0


@pytest.mark.unit
def test_the_features_are_pipecats() -> None:
    """Equal to the numpy Whisper feature extractor that ships beside the model (pipecat is never
    imported: its file is loaded alone)."""
    source = smart_turn_path().parent.parent / "_whisper_features.py"
    spec = importlib.util.spec_from_file_location("pipecat_whisper_features", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    audio = last_window(pause_audio("How can I sound more confident?"))
    assert audio.shape == (WINDOW_SAMPLES,) and not audio[: WINDOW_SAMPLES // 2].any()  # padded at the start
    ours, theirs = features(audio), module.compute_whisper_log_mel_features(audio, do_normalize=True)
    assert ours.shape == theirs.shape == (80, 800)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize(
    ("complete", "cut"),
    [("How can I sound more confident?", "I would like to"), ("Thank you that really helps", "Can you help me with")],
)
def test_a_finished_sentence_scores_high_and_a_cut_one_low(smart_turn: SmartTurn, complete: str, cut: str) -> None:
    finished, unfinished = smart_turn.predict(pause_audio(complete)), smart_turn.predict(pause_audio(cut))
    assert finished >= 0.7, finished
    assert unfinished <= 0.3, unfinished
