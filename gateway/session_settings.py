"""A conversation's settings: what its client chose, over the gateway's own, validated, frozen.

This is where a session's choices meet GatewayConfig's defaults, once per conversation: the
conversation core, its ASR streams and its turns' TTS streams all read the result, never a wire
message or the defaults again. Each front reads its own wire format into SessionChoices: the gRPC
SessionConfig here (``session_settings``), the Realtime API's session in gateway/realtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from gateway.config import GatewayConfig
from gateway.history import estimate_tokens
from gateway.latency import LatencyPlan
from gateway.turn_taking import Techniques
from voice_agent.audio import TTS_OUTPUT_RATES, check_format, check_input_rate
from voice_agent.contract import MAX_SILENCE_MS
from voice_agent.errors import InvalidArgument
from voice_agent.v1 import asr_pb2, audio_pb2, gateway_pb2, tts_pb2

# The end-of-turn silence when the client ends each utterance itself (push to talk, Commit): the longest
# the ASR allows, so that a pause is never taken for the end.
PUSH_TO_TALK_SILENCE_MS = MAX_SILENCE_MS


@dataclass(frozen=True)
class SessionChoices:
    """What a client may choose for its conversation; each default: the gateway's."""

    input_sample_rate: int
    system_prompt: str = ""
    voice: str = ""
    output_sample_rate: int = 0  # 0: the TTS engine's own
    barge_in: bool | None = None
    latency: dict[str, bool | int] = field(default_factory=dict)  # LatencyPlan fields
    #: False: a user's turn joins the history and waits for a Respond (the client decides when to reply).
    respond_automatically: bool = True
    #: True: the client ends each utterance itself (Commit); the silence does not.
    push_to_talk: bool = False
    #: TurnTaking fields (interruption_decision, backchannels, echo_rejection, echo_cancellation); unset: the
    #: gateway's.
    turn_taking: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class TurnTaking:
    """How speech over the agent is judged (gateway/turn_taking)."""

    interruption_decision: bool = True
    backchannels: bool = True
    echo_rejection: bool = True
    echo_cancellation: bool = False

    @property
    def techniques(self) -> Techniques:
        return Techniques(backchannels=self.backchannels, echo=self.echo_rejection)


@dataclass(frozen=True)
class SessionSettings:
    system_prompt: str
    barge_in: bool
    plan: LatencyPlan
    input_sample_rate: int
    respond_automatically: bool
    #: What each of the session's ASR streams is opened with: the microphone format and the end of turn.
    recognition: asr_pb2.RecognitionConfig
    #: What each of its turns' TTS streams is opened with: voice, output rate, first phrase.
    synthesis: tts_pb2.SynthesisConfig
    turn_taking: TurnTaking = TurnTaking()

    @property
    def voice(self) -> str:
        return self.synthesis.voice

    @property
    def decides_speech_over_agent(self) -> bool:
        """Speech over the agent is decided (interruption, backchannel, noise, echo), not taken as barge-in."""
        return self.barge_in and self.turn_taking.interruption_decision


def settings_for(choices: SessionChoices, config: GatewayConfig) -> SessionSettings:
    """Raises InvalidArgument naming the first choice that cannot be."""
    _check_prompt(choices.system_prompt, config.limits.history_tokens)
    check_input_rate(choices.input_sample_rate)  # any in range: the ASR resamples it, the client need not
    if choices.output_sample_rate and choices.output_sample_rate not in TTS_OUTPUT_RATES:
        rates = ", ".join(map(str, TTS_OUTPUT_RATES))
        raise InvalidArgument(f"unsupported output rate {choices.output_sample_rate} Hz: use 0 or one of {rates}")
    latency = dict(choices.latency)
    if choices.push_to_talk:
        latency |= {"min_silence_ms": PUSH_TO_TALK_SILENCE_MS, "adaptive_endpointing": False}
    if not choices.respond_automatically:
        latency |= {"preemptive_generation": False}  # no reply starts before the client asks for one
    plan = config.latency.plan().with_options(**latency)
    turn_taking = TurnTaking(
        interruption_decision=config.turn_taking.interruption_decision,
        backchannels=config.turn_taking.backchannel_words,
        echo_rejection=config.turn_taking.echo_rejection,
        echo_cancellation=config.turn_taking.echo_cancellation,
    )
    unknown = set(choices.turn_taking) - {f.name for f in fields(TurnTaking)}
    if unknown:
        raise InvalidArgument(f"unknown turn-taking options: {', '.join(sorted(unknown))}")
    turn_taking = replace(turn_taking, **choices.turn_taking)
    audio = audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_PCM16LE, sample_rate_hz=choices.input_sample_rate)
    options = plan.recognition_options(config.latency.incomplete_silence_ms)
    recognition = asr_pb2.RecognitionConfig(audio=audio, **options)  # type: ignore[arg-type]
    synthesis = tts_pb2.SynthesisConfig(
        voice=choices.voice or config.persona.voice,
        sample_rate_hz=choices.output_sample_rate,
        first_phrase_words=plan.first_phrase_words(config.latency.first_phrase_words),
    )
    return SessionSettings(
        system_prompt=choices.system_prompt or config.persona.system_prompt,
        barge_in=config.turn_taking.barge_in if choices.barge_in is None else choices.barge_in,
        plan=plan,
        input_sample_rate=choices.input_sample_rate,
        respond_automatically=choices.respond_automatically,
        recognition=recognition,
        synthesis=synthesis,
        turn_taking=turn_taking,
    )


def session_settings(request: gateway_pb2.ConverseRequest, config: GatewayConfig) -> SessionSettings:
    """Reads a Converse stream's first message; raises InvalidArgument naming the problem."""
    return settings_for(session_choices(request), config)


def session_choices(request: gateway_pb2.ConverseRequest) -> SessionChoices:
    """What a Converse stream's first message chose; raises InvalidArgument naming the problem."""
    if request.WhichOneof("request") != "config":
        raise InvalidArgument("the first message of a Converse stream must be a SessionConfig (field 'config')")
    chosen = request.config
    if not chosen.HasField("input_audio"):
        raise InvalidArgument("SessionConfig.input_audio is required: give the encoding and sample_rate_hz")
    choices = SessionChoices(
        input_sample_rate=check_format(chosen.input_audio),
        system_prompt=chosen.system_prompt,
        voice=chosen.voice,
        output_sample_rate=chosen.output_sample_rate_hz,
        barge_in=chosen.barge_in if chosen.HasField("barge_in") else None,
        latency=latency_choices(chosen.latency),
        turn_taking=latency_choices(chosen.turn_taking),  # type: ignore[arg-type]
    )
    return choices


def latency_choices(options: gateway_pb2.LatencyOptions | gateway_pb2.TurnTakingOptions) -> dict[str, bool | int]:
    """The techniques a session set, by name; an unset one keeps the gateway's."""
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
