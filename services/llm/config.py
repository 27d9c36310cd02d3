"""Settings of the embedded LLM server."""

from __future__ import annotations

import dataclasses

from voice_agent.config import Config, setting


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
    threads: int = setting(0, "CPU threads for generation; 0 uses every core.")

    def validate(self) -> None:
        super().validate()
        if not 0 < self.port <= 65535:
            raise ValueError(f"port must be a port number, got {self.port}")
        if self.context_tokens < 256 or self.threads < 0:
            raise ValueError("context_tokens must be at least 256, threads at least 0")
