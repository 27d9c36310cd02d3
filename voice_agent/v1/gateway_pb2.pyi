from voice_agent.v1 import asr_pb2 as _asr_pb2
from voice_agent.v1 import audio_pb2 as _audio_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SessionConfig(_message.Message):
    __slots__ = ("system_prompt", "voice", "input_audio", "output_sample_rate_hz", "barge_in", "latency", "turn_taking", "resume_conversation_id", "record", "memory")
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    INPUT_AUDIO_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    BARGE_IN_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    TURN_TAKING_FIELD_NUMBER: _ClassVar[int]
    RESUME_CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    system_prompt: str
    voice: str
    input_audio: _audio_pb2.AudioFormat
    output_sample_rate_hz: int
    barge_in: bool
    latency: LatencyOptions
    turn_taking: TurnTakingOptions
    resume_conversation_id: str
    record: bool
    memory: bool
    def __init__(self, system_prompt: _Optional[str] = ..., voice: _Optional[str] = ..., input_audio: _Optional[_Union[_audio_pb2.AudioFormat, _Mapping]] = ..., output_sample_rate_hz: _Optional[int] = ..., barge_in: _Optional[bool] = ..., latency: _Optional[_Union[LatencyOptions, _Mapping]] = ..., turn_taking: _Optional[_Union[TurnTakingOptions, _Mapping]] = ..., resume_conversation_id: _Optional[str] = ..., record: _Optional[bool] = ..., memory: _Optional[bool] = ...) -> None: ...

class TurnTakingOptions(_message.Message):
    __slots__ = ("interruption_decision", "backchannels", "echo_rejection", "echo_cancellation")
    INTERRUPTION_DECISION_FIELD_NUMBER: _ClassVar[int]
    BACKCHANNELS_FIELD_NUMBER: _ClassVar[int]
    ECHO_REJECTION_FIELD_NUMBER: _ClassVar[int]
    ECHO_CANCELLATION_FIELD_NUMBER: _ClassVar[int]
    interruption_decision: bool
    backchannels: bool
    echo_rejection: bool
    echo_cancellation: bool
    def __init__(self, interruption_decision: _Optional[bool] = ..., backchannels: _Optional[bool] = ..., echo_rejection: _Optional[bool] = ..., echo_cancellation: _Optional[bool] = ...) -> None: ...

class LatencyOptions(_message.Message):
    __slots__ = ("preemptive_generation", "reuse_pause_transcript", "short_first_phrase", "warm_paths", "adaptive_endpointing", "min_silence_ms")
    PREEMPTIVE_GENERATION_FIELD_NUMBER: _ClassVar[int]
    REUSE_PAUSE_TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    SHORT_FIRST_PHRASE_FIELD_NUMBER: _ClassVar[int]
    WARM_PATHS_FIELD_NUMBER: _ClassVar[int]
    ADAPTIVE_ENDPOINTING_FIELD_NUMBER: _ClassVar[int]
    MIN_SILENCE_MS_FIELD_NUMBER: _ClassVar[int]
    preemptive_generation: bool
    reuse_pause_transcript: bool
    short_first_phrase: bool
    warm_paths: bool
    adaptive_endpointing: bool
    min_silence_ms: int
    def __init__(self, preemptive_generation: _Optional[bool] = ..., reuse_pause_transcript: _Optional[bool] = ..., short_first_phrase: _Optional[bool] = ..., warm_paths: _Optional[bool] = ..., adaptive_endpointing: _Optional[bool] = ..., min_silence_ms: _Optional[int] = ...) -> None: ...

