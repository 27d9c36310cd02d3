"""Settings of the embedded LLM server."""

from __future__ import annotations

import dataclasses
import os

from voice_agent.config import Config, setting
from voice_agent.service_spec import ServiceSpec


@dataclasses.dataclass
class LlmServerConfig(Config):
    """The embedded LLM server: llama.cpp's OpenAI-compatible server on CPU."""

    env_prefix = "VOICE_LLM_"

    host: str = setting("0.0.0.0", "Address the HTTP server binds.")
    port: int = setting(8000, "HTTP port of /v1/chat/completions.")
    model: str = setting(
        "", "GGUF model file. Empty: the embedded Gemma 3 270M Q4_K_M with the project's dialogue chat template."
    )
    model_alias: str = setting("gemma-3-270m", "The model name clients ask for.")
    context_tokens: int = setting(2048, "Context window (n_ctx).")
    threads: int = setting(0, "CPU threads for generating tokens; 0 uses every core.")
    batch_threads: int = setting(0, "CPU threads for reading the prompt (prefill); 0 uses every core.")
    nice: int = setting(
        10,
        "Added to the server's OS niceness (0-19) at start. The embedded server shares its cores with the TTS: at"
        " 10 the TTS's first phrase gets them while the LLM decodes the rest of the reply (Kokoro's first audio"
        " twice as fast on 2 cores; make bench-scheduling), and the LLM still has them whenever nothing else wants"
        " them. 0: equal shares.",
    )

    def describe(self) -> dict[str, object]:
        cores = os.cpu_count() or 1
        return {
            "model": self.model_alias,
            "decode_threads": self.threads or cores,
            "prefill_threads": self.batch_threads or cores,
            "nice": self.nice,
        }

    def validate(self) -> None:
        super().validate()
        if not 0 < self.port <= 65535:
            raise ValueError(f"port must be a port number, got {self.port}")
        if self.context_tokens < 256 or min(self.threads, self.batch_threads) < 0:
            raise ValueError("context_tokens must be at least 256, threads and batch_threads at least 0")
        if not 0 <= self.nice <= 19:
            raise ValueError(f"nice must be in 0..19, got {self.nice}")


#: What the embedded stack needs to run this service.
# llama.cpp's server has no /health; /v1/models answers once the model is loaded.
SERVICE = ServiceSpec("llm", "services.llm", LlmServerConfig, http_ready_path="/v1/models")
