"""Settings of the gateway process.

GatewayConfig keeps the settings every server has (ports, logs, TLS, max_streams) and the HTTP port at its top
level, and the rest in groups, each read where it is used: ``config.persona``, ``config.latency``,
``config.turn_taking``, ``config.limits``, ``config.backends``, ``config.auth`` and ``config.records``. A
grouped setting keeps its own flag and variable (``--latency-mode``, ``VOICE_GATEWAY_LATENCY_MODE``): see
voice_agent/config.py.
"""

from __future__ import annotations

import codecs
import dataclasses
from typing import Any

import grpc

from gateway.latency import LATENCY_MODES, MODE_SILENCE_MS, LatencyPlan
from gateway.llm import LlmSettings
from gateway.persona import DEFAULT_SYSTEM_PROMPT
from gateway.records.store import redacted
from voice_agent import tls
from voice_agent.config import ServerConfig, SettingGroup, setting
from voice_agent.contract import (
    DEFAULT_INCOMPLETE_SILENCE_MS,
    DEFAULT_INTERIM_INTERVAL_MS,
    INTERIM_INTERVAL_RANGE_MS,
    MAX_CHUNK_MS,
    MAX_SILENCE_MS,
)
from voice_agent.service_spec import ServiceSpec


@dataclasses.dataclass
class PersonaSettings(SettingGroup):
    """Who the agent is and how it sounds, unless a session chooses otherwise."""

    system_prompt: str = setting(
        DEFAULT_SYSTEM_PROMPT, "The coaching persona; identical every turn for prefix caching."
    )
    voice: str = setting("", "TTS voice. Empty: the engine's default.")


@dataclasses.dataclass
class LatencySettings(SettingGroup):
    """The latency techniques (docs/performance.md) every session starts with."""

    latency_mode: str = setting(
        "fast",
        "'fast': every latency technique on (preemptive generation, reused pause transcripts, a short first"
        " phrase, warm paths, adaptive end of turn); 'baseline': all off. Sessions may override each one.",
    )
    min_silence_ms: int = setting(
        0,
        f"Silence that ends the user's turn; 0: the latency mode's (fast {MODE_SILENCE_MS['fast']} ms, baseline"
        f" {MODE_SILENCE_MS['baseline']} ms).",
    )
    incomplete_silence_ms: int = setting(
        DEFAULT_INCOMPLETE_SILENCE_MS,
        "With the adaptive end of turn: the silence that ends a turn whose transcript stops mid-sentence.",
    )
    first_phrase_words: int = setting(
        4,
        "Most words in the reply's first TTS phrase when the short first phrase is on"
        " (docs/performance/latency-techniques.md).",
    )

    def plan(self) -> LatencyPlan:
        """The techniques of latency_mode, at min_silence_ms: every session's, unless it chooses otherwise."""
        return LatencyPlan.for_mode(self.latency_mode, self.min_silence_ms)

    def validate(self) -> None:
        super().validate()
        if self.latency_mode not in LATENCY_MODES:
            raise ValueError(f"latency_mode must be one of {', '.join(LATENCY_MODES)}, got {self.latency_mode!r}")
        if not 0 <= self.min_silence_ms <= MAX_SILENCE_MS or not 0 <= self.incomplete_silence_ms <= MAX_SILENCE_MS:
            raise ValueError(f"min_silence_ms and incomplete_silence_ms must be in 0..{MAX_SILENCE_MS}")
        if not 1 <= self.first_phrase_words <= 50:
            raise ValueError("first_phrase_words must be in 1..50")


