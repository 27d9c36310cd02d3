"""Numbers the protos promise (protos/voice_agent/v1), and the ASR's behaviour its callers count on, for every
process that speaks them.

Each has its home here, so that the service that enforces one and the gateway that
configures or respects it cannot drift apart.
"""

# The longest audio chunk one message may carry, on the ASR's and the gateway's audio streams.
MAX_CHUNK_MS = 1000
# RecognitionConfig.min_silence_ms when unset: the design's end-of-turn silence wait.
DEFAULT_MIN_SILENCE_MS = 200
# The longest end-of-turn silence anyone may ask for (RecognitionConfig.min_silence_ms and
# incomplete_silence_ms, the gateway's LatencyOptions.min_silence_ms): past it a pause is never a turn's end.
MAX_SILENCE_MS = 5000
# RecognitionConfig.incomplete_silence_ms when unset: with the adaptive end of turn, the silence that
# ends a turn whose transcript stops mid-sentence (at least min_silence_ms).
DEFAULT_INCOMPLETE_SILENCE_MS = 700
# RecognitionConfig.interim_interval_ms when unset, and the interval it and a RecognitionUpdate may ask for.
DEFAULT_INTERIM_INTERVAL_MS = 500
INTERIM_INTERVAL_RANGE_MS = (100, 10_000)
# Audio before the VAD's speech start that the ASR transcribes with an utterance by default (its
# onset_pad_ms): the gateway transcribes as much before speech it hears again over the agent's echo.
DEFAULT_ONSET_PAD_MS = 300
# The microphone audio's sample rate (AudioFormat.sample_rate_hz) on the ASR's and the gateway's streams: any
# integer from MIN to MAX Hz, 44.1 and 22.05 kHz included, as people's files and devices come. The ASR resamples
# it to 16 kHz itself (libsoxr), so that no client has to.
MIN_INPUT_RATE_HZ = 8_000
MAX_INPUT_RATE_HZ = 48_000