class ConverseRequest(_message.Message):
    __slots__ = ("config", "audio", "text", "end", "truncate")
    class EndSession(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_FIELD_NUMBER: _ClassVar[int]
    config: SessionConfig
    audio: bytes
    text: str
    end: ConverseRequest.EndSession
    truncate: Truncate
    def __init__(self, config: _Optional[_Union[SessionConfig, _Mapping]] = ..., audio: _Optional[bytes] = ..., text: _Optional[str] = ..., end: _Optional[_Union[ConverseRequest.EndSession, _Mapping]] = ..., truncate: _Optional[_Union[Truncate, _Mapping]] = ...) -> None: ...

class Truncate(_message.Message):
    __slots__ = ("turn_id", "audio_end_ms")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_END_MS_FIELD_NUMBER: _ClassVar[int]
    turn_id: int
    audio_end_ms: int
    def __init__(self, turn_id: _Optional[int] = ..., audio_end_ms: _Optional[int] = ...) -> None: ...

class ConverseResponse(_message.Message):
    __slots__ = ("speech_started", "speech_ended", "interim_transcript", "final_transcript", "agent_text", "agent_audio", "interruption", "turn_metrics", "error", "interruption_decision", "session_started")
    SPEECH_STARTED_FIELD_NUMBER: _ClassVar[int]
    SPEECH_ENDED_FIELD_NUMBER: _ClassVar[int]
    INTERIM_TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    FINAL_TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    AGENT_TEXT_FIELD_NUMBER: _ClassVar[int]
    AGENT_AUDIO_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTION_FIELD_NUMBER: _ClassVar[int]
    TURN_METRICS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTION_DECISION_FIELD_NUMBER: _ClassVar[int]
    SESSION_STARTED_FIELD_NUMBER: _ClassVar[int]
    speech_started: _asr_pb2.SpeechStarted
    speech_ended: _asr_pb2.SpeechEnded
    interim_transcript: _asr_pb2.Transcript
    final_transcript: _asr_pb2.Transcript
    agent_text: AgentText
    agent_audio: AgentAudio
    interruption: Interruption
    turn_metrics: TurnMetrics
    error: ErrorEvent
    interruption_decision: InterruptionDecision
    session_started: SessionStarted
    def __init__(self, speech_started: _Optional[_Union[_asr_pb2.SpeechStarted, _Mapping]] = ..., speech_ended: _Optional[_Union[_asr_pb2.SpeechEnded, _Mapping]] = ..., interim_transcript: _Optional[_Union[_asr_pb2.Transcript, _Mapping]] = ..., final_transcript: _Optional[_Union[_asr_pb2.Transcript, _Mapping]] = ..., agent_text: _Optional[_Union[AgentText, _Mapping]] = ..., agent_audio: _Optional[_Union[AgentAudio, _Mapping]] = ..., interruption: _Optional[_Union[Interruption, _Mapping]] = ..., turn_metrics: _Optional[_Union[TurnMetrics, _Mapping]] = ..., error: _Optional[_Union[ErrorEvent, _Mapping]] = ..., interruption_decision: _Optional[_Union[InterruptionDecision, _Mapping]] = ..., session_started: _Optional[_Union[SessionStarted, _Mapping]] = ...) -> None: ...

class SessionStarted(_message.Message):
    __slots__ = ("conversation_id", "resumed", "resume_window_s", "last_turn_id")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    RESUME_WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    LAST_TURN_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    resumed: bool
    resume_window_s: int
    last_turn_id: int
    def __init__(self, conversation_id: _Optional[str] = ..., resumed: _Optional[bool] = ..., resume_window_s: _Optional[int] = ..., last_turn_id: _Optional[int] = ...) -> None: ...

class InterruptionDecision(_message.Message):
    __slots__ = ("turn_id", "kind", "decision_ms", "text")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DECISION_MS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    turn_id: int
    kind: str
    decision_ms: float
    text: str
    def __init__(self, turn_id: _Optional[int] = ..., kind: _Optional[str] = ..., decision_ms: _Optional[float] = ..., text: _Optional[str] = ...) -> None: ...

class AgentText(_message.Message):
    __slots__ = ("turn_id", "delta")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    turn_id: int
    delta: str
    def __init__(self, turn_id: _Optional[int] = ..., delta: _Optional[str] = ...) -> None: ...

class AgentAudio(_message.Message):
    __slots__ = ("turn_id", "sequence_number", "audio", "sample_rate_hz", "text_start", "text_end")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    TEXT_START_FIELD_NUMBER: _ClassVar[int]
    TEXT_END_FIELD_NUMBER: _ClassVar[int]
    turn_id: int
    sequence_number: int
    audio: bytes
    sample_rate_hz: int
    text_start: int
    text_end: int
    def __init__(self, turn_id: _Optional[int] = ..., sequence_number: _Optional[int] = ..., audio: _Optional[bytes] = ..., sample_rate_hz: _Optional[int] = ..., text_start: _Optional[int] = ..., text_end: _Optional[int] = ...) -> None: ...

class Interruption(_message.Message):
    __slots__ = ("turn_id", "heard_text")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    HEARD_TEXT_FIELD_NUMBER: _ClassVar[int]
    turn_id: int
    heard_text: str
    def __init__(self, turn_id: _Optional[int] = ..., heard_text: _Optional[str] = ...) -> None: ...

class TurnMetrics(_message.Message):
    __slots__ = ("turn_id", "vad_wait_ms", "asr_ms", "llm_ttft_ms", "tts_ttfa_ms", "gateway_first_audio_ms", "llm_tokens", "interrupted", "preemptive")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    VAD_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    ASR_MS_FIELD_NUMBER: _ClassVar[int]
    LLM_TTFT_MS_FIELD_NUMBER: _ClassVar[int]
    TTS_TTFA_MS_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIRST_AUDIO_MS_FIELD_NUMBER: _ClassVar[int]
    LLM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    PREEMPTIVE_FIELD_NUMBER: _ClassVar[int]
    turn_id: int
    vad_wait_ms: float
    asr_ms: float
    llm_ttft_ms: float
    tts_ttfa_ms: float
    gateway_first_audio_ms: float
    llm_tokens: int
    interrupted: bool
    preemptive: bool
    def __init__(self, turn_id: _Optional[int] = ..., vad_wait_ms: _Optional[float] = ..., asr_ms: _Optional[float] = ..., llm_ttft_ms: _Optional[float] = ..., tts_ttfa_ms: _Optional[float] = ..., gateway_first_audio_ms: _Optional[float] = ..., llm_tokens: _Optional[int] = ..., interrupted: _Optional[bool] = ..., preemptive: _Optional[bool] = ...) -> None: ...

class ErrorEvent(_message.Message):
    __slots__ = ("code", "message", "backend", "turn_id", "retry_after_ms")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    backend: str
    turn_id: int
    retry_after_ms: int
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., backend: _Optional[str] = ..., turn_id: _Optional[int] = ..., retry_after_ms: _Optional[int] = ...) -> None: ...
