"""Settings of the gateway process."""

from __future__ import annotations

import codecs
import dataclasses

from gateway.llm import LlmSettings
from gateway.persona import DEFAULT_SYSTEM_PROMPT
from voice_agent.config import ServerConfig, setting


@dataclasses.dataclass
class GatewayConfig(ServerConfig):
    """The gateway: one Converse stream per conversation, across ASR, LLM and TTS."""

    env_prefix = "VOICE_GATEWAY_"

    port: int = setting(50051, "gRPC port.")
    metrics_port: int = setting(9101, "Port of the Prometheus /metrics HTTP endpoint; 0 turns it off.")
    asr_address: str = setting("127.0.0.1:50052", "The ASR service.")
    tts_address: str = setting("127.0.0.1:50053", "The TTS service.")
    llm_base_url: str = setting("http://127.0.0.1:8000/v1", "An OpenAI-compatible server (vLLM, llama.cpp).")
    llm_model: str = setting("gemma-3-270m", "The model name sent to the LLM server.")
    llm_api_key: str = setting("none", "Bearer key for the LLM server, if it wants one.")
    llm_max_tokens: int = setting(60, "Longest reply, in tokens.")
    llm_temperature: float = setting(0.7, "Sampling temperature.")
    llm_stop: str = setting(
        "\\n",
        "Stop strings, separated by '|', with backslash escapes. The default ends a reply at its line, as the "
        "embedded base model's dialogue template needs; set it empty for an instruction-tuned model.",
    )
    llm_timeout_s: float = setting(30.0, "Deadline of one LLM request.")
    system_prompt: str = setting(
        DEFAULT_SYSTEM_PROMPT, "The coaching persona; identical every turn for prefix caching."
    )
    voice: str = setting("", "TTS voice. Empty: the engine's default.")
    barge_in: bool = setting(True, "Let the user interrupt the agent by speaking.")
    barge_in_min_speech_ms: int = setting(
        0, "Speech needed before it interrupts the agent; more ignores coughs and 'mm-hmm' but stops later."
    )
    audio_lead_ms: int = setting(
        500, "Agent audio sent ahead of the client's playback; less stops sooner on barge-in, more rides out jitter."
    )
    history_tokens: int = setting(1200, "Token budget of the history sent to the LLM; the oldest turns go first.")
    backend_timeout_s: float = setting(30.0, "Deadline of one TTS stream.")
    api_keys_file: str = setting(
        "", "Static API keys, one per line ('#' comments). With this or jwks_file set, Converse needs a bearer token."
    )
    jwks_file: str = setting("", "A JWKS (JSON) whose keys may sign the JWTs that Converse accepts as bearer tokens.")
    jwt_issuer: str = setting("", "Required 'iss' of accepted JWTs; empty: not checked.")
    jwt_audience: str = setting("", "Required 'aud' of accepted JWTs; empty: not checked.")

    def validate(self) -> None:
        super().validate()
        if self.llm_max_tokens < 1 or self.history_tokens < 100 or self.barge_in_min_speech_ms < 0:
            raise ValueError("llm_max_tokens >= 1, history_tokens >= 100, barge_in_min_speech_ms >= 0")

    def llm_settings(self) -> LlmSettings:
        stops = codecs.decode(self.llm_stop, "unicode_escape").split("|") if self.llm_stop else []
        return LlmSettings(
            base_url=self.llm_base_url,
            model=self.llm_model,
            api_key=self.llm_api_key,
            max_tokens=self.llm_max_tokens,
            temperature=self.llm_temperature,
            stop=tuple(s for s in stops if s),
            request_timeout_s=self.llm_timeout_s,
        )
