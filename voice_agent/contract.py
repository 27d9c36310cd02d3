"""Numbers the protos promise (protos/voice_agent/v1), for every process that speaks them.

Each has its home here, so that the service that enforces one and the gateway that
configures or respects it cannot drift apart.
"""

# The longest audio chunk one message may carry, on the ASR's and the gateway's audio streams.
MAX_CHUNK_MS = 1000
# RecognitionConfig.incomplete_silence_ms when unset: with the adaptive end of turn, the silence that
# ends a turn whose transcript stops mid-sentence (at least min_silence_ms).
DEFAULT_INCOMPLETE_SILENCE_MS = 700