@dataclasses.dataclass
class TurnTakingSettings(SettingGroup):
    """Speech over the agent: whether it interrupts, and how the agent's own echo is told apart."""

    barge_in: bool = setting(True, "Let the user interrupt the agent by speaking.")
    barge_in_min_speech_ms: int = setting(
        0, "Speech needed before it interrupts the agent; more ignores coughs and 'mm-hmm' but stops later."
    )
    interruption_decision: bool = setting(
        True,
        "Speech over the agent holds its audio (cancelling nothing) until its transcript says whether it is an"
        " interruption; a backchannel, noise or echo resumes it where it stopped. Off: any speech interrupts.",
    )
    backchannel_words: bool = setting(
        True, "With interruption_decision: acknowledgements ('mm-hmm', 'yeah', 'right') do not interrupt the agent."
    )
    echo_rejection: bool = setting(
        True,
        "Speech whose transcript repeats the agent's recent words is its echo: it neither interrupts nor starts a"
        " user turn (also a final that comes within echo_window_ms after the agent's audio ended).",
    )
    echo_cancellation: bool = setting(
        False,
        "Cancel the agent's echo in the user's audio (WebRTC AEC3, the audio the gateway sent being the reference,"
        " once an echo is found in it) before the ASR hears it. Off by default: in a session's first reply it"
        " made the echo sets of bench-turns worse (docs/performance/echo-cancellation.md); for clients with no"
        " echo cancellation.",
    )
    echo_window_ms: int = setting(2500, "How long after the agent's audio ended a final is still checked for echo.")
    decision_interim_ms: int = setting(
        200,
        f"With interruption_decision: the ASR's interim interval (ms, >= {INTERIM_INTERVAL_RANGE_MS[0]}), so that"
        f" words over the agent are heard soon; the ASR's own default ({DEFAULT_INTERIM_INTERVAL_MS}) when off.",
    )
    audio_lead_ms: int = setting(
        500, "Agent audio sent ahead of the client's playback; less stops sooner on barge-in, more rides out jitter."
    )

    def validate(self) -> None:
        super().validate()
        if self.barge_in_min_speech_ms < 0:
            raise ValueError("barge_in_min_speech_ms must not be negative")
        low, high = INTERIM_INTERVAL_RANGE_MS
        if not low <= self.decision_interim_ms <= high or not 0 <= self.echo_window_ms <= 60_000:
            raise ValueError(f"decision_interim_ms must be in {low}..{high}, echo_window_ms in 0..60000")


@dataclasses.dataclass
class LimitSettings(SettingGroup):
    """What one conversation, one caller and one message may take (besides max_streams, every server's)."""

    max_sessions_per_caller: int = setting(
        4, "Concurrent conversations per credential (API key or JWT subject), when auth is on; 0: no quota."
    )
    retry_after_ms: int = setting(
        2000, "The retry hint ('retry-after-ms' trailer) of a refused conversation; clients get it plus up to 50 %."
    )
    max_session_s: float = setting(
        3600.0, "Longest conversation; it then ends with DEADLINE_EXCEEDED (after the turn in flight)."
    )
    idle_timeout_s: float = setting(
        60.0, "A conversation with no message from the client and no agent turn this long ends with DEADLINE_EXCEEDED."
    )
    max_chunk_ms: int = setting(
        MAX_CHUNK_MS, "Longest audio message; a longer one ends the session with INVALID_ARGUMENT."
    )
    max_text_chars: int = setting(
        2000,
        "Longest typed text; a longer one gets an INVALID_ARGUMENT error event and is ignored (the session goes on).",
    )
    http_max_frame_bytes: int = setting(
        1 << 20,
        "Largest WebSocket message the Realtime API takes (base64 audio: ~64 KiB a second at 24 kHz); a larger"
        " one is refused before it is buffered and closes the socket with 1009.",
    )
    history_tokens: int = setting(1200, "Token budget of the history sent to the LLM; the oldest turns go first.")

    def typed_text_error(self, text: str) -> str | None:
        """Why typed text is refused, or None: both fronts refuse it alike, and the session goes on."""
        if len(text) <= self.max_text_chars:
            return None
        return f"typed text of {len(text)} characters is over the limit of {self.max_text_chars}"

    def validate(self) -> None:
        super().validate()
        if min(self.max_session_s, self.idle_timeout_s) <= 0:
            raise ValueError("max_session_s and idle_timeout_s must be positive")
        if not 20 <= self.max_chunk_ms <= MAX_CHUNK_MS or self.max_text_chars < 1:
            raise ValueError(f"max_chunk_ms must be in 20..{MAX_CHUNK_MS} (the ASR's limit), max_text_chars at least 1")
        if self.max_sessions_per_caller < 0 or self.retry_after_ms < 0:
            raise ValueError("max_sessions_per_caller and retry_after_ms must not be negative")
        if not 4096 <= self.http_max_frame_bytes <= 64 << 20:
            raise ValueError(f"http_max_frame_bytes must be in 4096..{64 << 20}, got {self.http_max_frame_bytes}")
        if self.history_tokens < 100:
            raise ValueError("history_tokens must be at least 100")


