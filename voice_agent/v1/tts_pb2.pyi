from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SynthesisConfig(_message.Message):
    __slots__ = ("voice", "sample_rate_hz", "speed", "first_phrase_words", "engine")
    VOICE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    FIRST_PHRASE_WORDS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    voice: str
    sample_rate_hz: int
    speed: float
    first_phrase_words: int
    engine: str
    def __init__(self, voice: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., speed: _Optional[float] = ..., first_phrase_words: _Optional[int] = ..., engine: _Optional[str] = ...) -> None: ...

class SynthesizeRequest(_message.Message):
    __slots__ = ("config", "text")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    config: SynthesisConfig
    text: str
    def __init__(self, config: _Optional[_Union[SynthesisConfig, _Mapping]] = ..., text: _Optional[str] = ...) -> None: ...

class SynthesizeStreamRequest(_message.Message):
    __slots__ = ("config", "text", "flush", "end")
    class Flush(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    class End(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FLUSH_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    config: SynthesisConfig
    text: str
    flush: SynthesizeStreamRequest.Flush
    end: SynthesizeStreamRequest.End
    def __init__(self, config: _Optional[_Union[SynthesisConfig, _Mapping]] = ..., text: _Optional[str] = ..., flush: _Optional[_Union[SynthesizeStreamRequest.Flush, _Mapping]] = ..., end: _Optional[_Union[SynthesizeStreamRequest.End, _Mapping]] = ...) -> None: ...

class SynthesizeResponse(_message.Message):
    __slots__ = ("audio",)
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    audio: TtsAudioChunk
    def __init__(self, audio: _Optional[_Union[TtsAudioChunk, _Mapping]] = ...) -> None: ...

class TtsAudioChunk(_message.Message):
    __slots__ = ("audio", "sample_rate_hz", "sequence_number", "phrase_index", "text_start", "text_end", "phrase_offset_ms", "phrase_duration_ms", "phrase_end", "timing")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PHRASE_INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_START_FIELD_NUMBER: _ClassVar[int]
    TEXT_END_FIELD_NUMBER: _ClassVar[int]
    PHRASE_OFFSET_MS_FIELD_NUMBER: _ClassVar[int]
    PHRASE_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    PHRASE_END_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    audio: bytes
    sample_rate_hz: int
    sequence_number: int
    phrase_index: int
    text_start: int
    text_end: int
    phrase_offset_ms: int
    phrase_duration_ms: int
    phrase_end: bool
    timing: SynthesisTiming
    def __init__(self, audio: _Optional[bytes] = ..., sample_rate_hz: _Optional[int] = ..., sequence_number: _Optional[int] = ..., phrase_index: _Optional[int] = ..., text_start: _Optional[int] = ..., text_end: _Optional[int] = ..., phrase_offset_ms: _Optional[int] = ..., phrase_duration_ms: _Optional[int] = ..., phrase_end: _Optional[bool] = ..., timing: _Optional[_Union[SynthesisTiming, _Mapping]] = ...) -> None: ...

class SynthesisTiming(_message.Message):
    __slots__ = ("synthesis_ms", "phrase_latency_ms", "stream_elapsed_ms")
    SYNTHESIS_MS_FIELD_NUMBER: _ClassVar[int]
    PHRASE_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    STREAM_ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    synthesis_ms: float
    phrase_latency_ms: float
    stream_elapsed_ms: float
    def __init__(self, synthesis_ms: _Optional[float] = ..., phrase_latency_ms: _Optional[float] = ..., stream_elapsed_ms: _Optional[float] = ...) -> None: ...

class ListVoicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListVoicesResponse(_message.Message):
    __slots__ = ("engine", "voices", "default_voice", "sample_rate_hz", "voice_aliases")
    class VoiceAliasesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    VOICES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VOICE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    VOICE_ALIASES_FIELD_NUMBER: _ClassVar[int]
    engine: str
    voices: _containers.RepeatedScalarFieldContainer[str]
    default_voice: str
    sample_rate_hz: int
    voice_aliases: _containers.ScalarMap[str, str]
    def __init__(self, engine: _Optional[str] = ..., voices: _Optional[_Iterable[str]] = ..., default_voice: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., voice_aliases: _Optional[_Mapping[str, str]] = ...) -> None: ...
