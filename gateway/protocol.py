"""A conversation's settings: the client's SessionConfig read over the gateway's own, validated, frozen.

This is where a session's choices meet GatewayConfig's defaults, once per conversation: the
conversation core, its ASR streams and its turns' TTS streams all read the result, never the
wire message or the defaults again.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import GatewayConfig
from gateway.history import estimate_tokens
from gateway.latency import LatencyPlan
from voice_agent.audio import ASR_INPUT_RATES, TTS_OUTPUT_RATES, check_format
from voice_agent.errors import InvalidArgument
from voice_agent.v1 import asr_pb2, gateway_pb2, tts_pb2


@dataclass(frozen=True)
class SessionSettings:
    system_prompt: str
    barge_in: bool
    plan: LatencyPlan
    input_sample_rate: int
    #: What each of the session's ASR streams is opened with: the microphone format and the end of turn.
    recognition: asr_pb2.RecognitionConfig
    #: What each of its turns' TTS streams is opened with: voice, output rate, first phrase.
    synthesis: tts_pb2.SynthesisConfig

    @property
    def voice(self) -> str:
        return self.synthesis.voice


def session_settings(request: gateway_pb2.ConverseRequest, config: GatewayConfig) -> SessionSettings:
    """Reads the stream's first message; raises InvalidArgument naming the problem."""
    if request.WhichOneof("request") != "config":
        raise InvalidArgument("the first message of a Converse stream must be a SessionConfig (field 'config')")
    chosen = request.config
    _check_prompt(chosen.system_prompt, config.history_tokens)
    if not chosen.HasField("input_audio"):
        raise InvalidArgument("SessionConfig.input_audio is required: give the encoding and sample_rate_hz")
    input_rate = check_format(chosen.input_audio, ASR_INPUT_RATES)
    output_rate = chosen.output_sample_rate_hz
    if output_rate and output_rate not in TTS_OUTPUT_RATES:
        raise InvalidArgument(
            f"unsupported output rate {output_rate} Hz: use 0 or one of {', '.join(map(str, TTS_OUTPUT_RATES))}"
        )
    plan = config.latency_plan().with_options(**latency_choices(chosen.latency))
    recognition = asr_pb2.RecognitionConfig(
        audio=chosen.input_audio,
        **plan.recognition_options(config.incomplete_silence_ms),  # type: ignore[arg-type]
    )
    synthesis = tts_pb2.SynthesisConfig(
        voice=chosen.voice or config.voice,
        sample_rate_hz=output_rate,
        first_phrase_words=plan.first_phrase_words(config.first_phrase_words),
    )
    return SessionSettings(
        system_prompt=chosen.system_prompt or config.system_prompt,
        barge_in=chosen.barge_in if chosen.HasField("barge_in") else config.barge_in,
        plan=plan,
        input_sample_rate=input_rate,
        recognition=recognition,
        synthesis=synthesis,
    )


def latency_choices(options: gateway_pb2.LatencyOptions) -> dict[str, bool | int]:
    """The techniques a session set, by name; an unset one keeps the gateway's mode."""
    return {
        field.name: getattr(options, field.name) for field in options.DESCRIPTOR.fields if options.HasField(field.name)
    }


def _check_prompt(system_prompt: str, history_tokens: int) -> None:
    # It is always sent whole: past the history's budget it would crowd out the conversation,
    # or overflow the LLM's context and fail every turn.
    if estimate_tokens(system_prompt) > history_tokens:
        raise InvalidArgument(
            f"the system prompt (~{estimate_tokens(system_prompt)} tokens) is over the history budget"
            f" of {history_tokens} tokens"
        )