@dataclasses.dataclass
class BackendSettings(SettingGroup):
    """The ASR, TTS and LLM the gateway uses, and how it reaches them."""

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
    llm_timeout_s: float = setting(
        10.0, "Longest wait for the LLM's first token, and between tokens; past it the turn fails DEADLINE_EXCEEDED."
    )
    backend_timeout_s: float = setting(
        15.0,
        "Longest wait for the TTS's next audio of a turn (and for the ASR and the turn to finish when a session"
        " ends); past it the turn fails DEADLINE_EXCEEDED and the session goes on.",
    )
    backend_tls_ca_file: str = setting(
        "", "PEM CA bundle that signed the ASR and TTS servers' certificates; set, they are reached over TLS."
    )
    backend_tls_cert_file: str = setting(
        "", "PEM client certificate presented to ASR and TTS (mTLS); needs backend_tls_key_file and a CA."
    )
    backend_tls_key_file: str = setting("", "PEM private key of backend_tls_cert_file.")
    backend_tls_server_name: str = setting(
        "", "The name the ASR and TTS certificates are verified for. Empty: each address's host."
    )

    def validate(self) -> None:
        super().validate()
        if self.llm_max_tokens < 1:
            raise ValueError("llm_max_tokens must be at least 1")
        if min(self.llm_timeout_s, self.backend_timeout_s) <= 0:
            raise ValueError("llm_timeout_s and backend_timeout_s must be positive")
        if bool(self.backend_tls_cert_file) != bool(self.backend_tls_key_file):
            raise ValueError("backend_tls_cert_file and backend_tls_key_file go together: set both or neither")
        if (self.backend_tls_cert_file or self.backend_tls_server_name) and not self.backend_tls_ca_file:
            raise ValueError("backend_tls_cert_file and backend_tls_server_name need backend_tls_ca_file (TLS)")

    @property
    def transport(self) -> str:
        """'mTLS', 'TLS' or 'plaintext': how the ASR and TTS are reached."""
        if not self.backend_tls_ca_file:
            return "plaintext"
        return "mTLS" if self.backend_tls_cert_file else "TLS"

    def channel(self, address: str, **kwargs: Any) -> grpc.aio.Channel:
        """A channel to ASR or TTS at ``address``: TLS (mTLS with a client certificate) when configured."""
        return tls.aio_channel(
            address,
            ca_file=self.backend_tls_ca_file,
            cert_file=self.backend_tls_cert_file,
            key_file=self.backend_tls_key_file,
            server_name=self.backend_tls_server_name,
            **kwargs,
        )

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


@dataclasses.dataclass
class AuthSettings(SettingGroup):
    """Who may open a conversation: bearer tokens on Converse and the Realtime API. Neither file: anyone."""

    api_keys_file: str = setting(
        "",
        "Static API keys, one per line ('#' comments). With this or jwks_file set, Converse and the Realtime API"
        " need a bearer token.",
    )
    jwks_file: str = setting("", "A JWKS (JSON) whose keys may sign the JWTs that Converse accepts as bearer tokens.")
    jwt_issuer: str = setting("", "Required 'iss' of accepted JWTs; empty: not checked.")
    jwt_audience: str = setting("", "Required 'aud' of accepted JWTs; empty: not checked.")
    admin_api_keys_file: str = setting(
        "",
        "API keys of operators, one per line: they authenticate as api_keys_file's do, and read and delete every"
        " caller's conversation records (docs/conversations.md).",
    )
    jwt_role_claim: str = setting(
        "role",
        "The JWT claim that holds the caller's role (a string or a list): 'operator' reads and deletes every"
        " caller's conversation records.",
    )


