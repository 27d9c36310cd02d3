from voice_agent.v1 import audio_pb2 as _audio_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecognizeRequest(_message.Message):
    __slots__ = ("config", "audio", "trace_context", "update")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    config: RecognitionConfig
    audio: bytes
    trace_context: TraceContext
    update: RecognitionUpdate
    def __init__(self, config: _Optional[_Union[RecognitionConfig, _Mapping]] = ..., audio: _Optional[bytes] = ..., trace_context: _Optional[_Union[TraceContext, _Mapping]] = ..., update: _Optional[_Union[RecognitionUpdate, _Mapping]] = ...) -> None: ...

class RecognitionUpdate(_message.Message):
    __slots__ = ("interim_interval_ms",)
    INTERIM_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    interim_interval_ms: int
    def __init__(self, interim_interval_ms: _Optional[int] = ...) -> None: ...

class TraceContext(_message.Message):
    __slots__ = ("utterance_id", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    headers: _containers.ScalarMap[str, str]
    def __init__(self, utterance_id: _Optional[int] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RecognitionConfig(_message.Message):
    __slots__ = ("audio", "language", "vad_threshold", "min_silence_ms", "speech_pad_ms", "interim_results", "interim_interval_ms", "speculative_transcripts", "pause_ms", "reuse_pause_transcript", "adaptive_endpointing", "incomplete_silence_ms", "turn_detector")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    VAD_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MIN_SILENCE_MS_FIELD_NUMBER: _ClassVar[int]
    SPEECH_PAD_MS_FIELD_NUMBER: _ClassVar[int]
    INTERIM_RESULTS_FIELD_NUMBER: _ClassVar[int]
    INTERIM_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    SPECULATIVE_TRANSCRIPTS_FIELD_NUMBER: _ClassVar[int]
    PAUSE_MS_FIELD_NUMBER: _ClassVar[int]
    REUSE_PAUSE_TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    ADAPTIVE_ENDPOINTING_FIELD_NUMBER: _ClassVar[int]
    INCOMPLETE_SILENCE_MS_FIELD_NUMBER: _ClassVar[int]
    TURN_DETECTOR_FIELD_NUMBER: _ClassVar[int]
    audio: _audio_pb2.AudioFormat
    language: str
    vad_threshold: float
    min_silence_ms: int
    speech_pad_ms: int
    interim_results: bool
    interim_interval_ms: int
    speculative_transcripts: bool
    pause_ms: int
    reuse_pause_transcript: bool
    adaptive_endpointing: bool
    incomplete_silence_ms: int
    turn_detector: str
    def __init__(self, audio: _Optional[_Union[_audio_pb2.AudioFormat, _Mapping]] = ..., language: _Optional[str] = ..., vad_threshold: _Optional[float] = ..., min_silence_ms: _Optional[int] = ..., speech_pad_ms: _Optional[int] = ..., interim_results: _Optional[bool] = ..., interim_interval_ms: _Optional[int] = ..., speculative_transcripts: _Optional[bool] = ..., pause_ms: _Optional[int] = ..., reuse_pause_transcript: _Optional[bool] = ..., adaptive_endpointing: _Optional[bool] = ..., incomplete_silence_ms: _Optional[int] = ..., turn_detector: _Optional[str] = ...) -> None: ...

class RecognizeResponse(_message.Message):
    __slots__ = ("speech_started", "interim", "speech_ended", "final", "paused", "resumed")
    SPEECH_STARTED_FIELD_NUMBER: _ClassVar[int]
    INTERIM_FIELD_NUMBER: _ClassVar[int]
    SPEECH_ENDED_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    speech_started: SpeechStarted
    interim: Transcript
    speech_ended: SpeechEnded
    final: Transcript
    paused: SpeechPaused
    resumed: SpeechResumed
    def __init__(self, speech_started: _Optional[_Union[SpeechStarted, _Mapping]] = ..., interim: _Optional[_Union[Transcript, _Mapping]] = ..., speech_ended: _Optional[_Union[SpeechEnded, _Mapping]] = ..., final: _Optional[_Union[Transcript, _Mapping]] = ..., paused: _Optional[_Union[SpeechPaused, _Mapping]] = ..., resumed: _Optional[_Union[SpeechResumed, _Mapping]] = ...) -> None: ...

class SpeechPaused(_message.Message):
    __slots__ = ("utterance_id", "offset_ms", "transcript", "complete")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_MS_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    offset_ms: int
    transcript: Transcript
    complete: bool
    def __init__(self, utterance_id: _Optional[int] = ..., offset_ms: _Optional[int] = ..., transcript: _Optional[_Union[Transcript, _Mapping]] = ..., complete: _Optional[bool] = ...) -> None: ...

class SpeechResumed(_message.Message):
    __slots__ = ("utterance_id", "offset_ms")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_MS_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    offset_ms: int
    def __init__(self, utterance_id: _Optional[int] = ..., offset_ms: _Optional[int] = ...) -> None: ...

class SpeechStarted(_message.Message):
    __slots__ = ("utterance_id", "offset_ms")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_MS_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    offset_ms: int
    def __init__(self, utterance_id: _Optional[int] = ..., offset_ms: _Optional[int] = ...) -> None: ...

class SpeechEnded(_message.Message):
    __slots__ = ("utterance_id", "offset_ms", "decision_offset_ms", "reason")
    class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        REASON_UNSPECIFIED: _ClassVar[SpeechEnded.Reason]
        REASON_SILENCE: _ClassVar[SpeechEnded.Reason]
        REASON_MAX_DURATION: _ClassVar[SpeechEnded.Reason]
        REASON_END_OF_STREAM: _ClassVar[SpeechEnded.Reason]
    REASON_UNSPECIFIED: SpeechEnded.Reason
    REASON_SILENCE: SpeechEnded.Reason
    REASON_MAX_DURATION: SpeechEnded.Reason
    REASON_END_OF_STREAM: SpeechEnded.Reason
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_MS_FIELD_NUMBER: _ClassVar[int]
    DECISION_OFFSET_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    offset_ms: int
    decision_offset_ms: int
    reason: SpeechEnded.Reason
    def __init__(self, utterance_id: _Optional[int] = ..., offset_ms: _Optional[int] = ..., decision_offset_ms: _Optional[int] = ..., reason: _Optional[_Union[SpeechEnded.Reason, str]] = ...) -> None: ...

class Transcript(_message.Message):
    __slots__ = ("utterance_id", "text", "start_ms", "end_ms", "processing_ms", "inference_ms", "reused")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    REUSED_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    text: str
    start_ms: int
    end_ms: int
    processing_ms: float
    inference_ms: float
    reused: bool
    def __init__(self, utterance_id: _Optional[int] = ..., text: _Optional[str] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., processing_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., reused: _Optional[bool] = ...) -> None: ...
