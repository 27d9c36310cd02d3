"""Numbers the protos promise (protos/voice_agent/v1), for every process that speaks them.

Each has its home here, so that the service that enforces one and the gateway that
configures or respects it cannot drift apart.
"""

# The longest audio chunk one message may carry, on the ASR's and the gateway's audio streams.
MAX_CHUNK_MS = 1000
# RecognitionConfig.incomplete_silence_ms when unset: with the adaptive end of turn, the silence that
# ends a turn whose transcript stops mid-sentence (at least min_silence_ms).
DEFAULT_INCOMPLETE_SILENCE_MS = 700
# The microphone audio's sample rate (AudioFormat.sample_rate_hz) on the ASR's and the gateway's streams: any
# integer from MIN to MAX Hz, 44.1 and 22.05 kHz included, as people's files and devices come. The ASR resamples
# it to 16 kHz itself (libsoxr), so that no client has to.
MIN_INPUT_RATE_HZ = 8_000
MAX_INPUT_RATE_HZ = 48_000