@dataclasses.dataclass
class RecordSettings(SettingGroup):
    """Conversation records and recordings, resume and memory (docs/conversations.md). Recording is the
    operator's call (consent): off unless record is set here or a session asks for it."""

    records_url: str = setting(
        "memory://",
        "Where conversation records go: sqlite:///PATH, postgresql://USER:PASS@HOST/DB, or memory:// (this"
        " process only, lost on exit: resume works within the process, nothing is kept). The embedded stack"
        " uses SQLite in its state folder.",
    )
    recordings_url: str = setting(
        "",
        "Where recordings go: file:///DIR or s3://BUCKET/PREFIX; empty: no recordings, whatever record says.",
    )
    record: bool = setting(
        False,
        "Keep a stereo recording of each conversation (user left, agent right) unless its session says"
        " otherwise (SessionConfig.record). On in the embedded stack.",
    )
    memory: bool = setting(
        True,
        "Summarize each conversation when it ends, and give the coach a short summary of the caller's earlier"
        " ones; a session may turn it off (SessionConfig.memory).",
    )
    resume_window_s: int = setting(
        120,
        "How long after a dropped connection its conversation can be resumed (SessionConfig.resume_conversation_id).",
    )
    retention_days: float = setting(0.0, "Delete conversations (and their recordings) older than this; 0: keep them.")
    write_buffer_items: int = setting(
        2000, "Record writes held while the store is slow or down; past it, the oldest audio is dropped first."
    )
    write_buffer_mb: float = setting(
        64.0, "Bytes of record writes (mostly audio) held while the store is slow or down."
    )

    def validate(self) -> None:
        super().validate()
        if not self.records_url.startswith(("memory://", "sqlite://", "postgresql://", "postgres://")):
            raise ValueError(
                f"records_url must be memory://, sqlite:///PATH or postgresql://..., got {self.records_url!r}"
            )
        if self.recordings_url and not self.recordings_url.startswith(("file://", "s3://")):
            raise ValueError(
                f"recordings_url must be empty, file:///DIR or s3://BUCKET/PREFIX, got {self.recordings_url!r}"
            )
        if not 0 <= self.resume_window_s <= 86_400:
            raise ValueError("resume_window_s must be in 0..86400")
        if self.retention_days < 0 or self.write_buffer_items < 10 or self.write_buffer_mb <= 0:
            raise ValueError("retention_days must be >= 0, write_buffer_items >= 10 and write_buffer_mb > 0")


@dataclasses.dataclass
class GatewayConfig(ServerConfig):
    """The gateway: one Converse stream per conversation, across ASR, LLM and TTS."""

    env_prefix = "VOICE_GATEWAY_"

    port: int = setting(50051, "gRPC port.")
    metrics_port: int = setting(9101, "Port of the Prometheus /metrics HTTP endpoint; 0 turns it off.")
    max_streams: int = setting(
        64, "Concurrent conversations; past it, new ones get RESOURCE_EXHAUSTED at once with a retry hint."
    )
    http_port: int = setting(
        8080,
        "HTTP port of the OpenAI Realtime-compatible WebSocket API (/v1/realtime), the browser page (/) and"
        " /healthz; 0 turns it off.",
    )
    persona: PersonaSettings = dataclasses.field(default_factory=PersonaSettings)
    latency: LatencySettings = dataclasses.field(default_factory=LatencySettings)
    turn_taking: TurnTakingSettings = dataclasses.field(default_factory=TurnTakingSettings)
    limits: LimitSettings = dataclasses.field(default_factory=LimitSettings)
    backends: BackendSettings = dataclasses.field(default_factory=BackendSettings)
    auth: AuthSettings = dataclasses.field(default_factory=AuthSettings)
    records: RecordSettings = dataclasses.field(default_factory=RecordSettings)

    def describe(self) -> dict[str, object]:
        return {
            "latency_mode": self.latency.latency_mode,
            "techniques": self.latency.plan().describe(),
            "first_phrase_words": self.latency.first_phrase_words,
            "llm_model": self.backends.llm_model,
            "llm_max_tokens": self.backends.llm_max_tokens,
            "records": {
                "records_url": redacted(self.records.records_url),
                "recordings": bool(self.records.recordings_url),
                "record": self.records.record,
                "memory": self.records.memory,
            },
        }

    def validate(self) -> None:
        super().validate()  # the server's settings, and each group's
        if not 0 <= self.http_port <= 65535:
            raise ValueError(f"http_port must be a port number, got {self.http_port}")
        if self.http_port and self.http_port in {self.port, self.metrics_port, self.health_port}:
            raise ValueError(f"http_port {self.http_port} must differ from port, metrics_port and health_port")


#: What the embedded stack needs to run the gateway.
SERVICE = ServiceSpec("gateway", "gateway", GatewayConfig)
